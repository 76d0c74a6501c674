// The ViT's AdaLN-zero blocks: the gated residual out = (x + c * y) * rsqrt(1 + c^2) and the
// modulation out = (1 + c) * x + b of a normalised x, forward and the elementwise part of their
// backward, one kernel each instead of three or four.
//
// Shape legend: x, y, out, dout (B, T, C), N = B * T * C elements; the per-channel vectors c
// and b are (B, C) when `batched`, else (C) shared by the batch. g = rsqrt(1 + c^2).
// `gate_forward`: out = (x + c y) g.
// `gate_backward`: dx = dout g, dy = dout c g, and per element the gate's term
//   t = dout (y g - (x + c y) c g^3).
// `modulate_forward`: out = (1 + c) x + b.
// `modulate_backward`: dx = dout (1 + c), and the term t = dout x of dc.
// The host sums the terms (and dout, for db) over T, and over B when the vector is shared,
// with the reduce kernels.
// Dispatch: 1-D, 256 invocations per workgroup over N, split over x and y so neither exceeds
// 65535 (index = (wg.y * num_workgroups.x + wg.x) * 256 + lid.x).

struct Params {
    n: u32,
    channels: u32,
    // T * C: the elements of one batch element.
    batch_cols: u32,
    batched: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;              // [B, T, C]
@group(0) @binding(2) var<storage, read> y: array<f32>;              // [B, T, C] (gate)
@group(0) @binding(2) var<storage, read> b: array<f32>;              // [B, C] or [C] (modulate)
@group(0) @binding(3) var<storage, read> c: array<f32>;              // [B, C] or [C]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;      // [B, T, C] (forward)
@group(0) @binding(4) var<storage, read> dout: array<f32>;           // [B, T, C] (backward)
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;       // [B, T, C]
@group(0) @binding(6) var<storage, read_write> dy: array<f32>;       // [B, T, C]
@group(0) @binding(7) var<storage, read_write> dterm: array<f32>;    // [B, T, C]
// modulate_backward's own names for bindings 2..5 (each entry point uses 1.. contiguously).
@group(0) @binding(2) var<storage, read> mc: array<f32>;             // [B, C] or [C]
@group(0) @binding(3) var<storage, read> mdout: array<f32>;          // [B, T, C]
@group(0) @binding(4) var<storage, read_write> mdx: array<f32>;      // [B, T, C]
@group(0) @binding(5) var<storage, read_write> mterm: array<f32>;    // [B, T, C]

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}

// The index into c (and b) of element i of x.
fn vec_index(i: u32) -> u32 {
    let ch = i % params.channels;
    if params.batched != 0u {
        return i / params.batch_cols * params.channels + ch;
    }
    return ch;
}

@compute @workgroup_size(256)
fn gate_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    let cv = c[vec_index(i)];
    out[i] = (x[i] + cv * y[i]) * inverseSqrt(1.0 + cv * cv);
}

@compute @workgroup_size(256)
fn gate_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    let cv = c[vec_index(i)];
    let g = inverseSqrt(1.0 + cv * cv);
    let d = dout[i];
    let yi = y[i];
    dx[i] = d * g;
    dy[i] = d * cv * g;
    dterm[i] = d * (yi * g - (x[i] + cv * yi) * cv * g * g * g);
}

@compute @workgroup_size(256)
fn modulate_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    let k = vec_index(i);
    out[i] = (1.0 + c[k]) * x[i] + b[k];
}

@compute @workgroup_size(256)
fn modulate_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    let d = mdout[i];
    mdx[i] = d * (1.0 + mc[vec_index(i)]);
    mterm[i] = d * x[i];
}
