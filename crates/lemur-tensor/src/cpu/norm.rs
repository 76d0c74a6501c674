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

/// Softmax of one row in place, shifted by its maximum so that exp never overflows.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter_mut().for_each(|v| *v = exp_f32(*v - max));
    let mut sum = 0.0f64;
    for v in row.iter() {
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
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
        let dot: f64 = yr.iter().zip(gr).map(|(&a, &b)| a as f64 * b as f64).sum();
        for ((o, &a), &b) in row.iter_mut().zip(yr).zip(gr) {
            *o = (a as f64 * (b as f64 - dot)) as f32;
        }
    });
    dx
}
