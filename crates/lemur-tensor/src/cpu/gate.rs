//! The ViT's gated residual out = (x + c y) rsqrt(1 + c^2) and its gradients: the reference
//! the GPU kernels (shaders/gate.wgsl) are tested against.

use crate::backend::GateDesc;
use crate::error::{Result, shape_err};

/// Checks the lengths of x and y (and dout) against `d`, and c's.
pub(crate) fn check(op: &'static str, lens: &[usize], c: usize, d: &GateDesc) -> Result<()> {
    if lens.iter().any(|&l| l != d.len()) || c != d.gate_len() {
        return Err(shape_err(
            op,
            format!(
                "x, y (and dout) of {lens:?} elements and c of {c} for {d:?} (want {} and {})",
                d.len(),
                d.gate_len()
            ),
        ));
    }
    Ok(())
}

/// The index into c of element i of x.
fn gate_index(i: usize, d: &GateDesc) -> usize {
    let ch = i % d.channels;
    if d.batched {
        i / (d.rows * d.channels) * d.channels + ch
    } else {
        ch
    }
}

pub(crate) fn forward(x: &[f32], y: &[f32], c: &[f32], d: &GateDesc) -> Vec<f32> {
    (0..d.len())
        .map(|i| {
            let cv = c[gate_index(i, d)];
            (x[i] + cv * y[i]) / (1.0 + cv * cv).sqrt()
        })
        .collect()
}

pub(crate) fn backward(
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
        let k = gate_index(i, d);
        let cv = c[k];
        let g = 1.0 / (1.0 + cv * cv).sqrt();
        dx[i] = dout[i] * g;
        dy[i] = dout[i] * cv * g;
        let s = x[i] + cv * y[i];
        dc[k] += f64::from(dout[i] * (y[i] * g - s * cv * g * g * g));
    }
    (dx, dy, dc.into_iter().map(|v| v as f32).collect())
}
