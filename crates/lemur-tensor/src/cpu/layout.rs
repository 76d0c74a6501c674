//! Reference data-movement ops and reductions (mirrors `shaders/layout.wgsl`, `shaders/reduce.wgsl`).

use super::par_chunks_mut;
use crate::backend::Strided;

pub(crate) fn copy_strided(x: &[f32], d: &Strided) -> Vec<f32> {
    let n: usize = d.shape.iter().product();
    let mut out = vec![0.0; n];
    if n == 0 {
        return out;
    }
    if d.shape.is_empty() {
        return vec![x[d.offset]];
    }
    // Decode the source offset once per row of the last axis, then walk the row.
    let last = d.shape.len() - 1;
    let (row, step) = (d.shape[last], d.strides[last]);
    let rows_per_chunk = (4096 / row.max(1)).max(1);
    par_chunks_mut(&mut out, rows_per_chunk * row, |c, o| {
        for (r, o) in o.chunks_mut(row).enumerate() {
            let mut rem = c * rows_per_chunk + r;
            let mut off = d.offset as isize;
            for k in (0..last).rev() {
                off += (rem % d.shape[k]) as isize * d.strides[k];
                rem /= d.shape[k];
            }
            for (j, o) in o.iter_mut().enumerate() {
                *o = x[(off + j as isize * step) as usize];
            }
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
    if inner < 64 {
        par_chunks_mut(&mut out, inner.max(1), |o, row| {
            for (i, v) in row.iter_mut().enumerate() {
                let mut acc = 0.0f64;
                for j in 0..r {
                    acc += x[(o * r + j) * inner + i] as f64;
                }
                *v = acc as f32;
            }
        });
        return out;
    }
    // Wide rows: each task owns a block of output columns and sweeps the r input rows over
    // it contiguously. Every output still adds its r terms in order j = 0, 1, ...
    const COLS: usize = 512;
    let blocks: Vec<(usize, usize, &mut [f32])> = out
        .chunks_mut(inner)
        .enumerate()
        .flat_map(|(o, row)| {
            row.chunks_mut(COLS)
                .enumerate()
                .map(move |(b, c)| (o, b * COLS, c))
        })
        .collect();
    let task = |(o, i0, dst): (usize, usize, &mut [f32])| {
        let mut acc = [0.0f64; COLS];
        let acc = &mut acc[..dst.len()];
        for j in 0..r {
            let row = &x[(o * r + j) * inner + i0..][..dst.len()];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v as f64;
            }
        }
        for (d, &a) in dst.iter_mut().zip(acc.iter()) {
            *d = a as f32;
        }
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if x.len() >= 1 << 14 {
            blocks.into_par_iter().for_each(task);
            return out;
        }
    }
    blocks.into_iter().for_each(task);
    out
}
