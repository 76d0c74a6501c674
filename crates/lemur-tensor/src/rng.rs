//! The counter-based random stream shared by both backends (mirrored in `shaders/random.wgsl`).
//!
//! Sample `i` of stream `seed` is a pure function of `(seed, i)`, so the CPU and GPU give the
//! same numbers and any slice of the stream can be drawn without drawing what precedes it.
//! Integer hashing is bit-identical across backends; the normal transform goes through `ln`
//! and `cos`, which agree to a few ulps.

/// A 32-bit avalanche mix (the "lowbias32" constants of Chris Wellons' hash prospector).
#[inline]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// 32 random bits for counter `c` of stream `seed`.
#[inline]
pub fn bits(seed: u64, c: u64) -> u32 {
    let (k0, k1) = (seed as u32, (seed >> 32) as u32);
    let (c0, c1) = (c as u32, (c >> 32) as u32);
    let mut h = mix32(k1.wrapping_add(0x9e37_79b9));
    h = mix32(h ^ k0);
    h = mix32(h ^ c1);
    mix32(h ^ c0)
}

/// Uniform on (0, 1]: 24 random bits, exactly representable in f32 (never 0, so `ln` is safe).
#[inline]
pub fn uniform(seed: u64, c: u64) -> f32 {
    ((bits(seed, c) >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// Standard normal for sample `i`, from the uniform pair at counters 2i and 2i + 1.
#[inline]
pub fn normal(seed: u64, i: u64) -> f32 {
    let u1 = uniform(seed, 2 * i);
    let u2 = uniform(seed, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
