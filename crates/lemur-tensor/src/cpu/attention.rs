//! Reference rotary embedding and attention (mirrors `shaders/attention.wgsl`).

use super::matmul::matmul;
use super::norm::softmax_in_place;
use super::par_chunks_mut;
use crate::backend::{AttentionDesc, MatmulDesc, RopeDesc};

/// Rotates each channel pair (2i, 2i+1) of x (B, heads, T, D) by `angles[t, h*D/2 + i]`, or by
/// its negative when `inverse` (a rotation's inverse is its transpose: the backward for x).
pub(crate) fn rope(x: &[f32], angles: &[f32], d: &RopeDesc, inverse: bool) -> Vec<f32> {
    let (dim, half) = (d.dim, d.dim / 2);
    let mut out = vec![0.0; d.batch * d.heads * d.tokens * dim];
    let sign = if inverse { -1.0 } else { 1.0 };
    // The angles do not depend on the batch: one sin_cos per angle, not per batch element.
    let n = d.tokens * d.heads * half;
    let sc: Vec<(f32, f32)> = angles[..n].iter().map(|&a| (sign * a).sin_cos()).collect();
    par_chunks_mut(&mut out, dim, |row, o| {
        // row = (b * heads + h) * T + t
        let t = row % d.tokens;
        let h = (row / d.tokens) % d.heads;
        let sc = &sc[t * d.heads * half + h * half..][..half];
        let xr = &x[row * dim..(row + 1) * dim];
        for (i, &(s, c)) in sc.iter().enumerate() {
            let (x0, x1) = (xr[2 * i], xr[2 * i + 1]);
            o[2 * i] = x0 * c - x1 * s;
            o[2 * i + 1] = x0 * s + x1 * c;
        }
    });
    out
}

/// d angles (T, heads*D/2). With y the forward's output, d y0/da = -y1 and d y1/da = y0, so
/// each pair contributes `dy1 * y0 - dy0 * y1`, summed over the batch.
pub(crate) fn rope_angle_grad(y: &[f32], dy: &[f32], d: &RopeDesc) -> Vec<f32> {
    let (dim, half) = (d.dim, d.dim / 2);
    let mut out = vec![0.0; d.tokens * d.heads * half];
    par_chunks_mut(&mut out, d.heads * half, |t, o| {
        for h in 0..d.heads {
            for i in 0..half {
                let mut acc = 0.0f64;
                for b in 0..d.batch {
                    let k = ((b * d.heads + h) * d.tokens + t) * dim + 2 * i;
                    acc += dy[k + 1] as f64 * y[k] as f64 - dy[k] as f64 * y[k + 1] as f64;
                }
                o[h * half + i] = acc as f32;
            }
        }
    });
    out
}

/// softmax(q k^T * scale) v per (batch*head). Query rows go in blocks so that the scores held
/// at once stay near a million floats however long the sequence; sgemm does the products.
pub(crate) fn attention(q: &[f32], k: &[f32], v: &[f32], d: &AttentionDesc) -> Vec<f32> {
    let (t, dim) = (d.tokens, d.dim);
    let mut out = vec![0.0; d.bh * t * dim];
    if out.is_empty() {
        return out;
    }
    let block = ((1 << 20) / t).clamp(1, t);
    // Heads are independent: one task per (batch*head), each with single-threaded products.
    par_chunks_mut(&mut out, t * dim, |bh, ob| {
        let (kb, vb) = (&k[bh * t * dim..][..t * dim], &v[bh * t * dim..][..t * dim]);
        for r0 in (0..t).step_by(block) {
            let rows = block.min(t - r0);
            let row0 = bh * t + r0;
            let qs: Vec<f32> = q[row0 * dim..(row0 + rows) * dim]
                .iter()
                .map(|&x| x * d.scale)
                .collect();
            let mut scores = matmul(&qs, kb, None, &gemm(rows, t, dim, true));
            scores.chunks_mut(t).for_each(softmax_in_place);
            let o = matmul(&scores, vb, None, &gemm(rows, dim, t, false));
            ob[r0 * dim..(r0 + rows) * dim].copy_from_slice(&o);
        }
    });
    out
}

/// One unbatched (m, k) @ (k, n) product, b stored transposed when `trans_b`.
fn gemm(m: usize, n: usize, k: usize, trans_b: bool) -> MatmulDesc {
    MatmulDesc {
        batch: 1,
        m,
        n,
        k,
        trans_a: false,
        trans_b,
        a_batched: false,
        b_batched: false,
    }
}
