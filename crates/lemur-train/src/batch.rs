//! Batches as pure functions of `(seed, step, micro-batch)`: the sample indices and
//! augmentation seeds are hashes of those counters (with replacement), not draws from a
//! stateful generator, so a resumed run sees exactly the batches an uninterrupted one would.

use lemur_tensor::rng;

/// Separate streams for the different uses of the run's seed.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Stream {
    TrainIndex = 0x7472_6169_6e00_0001,
    TrainAugment = 0x7472_6169_6e00_0002,
    ValIndex = 0x7661_6c00_0000_0001,
    Model = 0x6d6f_6465_6c00_0001,
    ValModel = 0x7661_6c00_0000_0002,
}

fn hash64(seed: u64, stream: Stream, counter: u64) -> u64 {
    let key = seed ^ stream as u64;
    (u64::from(rng::bits(key, counter)) << 32) | u64::from(rng::bits(key.rotate_left(17), counter))
}

/// The flat counter of item `j` of micro-batch `micro` of step `step`.
fn counter(step: u32, micro: usize, j: usize) -> u64 {
    (u64::from(step) << 40) ^ ((micro as u64) << 24) ^ j as u64
}

/// The dataset index of item `j` of micro-batch `micro` of optimizer step `step`, among `n`.
pub fn index(seed: u64, stream: Stream, step: u32, micro: usize, j: usize, n: usize) -> usize {
    (hash64(seed, stream, counter(step, micro, j)) % n as u64) as usize
}

/// A 64-bit seed for item `j` (augmentations).
pub fn item_seed(seed: u64, stream: Stream, step: u32, micro: usize, j: usize) -> u64 {
    hash64(seed, stream, counter(step, micro, j))
}

/// The seed of a model's own randomness (dropout, noise, masks) for one micro-batch.
pub fn model_seed(seed: u64, stream: Stream) -> u64 {
    hash64(seed, stream, 0)
}

/// A flat forward-pass counter: distinct for every micro-batch of every step.
pub fn pass(step: u32, accum: usize, micro: usize) -> u64 {
    u64::from(step) * accum as u64 + micro as u64
}
