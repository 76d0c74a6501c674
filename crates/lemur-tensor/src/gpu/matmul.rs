//! Launchers for shaders/matmul.wgsl and shaders/conv2d.wgsl.
//!
//! Matmul comes in two GEMM kernels: `tiled` (workgroup memory, the fast path on real GPUs)
//! and `blocked` (no barriers, the fast path on lavapipe, whose workgroup barriers cost more
//! than the arithmetic). The backend picks one from the adapter's device type;
//! [`GpuBackend::matmul_with`] forces either, so both are tested everywhere. Convolution has
//! only the tiled implicit GEMM (see the header of shaders/conv2d.wgsl for why).

use bytemuck::{Pod, Zeroable};

use super::{GpuBackend, GpuStorage, WG, groups_1d};
use crate::backend::{ConvDesc, MatmulDesc};
use crate::error::{Result, invalid};

/// Which GEMM kernel a matmul records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// 128x128 tiles staged through workgroup memory, 8x8 register blocks.
    Tiled,
    /// Barrier-free 4x4 register blocks read straight from global memory (vec4 loads when the
    /// shape allows).
    Blocked,
}

/// Mirrors `Params` in shaders/matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    /// bit 0 trans_a, bit 1 trans_b, bit 2 bias.
    flags: u32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    _pad: [u32; 2],
}

/// Mirrors `Params` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    m: u32,
    n: u32,
    k: u32,
    /// 0 forward, 1 weight gradient.
    mode: u32,
    cin: u32,
    h: u32,
    w: u32,
    ks: u32,
    /// Circular padding along H (bit 0) and W (bit 1).
    circular: u32,
    has_bias: u32,
    a_batch_stride: u32,
    _pad: u32,
}

/// Mirrors `Params` in shaders/reduce.wgsl (the weight gradient sums per-batch partials).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    outer: u32,
    r: u32,
    inner: u32,
    _pad: u32,
}

/// Output tile edge of each kernel (see the shader headers).
fn tile(kernel: GemmKernel) -> usize {
    match kernel {
        GemmKernel::Tiled => 128,
        GemmKernel::Blocked => 32,
    }
}

/// Workgroups covering an (m, n) output per batch element, within WebGPU's 65535 per axis and
/// with every buffer addressable by u32 element indices.
fn gemm_groups(
    op: &'static str,
    kernel: GemmKernel,
    m: usize,
    n: usize,
    batch: usize,
    lens: &[usize],
) -> Result<[u32; 3]> {
    let t = tile(kernel);
    let groups = [n.div_ceil(t), m.div_ceil(t), batch];
    if groups.iter().any(|&g| g > 65535) {
        return Err(invalid(
            op,
            format!("{batch} x ({m}, {n}) output needs more than 65535 workgroups on an axis"),
        ));
    }
    if let Some(&len) = lens.iter().find(|&&l| l > u32::MAX as usize / 4) {
        return Err(invalid(
            op,
            format!("{len} elements exceed a single GPU binding"),
        ));
    }
    Ok(groups.map(|g| g as u32))
}

impl GpuBackend {
    /// The kernel chosen for this adapter: barrier-free on CPU adapters (lavapipe), tiled on
    /// real GPUs.
    pub fn gemm_kernel(&self) -> GemmKernel {
        if self.inner.info.device_type == wgpu::DeviceType::Cpu {
            GemmKernel::Blocked
        } else {
            GemmKernel::Tiled
        }
    }

    pub(crate) fn matmul_gpu(
        &self,
        a: &GpuStorage,
        b: &GpuStorage,
        bias: Option<&GpuStorage>,
        d: &MatmulDesc,
    ) -> Result<GpuStorage> {
        self.matmul_with(self.gemm_kernel(), a, b, bias, d)
    }

    /// `Backend::matmul` with an explicit kernel choice.
    pub fn matmul_with(
        &self,
        kernel: GemmKernel,
        a: &GpuStorage,
        b: &GpuStorage,
        bias: Option<&GpuStorage>,
        d: &MatmulDesc,
    ) -> Result<GpuStorage> {
        let (m, n, k) = (d.m, d.n, d.k);
        let out_len = d.batch * m * n;
        let groups = gemm_groups("matmul", kernel, m, n, d.batch, &[a.len, b.len, out_len])?;
        let out = self.alloc(out_len, "matmul");
        let flags =
            u32::from(d.trans_a) | (u32::from(d.trans_b) << 1) | (u32::from(bias.is_some()) << 2);
        let params = MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            flags,
            batch_stride_a: if d.a_batched { (m * k) as u32 } else { 0 },
            batch_stride_b: if d.b_batched { (k * n) as u32 } else { 0 },
            _pad: [0; 2],
        };
        let entry = match kernel {
            GemmKernel::Tiled => "tiled",
            // vec4 reads need each operand's contiguous axis (and K) to be a multiple of 4.
            GemmKernel::Blocked
                if k > 0
                    && k % 4 == 0
                    && (!d.trans_a || m % 4 == 0)
                    && (d.trans_b || n % 4 == 0) =>
            {
                "blocked_vec4"
            }
            GemmKernel::Blocked => "blocked",
        };
        // Without a bias the shader never reads binding 3, but it must still be bound.
        self.dispatch(
            "matmul",
            entry,
            &params,
            &[a, b, bias.unwrap_or(a), &out],
            groups,
        );
        Ok(out)
    }

    pub(crate) fn conv2d_gpu(
        &self,
        x: &GpuStorage,
        w: &GpuStorage,
        bias: Option<&GpuStorage>,
        d: &ConvDesc,
    ) -> Result<GpuStorage> {
        self.conv_gemm("conv2d", x, w, bias, d, 0)
    }

    /// dx as the convolution of dy with w's adjoint kernel, read from w in place (mode 2 of
    /// shaders/conv2d.wgsl) instead of copied transposed and flipped first.
    pub(crate) fn conv2d_input_grad_gpu(
        &self,
        dy: &GpuStorage,
        w: &GpuStorage,
        d: &ConvDesc,
    ) -> Result<GpuStorage> {
        // The convolution of dy: its input channels are the forward's outputs.
        let adjoint = ConvDesc {
            cin: d.cout,
            cout: d.cin,
            ..*d
        };
        self.conv_gemm("conv2d_input_grad", dy, w, None, &adjoint, 2)
    }

    /// The convolution `d` of x as an implicit GEMM, out (B, Cout, H, W): mode 0 with the
    /// weight w (Cout, Cin, k, k), mode 2 with the adjoint of the layer whose weight w is.
    fn conv_gemm(
        &self,
        label: &'static str,
        x: &GpuStorage,
        w: &GpuStorage,
        bias: Option<&GpuStorage>,
        d: &ConvDesc,
        mode: u32,
    ) -> Result<GpuStorage> {
        let hw = d.h * d.w;
        let taps = d.cin * d.kernel * d.kernel;
        let out_len = d.batch * d.cout * hw;
        let groups = gemm_groups(
            label,
            GemmKernel::Tiled,
            d.cout,
            hw,
            d.batch,
            &[x.len, out_len],
        )?;
        let out = self.alloc(out_len, label);
        let params = ConvParams {
            has_bias: u32::from(bias.is_some()),
            ..conv_params(d, mode, d.cout, hw, taps, 0)
        };
        self.dispatch(
            "conv2d",
            "tiled",
            &params,
            &[x, w, bias.unwrap_or(w), &out],
            groups,
        );
        Ok(out)
    }

    pub(crate) fn conv2d_weight_grad_gpu(
        &self,
        x: &GpuStorage,
        dy: &GpuStorage,
        d: &ConvDesc,
    ) -> Result<GpuStorage> {
        let hw = d.h * d.w;
        let taps = d.cin * d.kernel * d.kernel;
        let dw_len = d.cout * taps;
        // One partial dw per batch element (the batch is a natural split of the long K = B*H*W
        // axis, and gives the dispatch B times more workgroups), then one sum over them.
        let partial_len = d.batch * dw_len;
        // The per-batch partials must fit one storage binding: large layers over big batches
        // are split into batch chunks whose weight gradients are summed.
        let max_binding = self.inner.device.limits().max_storage_buffer_binding_size as usize;
        let per_chunk = (max_binding / (dw_len * 4).max(1)).max(1);
        if d.batch > 1 && partial_len * 4 > max_binding && per_chunk < d.batch {
            return self.conv2d_weight_grad_chunked(x, dy, d, per_chunk);
        }
        let groups = gemm_groups(
            "conv2d_weight_grad",
            GemmKernel::Tiled,
            d.cout,
            taps,
            d.batch,
            &[x.len, dy.len, partial_len],
        )?;
        let partials = self.alloc(partial_len, "conv2d_weight_grad partials");
        let params = conv_params(d, 1, d.cout, taps, hw, d.cout * hw);
        self.dispatch("conv2d", "tiled", &params, &[x, dy, x, &partials], groups);
        if d.batch <= 1 {
            return Ok(partials);
        }
        let out = self.alloc(dw_len, "conv2d_weight_grad");
        let sum = ReduceParams {
            outer: 1,
            r: d.batch as u32,
            inner: dw_len as u32,
            _pad: 0,
        };
        self.dispatch(
            "reduce",
            "sum_columns",
            &sum,
            &[&partials, &out],
            groups_1d(dw_len, WG),
        );
        Ok(out)
    }
}

impl GpuBackend {
    fn conv2d_weight_grad_chunked(
        &self,
        x: &GpuStorage,
        dy: &GpuStorage,
        d: &ConvDesc,
        per_chunk: usize,
    ) -> Result<GpuStorage> {
        use crate::backend::{Backend, Binary, Broadcast, Strided};
        let (xs, ys) = (d.cin * d.h * d.w, d.cout * d.h * d.w);
        let slice = |s: &GpuStorage, start: usize, len: usize| {
            self.copy_strided(
                s,
                &Strided {
                    shape: vec![len],
                    strides: vec![1],
                    offset: start,
                },
            )
        };
        let mut total: Option<GpuStorage> = None;
        let mut b0 = 0;
        while b0 < d.batch {
            let nb = per_chunk.min(d.batch - b0);
            let xc = slice(x, b0 * xs, nb * xs)?;
            let yc = slice(dy, b0 * ys, nb * ys)?;
            let part = self.conv2d_weight_grad_gpu(&xc, &yc, &ConvDesc { batch: nb, ..*d })?;
            total = Some(match total {
                None => part,
                Some(t) => {
                    let n = t.len;
                    let layout = Broadcast {
                        shape: vec![n],
                        strides: vec![vec![1], vec![1]],
                    };
                    self.binary(Binary::Add, &t, &part, &layout)?
                }
            });
            b0 += nb;
        }
        Ok(total.expect("batch > 1"))
    }
}

fn conv_params(
    d: &ConvDesc,
    mode: u32,
    m: usize,
    n: usize,
    k: usize,
    a_batch_stride: usize,
) -> ConvParams {
    ConvParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        mode,
        cin: d.cin as u32,
        h: d.h as u32,
        w: d.w as u32,
        ks: d.kernel as u32,
        circular: u32::from(d.circular[0]) | u32::from(d.circular[1]) << 1,
        has_bias: 0,
        a_batch_stride: a_batch_stride as u32,
        _pad: 0,
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::backend::Backend;

    /// Chunking the batch (used when the per-batch partials outgrow a storage binding) must not
    /// change the weight gradient.
    #[test]
    fn chunked_weight_grad_matches_single_pass() {
        let Some(g) = crate::testing::gpu() else {
            return;
        };
        let d = ConvDesc {
            batch: 5,
            cin: 3,
            cout: 4,
            h: 6,
            w: 7,
            kernel: 3,
            circular: [true, false],
        };
        let x: Vec<f32> = (0..5 * 3 * 42).map(|i| crate::rng::normal(1, i)).collect();
        let dy: Vec<f32> = (0..5 * 4 * 42).map(|i| crate::rng::normal(2, i)).collect();
        let (xs, ys) = (g.upload(&x).unwrap(), g.upload(&dy).unwrap());
        let whole =
            pollster::block_on(g.read(&g.conv2d_weight_grad_gpu(&xs, &ys, &d).unwrap())).unwrap();
        let chunked =
            pollster::block_on(g.read(&g.conv2d_weight_grad_chunked(&xs, &ys, &d, 2).unwrap()))
                .unwrap();
        for (i, (a, b)) in whole.iter().zip(&chunked).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "dw[{i}]: {a} vs chunked {b}"
            );
        }
    }
}
