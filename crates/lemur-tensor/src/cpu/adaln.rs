//! The ViT's AdaLN ops and their gradients, the reference the GPU kernels (shaders/adaln.wgsl)
//! are tested against: the gated residual out = (x + c y) rsqrt(1 + c^2) and the modulation
//! out = (1 + a) x + b.

use crate::backend::GateDesc;

/// Each row of x as (the offset of its first element, the offset of its per-channel vector):
/// walking rows instead of decoding every element's index keeps two integer divisions out of
/// the inner loops. Rows go in order, so every sum accumulates in the same order as an
/// element-by-element loop.
fn rows(d: &GateDesc) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..d.batch * d.rows).map(move |r| {
        let vec = if d.batched {
            r / d.rows * d.channels
        } else {
            0
        };
        (r * d.channels, vec)
    })
}

pub(crate) fn gate_forward(x: &[f32], y: &[f32], c: &[f32], d: &GateDesc) -> Vec<f32> {
    let mut out = vec![0.0; d.len()];
    for (i0, k0) in rows(d) {
        let ch = d.channels;
        let (o, x, y, c) = (
            &mut out[i0..i0 + ch],
            &x[i0..i0 + ch],
            &y[i0..i0 + ch],
            &c[k0..k0 + ch],
        );
        for j in 0..ch {
            o[j] = (x[j] + c[j] * y[j]) / (1.0 + c[j] * c[j]).sqrt();
        }
    }
    out
}

pub(crate) fn gate_backward(
    x: &[f32],
    y: &[f32],
    c: &[f32],
    dout: &[f32],
    d: &GateDesc,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (n, ch) = (d.len(), d.channels);
    let (mut dx, mut dy) = (vec![0.0; n], vec![0.0; n]);
    let mut dc = vec![0.0f64; d.gate_len()];
    for (i0, k0) in rows(d) {
        let (x, y, g_out) = (&x[i0..i0 + ch], &y[i0..i0 + ch], &dout[i0..i0 + ch]);
        let (dxr, dyr) = (&mut dx[i0..i0 + ch], &mut dy[i0..i0 + ch]);
        let (c, dcr) = (&c[k0..k0 + ch], &mut dc[k0..k0 + ch]);
        for j in 0..ch {
            let cv = c[j];
            let g = 1.0 / (1.0 + cv * cv).sqrt();
            dxr[j] = g_out[j] * g;
            dyr[j] = g_out[j] * cv * g;
            let s = x[j] + cv * y[j];
            dcr[j] += f64::from(g_out[j] * (y[j] * g - s * cv * g * g * g));
        }
    }
    (dx, dy, dc.into_iter().map(|v| v as f32).collect())
}

pub(crate) fn modulate_forward(x: &[f32], a: &[f32], b: &[f32], d: &GateDesc) -> Vec<f32> {
    let mut out = vec![0.0; d.len()];
    let ch = d.channels;
    for (i0, k0) in rows(d) {
        let (o, x) = (&mut out[i0..i0 + ch], &x[i0..i0 + ch]);
        let (a, b) = (&a[k0..k0 + ch], &b[k0..k0 + ch]);
        for j in 0..ch {
            o[j] = (1.0 + a[j]) * x[j] + b[j];
        }
    }
    out
}

pub(crate) fn modulate_backward(
    x: &[f32],
    a: &[f32],
    dout: &[f32],
    d: &GateDesc,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ch = d.channels;
    let mut dx = vec![0.0; d.len()];
    let (mut da, mut db) = (vec![0.0f64; d.gate_len()], vec![0.0f64; d.gate_len()]);
    for (i0, k0) in rows(d) {
        let (x, g_out, dxr) = (&x[i0..i0 + ch], &dout[i0..i0 + ch], &mut dx[i0..i0 + ch]);
        let (a, dar, dbr) = (&a[k0..k0 + ch], &mut da[k0..k0 + ch], &mut db[k0..k0 + ch]);
        for j in 0..ch {
            dxr[j] = g_out[j] * (1.0 + a[j]);
            dar[j] += f64::from(g_out[j] * x[j]);
            dbr[j] += f64::from(g_out[j]);
        }
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (dx, narrow(da), narrow(db))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::normal;

    /// Element i's per-channel index, decoded the direct way.
    fn vec_index(i: usize, d: &GateDesc) -> usize {
        let ch = i % d.channels;
        if d.batched {
            i / (d.rows * d.channels) * d.channels + ch
        } else {
            ch
        }
    }

    /// The row walk against an element-by-element loop: the same values and the same sums in
    /// the same order, so equal to the bit, at sizes that are no multiple of anything.
    #[test]
    fn row_walk_matches_element_loop_exactly() {
        for (batch, rows, channels, batched) in [(3, 5, 7, false), (3, 5, 7, true), (1, 1, 1, true)]
        {
            let d = GateDesc {
                batch,
                rows,
                channels,
                batched,
            };
            let draw =
                |seed, n: usize| (0..n as u64).map(|i| normal(seed, i)).collect::<Vec<f32>>();
            let (x, y, g) = (draw(1, d.len()), draw(2, d.len()), draw(3, d.len()));
            let (c, b) = (draw(4, d.gate_len()), draw(5, d.gate_len()));
            let mut want_dc = vec![0.0f64; d.gate_len()];
            let (mut want_da, mut want_db) = (want_dc.clone(), want_dc.clone());
            let (mut gate, mut dx, mut dy) = (vec![], vec![], vec![]);
            let (mut modu, mut mdx) = (vec![], vec![]);
            for i in 0..d.len() {
                let k = vec_index(i, &d);
                let cv = c[k];
                let r = 1.0 / (1.0 + cv * cv).sqrt();
                gate.push((x[i] + cv * y[i]) / (1.0 + cv * cv).sqrt());
                dx.push(g[i] * r);
                dy.push(g[i] * cv * r);
                let s = x[i] + cv * y[i];
                want_dc[k] += f64::from(g[i] * (y[i] * r - s * cv * r * r * r));
                modu.push((1.0 + c[k]) * x[i] + b[k]);
                mdx.push(g[i] * (1.0 + c[k]));
                want_da[k] += f64::from(g[i] * x[i]);
                want_db[k] += f64::from(g[i]);
            }
            let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
            assert_eq!(gate_forward(&x, &y, &c, &d), gate);
            assert_eq!(gate_backward(&x, &y, &c, &g, &d), (dx, dy, narrow(want_dc)));
            assert_eq!(modulate_forward(&x, &c, &b, &d), modu);
            assert_eq!(
                modulate_backward(&x, &c, &g, &d),
                (mdx, narrow(want_da), narrow(want_db))
            );
        }
    }
}
