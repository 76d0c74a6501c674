//! Reference elementwise ops (mirrors `shaders/elementwise.wgsl`).

use super::par_chunks_mut;
use crate::backend::{Binary, Broadcast, Unary};

pub(crate) fn unary_f(op: Unary, x: f32) -> f32 {
    match op {
        Unary::Neg => -x,
        Unary::Silu => x / (1.0 + (-x).exp()),
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqrt => x.sqrt(),
        Unary::Rsqrt => 1.0 / x.sqrt(),
        Unary::Square => x * x,
        Unary::Sin => x.sin(),
        Unary::Cos => x.cos(),
        Unary::Abs => x.abs(),
        Unary::Softclip => x / (1.0 + (x / 5.0) * (x / 5.0)).sqrt(),
        Unary::Scale(s) => x * s,
        Unary::AddScalar(s) => x + s,
        Unary::Clamp(lo, hi) => x.max(lo).min(hi),
        Unary::Gt(s) => f32::from(u8::from(x > s)),
    }
}

/// f'(x).
pub(crate) fn unary_df(op: Unary, x: f32) -> f32 {
    match op {
        Unary::Neg => -1.0,
        Unary::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        Unary::Exp => x.exp(),
        Unary::Log => 1.0 / x,
        Unary::Sqrt => 0.5 / x.sqrt(),
        Unary::Rsqrt => -0.5 / (x * x.sqrt()),
        Unary::Square => 2.0 * x,
        Unary::Sin => x.cos(),
        Unary::Cos => -x.sin(),
        Unary::Abs => x.signum(),
        Unary::Softclip => {
            let r = 1.0 / (1.0 + (x / 5.0) * (x / 5.0)).sqrt();
            r * r * r
        }
        Unary::Scale(s) => s,
        Unary::AddScalar(_) => 1.0,
        Unary::Clamp(lo, hi) => f32::from(u8::from(x >= lo && x <= hi)),
        Unary::Gt(_) => 0.0,
    }
}

pub(crate) fn binary_f(op: Binary, a: f32, b: f32) -> f32 {
    match op {
        Binary::Add => a + b,
        Binary::Sub => a - b,
        Binary::Mul => a * b,
        Binary::Div => a / b,
        Binary::Max => a.max(b),
        Binary::Min => a.min(b),
    }
}

const CHUNK: usize = 4096;

pub(crate) fn unary(op: Unary, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    par_chunks_mut(&mut out, CHUNK, |c, o| {
        for (i, o) in o.iter_mut().enumerate() {
            *o = unary_f(op, x[c * CHUNK + i]);
        }
    });
    out
}

pub(crate) fn unary_backward(op: Unary, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    par_chunks_mut(&mut out, CHUNK, |c, o| {
        for (i, o) in o.iter_mut().enumerate() {
            let j = c * CHUNK + i;
            *o = dy[j] * unary_df(op, x[j]);
        }
    });
    out
}

/// Offsets of output element `i` into each input of a broadcast layout.
pub(crate) fn broadcast_offsets<const K: usize>(layout: &Broadcast, mut i: usize) -> [usize; K] {
    let mut offs = [0usize; K];
    for d in (0..layout.shape.len()).rev() {
        let n = layout.shape[d];
        let idx = i % n;
        i /= n;
        for (k, o) in offs.iter_mut().enumerate() {
            *o += idx * layout.strides[k][d];
        }
    }
    offs
}

/// For each output element of a 1-D layout (what same-shape operands compact to), the input
/// offsets are `i * stride`: no index decoding needed.
fn flat_strides(layout: &Broadcast) -> Option<Vec<usize>> {
    (layout.shape.len() == 1).then(|| layout.strides.iter().map(|s| s[0]).collect())
}

pub(crate) fn binary(op: Binary, a: &[f32], b: &[f32], layout: &Broadcast) -> Vec<f32> {
    let n: usize = layout.shape.iter().product();
    let mut out = vec![0.0; n];
    if let Some(st) = flat_strides(layout) {
        par_chunks_mut(&mut out, CHUNK, |c, o| {
            for (i, o) in o.iter_mut().enumerate() {
                let j = c * CHUNK + i;
                *o = binary_f(op, a[j * st[0]], b[j * st[1]]);
            }
        });
        return out;
    }
    // Decode the offsets once per row of the last axis, then walk the row with its strides.
    let d = layout.shape.len() - 1;
    let row = layout.shape[d];
    let (sa, sb) = (layout.strides[0][d], layout.strides[1][d]);
    let rows_per_chunk = (CHUNK / row).max(1);
    par_chunks_mut(&mut out, rows_per_chunk * row, |c, o| {
        for (r, o) in o.chunks_mut(row).enumerate() {
            let [ia, ib] = broadcast_offsets::<2>(layout, (c * rows_per_chunk + r) * row);
            for (k, o) in o.iter_mut().enumerate() {
                *o = binary_f(op, a[ia + k * sa], b[ib + k * sb]);
            }
        }
    });
    out
}

pub(crate) fn select(mask: &[f32], a: &[f32], b: &[f32], layout: &Broadcast) -> Vec<f32> {
    let n: usize = layout.shape.iter().product();
    let mut out = vec![0.0; n];
    par_chunks_mut(&mut out, CHUNK, |c, o| {
        for (i, o) in o.iter_mut().enumerate() {
            let [im, ia, ib] = broadcast_offsets::<3>(layout, c * CHUNK + i);
            *o = if mask[im] != 0.0 { a[ia] } else { b[ib] };
        }
    });
    out
}
