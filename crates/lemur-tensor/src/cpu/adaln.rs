//! The ViT's AdaLN ops and their gradients, the reference the GPU kernels (shaders/adaln.wgsl)
//! are tested against: the gated residual out = (x + c y) rsqrt(1 + c^2) and the modulation
//! out = (1 + a) x + b.

use crate::backend::GateDesc;

/// The index into a per-channel vector of element i of x.
fn vec_index(i: usize, d: &GateDesc) -> usize {
    let ch = i % d.channels;
    if d.batched {
        i / (d.rows * d.channels) * d.channels + ch
    } else {
        ch
    }
}

pub(crate) fn gate_forward(x: &[f32], y: &[f32], c: &[f32], d: &GateDesc) -> Vec<f32> {
    (0..d.len())
        .map(|i| {
            let cv = c[vec_index(i, d)];
            (x[i] + cv * y[i]) / (1.0 + cv * cv).sqrt()
        })
        .collect()
}

pub(crate) fn gate_backward(
    x: &[f32],
    y: &[f32],
    c: &[f32],
    dout: &[f32],
    d: &GateDesc,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = d.len();
    let (mut dx, mut dy) = (vec![0.0; n], vec![0.0; n]);
    let mut dc = vec![0.0f64; d.gate_len()];
    for i in 0..n {
        let k = vec_index(i, d);
        let cv = c[k];
        let g = 1.0 / (1.0 + cv * cv).sqrt();
        dx[i] = dout[i] * g;
        dy[i] = dout[i] * cv * g;
        let s = x[i] + cv * y[i];
        dc[k] += f64::from(dout[i] * (y[i] * g - s * cv * g * g * g));
    }
    (dx, dy, dc.into_iter().map(|v| v as f32).collect())
}

pub(crate) fn modulate_forward(x: &[f32], a: &[f32], b: &[f32], d: &GateDesc) -> Vec<f32> {
    (0..d.len())
        .map(|i| {
            let k = vec_index(i, d);
            (1.0 + a[k]) * x[i] + b[k]
        })
        .collect()
}

pub(crate) fn modulate_backward(
    x: &[f32],
    a: &[f32],
    dout: &[f32],
    d: &GateDesc,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; d.len()];
    let (mut da, mut db) = (vec![0.0f64; d.gate_len()], vec![0.0f64; d.gate_len()]);
    for i in 0..d.len() {
        let k = vec_index(i, d);
        dx[i] = dout[i] * (1.0 + a[k]);
        da[k] += f64::from(dout[i] * x[i]);
        db[k] += f64::from(dout[i]);
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (dx, narrow(da), narrow(db))
}
