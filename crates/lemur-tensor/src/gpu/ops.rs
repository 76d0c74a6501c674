//! The `Backend` impl of the GPU: host-side launchers for each kernel family. Each launcher
//! fills the `#[repr(C)]` mirror of its WGSL `Params` struct and records one dispatch.

use bytemuck::{Pod, Zeroable};

use super::{GpuBackend, GpuStorage, WG, groups_1d};
use crate::backend::*;
use crate::error::{Result, invalid};

/// Mirrors `Params` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EwParams {
    n: u32,
    ndim: u32,
    op: u32,
    _pad0: u32,
    p: f32,
    q: f32,
    _pad1: [f32; 2],
    shape: [u32; MAX_DIMS],
    strides: [[u32; MAX_DIMS]; 3],
}

impl EwParams {
    fn new(n: usize, op: u32, p: f32, q: f32) -> Self {
        Self {
            n: n as u32,
            op,
            p,
            q,
            ..Self::zeroed()
        }
    }

    fn with_layout(mut self, layout: &Broadcast) -> Self {
        self.ndim = layout.shape.len() as u32;
        for (d, &s) in layout.shape.iter().enumerate() {
            self.shape[d] = s as u32;
        }
        for (k, strides) in layout.strides.iter().enumerate() {
            for (d, &s) in strides.iter().enumerate() {
                self.strides[k][d] = s as u32;
            }
        }
        self
    }
}

/// Mirrors `GatherParams` in shaders/layout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatherParams {
    n: u32,
    ndim: u32,
    offset: u32,
    _pad: u32,
    shape: [u32; MAX_DIMS],
    strides: [i32; MAX_DIMS],
}

/// Mirrors `PlaceParams` in shaders/layout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PlaceParams {
    n: u32,
    part_cols: u32,
    total_cols: u32,
    dst_off: u32,
}

/// Mirrors `Params` in shaders/adaln.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GateParams {
    n: u32,
    channels: u32,
    batch_cols: u32,
    batched: u32,
}

impl GateParams {
    fn of(d: &GateDesc) -> Self {
        Self {
            n: d.len() as u32,
            channels: d.channels as u32,
            batch_cols: (d.rows * d.channels) as u32,
            batched: u32::from(d.batched),
        }
    }
}

/// Mirrors `SquaresParams` in shaders/reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SquaresParams {
    has_acc: u32,
    _pad: [u32; 3],
    lens: [u32; 8],
}

/// Mirrors `Params` in shaders/reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    outer: u32,
    r: u32,
    inner: u32,
    has_acc: u32,
}

/// Mirrors `Params` in shaders/random.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RandomParams {
    n: u32,
    dist: u32,
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    _pad: [u32; 2],
}

/// Mirrors `Params` in shaders/adamw.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    n: u32,
    use_norm: u32,
    _pad: [u32; 2],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,
    bc1: f32,
    bc2: f32,
}

/// Mirrors `Params` in shaders/sampler.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SamplerParams {
    n: u32,
    observed: u32,
    slot: u32,
    slots: u32,
    a_t: f32,
    s_t: f32,
    cx: f32,
    cm: f32,
    cn: f32,
    k: f32,
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    _pad: [u32; 2],
    c: [f32; MAX_SAMPLER_SLOTS],
}

/// Storage bindings are limited to 2^32 bytes of u32 indexing and to the device's binding size.
fn check_len(op: &'static str, n: usize) -> Result<()> {
    if n > u32::MAX as usize / 4 {
        return Err(invalid(
            op,
            format!("{n} elements exceed a single GPU binding"),
        ));
    }
    Ok(())
}

impl Backend for GpuBackend {
    type Storage = GpuStorage;

    fn name(&self) -> String {
        format!("gpu: {}", self.inner.info)
    }

    fn len(&self, s: &GpuStorage) -> usize {
        s.len
    }

    fn upload(&self, data: &[f32]) -> Result<GpuStorage> {
        check_len("upload", data.len())?;
        Ok(self.upload_impl(data))
    }

    fn fill(&self, len: usize, value: f32) -> Result<GpuStorage> {
        check_len("fill", len)?;
        let out = self.alloc(len, "fill");
        self.dispatch(
            "elementwise",
            "fill",
            &EwParams::new(len, 0, value, 0.0),
            &[&out],
            groups_1d(len, WG),
        );
        Ok(out)
    }

    async fn read(&self, s: &GpuStorage) -> Result<Vec<f32>> {
        self.read_impl(s).await
    }

    async fn sync(&self) -> Result<()> {
        self.sync_impl().await
    }

    fn counters(&self) -> crate::backend::OpCounters {
        GpuBackend::counters(self)
    }

    fn end_step(&self) -> Result<()> {
        GpuBackend::end_step(self);
        Ok(())
    }

    fn unary(&self, op: Unary, x: &GpuStorage) -> Result<GpuStorage> {
        let n = x.len;
        let (code, p, q) = op.code();
        let out = self.alloc(n, "unary");
        self.dispatch(
            "elementwise",
            "unary",
            &EwParams::new(n, code, p, q),
            &[x, &out],
            groups_1d(n, WG),
        );
        Ok(out)
    }

    fn unary_backward(&self, op: Unary, x: &GpuStorage, dy: &GpuStorage) -> Result<GpuStorage> {
        let n = x.len;
        let (code, p, q) = op.code();
        let out = self.alloc(n, "unary_backward");
        self.dispatch(
            "elementwise",
            "unary_backward",
            &EwParams::new(n, code, p, q),
            &[x, dy, &out],
            groups_1d(n, WG),
        );
        Ok(out)
    }

    fn binary(
        &self,
        op: Binary,
        a: &GpuStorage,
        b: &GpuStorage,
        layout: &Broadcast,
    ) -> Result<GpuStorage> {
        let n: usize = layout.shape.iter().product();
        check_len("binary", n)?;
        let out = self.alloc(n, "binary");
        let params = EwParams::new(n, op.code(), 0.0, 0.0).with_layout(layout);
        self.dispatch(
            "elementwise",
            "binary",
            &params,
            &[a, b, &out],
            groups_1d(n, WG),
        );
        Ok(out)
    }

    fn select(
        &self,
        mask: &GpuStorage,
        a: &GpuStorage,
        b: &GpuStorage,
        layout: &Broadcast,
    ) -> Result<GpuStorage> {
        let n: usize = layout.shape.iter().product();
        check_len("select", n)?;
        let out = self.alloc(n, "select");
        let params = EwParams::new(n, 0, 0.0, 0.0).with_layout(layout);
        self.dispatch(
            "elementwise",
            "select_mask",
            &params,
            &[mask, a, b, &out],
            groups_1d(n, WG),
        );
        Ok(out)
    }

    fn copy_strided(&self, x: &GpuStorage, desc: &Strided) -> Result<GpuStorage> {
        let n: usize = desc.shape.iter().product();
        check_len("copy_strided", n)?;
        let mut params = GatherParams {
            n: n as u32,
            ndim: desc.shape.len() as u32,
            offset: desc.offset as u32,
            ..GatherParams::zeroed()
        };
        for (d, (&s, &st)) in desc.shape.iter().zip(&desc.strides).enumerate() {
            params.shape[d] = s as u32;
            params.strides[d] = st as i32;
        }
        let out = self.alloc(n, "copy_strided");
        self.dispatch("layout", "gather", &params, &[x, &out], groups_1d(n, WG));
        Ok(out)
    }

    fn concat(
        &self,
        parts: &[(&GpuStorage, usize)],
        outer: usize,
        inner: usize,
    ) -> Result<GpuStorage> {
        let total: usize = parts.iter().map(|p| p.1).sum();
        check_len("concat", outer * total * inner)?;
        let out = self.alloc(outer * total * inner, "concat");
        let mut before = 0;
        for (part, n_i) in parts {
            let n = outer * n_i * inner;
            let params = PlaceParams {
                n: n as u32,
                part_cols: (n_i * inner) as u32,
                total_cols: (total * inner) as u32,
                dst_off: (before * inner) as u32,
            };
            self.dispatch("layout", "place", &params, &[part, &out], groups_1d(n, WG));
            before += n_i;
        }
        Ok(out)
    }

    fn pad(
        &self,
        x: &GpuStorage,
        outer: usize,
        n: usize,
        inner: usize,
        before: usize,
        after: usize,
    ) -> Result<GpuStorage> {
        if x.len != outer * n * inner {
            return Err(crate::error::shape_err(
                "pad",
                format!("{} elements viewed as ({outer}, {n}, {inner})", x.len),
            ));
        }
        let total = before + n + after;
        let len = outer * total * inner;
        check_len("pad", len)?;
        let out = self.alloc(len, "pad");
        let params = PlaceParams {
            n: len as u32,
            part_cols: (n * inner) as u32,
            total_cols: (total * inner) as u32,
            dst_off: (before * inner) as u32,
        };
        self.dispatch("layout", "pad", &params, &[x, &out], groups_1d(len, WG));
        Ok(out)
    }

    fn sum_axis(&self, x: &GpuStorage, outer: usize, r: usize, inner: usize) -> Result<GpuStorage> {
        let n_out = outer * inner;
        let out = self.alloc(n_out, "sum_axis");
        let params = ReduceParams {
            outer: outer as u32,
            r: r as u32,
            inner: inner as u32,
            has_acc: 0,
        };
        // A serial loop per output wins when there are enough outputs to fill the device;
        // otherwise a workgroup cooperates on each output.
        if n_out >= 4096 || r <= 64 {
            self.dispatch(
                "reduce",
                "sum_columns",
                &params,
                &[x, &out],
                groups_1d(n_out, WG),
            );
        } else {
            self.dispatch(
                "reduce",
                "sum_tree",
                &params,
                &[x, &out],
                groups_1d(n_out, 1),
            );
        }
        Ok(out)
    }

    fn gated_residual(
        &self,
        x: &GpuStorage,
        y: &GpuStorage,
        c: &GpuStorage,
        d: &GateDesc,
    ) -> Result<GpuStorage> {
        d.check("gated_residual", &[x.len, y.len], c.len)?;
        check_len("gated_residual", d.len())?;
        let out = self.alloc(d.len(), "gated_residual");
        let params = GateParams::of(d);
        self.dispatch(
            "adaln",
            "gate_forward",
            &params,
            &[x, y, c, &out],
            groups_1d(d.len(), WG),
        );
        Ok(out)
    }

    fn gated_residual_backward(
        &self,
        x: &GpuStorage,
        y: &GpuStorage,
        c: &GpuStorage,
        dout: &GpuStorage,
        d: &GateDesc,
    ) -> Result<(GpuStorage, GpuStorage, GpuStorage)> {
        d.check("gated_residual_backward", &[x.len, y.len, dout.len], c.len)?;
        check_len("gated_residual_backward", d.len())?;
        let n = d.len();
        let (dx, dy) = (
            self.alloc(n, "gated_residual dx"),
            self.alloc(n, "gated_residual dy"),
        );
        let term = self.alloc(n, "gated_residual dc terms");
        let params = GateParams::of(d);
        self.dispatch(
            "adaln",
            "gate_backward",
            &params,
            &[x, y, c, dout, &dx, &dy, &term],
            groups_1d(n, WG),
        );
        let dc = self.sum_rows(&term, d)?;
        Ok((dx, dy, dc))
    }

    fn modulate(
        &self,
        x: &GpuStorage,
        a: &GpuStorage,
        b: &GpuStorage,
        d: &GateDesc,
    ) -> Result<GpuStorage> {
        d.check("modulate", &[x.len], a.len)?;
        d.check("modulate", &[x.len], b.len)?;
        check_len("modulate", d.len())?;
        let out = self.alloc(d.len(), "modulate");
        let params = GateParams::of(d);
        self.dispatch(
            "adaln",
            "modulate_forward",
            &params,
            &[x, b, a, &out],
            groups_1d(d.len(), WG),
        );
        Ok(out)
    }

    fn modulate_backward(
        &self,
        x: &GpuStorage,
        a: &GpuStorage,
        dout: &GpuStorage,
        d: &GateDesc,
    ) -> Result<(GpuStorage, GpuStorage, GpuStorage)> {
        d.check("modulate_backward", &[x.len, dout.len], a.len)?;
        check_len("modulate_backward", d.len())?;
        let n = d.len();
        let dx = self.alloc(n, "modulate dx");
        let term = self.alloc(n, "modulate da terms");
        let params = GateParams::of(d);
        self.dispatch(
            "adaln",
            "modulate_backward",
            &params,
            &[x, a, dout, &dx, &term],
            groups_1d(n, WG),
        );
        let (da, db) = (self.sum_rows(&term, d)?, self.sum_rows(dout, d)?);
        Ok((dx, da, db))
    }

    fn sum_channels(
        &self,
        x: &GpuStorage,
        outer: usize,
        c: usize,
        inner: usize,
    ) -> Result<GpuStorage> {
        let out = self.alloc(c, "sum_channels");
        let params = ReduceParams {
            outer: outer as u32,
            r: c as u32,
            inner: inner as u32,
            has_acc: 0,
        };
        self.dispatch(
            "reduce",
            "sum_channels",
            &params,
            &[x, &out],
            groups_1d(c, 1),
        );
        Ok(out)
    }

    fn sum_squares(&self, xs: &[&GpuStorage], acc: Option<&GpuStorage>) -> Result<GpuStorage> {
        check_sum_squares(xs.len())?;
        let out = self.alloc(1, "sum_squares");
        let mut lens = [0u32; 8];
        for (l, x) in lens.iter_mut().zip(xs) {
            *l = x.len as u32;
        }
        let params = SquaresParams {
            has_acc: u32::from(acc.is_some()),
            _pad: [0; 3],
            lens,
        };
        // Absent tensors and running sum: the first tensor stands in (read-only, length 0 or
        // never read).
        let stand_in = xs[0];
        let mut bound: Vec<&GpuStorage> = (0..SUM_SQUARES_INPUTS)
            .map(|i| xs.get(i).copied().unwrap_or(stand_in))
            .collect();
        bound.push(&out);
        bound.push(acc.unwrap_or(stand_in));
        self.dispatch("reduce", "sum_squares", &params, &bound, [1, 1, 1]);
        Ok(out)
    }

    fn matmul(
        &self,
        a: &GpuStorage,
        b: &GpuStorage,
        bias: Option<&GpuStorage>,
        d: &MatmulDesc,
    ) -> Result<GpuStorage> {
        self.matmul_gpu(a, b, bias, d)
    }

    fn conv2d(
        &self,
        x: &GpuStorage,
        w: &GpuStorage,
        bias: Option<&GpuStorage>,
        d: &ConvDesc,
    ) -> Result<GpuStorage> {
        self.conv2d_gpu(x, w, bias, d)
    }

    fn conv2d_input_grad(
        &self,
        dy: &GpuStorage,
        w: &GpuStorage,
        d: &ConvDesc,
    ) -> Result<GpuStorage> {
        self.conv2d_input_grad_gpu(dy, w, d)
    }

    fn conv2d_weight_grad(
        &self,
        x: &GpuStorage,
        dy: &GpuStorage,
        d: &ConvDesc,
    ) -> Result<GpuStorage> {
        self.conv2d_weight_grad_gpu(x, dy, d)
    }

    fn norm(&self, x: &GpuStorage, d: &NormDesc) -> Result<(GpuStorage, GpuStorage)> {
        self.norm_gpu(x, d)
    }

    fn norm_backward(
        &self,
        y: &GpuStorage,
        rstd: &GpuStorage,
        dy: &GpuStorage,
        d: &NormDesc,
    ) -> Result<GpuStorage> {
        self.norm_backward_gpu(y, rstd, dy, d)
    }

    fn softmax(&self, x: &GpuStorage, rows: usize, n: usize) -> Result<GpuStorage> {
        self.softmax_gpu(x, rows, n)
    }

    fn softmax_backward(
        &self,
        y: &GpuStorage,
        dy: &GpuStorage,
        rows: usize,
        n: usize,
    ) -> Result<GpuStorage> {
        self.softmax_backward_gpu(y, dy, rows, n)
    }

    fn rope(
        &self,
        x: &GpuStorage,
        angles: &GpuStorage,
        d: &RopeDesc,
        inverse: bool,
    ) -> Result<GpuStorage> {
        self.rope_gpu(x, angles, d, inverse)
    }

    fn rope_angle_grad(&self, y: &GpuStorage, dy: &GpuStorage, d: &RopeDesc) -> Result<GpuStorage> {
        self.rope_angle_grad_gpu(y, dy, d)
    }

    fn attention(
        &self,
        q: &GpuStorage,
        k: &GpuStorage,
        v: &GpuStorage,
        d: &AttentionDesc,
    ) -> Result<GpuStorage> {
        self.attention_gpu(q, k, v, d)
    }

    fn random(&self, dist: Dist, seed: u64, offset: u64, len: usize) -> Result<GpuStorage> {
        check_len("random", len)?;
        let out = self.alloc(len, "random");
        let params = RandomParams {
            n: len as u32,
            dist: match dist {
                Dist::Uniform => 0,
                Dist::Normal => 1,
            },
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            off_lo: offset as u32,
            off_hi: (offset >> 32) as u32,
            _pad: [0; 2],
        };
        self.dispatch("random", "main", &params, &[&out], groups_1d(len, WG));
        Ok(out)
    }

    fn adamw(
        &self,
        p: GpuStorage,
        m: GpuStorage,
        v: GpuStorage,
        g: &GpuStorage,
        d: &AdamWDesc,
        gnorm_sq: Option<&GpuStorage>,
    ) -> Result<(GpuStorage, GpuStorage, GpuStorage)> {
        let n = p.len;
        let params = AdamParams {
            n: n as u32,
            use_norm: u32::from(gnorm_sq.is_some()),
            _pad: [0; 2],
            lr: d.lr,
            beta1: d.beta1,
            beta2: d.beta2,
            eps: d.eps,
            weight_decay: d.weight_decay,
            max_norm: d.max_norm,
            bc1: 1.0 - d.beta1.powi(d.step as i32),
            bc2: 1.0 - d.beta2.powi(d.step as i32),
        };
        self.dispatch(
            "adamw",
            "main",
            &params,
            &[&p, &m, &v, g, gnorm_sq.unwrap_or(g)],
            groups_1d(n, WG),
        );
        Ok((p, m, v))
    }

    fn sampler_observe(&self, x: &GpuStorage, obs: &GpuStorage, k: f32) -> Result<GpuStorage> {
        let n = x.len;
        if obs.len != 2 * n {
            return Err(invalid(
                "sampler_observe",
                format!("obs has {} values, expected 2 x {n}", obs.len),
            ));
        }
        let out = self.alloc(n, "sampler observe");
        let params = SamplerParams {
            n: n as u32,
            observed: 1,
            k,
            ..Zeroable::zeroed()
        };
        self.dispatch(
            "sampler",
            "observe",
            &params,
            &[obs, x, &out],
            groups_1d(n, WG),
        );
        Ok(out)
    }

    fn sampler_update(
        &self,
        ring: GpuStorage,
        x_z: &GpuStorage,
        x_b: &GpuStorage,
        mean: &GpuStorage,
        obs: Option<&GpuStorage>,
        d: &SamplerUpdate,
    ) -> Result<(GpuStorage, GpuStorage)> {
        let n = x_z.len;
        check_len("sampler_update", ring.len)?;
        if d.slots == 0
            || d.slots > MAX_SAMPLER_SLOTS
            || d.slot >= d.slots
            || ring.len != d.slots * n
            || x_b.len != n
            || mean.len != n
            || obs.is_some_and(|o| o.len != 2 * n)
        {
            return Err(invalid(
                "sampler_update",
                format!(
                    "ring of {} values for {} slots (slot {}) over {n} values, x_b {}, mean {}, obs {:?}",
                    ring.len,
                    d.slots,
                    d.slot,
                    x_b.len,
                    mean.len,
                    obs.map(|o| o.len)
                ),
            ));
        }
        let out = self.alloc(n, "sampler update");
        let params = SamplerParams {
            n: n as u32,
            observed: u32::from(obs.is_some()),
            slot: d.slot as u32,
            slots: d.slots as u32,
            a_t: d.a_t,
            s_t: d.s_t,
            cx: d.cx,
            cm: d.cm,
            cn: d.cn,
            k: 0.0,
            seed_lo: d.seed as u32,
            seed_hi: (d.seed >> 32) as u32,
            off_lo: d.offset as u32,
            off_hi: (d.offset >> 32) as u32,
            _pad: [0; 2],
            c: d.c,
        };
        self.dispatch(
            "sampler",
            "update",
            &params,
            &[obs.unwrap_or(mean), x_z, &out, x_b, mean, &ring],
            groups_1d(n, WG),
        );
        Ok((out, ring))
    }
}

impl GpuBackend {
    /// Sums x (B, T, C) to the shape of `d`'s per-channel vector: over T per batch element when
    /// it is batched, over B * T when it is shared.
    fn sum_rows(&self, x: &GpuStorage, d: &GateDesc) -> Result<GpuStorage> {
        use crate::backend::Backend;
        if d.batched {
            self.sum_axis(x, d.batch, d.rows, d.channels)
        } else {
            self.sum_axis(x, 1, d.batch * d.rows, d.channels)
        }
    }
}
