//! Reference AdamW (mirrors `shaders/adamw.wgsl`).

use crate::backend::AdamWDesc;

/// The factor that scales gradients so their global norm is at most `max_norm`.
pub(crate) fn clip_factor(max_norm: f32, gnorm_sq: Option<f32>) -> f32 {
    match gnorm_sq {
        Some(sq) if max_norm > 0.0 => (max_norm / (sq.sqrt() + 1e-6)).min(1.0),
        _ => 1.0,
    }
}

/// Decoupled weight decay (Loshchilov & Hutter): `p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p)`.
pub(crate) fn adamw(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    d: &AdamWDesc,
    gnorm_sq: Option<f32>,
) {
    let scale = clip_factor(d.max_norm, gnorm_sq);
    let bc1 = 1.0 - d.beta1.powi(d.step as i32);
    let bc2 = 1.0 - d.beta2.powi(d.step as i32);
    // One chunk of each of the four arrays, as the zipped iterators below pair them.
    type Chunks<'a> = (((&'a mut [f32], &'a mut [f32]), &'a mut [f32]), &'a [f32]);
    let update = |(((p, m), v), g): Chunks<'_>| {
        for i in 0..p.len() {
            let gi = g[i] * scale;
            m[i] = d.beta1 * m[i] + (1.0 - d.beta1) * gi;
            v[i] = d.beta2 * v[i] + (1.0 - d.beta2) * gi * gi;
            let mhat = m[i] / bc1;
            let vhat = v[i] / bc2;
            p[i] -= d.lr * (mhat / (vhat.sqrt() + d.eps) + d.weight_decay * p[i]);
        }
    };
    const CHUNK: usize = 1 << 14;
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(update);
    }
    #[cfg(target_arch = "wasm32")]
    p.chunks_mut(CHUNK)
        .zip(m.chunks_mut(CHUNK))
        .zip(v.chunks_mut(CHUNK))
        .zip(g.chunks(CHUNK))
        .for_each(update);
}
