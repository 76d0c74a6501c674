// Fused AdamW update of one parameter tensor, with global-norm gradient clipping read from a
// one-element buffer (so clipping needs no host readback).
//
// Shape legend: N parameters. Dispatch: 1-D, 256 per workgroup over N (x/y split).

struct Params {
    n: u32,
    use_norm: u32,
    _pad0: u32,
    _pad1: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,
    bc1: f32,       // 1 - beta1^step
    bc2: f32,       // 1 - beta2^step
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> p: array<f32>;   // [N] parameter
@group(0) @binding(2) var<storage, read_write> m: array<f32>;   // [N] first moment
@group(0) @binding(3) var<storage, read_write> v: array<f32>;   // [N] second moment
@group(0) @binding(4) var<storage, read> g: array<f32>;         // [N] gradient
@group(0) @binding(5) var<storage, read> gnorm_sq: array<f32>;  // [1] squared global grad norm

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    var scale = 1.0;
    if params.use_norm != 0u && params.max_norm > 0.0 {
        scale = min(params.max_norm / (sqrt(gnorm_sq[0]) + 1e-6), 1.0);
    }
    if i >= params.n { return; }
    let gi = g[i] * scale;
    let mi = params.beta1 * m[i] + (1.0 - params.beta1) * gi;
    let vi = params.beta2 * v[i] + (1.0 - params.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let mhat = mi / params.bc1;
    let vhat = vi / params.bc2;
    p[i] = p[i] - params.lr * (mhat / (sqrt(vhat) + params.eps) + params.weight_decay * p[i]);
}
