//! Reference counter-based random numbers (mirrors `shaders/random.wgsl`).

use super::par_chunks_mut;
use crate::backend::Dist;
use crate::rng;

pub(crate) fn random(dist: Dist, seed: u64, offset: u64, len: usize) -> Vec<f32> {
    let mut out = vec![0.0; len];
    par_chunks_mut(&mut out, 4096, |c, o| {
        for (i, o) in o.iter_mut().enumerate() {
            let n = offset + (c * 4096 + i) as u64;
            *o = match dist {
                Dist::Uniform => rng::uniform(seed, n),
                Dist::Normal => rng::normal(seed, n),
            };
        }
    });
    out
}
