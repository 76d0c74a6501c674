//! Matmul and convolution on the CPU (the oracle for `shaders/matmul.wgsl` and
//! `shaders/conv2d.wgsl`). Everything funnels into `matrixmultiply::sgemm`, which takes
//! arbitrary row/column strides: transposed operands are just swapped strides, never copies.
//! Convolution lowers to im2col + sgemm, one batch element per task.

use crate::backend::{ConvDesc, MatmulDesc};

/// A read-only matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major (rows, cols) matrix when `trans`, else the matrix itself.
    fn maybe_t(data: &'a [f32], cols: usize, trans: bool) -> Self {
        let v = Self::row_major(data, cols);
        if trans { v.t() } else { v }
    }

    fn t(self) -> Self {
        Self {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element of a (rows, cols) view lies inside `data`: sgemm gets raw
    /// pointers, so this is the bounds check safe code would have done.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `c (m, n) = beta * c + a (m, k) @ b (k, n)` with c row-major of row stride `n`.
// sgemm's strided raw-pointer interface is what makes transposes free; this is the crate's
// one unsafe call, guarded by the bounds assert below.
#[allow(unsafe_code)]
fn gemm(m: usize, k: usize, n: usize, a: View, b: View, beta: f32, c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        a.fits(m, k) && b.fits(k, n) && c.len() >= m * n,
        "gemm operand out of bounds"
    );
    // SAFETY: the assert above proves every (i, l), (l, j), (i, j) the kernel touches lies
    // inside its slice; `c` is uniquely borrowed and does not alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Copies `bias` (n) into every row of `c` (rows, n); returns the sgemm `beta` that keeps it.
fn init_bias(c: &mut [f32], bias: Option<&[f32]>, n: usize) -> f32 {
    match bias {
        Some(bias) if n > 0 => {
            for row in c.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
            1.0
        }
        _ => 0.0,
    }
}

pub(crate) fn matmul(a: &[f32], b: &[f32], bias: Option<&[f32]>, d: &MatmulDesc) -> Vec<f32> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![0.0f32; d.batch * m * n];
    let beta = init_bias(&mut out, bias, n);
    // A batched, untransposed `a` against a shared `b` (a linear layer) is one tall GEMM:
    // sgemm then blocks and threads over batch*M rows at once.
    if d.a_batched && !d.trans_a && !d.b_batched {
        let bv = View::maybe_t(b, if d.trans_b { k } else { n }, d.trans_b);
        let av = View::row_major(a, k);
        gemm(d.batch * m, k, n, av, bv, beta, &mut out);
        return out;
    }
    for (i, c) in out.chunks_exact_mut((m * n).max(1)).enumerate() {
        let ai = if d.a_batched { i * m * k } else { 0 };
        let bi = if d.b_batched { i * k * n } else { 0 };
        let av = View::maybe_t(&a[ai..], if d.trans_a { m } else { k }, d.trans_a);
        let bv = View::maybe_t(&b[bi..], if d.trans_b { k } else { n }, d.trans_b);
        gemm(m, k, n, av, bv, beta, c);
    }
    out
}

/// Runs `f(b)` for every batch element, in parallel with rayon on native targets.
fn map_batch<T: Send>(batch: usize, f: impl Fn(usize) -> T + Send + Sync) -> Vec<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        (0..batch).into_par_iter().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    {
        (0..batch).map(f).collect()
    }
}

/// Unfolds one image x (Cin, H, W) into cols (Cin*k*k, H*W): row (ci, ky, kx) holds x shifted
/// by (ky - k/2, kx - k/2), zero-filled or wrapped at the borders.
fn im2col(x: &[f32], d: &ConvDesc, cols: &mut [f32]) {
    let (h, w, k) = (d.h, d.w, d.kernel);
    let pad = k / 2;
    let hw = h * w;
    for ci in 0..d.cin {
        let img = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * hw..][..hw];
                for (y, out) in row.chunks_exact_mut(w).enumerate() {
                    let iy = y as isize + ky as isize - pad as isize;
                    let dx = kx as isize - pad as isize;
                    if d.circular {
                        let src = &img[iy.rem_euclid(h as isize) as usize * w..][..w];
                        // out[x] = src[(x + dx) mod W]: a rotation, as two slice copies.
                        let s = dx.rem_euclid(w as isize) as usize;
                        out[..w - s].copy_from_slice(&src[s..]);
                        out[w - s..].copy_from_slice(&src[..s]);
                    } else if iy < 0 || iy >= h as isize {
                        out.fill(0.0);
                    } else {
                        let src = &img[iy as usize * w..][..w];
                        // Valid x are those with 0 <= x + dx < W.
                        let lo = (-dx).clamp(0, w as isize) as usize;
                        let hi = (w as isize - dx).clamp(0, w as isize) as usize;
                        out[..lo].fill(0.0);
                        out[hi..].fill(0.0);
                        if lo < hi {
                            let s0 = (lo as isize + dx) as usize;
                            out[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                        }
                    }
                }
            }
        }
    }
}

/// The (Cin*k*k, H*W) unfolded view of batch element `b` of x: x itself for 1x1 kernels.
fn unfold<'a>(x: &'a [f32], b: usize, d: &ConvDesc, scratch: &'a mut Vec<f32>) -> &'a [f32] {
    let chw = d.cin * d.h * d.w;
    let xb = &x[b * chw..(b + 1) * chw];
    if d.kernel == 1 {
        return xb;
    }
    scratch.resize(d.cin * d.kernel * d.kernel * d.h * d.w, 0.0);
    im2col(xb, d, scratch);
    scratch
}

pub(crate) fn conv2d(x: &[f32], w: &[f32], bias: Option<&[f32]>, d: &ConvDesc) -> Vec<f32> {
    let hw = d.h * d.w;
    let kk = d.cin * d.kernel * d.kernel;
    let per_batch = map_batch(d.batch, |b| {
        let mut scratch = Vec::new();
        let cols = unfold(x, b, d, &mut scratch);
        // out[b] (Cout, HW) = w (Cout, K) @ cols (K, HW) (+ bias per output channel).
        let mut out = vec![0.0f32; d.cout * hw];
        let mut beta = 0.0;
        if let Some(bias) = bias {
            for (row, &v) in out.chunks_exact_mut(hw.max(1)).zip(bias) {
                row.fill(v);
            }
            beta = 1.0;
        }
        let (wv, cv) = (View::row_major(w, kk), View::row_major(cols, hw));
        gemm(d.cout, kk, hw, wv, cv, beta, &mut out);
        out
    });
    per_batch.concat()
}

pub(crate) fn conv2d_weight_grad(x: &[f32], dy: &[f32], d: &ConvDesc) -> Vec<f32> {
    let hw = d.h * d.w;
    let kk = d.cin * d.kernel * d.kernel;
    // dw (Cout, K) = sum_b dy[b] (Cout, HW) @ cols[b]^T (HW, K); one partial per batch element
    // keeps the tasks independent, and partials are small next to the unfolded images.
    let partials = map_batch(d.batch, |b| {
        let mut scratch = Vec::new();
        let cols = unfold(x, b, d, &mut scratch);
        let dyb = &dy[b * d.cout * hw..(b + 1) * d.cout * hw];
        let mut dw = vec![0.0f32; d.cout * kk];
        let (dv, cv) = (View::row_major(dyb, hw), View::row_major(cols, hw).t());
        gemm(d.cout, hw, kk, dv, cv, 0.0, &mut dw);
        dw
    });
    let mut total = vec![0.0f32; d.cout * kk];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}
