//! Reference sampler updates (mirrors `shaders/sampler.wgsl`).

use super::par_chunks_mut;
use crate::backend::SamplerUpdate;
use crate::rng;

pub(crate) fn observe(x: &[f32], obs: &[f32], k: f32) -> Vec<f32> {
    let n = x.len();
    let mut out = vec![0.0; n];
    par_chunks_mut(&mut out, 4096, |c, o| {
        for (j, o) in o.iter_mut().enumerate() {
            let i = c * 4096 + j;
            *o = if obs[n + i] != 0.0 { k * obs[i] } else { x[i] };
        }
    });
    out
}

/// Updates `ring` in place and returns x_s; per element in the kernel's order of operations.
pub(crate) fn update(
    ring: &mut [f32],
    xz: &[f32],
    xb: &[f32],
    mean: &[f32],
    obs: Option<&[f32]>,
    d: &SamplerUpdate,
) -> Vec<f32> {
    let n = xz.len();
    let m: Vec<f32> = match obs {
        Some(obs) => (0..n)
            .map(|i| if obs[n + i] != 0.0 { obs[i] } else { mean[i] })
            .collect(),
        None => mean.to_vec(),
    };
    let slot = &mut ring[d.slot * n..(d.slot + 1) * n];
    for i in 0..n {
        slot[i] = (xz[i] - d.a_t * m[i]) / d.s_t;
    }
    let ring: &[f32] = ring;
    let mut out = vec![0.0; n];
    par_chunks_mut(&mut out, 4096, |c, o| {
        for (j, o) in o.iter_mut().enumerate() {
            let i = c * 4096 + j;
            let mut acc = d.cx * xb[i] + d.cm * m[i];
            for s in 0..d.slots {
                acc += d.c[s] * ring[s * n + i];
            }
            if d.cn != 0.0 {
                acc += d.cn * rng::normal(d.seed, d.offset + i as u64);
            }
            *o = acc;
        }
    });
    out
}
