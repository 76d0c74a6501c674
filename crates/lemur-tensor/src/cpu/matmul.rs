//! Matmul and convolution on the CPU (the oracle for `shaders/matmul.wgsl` and
//! `shaders/conv2d.wgsl`). Everything funnels into `matrixmultiply::sgemm`, which takes
//! arbitrary row/column strides: transposed operands are just swapped strides, never copies.
//!
//! sgemm runs single-threaded; all parallelism is rayon's, one level only, so the two cores
//! are never oversubscribed: large products split their output rows (each piece is the same
//! computation, so results do not depend on the split), batches and convolution chunks run
//! as independent tasks. Convolution lowers to im2col + sgemm over chunks of output columns
//! (a band of image rows, or several whole images when images are small) so that the
//! unfolded operand stays in cache and every GEMM has enough columns.

use std::cell::RefCell;

use crate::backend::{ConvDesc, MatmulDesc};
use crate::error::{Result, shape_err};

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

    /// The view from row `i` on.
    fn skip_rows(self, i: usize) -> Self {
        Self {
            data: &self.data[(i * self.rs).min(self.data.len())..],
            ..self
        }
    }

    /// Whether every element of a (rows, cols) view lies inside `data`: sgemm gets raw
    /// pointers, so this is the bounds check safe code would have done.
    /// Checked arithmetic: an extent that overflows `usize` does not fit.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        (rows - 1)
            .checked_mul(self.rs)
            .zip((cols - 1).checked_mul(self.cs))
            .and_then(|(r, c)| r.checked_add(c))
            .is_some_and(|last| last < self.data.len())
    }
}

/// `c (m, n) = beta * c + a (m, k) @ b (k, n)` with c row-major of row stride `ldc`, on the
/// calling thread.
// sgemm's strided raw-pointer interface is what makes transposes free; this is the crate's
// one unsafe call, guarded by the bounds assert below.
#[allow(unsafe_code)]
fn gemm(m: usize, k: usize, n: usize, a: View, b: View, beta: f32, c: &mut [f32], ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        a.fits(m, k)
            && b.fits(k, n)
            && ldc >= n
            && (m - 1)
                .checked_mul(ldc)
                .and_then(|x| x.checked_add(n))
                .is_some_and(|end| c.len() >= end),
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
            ldc as isize,
            1,
        );
    }
}

fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

/// Products below this many multiply-adds are not worth splitting across threads.
const MIN_PAR_WORK: usize = 1 << 20;

/// Rows per piece when `m` rows of a product with `work` multiply-adds go to `threads`
/// workers: whole multiples of the sgemm kernel's 16 rows, at least 16 rows each.
fn rows_per_piece(m: usize, work: usize, threads: usize) -> usize {
    if threads <= 1 || work < MIN_PAR_WORK || m < 32 {
        return m.max(1);
    }
    m.div_ceil(threads).next_multiple_of(16).max(16)
}

/// Runs `f(i, item)` for every item, in parallel with rayon on native targets.
fn par_for_each<T: Send>(items: Vec<T>, f: impl Fn(usize, T) + Send + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if items.len() > 1 {
            items.into_par_iter().enumerate().for_each(|(i, t)| f(i, t));
            return;
        }
    }
    items.into_iter().enumerate().for_each(|(i, t)| f(i, t));
}

/// [`gemm`] into a contiguous row-major `c` (m, n), splitting the rows across threads when
/// `split` and the product is large. `init(c_rows)` runs on each piece first (bias rows).
#[allow(clippy::too_many_arguments)]
fn par_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    beta: f32,
    c: &mut [f32],
    split: bool,
    init: &(dyn Fn(&mut [f32]) + Sync),
) {
    if m == 0 || n == 0 {
        return;
    }
    let rows = if split {
        rows_per_piece(m, m.saturating_mul(n).saturating_mul(k), threads())
    } else {
        m
    };
    let pieces: Vec<&mut [f32]> = c[..m * n].chunks_mut(rows * n).collect();
    par_for_each(pieces, |i, piece| {
        init(piece);
        gemm(
            piece.len() / n,
            k,
            n,
            a.skip_rows(i * rows),
            b,
            beta,
            piece,
            n,
        );
    });
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

/// `a * b * ...` with overflow reported as `None`.
fn product(factors: &[usize]) -> Option<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
}

/// Checks a matmul's sizes (with checked arithmetic: a descriptor whose sizes overflow
/// `usize` is an error, not a wrapped bound) against its operands' lengths, so that the
/// raw-pointer sgemm below can never read past a buffer.
pub(crate) fn check_matmul(
    a_len: usize,
    b_len: usize,
    bias_len: Option<usize>,
    d: &MatmulDesc,
) -> Result<()> {
    let err = |detail: &str| shape_err("matmul", format!("{detail} ({d:?})"));
    let a_count = if d.a_batched { d.batch } else { 1 };
    let b_count = if d.b_batched { d.batch } else { 1 };
    let out = product(&[d.batch, d.m, d.n]).ok_or_else(|| err("output size overflows usize"))?;
    // The work (m * n * k per product) must be countable too.
    product(&[d.batch, d.m, d.n, d.k]).ok_or_else(|| err("m * n * k overflows usize"))?;
    if out == 0 {
        return Ok(());
    }
    let a_need = product(&[a_count, d.m, d.k]).ok_or_else(|| err("a's size overflows usize"))?;
    let b_need = product(&[b_count, d.k, d.n]).ok_or_else(|| err("b's size overflows usize"))?;
    if a_len < a_need {
        return Err(err(&format!("a has {a_len} elements, needs {a_need}")));
    }
    if b_len < b_need {
        return Err(err(&format!("b has {b_len} elements, needs {b_need}")));
    }
    if let Some(len) = bias_len
        && len < d.n
    {
        return Err(err(&format!("bias has {len} elements, needs {}", d.n)));
    }
    Ok(())
}

/// Checks a convolution's sizes (checked arithmetic, as [`check_matmul`]) against its
/// operands: `x` (B, Cin, H, W), `w` (Cout, Cin, k, k) or, for the weight gradient, `dy`
/// (B, Cout, H, W) in place of `w`, and the bias.
pub(crate) fn check_conv(
    op: &'static str,
    x_len: usize,
    w_len: Option<usize>,
    dy_len: Option<usize>,
    bias_len: Option<usize>,
    d: &ConvDesc,
) -> Result<()> {
    let err = |detail: &str| shape_err(op, format!("{detail} ({d:?})"));
    let overflow = |what: &str| err(&format!("{what} overflows usize"));
    if d.kernel.is_multiple_of(2) {
        return Err(err("the kernel size must be odd"));
    }
    let hw = product(&[d.h, d.w]).ok_or_else(|| overflow("H * W"))?;
    let kk = product(&[d.cin, d.kernel, d.kernel]).ok_or_else(|| overflow("Cin * k * k"))?;
    let x_need = product(&[d.batch, d.cin, hw]).ok_or_else(|| overflow("x's size"))?;
    let y_size = product(&[d.batch, d.cout, hw]).ok_or_else(|| overflow("the output size"))?;
    let w_size = product(&[d.cout, kk]).ok_or_else(|| overflow("the weight size"))?;
    // Scratch: unfolded columns (at most Cin*k*k by H*W, or by a few small images) and staged
    // output rows, plus the work count.
    product(&[kk, hw.max(MIN_CHUNK_COLS)]).ok_or_else(|| overflow("the unfolded image"))?;
    product(&[d.cout, hw.max(MIN_CHUNK_COLS)]).ok_or_else(|| overflow("the output rows"))?;
    product(&[w_size, d.batch, hw]).ok_or_else(|| overflow("the work count"))?;
    let need = |what: &str, len: usize, need: usize| {
        if len < need {
            Err(err(&format!("{what} has {len} elements, needs {need}")))
        } else {
            Ok(())
        }
    };
    need("x", x_len, x_need)?;
    if let Some(len) = w_len {
        need("w", len, w_size)?;
    }
    if let Some(len) = dy_len {
        need("dy", len, y_size)?;
    }
    if let Some(len) = bias_len {
        need("bias", len, d.cout)?;
    }
    Ok(())
}

pub(crate) fn matmul(a: &[f32], b: &[f32], bias: Option<&[f32]>, d: &MatmulDesc) -> Vec<f32> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![0.0f32; d.batch * m * n];
    if out.is_empty() {
        return out;
    }
    let beta = if bias.is_some() && n > 0 { 1.0 } else { 0.0 };
    let init = |c: &mut [f32]| {
        init_bias(c, bias, n);
    };
    // A batched, untransposed `a` against a shared `b` (a linear layer) is one tall GEMM.
    if d.a_batched && !d.trans_a && !d.b_batched {
        let bv = View::maybe_t(b, if d.trans_b { k } else { n }, d.trans_b);
        let av = View::row_major(a, k);
        par_gemm(d.batch * m, k, n, av, bv, beta, &mut out, true, &init);
        return out;
    }
    let operands = |i: usize| {
        let ai = if d.a_batched { i * m * k } else { 0 };
        let bi = if d.b_batched { i * k * n } else { 0 };
        let av = View::maybe_t(&a[ai..], if d.trans_a { m } else { k }, d.trans_a);
        let bv = View::maybe_t(&b[bi..], if d.trans_b { k } else { n }, d.trans_b);
        (av, bv)
    };
    let t = threads();
    if d.batch >= 2 * t
        || (d.batch >= t && rows_per_piece(m, m.saturating_mul(n).saturating_mul(k), t) == m)
    {
        // Enough independent products: a few consecutive batch elements per task.
        let per = d.batch.div_ceil(4 * t).max(1);
        let tasks: Vec<&mut [f32]> = out.chunks_mut(per * m * n).collect();
        par_for_each(tasks, |ti, c| {
            for (j, c) in c.chunks_exact_mut(m * n).enumerate() {
                let (av, bv) = operands(ti * per + j);
                init(c);
                gemm(m, k, n, av, bv, beta, c, n);
            }
        });
    } else {
        for (i, c) in out.chunks_exact_mut(m * n).enumerate() {
            let (av, bv) = operands(i);
            par_gemm(m, k, n, av, bv, beta, c, true, &init);
        }
    }
    out
}

thread_local! {
    /// Reusable scratch buffers of this thread (unfolded images, staging tiles).
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch buffer of `len` elements (contents unspecified) from this thread's
/// pool, so that tasks do not allocate and fault in fresh pages for every chunk.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}

/// Unfolds rows `y0..y1` of one image x (Cin, H, W) into cols (Cin*k*k, (y1-y0)*W) of row
/// stride `ld`: row (ci, ky, kx) holds x shifted by (ky - k/2, kx - k/2), zero-filled or
/// wrapped at the borders of each axis.
fn im2col(x: &[f32], d: &ConvDesc, y0: usize, y1: usize, cols: &mut [f32], ld: usize) {
    let (h, w, k) = (d.h, d.w, d.kernel);
    let pad = k / 2;
    let hw = h * w;
    let span = (y1 - y0) * w;
    for ci in 0..d.cin {
        let img = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * ld..][..span];
                for (y, out) in (y0..y1).zip(row.chunks_exact_mut(w)) {
                    let mut iy = y as isize + ky as isize - pad as isize;
                    let dx = kx as isize - pad as isize;
                    if d.circular[0] {
                        iy = iy.rem_euclid(h as isize);
                    }
                    if iy < 0 || iy >= h as isize {
                        out.fill(0.0);
                    } else if d.circular[1] {
                        let src = &img[iy as usize * w..][..w];
                        // out[x] = src[(x + dx) mod W]: a rotation, as two slice copies.
                        let s = dx.rem_euclid(w as isize) as usize;
                        out[..w - s].copy_from_slice(&src[s..]);
                        out[w - s..].copy_from_slice(&src[..s]);
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

/// Unfolded floats per chunk: about 512 KiB, so a chunk's columns stay in the L2 cache
/// while sgemm packs them.
const CHUNK_FLOATS: usize = 1 << 17;
/// Fewest output columns a chunk aims for (narrower GEMMs waste the packed weights).
const MIN_CHUNK_COLS: usize = 256;

/// How a convolution's output columns (b, y, x) are cut into chunks: bands of `rows` image
/// rows of one image (`images == 1`), or groups of `images` whole images.
#[derive(Clone, Copy, Debug)]
struct Chunking {
    images: usize,
    rows: usize,
}

impl Chunking {
    fn new(d: &ConvDesc) -> Self {
        let (hw, kk) = (d.h * d.w, d.cin * d.kernel * d.kernel);
        if hw >= MIN_CHUNK_COLS || d.batch <= 1 {
            let min_rows = MIN_CHUNK_COLS.div_ceil(d.w.max(1));
            let rows = (CHUNK_FLOATS / (kk * d.w).max(1))
                .max(min_rows)
                .clamp(1, d.h.max(1));
            // Even bands: the same work in each.
            let bands = d.h.div_ceil(rows).max(1);
            Self {
                images: 1,
                rows: d.h.div_ceil(bands).max(1),
            }
        } else {
            let images = MIN_CHUNK_COLS.div_ceil(hw.max(1)).min(d.batch);
            let groups = d.batch.div_ceil(images);
            Self {
                images: d.batch.div_ceil(groups),
                rows: d.h,
            }
        }
    }

    /// The chunks as (first image, images, first row, end row).
    fn list(&self, d: &ConvDesc) -> Vec<(usize, usize, usize, usize)> {
        let mut v = Vec::new();
        if self.images == 1 {
            for b in 0..d.batch {
                for y0 in (0..d.h).step_by(self.rows) {
                    v.push((b, 1, y0, (y0 + self.rows).min(d.h)));
                }
            }
        } else {
            for b in (0..d.batch).step_by(self.images) {
                v.push((b, self.images.min(d.batch - b), 0, d.h));
            }
        }
        v
    }
}

/// Unfolds chunk (b0, nb, y0, y1) of x into cols (Cin*k*k, cols) and returns the column
/// count: image g of a group lands at columns g*H*W.
fn unfold_chunk(
    x: &[f32],
    d: &ConvDesc,
    (b0, nb, y0, y1): (usize, usize, usize, usize),
    cols: &mut [f32],
) -> usize {
    let (chw, hw) = (d.cin * d.h * d.w, d.h * d.w);
    let n = if nb == 1 { (y1 - y0) * d.w } else { nb * hw };
    for g in 0..nb {
        let xb = &x[(b0 + g) * chw..(b0 + g + 1) * chw];
        im2col(xb, d, y0, y1, &mut cols[g * hw..], n);
    }
    n
}

pub(crate) fn conv2d(x: &[f32], w: &[f32], bias: Option<&[f32]>, d: &ConvDesc) -> Vec<f32> {
    let hw = d.h * d.w;
    let kk = d.cin * d.kernel * d.kernel;
    let per_image = d.cout * hw;
    let mut out = vec![0.0f32; d.batch * per_image];
    if out.is_empty() {
        return out;
    }
    let ch = Chunking::new(d);
    let wv = View::row_major(w, kk);
    let tasks: Vec<&mut [f32]> = out.chunks_mut(ch.images * per_image).collect();
    // Split GEMM rows only when there are too few tasks to feed the threads.
    let split = tasks.len() < 2 * threads();
    par_for_each(tasks, |ti, o| {
        let b0 = ti * ch.images;
        if ch.images == 1 {
            // Bands of one image: sgemm writes straight into the output rows (stride H*W).
            let mut beta = 0.0;
            if let Some(bias) = bias {
                for (row, &v) in o.chunks_exact_mut(hw).zip(bias) {
                    row.fill(v);
                }
                beta = 1.0;
            }
            with_scratch(kk * ch.rows * d.w, |cols| {
                for y0 in (0..d.h).step_by(ch.rows) {
                    let y1 = (y0 + ch.rows).min(d.h);
                    let n = unfold_chunk(x, d, (b0, 1, y0, y1), cols);
                    let cv = View::row_major(cols, n);
                    if split && d.cout >= 32 {
                        // One image alone: its output rows go to separate threads, staged.
                        with_scratch(d.cout * n, |tmp| {
                            par_gemm(d.cout, kk, n, wv, cv, 0.0, tmp, true, &|_| {});
                            for (orow, trow) in o.chunks_exact_mut(hw).zip(tmp.chunks_exact(n)) {
                                for (a, &t) in orow[y0 * d.w..y1 * d.w].iter_mut().zip(trow) {
                                    *a = beta * *a + t;
                                }
                            }
                        });
                    } else {
                        gemm(d.cout, kk, n, wv, cv, beta, &mut o[y0 * d.w..], hw);
                    }
                }
            });
        } else {
            // Several small images: one GEMM over all their columns, then scattered.
            let nb = o.len() / per_image;
            let n = nb * hw;
            with_scratch(kk * n, |cols| {
                unfold_chunk(x, d, (b0, nb, 0, d.h), cols);
                with_scratch(d.cout * n, |tmp| {
                    let cv = View::row_major(cols, n);
                    par_gemm(d.cout, kk, n, wv, cv, 0.0, tmp, split, &|_| {});
                    for (g, og) in o.chunks_exact_mut(per_image).enumerate() {
                        for (co, orow) in og.chunks_exact_mut(hw).enumerate() {
                            let trow = &tmp[co * n + g * hw..][..hw];
                            let b = bias.map_or(0.0, |b| b[co]);
                            for (a, &t) in orow.iter_mut().zip(trow) {
                                *a = t + b;
                            }
                        }
                    }
                });
            });
        }
    });
    out
}

/// Partial sums of the weight gradient: a fixed count (not the thread count), so that the
/// summation order, and the result, are the same on every machine.
const WGRAD_PARTIALS: usize = 4;

pub(crate) fn conv2d_weight_grad(x: &[f32], dy: &[f32], d: &ConvDesc) -> Vec<f32> {
    let hw = d.h * d.w;
    let kk = d.cin * d.kernel * d.kernel;
    let mut total = vec![0.0f32; d.cout * kk];
    if total.is_empty() || d.batch * hw == 0 {
        return total;
    }
    // dw (Cout, K) = sum over chunks of dy[chunk] (Cout, n) @ cols[chunk]^T (n, K): chunks in
    // a fixed order, accumulated by sgemm (beta = 1) into a few partials summed in order.
    let ch = Chunking::new(d);
    let chunks = ch.list(d);
    let parts = WGRAD_PARTIALS.min(chunks.len());
    let split = parts < threads();
    let max_n = if ch.images == 1 {
        ch.rows * d.w
    } else {
        ch.images * hw
    };
    let mut partials = vec![0.0f32; parts * d.cout * kk];
    let slots: Vec<&mut [f32]> = partials.chunks_mut(d.cout * kk).collect();
    let chunks = &chunks;
    par_for_each(slots, |p, dw| {
        let (c0, c1) = (p * chunks.len() / parts, (p + 1) * chunks.len() / parts);
        with_scratch(kk * max_n, |cols| {
            with_scratch(d.cout * max_n, |dyg| {
                for (i, &c) in chunks[c0..c1].iter().enumerate() {
                    let (b0, nb, y0, _) = c;
                    let n = unfold_chunk(x, d, c, cols);
                    let dv = if nb == 1 {
                        View {
                            data: &dy[b0 * d.cout * hw + y0 * d.w..],
                            rs: hw,
                            cs: 1,
                        }
                    } else {
                        // Gather the group's dy into (Cout, nb*H*W), images side by side.
                        for co in 0..d.cout {
                            for g in 0..nb {
                                let src = &dy[((b0 + g) * d.cout + co) * hw..][..hw];
                                dyg[co * n + g * hw..][..hw].copy_from_slice(src);
                            }
                        }
                        View::row_major(&dyg[..d.cout * n], n)
                    };
                    let cv = View::row_major(&cols[..kk * n], n).t();
                    let beta = if i == 0 { 0.0 } else { 1.0 };
                    par_gemm(d.cout, n, kk, dv, cv, beta, dw, split, &|_| {});
                }
            })
        });
    });
    for p in partials.chunks_exact(d.cout * kk) {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}
