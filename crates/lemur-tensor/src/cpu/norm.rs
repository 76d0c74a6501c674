//! Reference normalisation and softmax (mirrors `shaders/norm.wgsl`).
//!
//! A norm works on the columns of x viewed as (outer, C, inner): column (o, i) is the C values
//! `x[o, :, i]`, contiguous when inner = 1 (tokens), strided by inner otherwise (NCHW).
//! Statistics accumulate in f64 so that the reference is more accurate than the f32 kernels
//! it checks.

use super::elementwise::exp_f32;
use super::par_chunks_mut;
use crate::backend::{NormDesc, NormKind};

/// The divisor of the variance (and of the backward's `sum(dy * y)` term). The unbiased
/// variance of one channel is undefined; dividing by 1 there keeps y = 0 and dx = 0 finite
/// instead of NaN.
fn var_divisor(kind: NormKind, c: usize) -> f64 {
    match kind {
        NormKind::Layer | NormKind::Rms => c as f64,
        NormKind::LayerUnbiased => c.saturating_sub(1).max(1) as f64,
    }
}

/// (mean, rstd) of column `i` of the outer slice `xo` (C, inner).
fn column_stats(xo: &[f32], i: usize, d: &NormDesc) -> (f64, f64) {
    let col = || (0..d.c).map(move |j| xo[j * d.inner + i] as f64);
    let mean = match d.kind {
        NormKind::Rms => 0.0,
        NormKind::Layer | NormKind::LayerUnbiased => col().sum::<f64>() / d.c as f64,
    };
    let var = col().map(|v| (v - mean) * (v - mean)).sum::<f64>() / var_divisor(d.kind, d.c);
    (mean, 1.0 / (var + d.eps as f64).sqrt())
}

/// Returns (y, rstd (outer, inner)).
pub(crate) fn norm(x: &[f32], d: &NormDesc) -> (Vec<f32>, Vec<f32>) {
    let slice = d.c * d.inner;
    let mut y = vec![0.0; d.outer * slice];
    let mut rstd = vec![0.0; d.outer * d.inner];
    if y.is_empty() {
        return (y, rstd);
    }
    // Each outer slice owns its y block and its rstd row, so slices run in parallel.
    for_each_outer(&mut y, &mut rstd, slice, d.inner, |o, yo, ro| {
        let xo = &x[o * slice..(o + 1) * slice];
        if d.inner >= 16 {
            return norm_columns(xo, yo, ro, d);
        }
        for i in 0..d.inner {
            let (mean, r) = column_stats(xo, i, d);
            ro[i] = r as f32;
            for j in 0..d.c {
                let k = j * d.inner + i;
                yo[k] = ((xo[k] as f64 - mean) * r) as f32;
            }
        }
    });
    (y, rstd)
}

/// Columns per block of the strided (inner > 1) paths.
const BLOCK: usize = 256;

/// [`norm`] of one outer slice with strided columns: blocks of columns sweep the C rows
/// contiguously. Each column's sums run over j = 0, 1, ... from -0.0 exactly as
/// [`column_stats`] does (f64 `Sum` starts at -0.0), so results are identical.
fn norm_columns(xo: &[f32], yo: &mut [f32], ro: &mut [f32], d: &NormDesc) {
    let inner = d.inner;
    for i0 in (0..inner).step_by(BLOCK) {
        let w = BLOCK.min(inner - i0);
        let mut mean = [0.0f64; BLOCK];
        let mut var = [-0.0f64; BLOCK];
        let (mean, var) = (&mut mean[..w], &mut var[..w]);
        if d.kind != NormKind::Rms {
            mean.fill(-0.0);
            for j in 0..d.c {
                for (m, &v) in mean.iter_mut().zip(&xo[j * inner + i0..][..w]) {
                    *m += v as f64;
                }
            }
            mean.iter_mut().for_each(|m| *m /= d.c as f64);
        }
        for j in 0..d.c {
            let row = &xo[j * inner + i0..][..w];
            for ((s, &v), &m) in var.iter_mut().zip(row).zip(mean.iter()) {
                *s += (v as f64 - m) * (v as f64 - m);
            }
        }
        let div = var_divisor(d.kind, d.c);
        for (s, r) in var.iter_mut().zip(&mut ro[i0..i0 + w]) {
            *s = 1.0 / (*s / div + d.eps as f64).sqrt();
            *r = *s as f32;
        }
        for j in 0..d.c {
            let k = j * inner + i0;
            let (src, dst) = (&xo[k..k + w], &mut yo[k..k + w]);
            for (((o, &v), &m), &r) in dst.iter_mut().zip(src).zip(mean.iter()).zip(var.iter()) {
                *o = ((v as f64 - m) * r) as f32;
            }
        }
    }
}

/// dx from the forward's y and rstd. With s1 = sum(dy), s2 = sum(dy * y) over the column:
/// Layer `rstd * (dy - s1/C - y s2/C)`, LayerUnbiased `rstd * (dy - s1/C - y s2/(C-1))`
/// (the variance's divisor reappears through d var / dx), Rms `rstd * (dy - y s2/C)`.
pub(crate) fn norm_backward(y: &[f32], rstd: &[f32], dy: &[f32], d: &NormDesc) -> Vec<f32> {
    let slice = d.c * d.inner;
    let mut dx = vec![0.0; d.outer * slice];
    let div = var_divisor(d.kind, d.c);
    par_chunks_mut(&mut dx, slice, |o, dxo| {
        let (yo, go) = (&y[o * slice..], &dy[o * slice..]);
        if d.inner >= 16 {
            return norm_backward_columns(yo, go, &rstd[o * d.inner..], dxo, d);
        }
        for i in 0..d.inner {
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for j in 0..d.c {
                let k = j * d.inner + i;
                s1 += go[k] as f64;
                s2 += go[k] as f64 * yo[k] as f64;
            }
            let mean_dy = match d.kind {
                NormKind::Rms => 0.0,
                NormKind::Layer | NormKind::LayerUnbiased => s1 / d.c as f64,
            };
            let r = rstd[o * d.inner + i] as f64;
            for j in 0..d.c {
                let k = j * d.inner + i;
                dxo[k] = (r * (go[k] as f64 - mean_dy - yo[k] as f64 * s2 / div)) as f32;
            }
        }
    });
    dx
}

/// [`norm_backward`] of one outer slice with strided columns, in blocks of columns; the same
/// sums in the same order as the per-column loop.
fn norm_backward_columns(yo: &[f32], go: &[f32], ro: &[f32], dxo: &mut [f32], d: &NormDesc) {
    let (inner, div) = (d.inner, var_divisor(d.kind, d.c));
    for i0 in (0..inner).step_by(BLOCK) {
        let w = BLOCK.min(inner - i0);
        let (mut s1, mut s2) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
        let (s1, s2) = (&mut s1[..w], &mut s2[..w]);
        for j in 0..d.c {
            let k = j * inner + i0;
            for (((a, b), &g), &y) in s1
                .iter_mut()
                .zip(s2.iter_mut())
                .zip(&go[k..k + w])
                .zip(&yo[k..k + w])
            {
                *a += g as f64;
                *b += g as f64 * y as f64;
            }
        }
        if d.kind == NormKind::Rms {
            s1.fill(0.0);
        } else {
            s1.iter_mut().for_each(|a| *a /= d.c as f64);
        }
        for j in 0..d.c {
            let k = j * inner + i0;
            let it = dxo[k..k + w]
                .iter_mut()
                .zip(&go[k..k + w])
                .zip(&yo[k..k + w]);
            for (i, ((o, &g), &y)) in it.enumerate() {
                let r = ro[i0 + i] as f64;
                *o = (r * (g as f64 - s1[i] - y as f64 * s2[i] / div)) as f32;
            }
        }
    }
}

/// Runs `f(o, y_o, rstd_o)` over the outer slices of y (length `slice`) and rstd (length
/// `inner`), in parallel on native targets.
fn for_each_outer(
    y: &mut [f32],
    rstd: &mut [f32],
    slice: usize,
    inner: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Send + Sync,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if y.len() >= 1 << 14 {
            y.par_chunks_mut(slice)
                .zip(rstd.par_chunks_mut(inner))
                .enumerate()
                .for_each(|(o, (yo, ro))| f(o, yo, ro));
            return;
        }
    }
    y.chunks_mut(slice)
        .zip(rstd.chunks_mut(inner))
        .enumerate()
        .for_each(|(o, (yo, ro))| f(o, yo, ro));
}

/// Independent partial sums in a reduction: a single running sum is a chain of dependent
/// adds that cannot vectorise, and on the attention rows of a training step that chain, not
/// the exponentials, was most of softmax's time.
const LANES: usize = 8;

/// `sum(x)` in f64, over [`LANES`] interleaved partial sums.
fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `sum(a * b)` in f64, over [`LANES`] interleaved partial sums.
fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; LANES];
    let split = n - n % LANES;
    for (ca, cb) in a[..split]
        .chunks_exact(LANES)
        .zip(b[..split].chunks_exact(LANES))
    {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x as f64 * y as f64;
        }
    }
    let tail: f64 = (split..n).map(|i| a[i] as f64 * b[i] as f64).sum();
    acc.iter().sum::<f64>() + tail
}

/// The largest element (NaN ignored, as `f32::max` does; -inf for an empty or all-NaN row).
fn max_f32(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 2 * LANES];
    let chunks = x.chunks_exact(2 * LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// Softmax of one row in place, shifted by its maximum so that exp never overflows.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = max_f32(row);
    row.iter_mut().for_each(|v| *v = exp_f32(*v - max));
    let inv = (1.0 / sum_f64(row)) as f32;
    row.iter_mut().for_each(|v| *v *= inv);
}

pub(crate) fn softmax(x: &[f32], rows: usize, n: usize) -> Vec<f32> {
    let mut y = x[..rows * n].to_vec();
    par_chunks_mut(&mut y, n, |_, row| softmax_in_place(row));
    y
}

/// `dx = y * (dy - sum(dy * y))` per row.
pub(crate) fn softmax_backward(y: &[f32], dy: &[f32], rows: usize, n: usize) -> Vec<f32> {
    let mut dx = vec![0.0; rows * n];
    par_chunks_mut(&mut dx, n, |r, row| {
        let (yr, gr) = (&y[r * n..(r + 1) * n], &dy[r * n..(r + 1) * n]);
        let dot = dot_f64(yr, gr);
        for ((o, &a), &b) in row.iter_mut().zip(yr).zip(gr) {
            *o = (a as f64 * (b as f64 - dot)) as f32;
        }
    });
    dx
}

#[cfg(test)]
mod tests {
    use super::{dot_f64, max_f32, softmax_in_place, sum_f64};
    use crate::rng::normal;

    /// The lane-split reductions against one running sum, at lengths around the lane count.
    #[test]
    fn reductions_match_a_running_sum() {
        for n in [0u64, 1, 7, 8, 9, 15, 16, 17, 31, 33, 320, 1001] {
            let a: Vec<f32> = (0..n).map(|i| normal(7, i) * 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| normal(8, i)).collect();
            let sum: f64 = a.iter().map(|&v| v as f64).sum();
            let dot: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let tol = 1e-12 * (1.0 + n as f64);
            assert!(
                (sum_f64(&a) - sum).abs() <= tol,
                "sum n={n}: {} vs {sum}",
                sum_f64(&a)
            );
            assert!((dot_f64(&a, &b) - dot).abs() <= tol, "dot n={n}");
            let max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_f32(&a), max, "max n={n}");
        }
        assert_eq!(max_f32(&[f32::NAN, -3.0, f32::NAN]), -3.0);
        assert_eq!(max_f32(&[f32::NAN; 20]), f32::NEG_INFINITY);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_f64() {
        for n in [1u64, 5, 17, 320] {
            let x: Vec<f32> = (0..n).map(|i| normal(3, i) * 10.0).collect();
            let mut y = x.clone();
            softmax_in_place(&mut y);
            let m = x
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, |a, v| a.max(v as f64));
            let z: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
            for (&xi, &yi) in x.iter().zip(&y) {
                let want = (xi as f64 - m).exp() / z;
                assert!(
                    (yi as f64 - want).abs() <= 4e-6 * want + 1e-30,
                    "n={n}: {yi} vs {want}"
                );
            }
        }
    }
}
