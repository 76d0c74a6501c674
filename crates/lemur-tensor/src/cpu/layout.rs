//! Reference data-movement ops and reductions (mirrors `shaders/layout.wgsl`, `shaders/reduce.wgsl`).

use super::par_chunks_mut;
use crate::backend::Strided;

pub(crate) fn copy_strided(x: &[f32], d: &Strided) -> Vec<f32> {
    let n: usize = d.shape.iter().product();
    let mut out = vec![0.0; n];
    par_chunks_mut(&mut out, 4096, |c, o| {
        for (i, o) in o.iter_mut().enumerate() {
            let mut rem = c * 4096 + i;
            let mut off = d.offset as isize;
            for k in (0..d.shape.len()).rev() {
                off += (rem % d.shape[k]) as isize * d.strides[k];
                rem /= d.shape[k];
            }
            *o = x[off as usize];
        }
    });
    out
}

pub(crate) fn concat(parts: &[(&[f32], usize)], outer: usize, inner: usize) -> Vec<f32> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut out = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for (x, n) in parts {
            out.extend_from_slice(&x[o * n * inner..(o + 1) * n * inner]);
        }
    }
    out
}

/// Sums in f64 so that the reference is more accurate than any f32 kernel it checks.
pub(crate) fn sum_axis(x: &[f32], outer: usize, r: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0.0; outer * inner];
    par_chunks_mut(&mut out, inner.max(1), |o, row| {
        for (i, v) in row.iter_mut().enumerate() {
            let mut acc = 0.0f64;
            for j in 0..r {
                acc += x[(o * r + j) * inner + i] as f64;
            }
            *v = acc as f32;
        }
    });
    out
}
