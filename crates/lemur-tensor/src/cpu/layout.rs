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
    let mut out = vec![0.0; outer * total * inner];
    if out.is_empty() {
        return out;
    }
    // Output row o is the parts' rows o side by side; rows are copied in parallel, and a
    // single long row (outer = 1) in pieces of a few thousand floats.
    let row = total * inner;
    let piece = if outer == 1 { 1 << 14 } else { row };
    par_chunks_mut(&mut out, piece, |c, dst| {
        let start = c * piece;
        let (o, mut at) = (start / row, start % row);
        let mut k = 0;
        let mut off = 0;
        for (x, n) in parts {
            let len = n * inner;
            if at < off + len && k < dst.len() {
                let s0 = at - off;
                let take = (len - s0).min(dst.len() - k);
                dst[k..k + take].copy_from_slice(&x[o * len + s0..][..take]);
                k += take;
                at += take;
            }
            off += len;
        }
    });
    out
}

/// x viewed as (outer, C, inner) summed over outer and inner: out (C), each channel's terms
/// added in order (o, then i) in f64.
/// Rows of `cols` values with `lo` zeros before and `hi` after each.
pub(crate) fn pad(x: &[f32], outer: usize, cols: usize, lo: usize, hi: usize) -> Vec<f32> {
    let row = lo + cols + hi;
    let mut out = vec![0.0; outer * row];
    for (o, src) in x.chunks_exact(cols.max(1)).take(outer).enumerate() {
        out[o * row + lo..o * row + lo + cols].copy_from_slice(&src[..cols]);
    }
    out
}

pub(crate) fn sum_channels(x: &[f32], outer: usize, c: usize, inner: usize) -> Vec<f32> {
    let channel = |ch: usize| -> f32 {
        let mut acc = 0.0f64;
        for o in 0..outer {
            for &v in &x[(o * c + ch) * inner..][..inner] {
                acc += v as f64;
            }
        }
        acc as f32
    };
    #[cfg(not(target_arch = "wasm32"))]
    if c > 1 && outer * c * inner >= 1 << 16 {
        use rayon::prelude::*;
        return (0..c).into_par_iter().map(channel).collect();
    }
    (0..c).map(channel).collect()
}

/// `acc + sum(x^2)`, bit for bit what `square`, `sum_axis` over all of x and an `add` to
/// `acc` compute: each square rounded to f32, summed in order in f64, rounded, then added.
pub(crate) fn sum_squares(x: &[f32], acc: Option<f32>) -> f32 {
    let s = x.iter().fold(0.0f64, |a, &v| a + (v * v) as f64) as f32;
    match acc {
        Some(a) => a + s,
        None => s,
    }
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

#[cfg(test)]
mod tests {
    use super::concat;

    /// The parallel pieces of a long single row (pieces straddling parts) and of many rows
    /// against the obvious loop.
    #[test]
    fn concat_matches_naive() {
        for (outer, ns, inner) in [
            (1, [9000, 17, 20000], 3),
            (5, [3, 1, 4], 7),
            (40, [700, 9, 300], 2),
        ] {
            let parts: Vec<Vec<f32>> = ns
                .iter()
                .enumerate()
                .map(|(p, &n)| {
                    (0..outer * n * inner)
                        .map(|i| (p * 1_000_000 + i) as f32)
                        .collect()
                })
                .collect();
            let refs: Vec<(&[f32], usize)> = parts
                .iter()
                .zip(ns)
                .map(|(v, n)| (v.as_slice(), n))
                .collect();
            let mut want = Vec::new();
            for o in 0..outer {
                for (x, n) in &refs {
                    want.extend_from_slice(&x[o * n * inner..(o + 1) * n * inner]);
                }
            }
            assert_eq!(
                concat(&refs, outer, inner),
                want,
                "outer {outer} parts {ns:?}"
            );
        }
    }
}
