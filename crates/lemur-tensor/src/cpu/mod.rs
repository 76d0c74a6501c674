//! The CPU backend: plain, readable Rust for every op. It is the oracle every GPU kernel is
//! tested against and the fallback where no GPU adapter exists. Large loops run on rayon on
//! native targets; on wasm they run on the calling thread.

mod adaln;
mod attention;
mod elementwise;
mod layout;
mod matmul;
mod norm;
mod optim;
mod random;
mod sampler;

use std::sync::Arc;

use crate::backend::*;
use crate::error::Result;

thread_local! {
    /// The CPU backend's [`OpCounters`], per thread: the backend is a unit struct shared by
    /// everything, and ops run (and are counted) on the calling thread.
    static COUNTERS: std::cell::Cell<OpCounters> = const {
        std::cell::Cell::new(OpCounters {
            dispatches: 0,
            submissions: 0,
            syncs: 0,
            uploads: 0,
            bind_groups: 0,
            paces: 0,
        })
    };
}

fn count(f: impl FnOnce(&mut OpCounters)) {
    COUNTERS.with(|c| {
        let mut v = c.get();
        f(&mut v);
        c.set(v);
    });
}

/// Host memory, shared between tensors that view it (reshape) without copying.
pub type CpuStorage = Arc<Vec<f32>>;

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

/// Runs `f(chunk_index, chunk)` over `out` in chunks of `chunk` elements, in parallel on
/// native targets.
pub(crate) fn par_chunks_mut(
    out: &mut [f32],
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Send + Sync,
) {
    let chunk = chunk.max(1);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if out.len() >= 1 << 14 {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| f(i, c));
            return;
        }
    }
    out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
}

impl Backend for CpuBackend {
    type Storage = CpuStorage;

    fn name(&self) -> String {
        let threads = {
            #[cfg(not(target_arch = "wasm32"))]
            {
                rayon::current_num_threads()
            }
            #[cfg(target_arch = "wasm32")]
            {
                1
            }
        };
        let plural = if threads == 1 { "" } else { "s" };
        format!("cpu ({threads} thread{plural})")
    }

    /// Counted on the calling thread: kernel calls as dispatches, reads and syncs as syncs.
    fn counters(&self) -> OpCounters {
        COUNTERS.with(std::cell::Cell::get)
    }

    fn len(&self, s: &CpuStorage) -> usize {
        s.len()
    }

    fn upload(&self, data: &[f32]) -> Result<CpuStorage> {
        count(|c| c.uploads += 1);
        Ok(Arc::new(data.to_vec()))
    }

    fn fill(&self, len: usize, value: f32) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(vec![value; len]))
    }

    async fn read(&self, s: &CpuStorage) -> Result<Vec<f32>> {
        count(|c| c.syncs += 1);
        Ok(s.as_ref().clone())
    }

    async fn sync(&self) -> Result<()> {
        count(|c| c.syncs += 1);
        Ok(())
    }

    fn unary(&self, op: Unary, x: &CpuStorage) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(elementwise::unary(op, x)))
    }

    fn unary_backward(&self, op: Unary, x: &CpuStorage, dy: &CpuStorage) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(elementwise::unary_backward(op, x, dy)))
    }

    fn binary(
        &self,
        op: Binary,
        a: &CpuStorage,
        b: &CpuStorage,
        layout: &Broadcast,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(elementwise::binary(op, a, b, layout)))
    }

    fn select(
        &self,
        mask: &CpuStorage,
        a: &CpuStorage,
        b: &CpuStorage,
        layout: &Broadcast,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(elementwise::select(mask, a, b, layout)))
    }

    fn copy_strided(&self, x: &CpuStorage, desc: &Strided) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(layout::copy_strided(x, desc)))
    }

    fn concat(
        &self,
        parts: &[(&CpuStorage, usize)],
        outer: usize,
        inner: usize,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        let parts: Vec<(&[f32], usize)> = parts.iter().map(|(s, n)| (s.as_slice(), *n)).collect();
        Ok(Arc::new(layout::concat(&parts, outer, inner)))
    }

    fn pad(
        &self,
        x: &CpuStorage,
        outer: usize,
        n: usize,
        inner: usize,
        before: usize,
        after: usize,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        if x.len() != outer * n * inner {
            return Err(crate::error::shape_err(
                "pad",
                format!("{} elements viewed as ({outer}, {n}, {inner})", x.len()),
            ));
        }
        Ok(Arc::new(layout::pad(
            x,
            outer,
            n * inner,
            before * inner,
            after * inner,
        )))
    }

    fn sum_axis(&self, x: &CpuStorage, outer: usize, r: usize, inner: usize) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(layout::sum_axis(x, outer, r, inner)))
    }

    fn sum_channels(
        &self,
        x: &CpuStorage,
        outer: usize,
        c: usize,
        inner: usize,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(layout::sum_channels(x, outer, c, inner)))
    }

    fn sum_squares(&self, xs: &[&CpuStorage], acc: Option<&CpuStorage>) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        check_sum_squares(xs.len())?;
        let total = xs
            .iter()
            .fold(acc.map(|a| a[0]), |t, x| Some(layout::sum_squares(x, t)));
        Ok(Arc::new(vec![total.unwrap_or(0.0)]))
    }

    fn matmul(
        &self,
        a: &CpuStorage,
        b: &CpuStorage,
        bias: Option<&CpuStorage>,
        d: &MatmulDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        matmul::check_matmul(a.len(), b.len(), bias.map(|b| b.len()), d)?;
        Ok(Arc::new(matmul::matmul(
            a,
            b,
            bias.map(|b| b.as_slice()),
            d,
        )))
    }

    fn conv2d(
        &self,
        x: &CpuStorage,
        w: &CpuStorage,
        bias: Option<&CpuStorage>,
        d: &ConvDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        matmul::check_conv(
            "conv2d",
            x.len(),
            Some(w.len()),
            None,
            bias.map(|b| b.len()),
            d,
        )?;
        Ok(Arc::new(matmul::conv2d(
            x,
            w,
            bias.map(|b| b.as_slice()),
            d,
        )))
    }

    fn conv2d_weight_grad(
        &self,
        x: &CpuStorage,
        dy: &CpuStorage,
        d: &ConvDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        matmul::check_conv("conv2d_weight_grad", x.len(), None, Some(dy.len()), None, d)?;
        Ok(Arc::new(matmul::conv2d_weight_grad(x, dy, d)))
    }

    fn gated_residual(
        &self,
        x: &CpuStorage,
        y: &CpuStorage,
        c: &CpuStorage,
        d: &GateDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        d.check("gated_residual", &[x.len(), y.len()], c.len())?;
        Ok(Arc::new(adaln::gate_forward(x, y, c, d)))
    }

    fn gated_residual_backward(
        &self,
        x: &CpuStorage,
        y: &CpuStorage,
        c: &CpuStorage,
        dout: &CpuStorage,
        d: &GateDesc,
    ) -> Result<(CpuStorage, CpuStorage, CpuStorage)> {
        count(|c| c.dispatches += 1);
        d.check(
            "gated_residual_backward",
            &[x.len(), y.len(), dout.len()],
            c.len(),
        )?;
        let (dx, dy, dc) = adaln::gate_backward(x, y, c, dout, d);
        Ok((Arc::new(dx), Arc::new(dy), Arc::new(dc)))
    }

    fn modulate(
        &self,
        x: &CpuStorage,
        a: &CpuStorage,
        b: &CpuStorage,
        d: &GateDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        d.check("modulate", &[x.len()], a.len())?;
        d.check("modulate", &[x.len()], b.len())?;
        Ok(Arc::new(adaln::modulate_forward(x, a, b, d)))
    }

    fn modulate_backward(
        &self,
        x: &CpuStorage,
        a: &CpuStorage,
        dout: &CpuStorage,
        d: &GateDesc,
    ) -> Result<(CpuStorage, CpuStorage, CpuStorage)> {
        count(|c| c.dispatches += 1);
        d.check("modulate_backward", &[x.len(), dout.len()], a.len())?;
        let (dx, da, db) = adaln::modulate_backward(x, a, dout, d);
        Ok((Arc::new(dx), Arc::new(da), Arc::new(db)))
    }

    fn norm(&self, x: &CpuStorage, d: &NormDesc) -> Result<(CpuStorage, CpuStorage)> {
        count(|c| c.dispatches += 1);
        let (y, rstd) = norm::norm(x, d);
        Ok((Arc::new(y), Arc::new(rstd)))
    }

    fn norm_backward(
        &self,
        y: &CpuStorage,
        rstd: &CpuStorage,
        dy: &CpuStorage,
        d: &NormDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(norm::norm_backward(y, rstd, dy, d)))
    }

    fn softmax(&self, x: &CpuStorage, rows: usize, n: usize) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(norm::softmax(x, rows, n)))
    }

    fn softmax_backward(
        &self,
        y: &CpuStorage,
        dy: &CpuStorage,
        rows: usize,
        n: usize,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(norm::softmax_backward(y, dy, rows, n)))
    }

    fn rope(
        &self,
        x: &CpuStorage,
        angles: &CpuStorage,
        d: &RopeDesc,
        inverse: bool,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(attention::rope(x, angles, d, inverse)))
    }

    fn rope_angle_grad(&self, y: &CpuStorage, dy: &CpuStorage, d: &RopeDesc) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(attention::rope_angle_grad(y, dy, d)))
    }

    fn attention(
        &self,
        q: &CpuStorage,
        k: &CpuStorage,
        v: &CpuStorage,
        d: &AttentionDesc,
    ) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(attention::attention(q, k, v, d)))
    }

    fn random(&self, dist: Dist, seed: u64, offset: u64, len: usize) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(random::random(dist, seed, offset, len)))
    }

    fn adamw(
        &self,
        p: CpuStorage,
        m: CpuStorage,
        v: CpuStorage,
        g: &CpuStorage,
        d: &AdamWDesc,
        gnorm_sq: Option<&CpuStorage>,
    ) -> Result<(CpuStorage, CpuStorage, CpuStorage)> {
        count(|c| c.dispatches += 1);
        let (mut p, mut m, mut v) = (p, m, v);
        optim::adamw(
            Arc::make_mut(&mut p).as_mut_slice(),
            Arc::make_mut(&mut m).as_mut_slice(),
            Arc::make_mut(&mut v).as_mut_slice(),
            g,
            d,
            gnorm_sq.map(|s| s[0]),
        );
        Ok((p, m, v))
    }

    fn sampler_observe(&self, x: &CpuStorage, obs: &CpuStorage, k: f32) -> Result<CpuStorage> {
        count(|c| c.dispatches += 1);
        Ok(Arc::new(sampler::observe(x, obs, k)))
    }

    fn sampler_update(
        &self,
        ring: CpuStorage,
        x_z: &CpuStorage,
        x_b: &CpuStorage,
        mean: &CpuStorage,
        obs: Option<&CpuStorage>,
        d: &SamplerUpdate,
    ) -> Result<(CpuStorage, CpuStorage)> {
        count(|c| c.dispatches += 1);
        let mut ring = ring;
        let x_s = sampler::update(
            Arc::make_mut(&mut ring).as_mut_slice(),
            x_z,
            x_b,
            mean,
            obs.map(|o| o.as_slice()),
            d,
        );
        Ok((Arc::new(x_s), ring))
    }
}
