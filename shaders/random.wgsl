// Counter-based random numbers: sample i of stream `seed` is a hash of (seed, offset + i), the
// same function as crates/lemur-tensor/src/rng.rs, so both backends give the same stream.
//
// Shape legend: N samples. Dispatch: 1-D, 256 per workgroup over N (x/y split).

struct Params {
    n: u32,
    dist: u32,      // 0 uniform on (0, 1], 1 standard normal
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;  // [N]

fn mix32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn bits(c0: u32, c1: u32) -> u32 {
    var h = mix32(params.seed_hi + 0x9e3779b9u);
    h = mix32(h ^ params.seed_lo);
    h = mix32(h ^ c1);
    return mix32(h ^ c0);
}

fn uniform01(c0: u32, c1: u32) -> f32 {
    return f32((bits(c0, c1) >> 8u) + 1u) * (1.0 / 16777216.0);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if i >= params.n { return; }
    // 64-bit counter = offset + i, as (lo, hi) with carry.
    let lo = params.off_lo + i;
    let hi = params.off_hi + select(0u, 1u, lo < params.off_lo);
    if params.dist == 0u {
        out[i] = uniform01(lo, hi);
    } else {
        // Counters 2c and 2c + 1.
        let dlo = lo << 1u;
        let dhi = (hi << 1u) | (lo >> 31u);
        let u1 = uniform01(dlo, dhi);
        let u2 = uniform01(dlo | 1u, dhi);
        out[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
}
