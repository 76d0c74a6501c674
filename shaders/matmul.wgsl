// Batched matmul out[z] = op(a[z]) @ op(b[z]) (+ bias), op = transpose when its flag is set,
// so backward passes need no transpose copies.
//
// Shape legend: M, N, K matmul sizes; Z batch. a: (Z|1, M, K), or (Z|1, K, M) when trans_a;
// b: (Z|1, K, N), or (Z|1, N, K) when trans_b. Per-operand batch strides in elements, 0 for
// an operand shared by the whole batch (weights).
//
// Entry points (the host picks one; all give the same result up to f32 summation order):
// `tiled`: 128x128 output tile per workgroup, staged through workgroup memory in K-steps of 8;
//   16x16 invocations each accumulate an 8x8 register block. For real GPUs.
//   Dispatch: (ceil(N/128), ceil(M/128), Z), workgroup 16x16.
// `blocked`: no workgroup memory and no barriers: each invocation reads its 4x4 block's
//   operands straight from global memory. For lavapipe, where barriers are very slow, and any
//   shape. Dispatch: (ceil(N/32), ceil(M/32), Z), workgroup 8x8.
// `blocked_vec4`: `blocked` with vec4 loads, K consumed 4 at a time as 4x4 matrix products.
//   Needs K % 4 == 0, M % 4 == 0 when trans_a, N % 4 == 0 unless trans_b. Same dispatch.
// Out-of-range rows and columns are clamped on load (never stored) or zero-filled in the
// tiles, so any M, N, K works.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // bit 0: trans_a, bit 1: trans_b, bit 2: add bias.
    flags: u32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// `tiled` and `blocked` read scalars, `blocked_vec4` the same buffers as vec4.
@group(0) @binding(1) var<storage, read> a: array<f32>;            // [Z|1, M, K] or [Z|1, K, M]
@group(0) @binding(2) var<storage, read> b: array<f32>;            // [Z|1, K, N] or [Z|1, N, K]
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;     // [Z|1, M, K/4] or [Z|1, K, M/4]
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;     // [Z|1, K, N/4] or [Z|1, N, K/4]
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [N] (any buffer without bias)
@group(0) @binding(4) var<storage, read_write> out: array<f32>;    // [Z, M, N]

fn trans_a() -> bool { return (params.flags & 1u) != 0u; }
fn trans_b() -> bool { return (params.flags & 2u) != 0u; }

// Writes the up-to-4 in-range columns c0.. of one output row, adding the bias when asked.
fn store4(z: u32, row: u32, c0: u32, v: vec4<f32>) {
    if row >= params.m { return; }
    let base = z * params.m * params.n + row * params.n;
    for (var c = 0u; c < 4u; c++) {
        let col = c0 + c;
        if col < params.n {
            var r = v[c];
            if (params.flags & 4u) != 0u { r += bias[col]; }
            out[base + col] = r;
        }
    }
}

// ---- tiled ----

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;
// Row stride of the tiles in vec4s: 32 would be enough, 33 spreads the transposing stores
// of untransposed A (and transposed B) over all banks.
const TS: u32 = 33u;

// a_tile[kk * TS + i / 4][i % 4] = A(m0 + i, k0 + kk); b_tile likewise with columns.
var<workgroup> a_tile: array<vec4<f32>, 264>;
var<workgroup> b_tile: array<vec4<f32>, 264>;

// A(row, kk) of batch element z, zero outside the matrix.
fn load_a(z: u32, row: u32, kk: u32) -> f32 {
    if row >= params.m || kk >= params.k { return 0.0; }
    let base = z * params.batch_stride_a;
    if trans_a() { return a[base + kk * params.m + row]; }
    return a[base + row * params.k + kk];
}

// B(kk, col) of batch element z, zero outside the matrix.
fn load_b(z: u32, kk: u32, col: u32) -> f32 {
    if col >= params.n || kk >= params.k { return 0.0; }
    let base = z * params.batch_stride_b;
    if trans_b() { return b[base + col * params.k + kk]; }
    return b[base + kk * params.n + col];
}

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let t = lid.y * 16u + lid.x;
    // acc[8 s + 2 r + h] is row 64 s + 4 ty + r, columns 64 h + 4 tx + 0..3.
    // The 64-apart halves keep each invocation's vec4 reads of the tiles conflict-free.
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < params.k; k0 += BK) {
        // Each invocation stages 4 of the 1024 elements of each tile, walking the operand's
        // contiguous axis across neighbouring invocations so global reads coalesce.
        for (var j = 0u; j < 4u; j++) {
            let e = t + 256u * j;
            var i: u32;
            var kk: u32;
            if trans_a() { i = e % BM; kk = e / BM; } else { i = e / BK; kk = e % BK; }
            a_tile[kk * TS + i / 4u][i % 4u] = load_a(z, m0 + i, k0 + kk);
            var c: u32;
            if trans_b() { c = e / BK; kk = e % BK; } else { c = e % BN; kk = e / BN; }
            b_tile[kk * TS + c / 4u][c % 4u] = load_b(z, k0 + kk, n0 + c);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = a_tile[kk * TS + lid.y];
            let a1 = a_tile[kk * TS + 16u + lid.y];
            let b0 = b_tile[kk * TS + lid.x];
            let b1 = b_tile[kk * TS + 16u + lid.x];
            for (var r = 0u; r < 4u; r++) {
                acc[2u * r] += a0[r] * b0;
                acc[2u * r + 1u] += a0[r] * b1;
                acc[8u + 2u * r] += a1[r] * b0;
                acc[8u + 2u * r + 1u] += a1[r] * b1;
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let row0 = m0 + 4u * lid.y + r;
        let col0 = n0 + 4u * lid.x;
        store4(z, row0, col0, acc[2u * r]);
        store4(z, row0, col0 + 64u, acc[2u * r + 1u]);
        store4(z, row0 + 64u, col0, acc[8u + 2u * r]);
        store4(z, row0 + 64u, col0 + 64u, acc[8u + 2u * r + 1u]);
    }
}

// ---- blocked ----

@compute @workgroup_size(8, 8)
fn blocked(@builtin(global_invocation_id) gid: vec3<u32>) {
    let z = gid.z;
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if r0 >= params.m || c0 >= params.n { return; }
    // Rows and columns past the edge are clamped to the last one: always a valid address, no
    // branch in the loop, and their results are dropped by store4.
    let rows = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.m - 1u));
    let cols = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.n - 1u));
    // Element (row, kk) of A is a[a_off + kk * a_step], likewise for B's columns.
    var a_off: vec4<u32>;
    var a_step: u32;
    if trans_a() { a_off = rows; a_step = params.m; } else { a_off = rows * params.k; a_step = 1u; }
    var b_off: vec4<u32>;
    var b_step: u32;
    if trans_b() { b_off = cols * params.k; b_step = 1u; } else { b_off = cols; b_step = params.n; }
    a_off += vec4<u32>(z * params.batch_stride_a);
    b_off += vec4<u32>(z * params.batch_stride_b);
    var acc: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < params.k; kk++) {
        let ai = a_off + vec4<u32>(kk * a_step);
        let bi = b_off + vec4<u32>(kk * b_step);
        let av = vec4<f32>(a[ai.x], a[ai.y], a[ai.z], a[ai.w]);
        let bv = vec4<f32>(b[bi.x], b[bi.y], b[bi.z], b[bi.w]);
        acc[0] += av.x * bv;
        acc[1] += av.y * bv;
        acc[2] += av.z * bv;
        acc[3] += av.w * bv;
    }
    for (var r = 0u; r < 4u; r++) {
        store4(z, r0 + r, c0, acc[r]);
    }
}

@compute @workgroup_size(8, 8)
fn blocked_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let z = gid.z;
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if r0 >= params.m || c0 >= params.n { return; }
    let m = params.m;
    let n = params.n;
    let k = params.k;
    let a_base = z * params.batch_stride_a;
    let b_base = z * params.batch_stride_b;
    // Column i of `acc` is output row r0 + i (over columns c0..c0+3). Per step of 4 in K,
    // `am` holds A(r0 + i, kk + j) in column i, `bm` holds B(kk + j, c0..c0+3) in column j, so
    // the block update is the 4x4 product bm * am.
    var acc = mat4x4<f32>();
    for (var kk = 0u; kk < k; kk += 4u) {
        var am: mat4x4<f32>;
        if trans_a() {
            // Rows r0..r0+3 are contiguous and in range (M % 4 == 0).
            am = transpose(mat4x4<f32>(
                a4[(a_base + kk * m + r0) / 4u],
                a4[(a_base + (kk + 1u) * m + r0) / 4u],
                a4[(a_base + (kk + 2u) * m + r0) / 4u],
                a4[(a_base + (kk + 3u) * m + r0) / 4u]));
        } else {
            let rows = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(m - 1u));
            am = mat4x4<f32>(
                a4[(a_base + rows.x * k + kk) / 4u],
                a4[(a_base + rows.y * k + kk) / 4u],
                a4[(a_base + rows.z * k + kk) / 4u],
                a4[(a_base + rows.w * k + kk) / 4u]);
        }
        var bm: mat4x4<f32>;
        if trans_b() {
            let cols = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
            bm = transpose(mat4x4<f32>(
                b4[(b_base + cols.x * k + kk) / 4u],
                b4[(b_base + cols.y * k + kk) / 4u],
                b4[(b_base + cols.z * k + kk) / 4u],
                b4[(b_base + cols.w * k + kk) / 4u]));
        } else {
            // Columns c0..c0+3 are contiguous and in range (N % 4 == 0).
            bm = mat4x4<f32>(
                b4[(b_base + kk * n + c0) / 4u],
                b4[(b_base + (kk + 1u) * n + c0) / 4u],
                b4[(b_base + (kk + 2u) * n + c0) / 4u],
                b4[(b_base + (kk + 3u) * n + c0) / 4u]);
        }
        acc += bm * am;
    }
    for (var r = 0u; r < 4u; r++) {
        store4(z, r0 + r, c0, acc[r]);
    }
}
