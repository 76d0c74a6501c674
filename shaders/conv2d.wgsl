// Stride-1 "same" 2-D convolution (kernel 1 or 3, zeros or circular padding along each axis)
// and its weight gradient, both as implicit GEMMs: the im2col matrix is never stored, each of
// its elements is computed from x when a kernel loads it.
//
// Shape legend: B batch, Cin/Cout channels, H/W image size, ks kernel size (1 or 3), taps =
// Cin*ks*ks, tap t = (ci, ky, kx) row-major, pixel p = (y, x) row-major.
// The unfolded image of batch element z is U[t, p] = x[z, ci, y + ky - ks/2, x + kx - ks/2]
// (zero or wrapped outside the image).
// mode 0, forward: per z, out (M = Cout, N = H*W) = w (Cout, K = taps) @ U (+ bias[co]).
// mode 1, weight gradient: per z, a partial dw (M = Cout, N = taps) = dy[z] (Cout, K = H*W)
//   @ U^T; the host sums the B partials (or writes dw directly when B == 1).
// mode 2, input gradient: the forward of dy (Cin here = the layer's Cout) with the adjoint
//   kernel w'[ci, co, ky, kx] = w[co, ci, ks-1-ky, ks-1-kx], read from the layer's own w
//   (Cout, M = its Cin, ks, ks) in place rather than copied (the adjoint of a same-size
//   convolution, for zeros and circular padding).
// In modes 0 and 1 operand A is row-major (M, K) at `a` + z * a_batch_stride; in every mode
// the output of z is row-major (M, N) at out + z * M * N.
//
// Entry point `tiled` (the GEMM skeleton of `tiled` in shaders/matmul.wgsl): 128x128 output
// tile, operands staged through workgroup memory in K-steps of 8, 8x8 per invocation.
// Dispatch: (ceil(N/128), ceil(M/128), B), workgroup 16x16.
// There is no barrier-free variant: unlike matmul, it loses on lavapipe too (measured about 2x
// slower), because each gathered element of U is reused by 4 outputs instead of 128.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // 0: forward, 1: weight gradient, 2: input gradient.
    mode: u32,
    cin: u32,
    h: u32,
    w: u32,
    ks: u32,
    // Circular padding along H (bit 0) and W (bit 1); zeros elsewhere.
    circular: u32,
    has_bias: u32,
    a_batch_stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [B, Cin, H, W]
@group(0) @binding(2) var<storage, read> a: array<f32>;            // w [Cout, taps] | dy [B, Cout, H*W] | w [Cin, M, ks, ks]
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [Cout] (any buffer without bias)
@group(0) @binding(4) var<storage, read_write> out: array<f32>;    // [B, Cout, H*W] | [B, Cout, taps]

// (ci, ky, kx) of tap t.
fn tap_of(t: u32) -> vec3<u32> {
    let kk = params.ks * params.ks;
    let r = t % kk;
    return vec3<u32>(t / kk, r / params.ks, r % params.ks);
}

// (y, x) of pixel p.
fn pix_of(p: u32) -> vec2<u32> {
    return vec2<u32>(p / params.w, p % params.w);
}

// U[tap, pixel] of batch element z.
fn unfolded(z: u32, tap: vec3<u32>, pix: vec2<u32>) -> f32 {
    let pad = i32(params.ks / 2u);
    let h = i32(params.h);
    let w = i32(params.w);
    var iy = i32(pix.x) + i32(tap.y) - pad;
    var ix = i32(pix.y) + i32(tap.z) - pad;
    // |offset| <= 1 < size, so one added period makes the remainder non-negative.
    if (params.circular & 1u) != 0u {
        iy = (iy + h) % h;
    }
    if (params.circular & 2u) != 0u {
        ix = (ix + w) % w;
    }
    if iy < 0 || iy >= h || ix < 0 || ix >= w {
        return 0.0;
    }
    return x[((z * params.cin + tap.x) * params.h + u32(iy)) * params.w + u32(ix)];
}

// Writes the up-to-4 in-range columns c0.. of one output row, adding the bias when asked.
fn store4(z: u32, row: u32, c0: u32, v: vec4<f32>) {
    if row >= params.m { return; }
    let base = z * params.m * params.n + row * params.n;
    var add = 0.0;
    if params.has_bias != 0u { add = bias[row]; }
    for (var c = 0u; c < 4u; c++) {
        let col = c0 + c;
        if col < params.n {
            out[base + col] = v[c] + add;
        }
    }
}

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;
// Tile row stride in vec4s, padded from 32 so transposing stores hit distinct banks.
const TS: u32 = 33u;

var<workgroup> a_tile: array<vec4<f32>, 264>;
var<workgroup> b_tile: array<vec4<f32>, 264>;

// GEMM operand A(row, kk), zero outside the matrix.
fn load_a(z: u32, row: u32, kk: u32) -> f32 {
    if row >= params.m || kk >= params.k { return 0.0; }
    if params.mode == 2u {
        let t = tap_of(kk);
        let last = params.ks - 1u;
        return a[((t.x * params.m + row) * params.ks + last - t.y) * params.ks + last - t.z];
    }
    return a[z * params.a_batch_stride + row * params.k + kk];
}

// GEMM operand B(kk, col), zero outside the matrix: U in the forward and the input gradient,
// U^T in the weight gradient.
fn load_b(z: u32, kk: u32, col: u32) -> f32 {
    if col >= params.n || kk >= params.k { return 0.0; }
    if params.mode != 1u { return unfolded(z, tap_of(kk), pix_of(col)); }
    return unfolded(z, tap_of(col), pix_of(kk));
}

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let t = lid.y * 16u + lid.x;
    // As in matmul.wgsl: acc[8 s + 2 r + h] is row 64 s + 4 ty + r, columns 64 h + 4 tx + 0..3.
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < params.k; k0 += BK) {
        // Neighbouring invocations walk the contiguous axis: K for A (the adjoint kernel of
        // mode 2 is strided, but small and cached); pixels for B, which are columns in the
        // forward and input gradient and K in the weight gradient.
        for (var j = 0u; j < 4u; j++) {
            let e = t + 256u * j;
            let i = e / BK;
            var kk = e % BK;
            a_tile[kk * TS + i / 4u][i % 4u] = load_a(z, m0 + i, k0 + kk);
            var c: u32;
            if params.mode != 1u { c = e % BN; kk = e / BN; } else { c = e / BK; kk = e % BK; }
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
