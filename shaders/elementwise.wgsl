// Elementwise kernels: unary functions and their derivatives, broadcast binary ops, select
// by mask, fill.
//
// Shape legend: N output elements; up to 8 broadcast dims (`shape`), with per-input element
// strides `s0`, `s1`, `s2` (0 on broadcast axes).
// Dispatch: 1-D, 256 invocations per workgroup, ceil(N/256) workgroups split over x and y so
// neither exceeds 65535 (index = (wg.y * num_workgroups.x + wg.x) * 256 + lid.x).
// Op codes match `Unary::code` / `Binary::code` in crates/lemur-tensor/src/backend.rs.

struct Params {
    n: u32,
    ndim: u32,
    op: u32,
    _pad0: u32,
    p: f32,
    q: f32,
    _pad1: f32,
    _pad2: f32,
    shape: array<vec4<u32>, 2>,
    s0: array<vec4<u32>, 2>,
    s1: array<vec4<u32>, 2>,
    s2: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;

// unary / fill / binary / select share the binding slots; each entry point uses its own set.
@group(0) @binding(1) var<storage, read> in0: array<f32>;          // [N or broadcast] x | a | mask
@group(0) @binding(2) var<storage, read> in1: array<f32>;          // [N or broadcast] dy | b | a
@group(0) @binding(3) var<storage, read> in2: array<f32>;          // [N or broadcast] b (select)
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;   // [N] out of unary
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;   // [N] out of binary, unary_backward
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;   // [N] out of select
@group(0) @binding(1) var<storage, read_write> out1: array<f32>;   // [N] out of fill

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}

fn unary_f(op: u32, x: f32, p: f32, q: f32) -> f32 {
    switch op {
        case 0u: { return -x; }
        case 1u: { return x / (1.0 + exp(-x)); }
        case 2u: { return exp(x); }
        case 3u: { return log(x); }
        case 4u: { return sqrt(x); }
        case 5u: { return inverseSqrt(x); }
        case 6u: { return x * x; }
        case 7u: { return sin(x); }
        case 8u: { return cos(x); }
        case 9u: { return abs(x); }
        case 10u: { return x * inverseSqrt(1.0 + (x / 5.0) * (x / 5.0)); }
        case 11u: { return x * p; }
        case 12u: { return x + p; }
        case 13u: { return min(max(x, p), q); }
        case 14u: { return select(0.0, 1.0, x > p); }
        case 15u: { return inverseSqrt(x * x + 1.0); }
        default: { return x; }
    }
}

fn unary_df(op: u32, x: f32, p: f32, q: f32) -> f32 {
    switch op {
        case 0u: { return -1.0; }
        case 1u: {
            let s = 1.0 / (1.0 + exp(-x));
            return s * (1.0 + x * (1.0 - s));
        }
        case 2u: { return exp(x); }
        case 3u: { return 1.0 / x; }
        case 4u: { return 0.5 / sqrt(x); }
        case 5u: { return -0.5 / (x * sqrt(x)); }
        case 6u: { return 2.0 * x; }
        case 7u: { return cos(x); }
        case 8u: { return -sin(x); }
        case 9u: { return sign(x); }
        case 10u: {
            let r = inverseSqrt(1.0 + (x / 5.0) * (x / 5.0));
            return r * r * r;
        }
        case 11u: { return p; }
        case 12u: { return 1.0; }
        case 13u: { return select(0.0, 1.0, x >= p && x <= q); }
        case 15u: {
            let r = inverseSqrt(x * x + 1.0);
            return -x * r * r * r;
        }
        default: { return 0.0; }
    }
}

fn binary_f(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return max(a, b); }
        default: { return min(a, b); }
    }
}

// Offsets of output element i into the three inputs.
fn offsets(i: u32) -> vec3<u32> {
    var rem = i;
    var o = vec3<u32>(0u);
    for (var d = i32(params.ndim) - 1; d >= 0; d--) {
        let du = u32(d);
        let n = params.shape[du / 4u][du % 4u];
        let idx = rem % n;
        rem = rem / n;
        o += idx * vec3<u32>(params.s0[du / 4u][du % 4u], params.s1[du / 4u][du % 4u], params.s2[du / 4u][du % 4u]);
    }
    return o;
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    out2[i] = unary_f(params.op, in0[i], params.p, params.q);
}

@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    out3[i] = in1[i] * unary_df(params.op, in0[i], params.p, params.q);
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    let o = offsets(i);
    out3[i] = binary_f(params.op, in0[o.x], in1[o.y]);
}

@compute @workgroup_size(256)
fn select_mask(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    let o = offsets(i);
    out4[i] = select(in2[o.z], in1[o.y], in0[o.x] != 0.0);
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= params.n { return; }
    out1[i] = params.p;
}
