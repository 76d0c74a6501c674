// Sum over the middle axis of x viewed as (outer, R, inner) -> (outer, inner).
//
// `sum_columns`: one invocation per output, a serial loop over R; coalesced when inner is
//   large (bias gradients of NCHW, per-channel sums). Dispatch: 1-D over outer*inner, 256 per
//   workgroup (x/y split).
// `sum_tree`: one 256-invocation workgroup per output, strided partial sums then a tree in
//   workgroup memory; for small outer*inner and long R (global loss sums, row sums).
//   Dispatch: outer*inner workgroups (x/y split).
// `sum_squares`: `out[0] = acc[0] + sum_i sum_j x_i[j]^2` over up to 5 tensors x_0..x_4 of
//   `lens` values (0 for absent ones; `acc` read only when `has_acc` is 1, else 0): the squared
//   global gradient norm, one dispatch per 5 gradient tensors. Strided partial sums, then the
//   tree as in `sum_tree`. Dispatch: 1 workgroup of 256.
// `sum_channels`: `out[c] = sum_{o, i} x[o, c, i]`, the middle axis kept (R = C): bias
//   gradients of NCHW in one pass over batch and pixels. One 256-invocation workgroup per
//   channel, strided partial sums then the tree. Dispatch: C workgroups (x/y split).

struct Params {
    outer: u32,
    r: u32,
    inner: u32,
    // `sum_squares` only: 1 when `acc` holds a running sum to add to.
    has_acc: u32,
}

// `sum_squares`'s parameters.
struct SquaresParams {
    has_acc: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // lens[i / 4][i % 4]: the length of x_i.
    lens: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(0) var<uniform> sq: SquaresParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [outer, R, inner]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [outer, inner] ([1], [C])
// sum_squares: x_0 is `x` above; the others, the sum and the running sum at their own slots
// (tensors it is given fewer than 5 of are bound more than once, with length 0).
@group(0) @binding(2) var<storage, read> x1: array<f32>;         // [lens[1]]
@group(0) @binding(3) var<storage, read> x2: array<f32>;         // [lens[2]]
@group(0) @binding(4) var<storage, read> x3: array<f32>;         // [lens[3]]
@group(0) @binding(5) var<storage, read> x4: array<f32>;         // [lens[4]]
@group(0) @binding(6) var<storage, read_write> sq_out: array<f32>; // [1]
@group(0) @binding(7) var<storage, read> acc_in: array<f32>;     // [1]

var<workgroup> partial: array<f32, 256>;

// Sums each invocation's `value` into partial[0]. Every invocation of the workgroup calls it
// (it holds barriers).
fn tree_sum(lane: u32, value: f32) {
    partial[lane] = value;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if lane < s {
            partial[lane] += partial[lane + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn sum_columns(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if i >= params.outer * params.inner { return; }
    let o = i / params.inner;
    let c = i % params.inner;
    var acc = 0.0;
    let base = o * params.r * params.inner + c;
    for (var j = 0u; j < params.r; j++) {
        acc += x[base + j * params.inner];
    }
    out[i] = acc;
}

@compute @workgroup_size(256)
fn sum_tree(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.y * nwg.x + wg.x;
    let valid = i < params.outer * params.inner;
    let o = i / max(params.inner, 1u);
    let c = i % max(params.inner, 1u);
    var acc = 0.0;
    if valid {
        let base = o * params.r * params.inner + c;
        for (var j = lid.x; j < params.r; j += 256u) {
            acc += x[base + j * params.inner];
        }
    }
    tree_sum(lid.x, acc);
    if valid && lid.x == 0u {
        out[i] = partial[0];
    }
}

@compute @workgroup_size(256)
fn sum_squares(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var j = lid.x; j < sq.lens[0].x; j += 256u) { let v = x[j]; acc += v * v; }
    for (var j = lid.x; j < sq.lens[0].y; j += 256u) { let v = x1[j]; acc += v * v; }
    for (var j = lid.x; j < sq.lens[0].z; j += 256u) { let v = x2[j]; acc += v * v; }
    for (var j = lid.x; j < sq.lens[0].w; j += 256u) { let v = x3[j]; acc += v * v; }
    for (var j = lid.x; j < sq.lens[1].x; j += 256u) { let v = x4[j]; acc += v * v; }
    tree_sum(lid.x, acc);
    if lid.x == 0u {
        var total = partial[0];
        if sq.has_acc != 0u {
            total = acc_in[0] + total;
        }
        sq_out[0] = total;
    }
}

@compute @workgroup_size(256)
fn sum_channels(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.y * nwg.x + wg.x;
    let valid = c < params.r;
    var acc = 0.0;
    if valid {
        let n = params.outer * params.inner;
        for (var j = lid.x; j < n; j += 256u) {
            let o = j / params.inner;
            let i = j % params.inner;
            acc += x[(o * params.r + c) * params.inner + i];
        }
    }
    tree_sum(lid.x, acc);
    if valid && lid.x == 0u {
        out[c] = partial[0];
    }
}
