//! The primitive ops every backend implements. Tensors above this layer are always contiguous
//! row-major f32; views that need no data movement (reshape) never reach a backend.
//!
//! Shape legend used throughout: B batch, M/N/K matmul sizes, C channels, H/W height/width,
//! T tokens, BH batch*heads, D head channels.

use std::fmt::Debug;
use std::future::Future;

use crate::error::Result;

/// Most dimensions a broadcast or strided copy handles (pixel shuffle of NCHW needs 6,
/// patchify of (B, C, L, H, W) with three patch axes needs 8).
pub const MAX_DIMS: usize = 8;

/// Elementwise functions of one input. `p`/`q` are the op's scalar parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Silu,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Square,
    Sin,
    Cos,
    Abs,
    /// `x * rsqrt(1 + (x/5)^2)`: the DCAE latent saturation ("softclip2").
    Softclip,
    /// `x * s`.
    Scale(f32),
    /// `x + s`.
    AddScalar(f32),
    /// `min(max(x, lo), hi)`.
    Clamp(f32, f32),
    /// `1` where `x > s`, else `0` (dropout masks, comparisons); its gradient is zero.
    Gt(f32),
    /// `rsqrt(1 + x^2)`: the ViT's residual gate normaliser in one kernel (a square, an add
    /// and an rsqrt, rounded in that order).
    Gate,
}

impl Unary {
    /// (op code, p, q) as the WGSL kernels and the CPU reference both decode them.
    pub fn code(self) -> (u32, f32, f32) {
        match self {
            Unary::Neg => (0, 0.0, 0.0),
            Unary::Silu => (1, 0.0, 0.0),
            Unary::Exp => (2, 0.0, 0.0),
            Unary::Log => (3, 0.0, 0.0),
            Unary::Sqrt => (4, 0.0, 0.0),
            Unary::Rsqrt => (5, 0.0, 0.0),
            Unary::Square => (6, 0.0, 0.0),
            Unary::Sin => (7, 0.0, 0.0),
            Unary::Cos => (8, 0.0, 0.0),
            Unary::Abs => (9, 0.0, 0.0),
            Unary::Softclip => (10, 0.0, 0.0),
            Unary::Scale(s) => (11, s, 0.0),
            Unary::AddScalar(s) => (12, s, 0.0),
            Unary::Clamp(lo, hi) => (13, lo, hi),
            Unary::Gt(s) => (14, s, 0.0),
            Unary::Gate => (15, 0.0, 0.0),
        }
    }
}

/// Elementwise functions of two broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl Binary {
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// An output shape and, for each input, the strides (in elements) that map an output index to
/// it; a stride of 0 broadcasts that axis. `shape.len() <= MAX_DIMS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast {
    pub shape: Vec<usize>,
    pub strides: Vec<Vec<usize>>,
}

/// A gather from a contiguous buffer: `out[i] = x[offset + sum_d idx_d(i) * strides[d]]`,
/// out contiguous of `shape`. Negative strides flip axes (conv weight transposes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strided {
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
    pub offset: usize,
}

/// Batched matmul `out[b] = op(a[b]) @ op(b[b]) (+ bias)` where `op` transposes when asked.
/// a: (batch|1, M, K) or (batch|1, K, M) if `trans_a`; b: (batch|1, K, N) or (batch|1, N, K)
/// if `trans_b`; bias: (N); out: (batch, M, N). `a_batched = false` shares one `a` across the
/// batch (likewise `b_batched`), so weights need no broadcast copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDesc {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_batched: bool,
    pub b_batched: bool,
}

/// Stride-1 "same" convolution. x: (B, Cin, H, W), w: (Cout, Cin, k, k), bias: (Cout),
/// out: (B, Cout, H, W); `kernel` is 1 or 3; each spatial axis is padded with zeros or
/// circularly (`circular`: [along H, along W]; a channel periodic in x but walled in z pads
/// one axis each way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDesc {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: usize,
    pub circular: [bool; 2],
}

/// The most tensors one [`Backend::sum_squares`] takes (the storage bindings one WebGPU
/// shader stage may have, 8, less the sum and the running sum, less one spare).
pub const SUM_SQUARES_INPUTS: usize = 5;

/// Checks the count of [`Backend::sum_squares`]' tensors.
pub(crate) fn check_sum_squares(n: usize) -> Result<()> {
    if n == 0 || n > SUM_SQUARES_INPUTS {
        return Err(crate::error::invalid(
            "sum_squares",
            format!("{n} tensors (1 to {SUM_SQUARES_INPUTS})"),
        ));
    }
    Ok(())
}

/// The layout of the ViT's AdaLN ops over x (B, T, C) with per-channel vectors of shape
/// (B, C) when `batched`, else (C) shared by the whole batch: the gated residual
/// out = (x + c * y) * rsqrt(1 + c^2) and the modulation out = (1 + a) * x + b.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateDesc {
    pub batch: usize,
    pub rows: usize,
    pub channels: usize,
    pub batched: bool,
}

impl GateDesc {
    /// Elements of x, y and out.
    pub fn len(&self) -> usize {
        self.batch * self.rows * self.channels
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of c.
    pub fn gate_len(&self) -> usize {
        if self.batched {
            self.batch * self.channels
        } else {
            self.channels
        }
    }

    /// Checks the lengths of an op's (B, T, C) operands and of one per-channel vector.
    pub(crate) fn check(&self, op: &'static str, lens: &[usize], vector: usize) -> Result<()> {
        if lens.iter().any(|&l| l != self.len()) || vector != self.gate_len() {
            return Err(crate::error::shape_err(
                op,
                format!(
                    "operands of {lens:?} elements and a vector of {vector} for {self:?} (want {} \
                     and {})",
                    self.len(),
                    self.gate_len()
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// Mean and biased variance (the transformer's layer norm).
    Layer,
    /// Mean and unbiased variance, divided by C-1 (the DCAE's channel layer norm).
    LayerUnbiased,
    /// Root mean square, no centring.
    Rms,
}

/// Normalisation over the middle axis of x viewed as (outer, C, inner): inner = 1 normalises
/// the last axis of tokens, inner = H*W the channel axis of NCHW. No affine parameters.
/// Outputs y (same shape) and rstd (outer, inner) = 1/sqrt(var + eps) for the backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormDesc {
    pub outer: usize,
    pub c: usize,
    pub inner: usize,
    pub eps: f32,
    pub kind: NormKind,
}

/// Rotary embedding of x: (B, heads, T, D) by angles (T, heads*D/2): head h rotates its channel
/// pair (2i, 2i+1) by `angles[t, h*D/2 + i]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeDesc {
    pub batch: usize,
    pub heads: usize,
    pub tokens: usize,
    pub dim: usize,
}

/// softmax(q k^T * scale) v over q, k, v: (BH, T, D) -> (BH, T, D).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDesc {
    pub bh: usize,
    pub tokens: usize,
    pub dim: usize,
    pub scale: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    /// Uniform on (0, 1].
    Uniform,
    /// Standard normal (Box-Muller over pairs of uniforms).
    Normal,
}

/// One AdamW update with bias correction. `step` counts from 1. The gradient is multiplied by
/// `min(1, max_norm / sqrt(gnorm_sq))` when a squared global norm is supplied, so clipping
/// needs no readback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWDesc {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: u32,
    pub max_norm: f32,
}

/// Most past noise predictions a multistep sampler keeps (the ring slots of [`SamplerUpdate`]).
pub const MAX_SAMPLER_SLOTS: usize = 8;

/// One fused reverse-diffusion update over the N values of a state (DESIGN.md section 4):
///
/// ```text
/// m   = mask ? y : mean                 observed positions are known (inpainting)
/// z   = (x_z - a_t m) / s_t             stored in ring slot `slot`
/// x_s = cx x_b + cm m + sum_j c[j] ring[j] + cn eps,   eps = normal(seed, offset + i)
/// ```
///
/// Every sampler is a choice of these coefficients: Euler is `cx = a_s/a_t`,
/// `c[slot] = a_s (s_s/a_s - s_t/a_t)`; Adams-Bashforth spreads `c` over past slots.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerUpdate {
    pub a_t: f32,
    pub s_t: f32,
    pub slot: usize,
    pub slots: usize,
    pub cx: f32,
    pub cm: f32,
    pub c: [f32; MAX_SAMPLER_SLOTS],
    pub cn: f32,
    pub seed: u64,
    pub offset: u64,
}

/// Cumulative counts of the work a backend has been asked to do, for measuring per-step
/// overheads anywhere (on lavapipe as well as a discrete GPU): take
/// [`Backend::counters`] before and after, and [`since`](Self::since) gives the difference.
///
/// On the GPU backend: `dispatches` are compute dispatches recorded, `submissions` queue
/// submissions, `syncs` host-device synchronisations (every wait for the GPU: each read, `sync`
/// and `work_done`), `uploads` host-to-device writes of data (tensor uploads, colour tables;
/// the uniform arena written once per submission is not counted) and `bind_groups` bind
/// groups created (a dispatch that repeats an earlier one's kernel, buffers and place in its
/// submission reuses that one's, uncounted). On the CPU backend (counted per thread, on the thread that calls the
/// backend): `dispatches` are kernel calls (every op but `upload` and `read`), `syncs` the
/// reads and syncs (the points where a GPU would be waited for; on the CPU they return at
/// once), `uploads` the uploads; `submissions` and `bind_groups` stay 0.
///
/// `paces` counts the waits of [`Backend::end_step`] for the step before the current one: the
/// GPU runs the current step meanwhile, so they bound how far the host runs ahead without
/// stalling the GPU, unlike a sync (0 on the CPU backend and on the web).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounters {
    pub dispatches: u64,
    pub submissions: u64,
    pub syncs: u64,
    pub uploads: u64,
    pub bind_groups: u64,
    pub paces: u64,
}

impl OpCounters {
    /// The counts since `earlier` (a snapshot of the same counters taken before).
    pub fn since(&self, earlier: &OpCounters) -> OpCounters {
        OpCounters {
            dispatches: self.dispatches.saturating_sub(earlier.dispatches),
            submissions: self.submissions.saturating_sub(earlier.submissions),
            syncs: self.syncs.saturating_sub(earlier.syncs),
            uploads: self.uploads.saturating_sub(earlier.uploads),
            bind_groups: self.bind_groups.saturating_sub(earlier.bind_groups),
            paces: self.paces.saturating_sub(earlier.paces),
        }
    }
}

impl std::ops::Sub for OpCounters {
    type Output = OpCounters;
    fn sub(self, earlier: OpCounters) -> OpCounters {
        self.since(&earlier)
    }
}

/// A compute backend: storage plus the primitive kernels. Every op returns a new contiguous
/// storage; sizes are validated by the `Tensor` layer above before they reach a backend.
pub trait Backend: Clone + Debug + 'static {
    type Storage: Clone + Debug;

    /// Human-readable description (adapter name and API for the GPU).
    fn name(&self) -> String;
    fn len(&self, s: &Self::Storage) -> usize;
    fn upload(&self, data: &[f32]) -> Result<Self::Storage>;
    fn fill(&self, len: usize, value: f32) -> Result<Self::Storage>;
    /// Copies a storage back to the host. The GPU backend submits pending work first.
    fn read(&self, s: &Self::Storage) -> impl Future<Output = Result<Vec<f32>>>;
    /// Submits recorded work and surfaces asynchronous errors (GPU validation, OOM, loss).
    fn sync(&self) -> impl Future<Output = Result<()>>;
    /// The work counted so far (see [`OpCounters`] for what each backend counts).
    fn counters(&self) -> OpCounters;
    /// Marks the end of one unit of repeated work (a training step). The GPU backend submits
    /// what was recorded, so the GPU starts on it while the host records the next step, then
    /// waits until the step before this one has finished: the host stays at most one step
    /// ahead (bounded memory, and an interrupt waits for one step, not a whole log interval).
    /// Reads nothing back. Synchronous work (the CPU backend) needs nothing.
    fn end_step(&self) -> Result<()> {
        Ok(())
    }

    fn unary(&self, op: Unary, x: &Self::Storage) -> Result<Self::Storage>;
    /// `dx = dy * f'(x)`.
    fn unary_backward(
        &self,
        op: Unary,
        x: &Self::Storage,
        dy: &Self::Storage,
    ) -> Result<Self::Storage>;
    fn binary(
        &self,
        op: Binary,
        a: &Self::Storage,
        b: &Self::Storage,
        layout: &Broadcast,
    ) -> Result<Self::Storage>;
    /// `out = mask != 0 ? a : b` with the three inputs broadcast by `layout` (mask, a, b).
    fn select(
        &self,
        mask: &Self::Storage,
        a: &Self::Storage,
        b: &Self::Storage,
        layout: &Broadcast,
    ) -> Result<Self::Storage>;

    fn copy_strided(&self, x: &Self::Storage, desc: &Strided) -> Result<Self::Storage>;
    /// Concatenates parts viewed as (outer, n_i, inner) along the middle axis.
    fn concat(
        &self,
        parts: &[(&Self::Storage, usize)],
        outer: usize,
        inner: usize,
    ) -> Result<Self::Storage>;
    /// x viewed as (outer, n, inner) placed between `before` and `after` zero columns: out
    /// (outer, before + n + after, inner), the gradient of a slice in one kernel.
    fn pad(
        &self,
        x: &Self::Storage,
        outer: usize,
        n: usize,
        inner: usize,
        before: usize,
        after: usize,
    ) -> Result<Self::Storage>;
    /// Sums x viewed as (outer, r, inner) over r: out (outer, inner).
    fn sum_axis(
        &self,
        x: &Self::Storage,
        outer: usize,
        r: usize,
        inner: usize,
    ) -> Result<Self::Storage>;
    /// Sums x viewed as (outer, C, inner) over outer and inner: out (C) (bias gradients of
    /// NCHW in one kernel).
    fn sum_channels(
        &self,
        x: &Self::Storage,
        outer: usize,
        c: usize,
        inner: usize,
    ) -> Result<Self::Storage>;
    /// `acc + sum over xs of sum(x^2)` as a one-element storage (`acc` holds one element;
    /// absent, 0), for 1 to [`SUM_SQUARES_INPUTS`] tensors: the squared global gradient norm in
    /// one kernel per that many gradient tensors instead of a square, a sum and an add each.
    fn sum_squares(
        &self,
        xs: &[&Self::Storage],
        acc: Option<&Self::Storage>,
    ) -> Result<Self::Storage>;

    fn matmul(
        &self,
        a: &Self::Storage,
        b: &Self::Storage,
        bias: Option<&Self::Storage>,
        d: &MatmulDesc,
    ) -> Result<Self::Storage>;
    fn conv2d(
        &self,
        x: &Self::Storage,
        w: &Self::Storage,
        bias: Option<&Self::Storage>,
        d: &ConvDesc,
    ) -> Result<Self::Storage>;
    /// dw (Cout, Cin, k, k) from x (B, Cin, H, W) and dy (B, Cout, H, W).
    fn conv2d_weight_grad(
        &self,
        x: &Self::Storage,
        dy: &Self::Storage,
        d: &ConvDesc,
    ) -> Result<Self::Storage>;
    /// dx (B, Cin, H, W) from dy (B, Cout, H, W) and w (Cout, Cin, k, k): the adjoint of a
    /// same-size convolution is the convolution of dy with w transposed in (Cout, Cin) and
    /// flipped in space, for zeros and circular padding. This default copies that kernel and
    /// convolves; a backend may read w in place instead.
    fn conv2d_input_grad(
        &self,
        dy: &Self::Storage,
        w: &Self::Storage,
        d: &ConvDesc,
    ) -> Result<Self::Storage> {
        let k = d.kernel;
        let flipped = Strided {
            shape: vec![d.cin, d.cout, k, k],
            strides: vec![
                (k * k) as isize,
                (d.cin * k * k) as isize,
                -(k as isize),
                -1,
            ],
            offset: k * k - 1,
        };
        let wf = self.copy_strided(w, &flipped)?;
        let adjoint = ConvDesc {
            cin: d.cout,
            cout: d.cin,
            ..*d
        };
        self.conv2d(dy, &wf, None, &adjoint)
    }

    /// The gated residual of `d` (one kernel for what is otherwise a multiply, an add, the
    /// gate's normaliser and a multiply).
    fn gated_residual(
        &self,
        x: &Self::Storage,
        y: &Self::Storage,
        c: &Self::Storage,
        d: &GateDesc,
    ) -> Result<Self::Storage>;
    /// (dx, dy, dc) of the gated residual from dout: with g = rsqrt(1 + c^2),
    /// dx = dout g, dy = dout c g, dc = sum over the rows (and the batch when c is shared) of
    /// dout (y g - (x + c y) c g^3).
    fn gated_residual_backward(
        &self,
        x: &Self::Storage,
        y: &Self::Storage,
        c: &Self::Storage,
        dout: &Self::Storage,
        d: &GateDesc,
    ) -> Result<(Self::Storage, Self::Storage, Self::Storage)>;

    /// AdaLN's modulation out = (1 + a) * x + b of x (B, T, C), with a and b per channel as
    /// `d`'s gate (one kernel for an add, a multiply and an add).
    fn modulate(
        &self,
        x: &Self::Storage,
        a: &Self::Storage,
        b: &Self::Storage,
        d: &GateDesc,
    ) -> Result<Self::Storage>;
    /// (dx, da, db) of the modulation from dout: dx = dout (1 + a), da = sum of dout x and
    /// db = sum of dout over the rows (and the batch when a and b are shared).
    fn modulate_backward(
        &self,
        x: &Self::Storage,
        a: &Self::Storage,
        dout: &Self::Storage,
        d: &GateDesc,
    ) -> Result<(Self::Storage, Self::Storage, Self::Storage)>;

    /// Returns (y, rstd).
    fn norm(&self, x: &Self::Storage, d: &NormDesc) -> Result<(Self::Storage, Self::Storage)>;
    /// dx from the forward's y and rstd.
    fn norm_backward(
        &self,
        y: &Self::Storage,
        rstd: &Self::Storage,
        dy: &Self::Storage,
        d: &NormDesc,
    ) -> Result<Self::Storage>;
    /// Softmax over the last axis of x viewed as (rows, n).
    fn softmax(&self, x: &Self::Storage, rows: usize, n: usize) -> Result<Self::Storage>;
    /// `dx = y * (dy - sum(dy * y))` per row.
    fn softmax_backward(
        &self,
        y: &Self::Storage,
        dy: &Self::Storage,
        rows: usize,
        n: usize,
    ) -> Result<Self::Storage>;
    /// Rotates x by the angles (`inverse` rotates by minus the angles: the backward for x).
    fn rope(
        &self,
        x: &Self::Storage,
        angles: &Self::Storage,
        d: &RopeDesc,
        inverse: bool,
    ) -> Result<Self::Storage>;
    /// d angles (T, heads*D/2) from the forward's output y and dy, summed over the batch.
    fn rope_angle_grad(
        &self,
        y: &Self::Storage,
        dy: &Self::Storage,
        d: &RopeDesc,
    ) -> Result<Self::Storage>;
    /// Fused attention forward that never stores the (T, T) scores (inference).
    fn attention(
        &self,
        q: &Self::Storage,
        k: &Self::Storage,
        v: &Self::Storage,
        d: &AttentionDesc,
    ) -> Result<Self::Storage>;

    /// `len` samples of the counter-based stream `seed`, starting at counter `offset`: the same
    /// numbers on every backend.
    fn random(&self, dist: Dist, seed: u64, offset: u64, len: usize) -> Result<Self::Storage>;
    /// One AdamW step; consumes (param, m, v) and returns their updated values (the GPU updates
    /// in place). `gnorm_sq` is a one-element storage holding the squared global grad norm.
    fn adamw(
        &self,
        p: Self::Storage,
        m: Self::Storage,
        v: Self::Storage,
        g: &Self::Storage,
        d: &AdamWDesc,
        gnorm_sq: Option<&Self::Storage>,
    ) -> Result<(Self::Storage, Self::Storage, Self::Storage)>;

    /// `out = mask ? k y : x` with `obs` = [2, N] (y, then the 0/1 mask): the denoiser's input
    /// under inpainting, observed positions at the noise level of time t.
    fn sampler_observe(
        &self,
        x: &Self::Storage,
        obs: &Self::Storage,
        k: f32,
    ) -> Result<Self::Storage>;
    /// One [`SamplerUpdate`]; consumes the ring [S, N] of past z and returns (x_s, ring) (the
    /// GPU writes the ring in place). `x_z` and `x_b` may be the same storage.
    fn sampler_update(
        &self,
        ring: Self::Storage,
        x_z: &Self::Storage,
        x_b: &Self::Storage,
        mean: &Self::Storage,
        obs: Option<&Self::Storage>,
        d: &SamplerUpdate,
    ) -> Result<(Self::Storage, Self::Storage)>;
}
