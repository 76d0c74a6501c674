//! Launchers for shaders/attention.wgsl.

use bytemuck::{Pod, Zeroable};

use super::{GemmKernel, GpuBackend, GpuStorage, WG, groups_1d};
use crate::backend::{AttentionDesc, Backend, MatmulDesc, RopeDesc, Unary};
use crate::error::{Result, invalid};

/// Mirrors `RopeParams` in shaders/attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RopeParams {
    batch: u32,
    heads: u32,
    tokens: u32,
    dim: u32,
    /// 1 rotates by the angles, -1 by their negatives.
    sign: f32,
    _pad: [u32; 3],
}

/// Mirrors `AttnParams` in shaders/attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttnParams {
    bh: u32,
    tokens: u32,
    dim: u32,
    scale: f32,
    /// Query rows per workgroup.
    br: u32,
    /// Keys per tile.
    bc: u32,
    /// Invocations per query row (256 / br).
    lanes: u32,
    _pad: u32,
}

/// The largest head dimension the fused kernel's workgroup arrays hold.
const FUSED_MAX_DIM: usize = 128;

impl RopeParams {
    fn new(d: &RopeDesc, sign: f32) -> Self {
        Self {
            batch: d.batch as u32,
            heads: d.heads as u32,
            tokens: d.tokens as u32,
            dim: d.dim as u32,
            sign,
            _pad: [0; 3],
        }
    }
}

fn check_rope(op: &'static str, d: &RopeDesc) -> Result<usize> {
    if !d.dim.is_multiple_of(2) {
        return Err(invalid(op, format!("head dim {} is odd", d.dim)));
    }
    let n = d.batch * d.heads * d.tokens * d.dim;
    if n > u32::MAX as usize / 4 {
        return Err(invalid(
            op,
            format!("{n} elements exceed a single GPU binding"),
        ));
    }
    Ok(n)
}

impl GpuBackend {
    pub(crate) fn rope_gpu(
        &self,
        x: &GpuStorage,
        angles: &GpuStorage,
        d: &RopeDesc,
        inverse: bool,
    ) -> Result<GpuStorage> {
        let n = check_rope("rope", d)?;
        let out = self.alloc(n, "rope");
        let params = RopeParams::new(d, if inverse { -1.0 } else { 1.0 });
        self.dispatch(
            "attention",
            "rope",
            &params,
            &[x, angles, &out],
            groups_1d(n / 2, WG),
        );
        Ok(out)
    }

    pub(crate) fn rope_angle_grad_gpu(
        &self,
        y: &GpuStorage,
        dy: &GpuStorage,
        d: &RopeDesc,
    ) -> Result<GpuStorage> {
        check_rope("rope_angle_grad", d)?;
        let n = d.tokens * d.heads * d.dim / 2;
        let out = self.alloc(n, "rope angle grad");
        let params = RopeParams::new(d, 1.0);
        self.dispatch(
            "attention",
            "rope_angle_grad",
            &params,
            &[y, dy, &out],
            groups_1d(n, WG),
        );
        Ok(out)
    }

    pub(crate) fn attention_gpu(
        &self,
        q: &GpuStorage,
        k: &GpuStorage,
        v: &GpuStorage,
        d: &AttentionDesc,
    ) -> Result<GpuStorage> {
        self.attention_with(self.gemm_kernel(), q, k, v, d)
    }

    /// `Backend::attention` with an explicit kernel: `Tiled` is the flash kernel (workgroup
    /// memory), `Blocked` the barrier-free row kernel; the backend picks as for matmul. Both
    /// are fused for D <= 128. Wider heads would overflow the flash kernel's 16 KiB of
    /// workgroup memory (and the row kernel's private arrays), so they take the materialised
    /// path (scores through matmul and softmax).
    pub fn attention_with(
        &self,
        kernel: GemmKernel,
        q: &GpuStorage,
        k: &GpuStorage,
        v: &GpuStorage,
        d: &AttentionDesc,
    ) -> Result<GpuStorage> {
        let (t, dim) = (d.tokens, d.dim);
        let n = d.bh * t * dim;
        if n > u32::MAX as usize / 4 {
            return Err(invalid(
                "attention",
                format!("{n} elements exceed a single GPU binding"),
            ));
        }
        if dim > FUSED_MAX_DIM {
            return self.attention_materialised(q, k, v, d);
        }
        let br = if dim > 64 { 8 } else { 16 };
        let params = AttnParams {
            bh: d.bh as u32,
            tokens: t as u32,
            dim: dim as u32,
            scale: d.scale,
            br: br as u32,
            bc: (2048 / dim.max(1)).min(32) as u32,
            lanes: (256 / br) as u32,
            _pad: 0,
        };
        let (entry, groups) = match kernel {
            GemmKernel::Tiled => {
                let groups = [t.div_ceil(br), d.bh, 1];
                if groups.iter().any(|&g| g > 65535) {
                    return Err(invalid(
                        "attention",
                        format!(
                            "{} heads x {t} tokens need more than 65535 workgroups on an axis",
                            d.bh
                        ),
                    ));
                }
                ("attention", groups.map(|g| g as u32))
            }
            GemmKernel::Blocked => ("attention_rows", groups_1d(d.bh * t, WG)),
        };
        let out = self.alloc(n, "attention");
        if n > 0 {
            self.dispatch("attention", entry, &params, &[q, k, v, &out], groups);
        }
        Ok(out)
    }

    fn attention_materialised(
        &self,
        q: &GpuStorage,
        k: &GpuStorage,
        v: &GpuStorage,
        d: &AttentionDesc,
    ) -> Result<GpuStorage> {
        let (t, dim) = (d.tokens, d.dim);
        let gemm = |n, k, trans_b| MatmulDesc {
            batch: d.bh,
            m: t,
            n,
            k,
            trans_a: false,
            trans_b,
            a_batched: true,
            b_batched: true,
        };
        // Scaling q touches T*D values instead of the T*T scores.
        let qs = self.unary(Unary::Scale(d.scale), q)?;
        let scores = self.matmul_gpu(&qs, k, None, &gemm(t, dim, true))?;
        let p = self.softmax_gpu(&scores, d.bh * t, t)?;
        self.matmul_gpu(&p, v, None, &gemm(dim, t, false))
    }
}
