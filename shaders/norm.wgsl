// Normalisation (layer norm with biased or unbiased variance, RMS norm) over the middle axis
// of x viewed as (outer, C, inner), its backward, and softmax over rows with its backward.
//
// Shape legend: a column is the C values x[o, :, i] for o < outer, i < inner; element j of
// column (o, i) sits at o*C*inner + j*inner + i (inner = 1: a token's channels; inner = H*W:
// the channel axis of NCHW). Softmax uses the same addressing with C = n and inner = 1, so a
// column is a row of (rows, n).
// `kind`: 0 Layer (var / C), 1 LayerUnbiased (var / (C-1)), 2 Rms (no centring, mean of
// squares); rstd = 1/sqrt(var + eps). Statistics are two-pass (mean, then squared deviations)
// so that large means do not cancel.
//
// Two geometries per op, chosen on the host from the shape:
// `*_serial`: one invocation per column, a serial loop over C. Adjacent invocations read
//   adjacent addresses when inner > 1, so this is coalesced for NCHW; also the choice for
//   short columns. Dispatch: 1-D over outer*inner, 256 per workgroup (x/y split, index =
//   (wg.y * num_workgroups.x + wg.x) * 256 + lid.x).
// `*_group`: one 256-invocation workgroup per column, strided partial results then a tree in
//   workgroup memory; coalesced for contiguous rows (tokens, softmax rows) and the only way
//   to use the device when there are few, long columns. Dispatch: outer*inner workgroups
//   (x/y split, column = wg.y * num_workgroups.x + wg.x).

struct Params {
    outer: u32,
    c: u32,
    inner: u32,
    kind: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// The entry points share binding slots; each uses its own set.
@group(0) @binding(1) var<storage, read> in1: array<f32>;         // [outer, C, inner] x (norm, softmax) | y (both backwards)
@group(0) @binding(2) var<storage, read> in2: array<f32>;         // [outer, inner] rstd (norm_backward) | [rows, n] dy (softmax_backward)
@group(0) @binding(3) var<storage, read> in3: array<f32>;         // [outer, C, inner] dy (norm_backward)
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;  // [outer, C, inner] y (norm, softmax)
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;  // [outer, inner] rstd (norm) | [rows, n] dx (softmax_backward)
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;  // [outer, C, inner] dx (norm_backward)

const WG: u32 = 256u;
// Stands in for -inf as a running maximum: exp(NEG_BIG - m) is 0 for any real m, and
// combining two empty partials never computes inf - inf.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> red: array<vec2<f32>, 256>;

fn columns() -> u32 {
    return params.outer * params.inner;
}

// Index of element 0 of column `col`; element j is at base + j * inner.
fn column_base(col: u32) -> u32 {
    let o = col / params.inner;
    let i = col % params.inner;
    return o * params.c * params.inner + i;
}

fn var_divisor() -> f32 {
    if params.kind == 1u {
        return f32(max(params.c, 2u) - 1u);
    }
    return f32(params.c);
}

fn serial_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

// Sums `v` over the workgroup; every invocation gets the total. Must be called in uniform
// control flow. The leading barrier keeps a previous call's readers of red[0] ahead of the
// writes.
fn group_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    workgroupBarrier();
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    return red[0];
}

// Combines (running max, sum of exp(x - max)) pairs over the workgroup: softmax's statistics
// in one reduction instead of two.
fn group_max_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    workgroupBarrier();
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            let a = red[lid];
            let b = red[lid + s];
            let m = max(a.x, b.x);
            red[lid] = vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
        }
        workgroupBarrier();
    }
    return red[0];
}

// ---- norm forward ------------------------------------------------------------------------

@compute @workgroup_size(256)
fn norm_serial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = serial_id(wg, nwg, lid);
    if col >= columns() { return; }
    let base = column_base(col);
    let c = params.c;
    let st = params.inner;
    var mean = 0.0;
    if params.kind != 2u {
        for (var j = 0u; j < c; j++) {
            mean += in1[base + j * st];
        }
        mean /= f32(c);
    }
    var ss = 0.0;
    for (var j = 0u; j < c; j++) {
        let d = in1[base + j * st] - mean;
        ss += d * d;
    }
    let r = inverseSqrt(ss / var_divisor() + params.eps);
    for (var j = 0u; j < c; j++) {
        out2[base + j * st] = (in1[base + j * st] - mean) * r;
    }
    out3[col] = r;
}

@compute @workgroup_size(256)
fn norm_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wg.y * nwg.x + wg.x;
    let valid = col < columns();
    // An idle workgroup (past the last column) runs the reductions over nothing.
    let c = select(0u, params.c, valid);
    let base = column_base(col);
    let st = params.inner;
    var mean = 0.0;
    if params.kind != 2u {
        var acc = 0.0;
        for (var j = lid.x; j < c; j += WG) {
            acc += in1[base + j * st];
        }
        mean = group_sum(lid.x, vec2<f32>(acc, 0.0)).x / f32(max(c, 1u));
    }
    var ss = 0.0;
    for (var j = lid.x; j < c; j += WG) {
        let d = in1[base + j * st] - mean;
        ss += d * d;
    }
    let r = inverseSqrt(group_sum(lid.x, vec2<f32>(ss, 0.0)).x / var_divisor() + params.eps);
    for (var j = lid.x; j < c; j += WG) {
        out2[base + j * st] = (in1[base + j * st] - mean) * r;
    }
    if valid && lid.x == 0u {
        out3[col] = r;
    }
}

// ---- norm backward -----------------------------------------------------------------------
// With s1 = sum(dy), s2 = sum(dy * y): dx = rstd * (dy - mean(dy) - y * s2 / divisor), where
// mean(dy) is dropped for Rms and the divisor is the variance's (C, or C-1 when unbiased).

fn norm_dx(y: f32, dy: f32, r: f32, s: vec2<f32>) -> f32 {
    var mean_dy = s.x / f32(params.c);
    if params.kind == 2u {
        mean_dy = 0.0;
    }
    return r * (dy - mean_dy - y * s.y / var_divisor());
}

@compute @workgroup_size(256)
fn norm_backward_serial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = serial_id(wg, nwg, lid);
    if col >= columns() { return; }
    let base = column_base(col);
    let st = params.inner;
    var s = vec2<f32>(0.0);
    for (var j = 0u; j < params.c; j++) {
        let k = base + j * st;
        s += vec2<f32>(in3[k], in3[k] * in1[k]);
    }
    let r = in2[col];
    for (var j = 0u; j < params.c; j++) {
        let k = base + j * st;
        out4[k] = norm_dx(in1[k], in3[k], r, s);
    }
}

@compute @workgroup_size(256)
fn norm_backward_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wg.y * nwg.x + wg.x;
    let valid = col < columns();
    let c = select(0u, params.c, valid);
    let base = column_base(col);
    let st = params.inner;
    var acc = vec2<f32>(0.0);
    for (var j = lid.x; j < c; j += WG) {
        let k = base + j * st;
        acc += vec2<f32>(in3[k], in3[k] * in1[k]);
    }
    let s = group_sum(lid.x, acc);
    if !valid { return; }
    let r = in2[col];
    for (var j = lid.x; j < c; j += WG) {
        let k = base + j * st;
        out4[k] = norm_dx(in1[k], in3[k], r, s);
    }
}

// ---- softmax (rows of n = params.c, inner = 1) -------------------------------------------

@compute @workgroup_size(256)
fn softmax_serial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = serial_id(wg, nwg, lid);
    if row >= params.outer { return; }
    let base = row * params.c;
    var m = NEG_BIG;
    for (var j = 0u; j < params.c; j++) {
        m = max(m, in1[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < params.c; j++) {
        sum += exp(in1[base + j] - m);
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < params.c; j++) {
        out2[base + j] = exp(in1[base + j] - m) * inv;
    }
}

@compute @workgroup_size(256)
fn softmax_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * nwg.x + wg.x;
    let n = select(0u, params.c, row < params.outer);
    let base = row * params.c;
    // Online (max, sum) per invocation: one pass over x for the statistics.
    var ms = vec2<f32>(NEG_BIG, 0.0);
    for (var j = lid.x; j < n; j += WG) {
        let v = in1[base + j];
        let m = max(ms.x, v);
        ms = vec2<f32>(m, ms.y * exp(ms.x - m) + exp(v - m));
    }
    let tot = group_max_sum(lid.x, ms);
    let inv = 1.0 / tot.y;
    for (var j = lid.x; j < n; j += WG) {
        out2[base + j] = exp(in1[base + j] - tot.x) * inv;
    }
}

// ---- softmax backward: dx = y * (dy - sum(dy * y)) ---------------------------------------

@compute @workgroup_size(256)
fn softmax_backward_serial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = serial_id(wg, nwg, lid);
    if row >= params.outer { return; }
    let base = row * params.c;
    var dot = 0.0;
    for (var j = 0u; j < params.c; j++) {
        dot += in1[base + j] * in2[base + j];
    }
    for (var j = 0u; j < params.c; j++) {
        out3[base + j] = in1[base + j] * (in2[base + j] - dot);
    }
}

@compute @workgroup_size(256)
fn softmax_backward_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * nwg.x + wg.x;
    let n = select(0u, params.c, row < params.outer);
    let base = row * params.c;
    var acc = 0.0;
    for (var j = lid.x; j < n; j += WG) {
        acc += in1[base + j] * in2[base + j];
    }
    let dot = group_sum(lid.x, vec2<f32>(acc, 0.0)).x;
    for (var j = lid.x; j < n; j += WG) {
        out3[base + j] = in1[base + j] * (in2[base + j] - dot);
    }
}
