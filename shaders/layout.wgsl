// Data movement: strided gather (permute, slice, broadcast, flip, pixel shuffle, patchify), the
// placement of one part of a concatenation, and a part padded with zeros to the whole (the
// gradient of a slice).
//
// Shape legend: N output elements; up to 8 dims; `strides` in elements (signed: negative
// strides flip an axis); for concat a part is (outer, n_i, inner) placed at column `dst_off`
// of an output viewed as (outer, total, inner); `pad` writes all N = outer * total * inner
// elements of that output, the part where it lies and zeros elsewhere.
// Dispatch: 1-D, 256 invocations per workgroup over N (x/y split, see elementwise.wgsl).

struct GatherParams {
    n: u32,
    ndim: u32,
    offset: u32,
    _pad: u32,
    shape: array<vec4<u32>, 2>,
    strides: array<vec4<i32>, 2>,
}

struct PlaceParams {
    n: u32,          // place: elements of this part, outer * n_i * inner; pad: of the output
    part_cols: u32,  // n_i * inner
    total_cols: u32, // total * inner
    dst_off: u32,    // (sum of n_j before this part) * inner
}

@group(0) @binding(0) var<uniform> gp: GatherParams;
@group(0) @binding(0) var<uniform> pp: PlaceParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // gather: x (any); place, pad: part [outer, n_i, inner]
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // gather: [N]; place, pad: [outer, total, inner]

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= gp.n { return; }
    var rem = i;
    var off = i32(gp.offset);
    for (var d = i32(gp.ndim) - 1; d >= 0; d--) {
        let du = u32(d);
        let n = gp.shape[du / 4u][du % 4u];
        off += i32(rem % n) * gp.strides[du / 4u][du % 4u];
        rem = rem / n;
    }
    dst[i] = src[u32(off)];
}

@compute @workgroup_size(256)
fn place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= pp.n { return; }
    let o = i / pp.part_cols;
    let j = i % pp.part_cols;
    dst[o * pp.total_cols + pp.dst_off + j] = src[i];
}

@compute @workgroup_size(256)
fn pad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if i >= pp.n { return; }
    let o = i / pp.total_cols;
    let j = i % pp.total_cols;
    var v = 0.0;
    if j >= pp.dst_off && j < pp.dst_off + pp.part_cols {
        v = src[o * pp.part_cols + j - pp.dst_off];
    }
    dst[i] = v;
}
