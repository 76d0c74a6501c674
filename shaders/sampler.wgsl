// Reverse-diffusion sampler updates (DESIGN.md section 4), one fused pass per step so a whole
// reverse process runs without host readback. The host turns every sampler (Euler, DDIM/DDPM,
// Heun, Adams-Bashforth, exponential AB, predictor-corrector) into the coefficients of one
// affine update; multistep coefficients come from f64 Vandermonde solves on the host.
//
// Shape legend: N values of the state (B*C*L*H*W), S ring slots of past z (S = method order).
// Entry points:
//   observe: out = mask ? k*y : x                          (the denoiser's input, inpainting)
//   update:  m = mask ? y : mean                            (observed positions are known)
//            z = (xz - a_t*m) / s_t         -> ring[slot]  (noise prediction)
//            out = cx*xb + cm*m + sum_j c_j*ring[j] + cn*eps,  eps = normal(seed, offset + i)
// Dispatch: 1-D, 256 per workgroup over N (x/y split).

struct Params {
    n: u32,
    observed: u32,  // 0: no observation (obs is a dummy binding)
    slot: u32,      // ring slot that receives this step's z
    slots: u32,     // S
    a_t: f32,
    s_t: f32,
    cx: f32,
    cm: f32,
    cn: f32,
    k: f32,         // observe: sqrt(a_t^2 + s_t^2)
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    _pad0: u32,
    _pad1: u32,
    c: array<vec4<f32>, 2>,  // ring coefficients c_j, j < S <= 8
}

@group(0) @binding(0) var<uniform> params: Params;
// observe binds 1..3 only (the registry binds consecutive slots), update binds them all.
@group(0) @binding(1) var<storage, read> obs: array<f32>;         // [2, N] observed y, then mask
@group(0) @binding(2) var<storage, read> xz: array<f32>;          // [N] state that z is taken of
@group(0) @binding(3) var<storage, read_write> out: array<f32>;   // [N] next state
@group(0) @binding(4) var<storage, read> xb: array<f32>;          // [N] state the step starts from
@group(0) @binding(5) var<storage, read> mean: array<f32>;        // [N] denoiser posterior mean
@group(0) @binding(6) var<storage, read_write> ring: array<f32>;  // [S, N] past z

// The counter hash of shaders/random.wgsl and crates/lemur-tensor/src/rng.rs (WGSL has no
// includes); the GPU-vs-CPU sampler tests compare the noise bit for bit through it.
fn mix32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn uniform01(c0: u32, c1: u32) -> f32 {
    var h = mix32(params.seed_hi + 0x9e3779b9u);
    h = mix32(h ^ params.seed_lo);
    h = mix32(h ^ c1);
    h = mix32(h ^ c0);
    return f32((h >> 8u) + 1u) * (1.0 / 16777216.0);
}

fn normal(i: u32) -> f32 {
    let lo = params.off_lo + i;
    let hi = params.off_hi + select(0u, 1u, lo < params.off_lo);
    let dlo = lo << 1u;
    let dhi = (hi << 1u) | (lo >> 31u);
    let u1 = uniform01(dlo, dhi);
    let u2 = uniform01(dlo | 1u, dhi);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn observe(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if i >= params.n { return; }
    out[i] = select(xz[i], params.k * obs[i], obs[params.n + i] != 0.0);
}

@compute @workgroup_size(256)
fn update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if i >= params.n { return; }
    var m = mean[i];
    if params.observed != 0u && obs[params.n + i] != 0.0 {
        m = obs[i];
    }
    ring[params.slot * params.n + i] = (xz[i] - params.a_t * m) / params.s_t;
    var acc = params.cx * xb[i] + params.cm * m;
    for (var j = 0u; j < params.slots; j++) {
        acc += params.c[j / 4u][j % 4u] * ring[j * params.n + i];
    }
    if params.cn != 0.0 {
        acc += params.cn * normal(i);
    }
    out[i] = acc;
}
