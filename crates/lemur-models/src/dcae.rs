//! The DCAE autoencoder (deep-compression convolutional autoencoder, DESIGN.md section 2).
//!
//! Tensors are `(B, C, H, W)`. With `n` stages of widths `hid[0..n]`, `hid_blocks[i]` residual
//! blocks each, patch size `p` and kernel `k` ("same" convolutions, zeros or circular padding
//! along each axis, [`Periodic`]):
//!
//! ```text
//! encoder.descent[0]   = [conv (p²·C_pix -> hid[0])  (after patchify by p), block × hid_blocks[0]]
//! encoder.descent[i>0] = [[unshuffle2, conv (4·hid[i-1] -> hid[i])], block × hid_blocks[i]]
//!                        (+ conv (hid[n-1] -> C_lat) at the end of the last stage)
//! decoder.ascent[k]    = stage i = n-1-k in reverse: (k = 0: conv (C_lat -> hid[n-1])),
//!                        block × hid_blocks[i], then [conv (hid[i] -> 4·hid[i-1]), shuffle2]
//!                        for i > 0, or conv (hid[0] -> p²·C_pix) then unpatchify for i = 0
//! block(x)             = x + conv₃(dropout(silu(conv₀(LN_c(x)))))       (keys ffn.0, ffn.3)
//! LN_c(x)              = (x - mean_c x) / sqrt(var_c x + 1e-5), var over channels, unbiased
//! saturation softclip2 : z = z_raw / sqrt(1 + (z_raw / 5)²)
//! ```
//!
//! The unshuffle is `C (H 2) (W 2) -> (C 2 2) H W` (channel `4c + 2dy + dx`). A field of size
//! `H × W` gives a latent of `C_lat × H / (p·2^(n-1)) × W / (p·2^(n-1))`.
//!
//! Parameters are named with the reference's `state_dict` keys (`encoder.descent.1.0.1.weight`,
//! `decoder.ascent.0.2.0.bias`, ...), including the scalar `*.norm.eps` buffers that the
//! reference's layer norm registers, so reference checkpoints load with strict key checking.
//! The buffers never receive a gradient (the optimizer skips them) and are not counted by
//! [`Dcae::param_count`], like PyTorch's `parameters()`.

use lemur_tensor::backend::NormKind;
use lemur_tensor::{Backend, Tensor, no_grad, rng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{Builder, Conv2d};

/// The model name in error messages.
const MODEL: &str = "Dcae";

/// Bounds of [`DcaeConfig::validate`]: far above any real model, low enough that no size
/// computed from a configuration overflows.
pub const MAX_CHANNELS: usize = 1 << 16;
pub const MAX_STAGES: usize = 16;
pub const MAX_BLOCKS: usize = 1024;
pub const MAX_FACTOR: usize = 64;

/// The reference's `LayerNorm` default, written into every `norm.eps` buffer.
pub const NORM_EPS: f32 = 1e-5;

/// The variance floor inside the VRMSE (reference `AutoEncoderLoss`, `"vrmse"`).
pub const VRMSE_EPS: f32 = 1e-2;

/// Latent saturation applied by [`Dcae::encode`] (the reference's `AutoEncoder.saturate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Saturation {
    /// `z / sqrt(1 + (z/5)²)`: the paper's choice.
    Softclip2,
    /// `z / (1 + |z|/5)`.
    Softclip,
    /// `z / sqrt(mean_c z² + 1e-5)`: RMS over the latent channels at each pixel.
    Rmsnorm,
}

/// Circular padding along each spatial axis `[H, W]` of the field, zeros padding elsewhere.
/// The reference's configurations write one boolean for both axes (`"periodic": true`), and so
/// does this type where the axes agree; a field periodic along one axis only (Rayleigh-Bénard's
/// box: periodic in x, walled in z) writes `[true, false]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Periodic(pub [bool; 2]);

impl From<bool> for Periodic {
    fn from(both: bool) -> Self {
        Periodic([both; 2])
    }
}

impl Serialize for Periodic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            [h, w] if h == w => s.serialize_bool(h),
            axes => axes.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Periodic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Periodic;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean, or two booleans [along H, along W]")
            }
            fn visit_bool<E>(self, both: bool) -> std::result::Result<Periodic, E> {
                Ok(both.into())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Periodic, A::Error> {
                let mut axes = [false; 2];
                for (i, axis) in axes.iter_mut().enumerate() {
                    *axis = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(3, &self));
                }
                Ok(Periodic(axes))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The DCAE's constructor arguments. JSON keys are the reference's (`get_autoencoder` with
/// `arch: dcae`), so the `config` of a reference fixture or checkpoint parses as is; the
/// remaining fields are lemur options with defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcaeConfig {
    /// Physical channels `C_pix` of the fields.
    pub pix_channels: usize,
    /// Latent channels `C_lat`.
    pub lat_channels: usize,
    /// Spatial dimensions: only 2 (images) is supported.
    #[serde(default = "default_spatial")]
    pub spatial: usize,
    /// Architecture: only `"dcae"`.
    #[serde(default = "default_arch")]
    pub arch: String,
    /// Latent saturation (`null` for none).
    #[serde(default = "default_saturation")]
    pub saturation: Option<Saturation>,
    /// Channels of each stage; stage `i > 0` halves the resolution of stage `i - 1`.
    pub hid_channels: Vec<usize>,
    /// Residual blocks of each stage.
    pub hid_blocks: Vec<usize>,
    /// Down/up-sampling by pixel (un)shuffle: must be `true` (the reference's strided-conv
    /// alternative is not implemented).
    #[serde(default = "yes")]
    pub pixel_shuffle: bool,
    /// Block normalisation: only `"layer"` (channel layer norm).
    #[serde(default = "default_norm")]
    pub norm: String,
    /// Hidden width of each block's FFN, as a multiple of the stage's channels.
    #[serde(default = "one")]
    pub ffn_factor: usize,
    /// Circular padding (periodic boundaries) instead of zeros padding, along both axes or
    /// along each one.
    #[serde(default)]
    pub periodic: Periodic,
    /// Start the resampling convolutions as (pseudo-)identities (see [`Dcae::new`]).
    #[serde(default = "yes")]
    pub identity_init: bool,
    /// Dropout probability inside each FFN during training (`null` for none).
    #[serde(default)]
    pub dropout: Option<f32>,
    /// Std of the Gaussian noise added to the latent before decoding during training. The
    /// reference's configs carry it but its released training path does not apply it: off (0)
    /// by default.
    #[serde(default)]
    pub latent_noise: f32,
    /// Convolution kernel size (1 or 3).
    #[serde(default = "three")]
    pub kernel_size: usize,
    /// Patchify factor before the first convolution (and unpatchify after the last).
    #[serde(default = "one")]
    pub patch_size: usize,
    /// A label (the reference's configs have one); not used by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn default_spatial() -> usize {
    2
}
fn default_arch() -> String {
    "dcae".into()
}
fn default_norm() -> String {
    "layer".into()
}
fn default_saturation() -> Option<Saturation> {
    Some(Saturation::Softclip2)
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn three() -> usize {
    3
}

impl DcaeConfig {
    /// Parses a JSON configuration and validates it.
    pub fn from_json(s: &str) -> Result<Self> {
        let cfg: Self =
            serde_json::from_str(s).map_err(|e| Error::Config(format!("{MODEL}: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the configuration describes a model lemur can build.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::Config(format!("{MODEL}: {m}")));
        if self.spatial != 2 {
            return err(format!(
                "spatial = {} is not supported (only 2)",
                self.spatial
            ));
        }
        if self.arch != "dcae" {
            return err(format!(
                "arch = {:?} is not a DCAE (expected \"dcae\")",
                self.arch
            ));
        }
        if self.norm != "layer" {
            return err(format!(
                "norm = {:?} is not supported (only \"layer\")",
                self.norm
            ));
        }
        if !self.pixel_shuffle {
            return err("pixel_shuffle = false (strided resampling) is not supported".into());
        }
        if self.pix_channels == 0 || self.lat_channels == 0 {
            return err(format!(
                "pix_channels = {} and lat_channels = {} must be positive",
                self.pix_channels, self.lat_channels
            ));
        }
        if self.hid_channels.is_empty() || self.hid_channels.len() != self.hid_blocks.len() {
            return err(format!(
                "hid_channels {:?} and hid_blocks {:?} must be non-empty and of equal length (one entry per stage)",
                self.hid_channels, self.hid_blocks
            ));
        }
        for (i, (&c, &nb)) in self.hid_channels.iter().zip(&self.hid_blocks).enumerate() {
            // The channel layer norm divides by C - 1 (unbiased variance).
            if c == 0 || (nb > 0 && c < 2) {
                return err(format!(
                    "stage {i} has {c} channels; stages with residual blocks need at least 2"
                ));
            }
        }
        if self.ffn_factor == 0 {
            return err("ffn_factor must be at least 1".into());
        }
        if let Some(p) = self.dropout
            && !(0.0..1.0).contains(&p)
        {
            return err(format!("dropout = {p} must be in [0, 1)"));
        }
        if !(self.latent_noise >= 0.0 && self.latent_noise.is_finite()) {
            return err(format!(
                "latent_noise = {} must be a finite std >= 0",
                self.latent_noise
            ));
        }
        if self.kernel_size != 1 && self.kernel_size != 3 {
            return err(format!(
                "kernel_size = {} is not supported (1 or 3)",
                self.kernel_size
            ));
        }
        if self.patch_size == 0 {
            return err("patch_size must be at least 1".into());
        }
        // Bounds far above any real model, so that no size computed from a configuration
        // (which may come from a corrupt file) can overflow: each channel count below 2^16,
        // stages, blocks, factors and patches small, and the parameter count checked.
        if let Some(c) = [self.pix_channels, self.lat_channels]
            .iter()
            .chain(&self.hid_channels)
            .find(|&&c| c > MAX_CHANNELS)
        {
            return err(format!("{c} channels (at most {MAX_CHANNELS})"));
        }
        if self.stages() > MAX_STAGES {
            return err(format!("{} stages (at most {MAX_STAGES})", self.stages()));
        }
        if let Some(nb) = self.hid_blocks.iter().find(|&&nb| nb > MAX_BLOCKS) {
            return err(format!("{nb} blocks in a stage (at most {MAX_BLOCKS})"));
        }
        if self.ffn_factor > MAX_FACTOR || self.patch_size > MAX_FACTOR {
            return err(format!(
                "ffn_factor = {} and patch_size = {} must be at most {MAX_FACTOR}",
                self.ffn_factor, self.patch_size
            ));
        }
        if self.checked_param_count().is_none() {
            return err("the parameter count overflows".into());
        }
        Ok(())
    }

    /// Number of stages `n`.
    pub fn stages(&self) -> usize {
        self.hid_channels.len()
    }

    /// The spatial down-sampling factor `p · 2^(n-1)`: fields' sizes must be multiples of it.
    pub fn factor(&self) -> usize {
        self.patch_size << (self.stages().saturating_sub(1))
    }

    /// Latent shape `[C_lat, H / factor, W / factor]` of an `H × W` field.
    pub fn latent_shape(&self, h: usize, w: usize) -> Result<[usize; 3]> {
        let f = self.factor();
        if h == 0 || w == 0 || !h.is_multiple_of(f) || !w.is_multiple_of(f) {
            return Err(Error::Input {
                model: MODEL,
                got: vec![h, w],
                expected: format!("a field size (H, W) with H and W positive multiples of {f}"),
            });
        }
        Ok([self.lat_channels, h / f, w / f])
    }

    /// The trainable parameter count, by formula: with `conv(a, b) = k²·a·b + b`,
    /// `encoder = conv(p²·C_pix, hid[0]) + Σ_{i>0} conv(4·hid[i-1], hid[i]) + conv(hid[n-1], C_lat)`,
    /// `decoder = conv(C_lat, hid[n-1]) + Σ_{i>0} conv(hid[i], 4·hid[i-1]) + conv(hid[0], p²·C_pix)`,
    /// plus `2 · Σ_i hid_blocks[i] · (conv(hid[i], f·hid[i]) + conv(f·hid[i], hid[i]))` for the
    /// blocks of both (f = `ffn_factor`).
    pub fn param_count(&self) -> usize {
        self.checked_param_count().unwrap_or(usize::MAX)
    }

    /// [`param_count`](Self::param_count), `None` where it overflows.
    pub fn checked_param_count(&self) -> Option<usize> {
        let k = self.kernel_size;
        let h = &self.hid_channels;
        let p2 = self.patch_size.checked_mul(self.patch_size)?;
        let n = h.len();
        if n == 0 {
            return None;
        }
        let f = self.ffn_factor;
        let conv = |cin: usize, cout: usize| -> Option<usize> {
            cin.checked_mul(cout)?
                .checked_mul(k.checked_mul(k)?)?
                .checked_add(cout)
        };
        fn sum(mut xs: impl Iterator<Item = Option<usize>>) -> Option<usize> {
            xs.try_fold(0usize, |a, x| a.checked_add(x?))
        }
        let blocks = sum(h.iter().zip(&self.hid_blocks).map(|(&c, &nb)| {
            let fc = f.checked_mul(c)?;
            nb.checked_mul(conv(c, fc)?.checked_add(conv(fc, c)?)?)
        }))?;
        let resample = sum((1..n).map(|i| {
            let c4 = h[i - 1].checked_mul(4)?;
            conv(c4, h[i])?.checked_add(conv(h[i], c4)?)
        }))?;
        let pix = p2.checked_mul(self.pix_channels)?;
        let ends = sum([
            conv(pix, h[0]),
            conv(h[n - 1], self.lat_channels),
            conv(self.lat_channels, h[n - 1]),
            conv(h[0], pix),
        ]
        .into_iter())?;
        blocks
            .checked_mul(2)?
            .checked_add(resample)?
            .checked_add(ends)
    }
}

/// Which reconstruction loss to train with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// [`vrmse`]: the paper's.
    #[default]
    Vrmse,
    /// [`mse`].
    Mse,
    /// [`mae`].
    Mae,
}

impl Loss {
    /// The loss of reconstruction `y` against the target `x` (both `(B, C, ...)`).
    pub fn compute<B: Backend>(self, x: &Tensor<B>, y: &Tensor<B>) -> Result<Tensor<B>> {
        match self {
            Loss::Vrmse => vrmse(x, y),
            Loss::Mse => mse(x, y),
            Loss::Mae => mae(x, y),
        }
    }
}

fn check_pair<B: Backend>(what: &'static str, x: &Tensor<B>, y: &Tensor<B>) -> Result<()> {
    if x.shape() != y.shape() || x.rank() < 3 || x.numel() == 0 {
        return Err(Error::Input {
            model: what,
            got: y.shape().to_vec(),
            expected: format!(
                "the target's shape {:?}, (B, C, ...) with rank >= 3",
                x.shape()
            ),
        });
    }
    Ok(())
}

/// Variance-normalised RMSE, per sample `b` and channel `c` over the remaining axes (N values):
/// `mean_{b,c} sqrt( mean((x - y)²) / (var(x) + 1e-2) )`, `var` unbiased (divided by N - 1).
/// A shape `[1]` scalar.
pub fn vrmse<B: Backend>(x: &Tensor<B>, y: &Tensor<B>) -> Result<Tensor<B>> {
    check_pair("Dcae vrmse loss", x, y)?;
    let (b, c) = (x.dim(0), x.dim(1));
    let n = x.numel() / (b * c);
    let (x, y) = (x.reshape(&[b, c, n])?, y.reshape(&[b, c, n])?);
    let se = x.sub(&y)?.square()?.mean(2, false)?;
    let var = x.var(2, false, true)?.add_scalar(VRMSE_EPS)?;
    Ok(se.div(&var)?.sqrt()?.mean_all()?)
}

/// Mean squared error over every element, a shape `[1]` scalar.
pub fn mse<B: Backend>(x: &Tensor<B>, y: &Tensor<B>) -> Result<Tensor<B>> {
    check_pair("Dcae mse loss", x, y)?;
    Ok(x.sub(y)?.square()?.mean_all()?)
}

/// Mean absolute error over every element, a shape `[1]` scalar.
pub fn mae<B: Backend>(x: &Tensor<B>, y: &Tensor<B>) -> Result<Tensor<B>> {
    check_pair("Dcae mae loss", x, y)?;
    Ok(x.sub(y)?.abs()?.mean_all()?)
}

/// Randomness of one training forward pass: dropout masks and latent noise are pure functions
/// of `(seed, step)` and the site (block name), identical on every backend. `step` must differ
/// between forward passes that should draw fresh masks (e.g. `step · accumulation + micro`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainCtx {
    pub seed: u64,
    pub step: u64,
}

impl TrainCtx {
    /// The random stream of `site` for this pass.
    fn stream(&self, site: u64) -> u64 {
        let hi = rng::bits(self.seed ^ site, self.step);
        let lo = rng::bits(
            self.seed ^ site.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15,
            self.step,
        );
        ((hi as u64) << 32) | lo as u64
    }
}

fn site_hash(name: &str) -> u64 {
    // FNV-1a, as the parameter builder uses for names: stable across platforms.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `y = x + ffn.3(dropout(silu(ffn.0(LN_c(x)))))`.
struct ResBlock<B: Backend> {
    /// The `norm.eps` buffer, kept so checkpoints round-trip; the forward uses [`NORM_EPS`],
    /// the value the reference always stores there.
    eps: Tensor<B>,
    ffn0: Conv2d<B>,
    ffn3: Conv2d<B>,
    dropout: f32,
    site: u64,
}

impl<B: Backend> ResBlock<B> {
    fn new(b: &mut Builder<'_, B>, c: usize, cfg: &DcaeConfig) -> Result<Self> {
        let (k, circ, h) = (cfg.kernel_size, cfg.periodic.0, cfg.ffn_factor * c);
        let site = site_hash(&b.full_name("ffn.2"));
        let eps = b.sub("norm").tensor("eps", &[NORM_EPS], &[])?;
        let ffn0 = Conv2d::new(&mut b.sub("ffn.0"), c, h, k, circ)?;
        let ffn3 = Conv2d::new(&mut b.sub("ffn.3"), h, c, k, circ)?;
        // The reference scales the last FFN convolution by 1e-2 in every block (whatever
        // `identity_init`), so each block starts close to the identity map.
        no_grad(|| ffn3.weight.set_storage(ffn3.weight.scale(1e-2)?.storage()))?;
        Ok(Self {
            eps,
            ffn0,
            ffn3,
            dropout: cfg.dropout.unwrap_or(0.0),
            site,
        })
    }

    fn forward(&self, x: &Tensor<B>, ctx: Option<&TrainCtx>) -> Result<Tensor<B>> {
        let y = x.norm(1, NormKind::LayerUnbiased, NORM_EPS)?;
        let mut y = self.ffn0.forward(&y)?.silu()?;
        if let Some(ctx) = ctx
            && self.dropout > 0.0
        {
            y = y.dropout(self.dropout, ctx.stream(self.site), 0)?;
        }
        Ok(x.add(&self.ffn3.forward(&y)?)?)
    }
}

/// One entry of a stage's `ModuleList`.
enum Layer<B: Backend> {
    Conv(Conv2d<B>),
    /// Pixel unshuffle by 2, then the convolution (`[Patchify, Conv]`).
    Down(Conv2d<B>),
    /// The convolution, then pixel shuffle by 2 (`[Conv, Unpatchify]`).
    Up(Conv2d<B>),
    Block(ResBlock<B>),
}

impl<B: Backend> Layer<B> {
    fn forward(&self, x: &Tensor<B>, ctx: Option<&TrainCtx>) -> Result<Tensor<B>> {
        match self {
            Layer::Conv(c) => c.forward(x),
            Layer::Down(c) => c.forward(&x.pixel_unshuffle()?),
            Layer::Up(c) => Ok(c.forward(x)?.pixel_shuffle()?),
            Layer::Block(b) => b.forward(x, ctx),
        }
    }

    fn conv(&self) -> [Option<&Conv2d<B>>; 2] {
        match self {
            Layer::Conv(c) | Layer::Down(c) | Layer::Up(c) => [Some(c), None],
            Layer::Block(b) => [Some(&b.ffn0), Some(&b.ffn3)],
        }
    }
}

/// A "same" convolution under `b`'s prefix with PyTorch's default initialisation, made a
/// (pseudo-)identity when `identity`: `w ← 1e-2 · w + E`, `E[o, o mod C_in, k/2, k/2] = 1`.
fn conv<B: Backend>(
    b: &mut Builder<'_, B>,
    cin: usize,
    cout: usize,
    cfg: &DcaeConfig,
    identity: bool,
) -> Result<Conv2d<B>> {
    let k = cfg.kernel_size;
    let c = Conv2d::new(b, cin, cout, k, cfg.periodic.0)?;
    if identity && cfg.identity_init {
        let mut eye = vec![0.0f32; cout * cin * k * k];
        let centre = (k / 2) * k + k / 2;
        for o in 0..cout {
            eye[(o * cin + o % cin) * k * k + centre] = 1.0;
        }
        let eye = Tensor::from_slice(&b.backend, &eye, c.weight.shape())?;
        no_grad(|| {
            c.weight
                .set_storage(c.weight.scale(1e-2)?.add(&eye)?.storage())
        })?;
    }
    Ok(c)
}

/// The autoencoder step that names a checkpoint's latents, from its `step` and `extra`:
/// `extra.encoder_step` for a decoder fine-tuned with its encoder frozen (`lemur train
/// autoencoder --freeze-encoder`: it encodes exactly as that step of its `--init` did), else
/// its own step. Emulators record it as `autoencoder_step`; lemur and the app match the two.
pub fn latent_step(step: u64, extra: &serde_json::Value) -> u64 {
    extra
        .get("encoder_step")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(step)
}

/// The DCAE autoencoder on backend `B` (see the module docs for the architecture).
pub struct Dcae<B: Backend> {
    cfg: DcaeConfig,
    /// `encoder.descent[i][j]`.
    descent: Vec<Vec<Layer<B>>>,
    /// `decoder.ascent[k][j]`.
    ascent: Vec<Vec<Layer<B>>>,
}

impl<B: Backend> std::fmt::Debug for Dcae<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Dcae({:?}, {} parameters)",
            self.cfg.hid_channels,
            self.param_count()
        )
    }
}

impl<B: Backend> Dcae<B> {
    /// Validates `cfg` and registers every parameter under `b`'s prefix with the reference's
    /// names and shapes, in the reference's `state_dict` order. Initialisation: PyTorch's
    /// default (`U(±1/sqrt(fan_in))` for weights and biases); with `identity_init`, the
    /// down/up-sampling convolutions and the latent convolutions (encoder out, decoder in)
    /// become `1e-2 · default + E` with `E[o, o mod C_in, centre] = 1`; the last convolution of
    /// every FFN is scaled by 1e-2.
    pub fn new(cfg: &DcaeConfig, b: &mut Builder<'_, B>) -> Result<Self> {
        cfg.validate()?;
        let (h, nb, n) = (&cfg.hid_channels, &cfg.hid_blocks, cfg.stages());
        let p2 = cfg.patch_size * cfg.patch_size;

        let mut enc = b.sub("encoder");
        let mut enc = enc.sub("descent");
        let mut descent = Vec::with_capacity(n);
        for i in 0..n {
            let mut s = enc.sub(i);
            let mut layers = Vec::new();
            if i == 0 {
                layers.push(Layer::Conv(conv(
                    &mut s.sub(0),
                    p2 * cfg.pix_channels,
                    h[0],
                    cfg,
                    false,
                )?));
            } else {
                layers.push(Layer::Down(conv(
                    &mut s.sub("0.1"),
                    4 * h[i - 1],
                    h[i],
                    cfg,
                    true,
                )?));
            }
            for j in 1..=nb[i] {
                layers.push(Layer::Block(ResBlock::new(&mut s.sub(j), h[i], cfg)?));
            }
            if i + 1 == n {
                layers.push(Layer::Conv(conv(
                    &mut s.sub(nb[i] + 1),
                    h[i],
                    cfg.lat_channels,
                    cfg,
                    true,
                )?));
            }
            descent.push(layers);
        }

        let mut dec = b.sub("decoder");
        let mut dec = dec.sub("ascent");
        let mut ascent = Vec::with_capacity(n);
        for (k, i) in (0..n).rev().enumerate() {
            let mut s = dec.sub(k);
            let mut layers = Vec::new();
            if i + 1 == n {
                layers.push(Layer::Conv(conv(
                    &mut s.sub(0),
                    cfg.lat_channels,
                    h[i],
                    cfg,
                    true,
                )?));
            }
            for _ in 0..nb[i] {
                let j = layers.len();
                layers.push(Layer::Block(ResBlock::new(&mut s.sub(j), h[i], cfg)?));
            }
            let j = layers.len();
            if i > 0 {
                layers.push(Layer::Up(conv(
                    &mut s.sub(format!("{j}.0")),
                    h[i],
                    4 * h[i - 1],
                    cfg,
                    true,
                )?));
            } else {
                layers.push(Layer::Conv(conv(
                    &mut s.sub(j),
                    h[0],
                    p2 * cfg.pix_channels,
                    cfg,
                    false,
                )?));
            }
            ascent.push(layers);
        }
        Ok(Self {
            cfg: cfg.clone(),
            descent,
            ascent,
        })
    }

    pub fn config(&self) -> &DcaeConfig {
        &self.cfg
    }

    /// Whether a parameter name is one of the reference's non-trainable buffers (`norm.eps`).
    pub fn is_buffer(name: &str) -> bool {
        name.ends_with("norm.eps")
    }

    /// Trainable parameters (convolution weights and biases; not the `norm.eps` buffers).
    pub fn param_count(&self) -> usize {
        self.descent
            .iter()
            .chain(&self.ascent)
            .flatten()
            .flat_map(|l| l.conv())
            .flatten()
            .map(|c| c.weight.numel() + c.bias.as_ref().map_or(0, |b| b.numel()))
            .sum()
    }

    /// The `norm.eps` buffers in model order (their loaded values, for checks).
    pub fn buffers(&self) -> Vec<&Tensor<B>> {
        self.descent
            .iter()
            .chain(&self.ascent)
            .flatten()
            .filter_map(|l| match l {
                Layer::Block(b) => Some(&b.eps),
                _ => None,
            })
            .collect()
    }

    /// Latent shape `[C_lat, h', w']` of an `h × w` field.
    pub fn latent_shape(&self, h: usize, w: usize) -> Result<[usize; 3]> {
        self.cfg.latent_shape(h, w)
    }

    fn check_input(&self, x: &Tensor<B>, channels: usize, what: &str, factor: usize) -> Result<()> {
        let s = x.shape();
        let ok = s.len() == 4
            && s[0] > 0
            && s[1] == channels
            && s[2] > 0
            && s[3] > 0
            && s[2].is_multiple_of(factor)
            && s[3].is_multiple_of(factor);
        if !ok {
            return Err(Error::Input {
                model: MODEL,
                got: s.to_vec(),
                expected: format!(
                    "{what} (B, {channels}, H, W) with H and W positive multiples of {factor}"
                ),
            });
        }
        Ok(())
    }

    /// The encoder's output before saturation, `(B, C_pix, H, W) -> (B, C_lat, H/f, W/f)`;
    /// `ctx` enables dropout (training), `None` is inference.
    pub fn encode_raw_with(&self, x: &Tensor<B>, ctx: Option<&TrainCtx>) -> Result<Tensor<B>> {
        self.check_input(x, self.cfg.pix_channels, "a field batch", self.cfg.factor())?;
        let mut x = patchify(x, self.cfg.patch_size)?;
        for layer in self.descent.iter().flatten() {
            x = layer.forward(&x, ctx)?;
        }
        Ok(x)
    }

    /// The saturated latent `z = saturate(encoder(x))` (softclip2: `z_raw / sqrt(1 + (z_raw/5)²)`).
    pub fn encode_with(&self, x: &Tensor<B>, ctx: Option<&TrainCtx>) -> Result<Tensor<B>> {
        self.saturate(&self.encode_raw_with(x, ctx)?)
    }

    /// The decoder, `(B, C_lat, h, w) -> (B, C_pix, h·f, w·f)`. With `ctx` (training), dropout
    /// is on and, when `latent_noise > 0`, `z + latent_noise · N(0, I)` is decoded instead.
    pub fn decode_with(&self, z: &Tensor<B>, ctx: Option<&TrainCtx>) -> Result<Tensor<B>> {
        self.check_input(z, self.cfg.lat_channels, "a latent batch", 1)?;
        let mut x = z.clone();
        if let Some(ctx) = ctx
            && self.cfg.latent_noise > 0.0
        {
            let noise = Tensor::randn(
                z.backend(),
                z.shape(),
                ctx.stream(site_hash("latent_noise")),
                0,
            )?;
            x = x.add(&noise.scale(self.cfg.latent_noise)?)?;
        }
        for layer in self.ascent.iter().flatten() {
            x = layer.forward(&x, ctx)?;
        }
        unpatchify(&x, self.cfg.patch_size)
    }

    /// `(z, y)` with `z = encode(x)` and `y = decode(z)`.
    pub fn forward_with(
        &self,
        x: &Tensor<B>,
        ctx: Option<&TrainCtx>,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        let z = self.encode_with(x, ctx)?;
        let y = self.decode_with(&z, ctx)?;
        Ok((z, y))
    }

    /// Inference [`Self::encode_raw_with`].
    pub fn encode_raw(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        self.encode_raw_with(x, None)
    }

    /// Inference [`Self::encode_with`].
    pub fn encode(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        self.encode_with(x, None)
    }

    /// Inference [`Self::decode_with`] (no dropout, no latent noise).
    pub fn decode(&self, z: &Tensor<B>) -> Result<Tensor<B>> {
        self.decode_with(z, None)
    }

    /// Inference [`Self::forward_with`].
    pub fn forward(&self, x: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        self.forward_with(x, None)
    }

    /// The reconstruction loss of `x` (a shape `[1]` scalar to call `backward` on); `ctx`
    /// enables the training randomness.
    pub fn loss(&self, x: &Tensor<B>, kind: Loss, ctx: Option<&TrainCtx>) -> Result<Tensor<B>> {
        let (_, y) = self.forward_with(x, ctx)?;
        kind.compute(x, &y)
    }

    /// [`Self::loss`] with the encoder frozen: `x` is encoded for inference (no dropout) and
    /// without gradients, so that only the decoder learns and the latents stay those the
    /// emulators were trained on.
    pub fn decoder_loss(
        &self,
        x: &Tensor<B>,
        kind: Loss,
        ctx: Option<&TrainCtx>,
    ) -> Result<Tensor<B>> {
        let z = no_grad(|| self.encode(x))?;
        kind.compute(x, &self.decode_with(&z, ctx)?)
    }

    fn saturate(&self, z: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(match self.cfg.saturation {
            None => z.clone(),
            Some(Saturation::Softclip2) => z.softclip()?,
            Some(Saturation::Softclip) => z.div(&z.abs()?.scale(0.2)?.add_scalar(1.0)?)?,
            Some(Saturation::Rmsnorm) => z.norm(1, NormKind::Rms, 1e-5)?,
        })
    }
}

/// `C (H p) (W p) -> (C p p) H W` (identity for p = 1).
fn patchify<B: Backend>(x: &Tensor<B>, p: usize) -> Result<Tensor<B>> {
    if p == 1 {
        return Ok(x.clone());
    }
    let s = x.shape();
    let (b, c, h, w) = (s[0], s[1], s[2] / p, s[3] / p);
    Ok(x.reshape(&[b, c, h, p, w, p])?
        .permute(&[0, 1, 3, 5, 2, 4])?
        .reshape(&[b, c * p * p, h, w])?)
}

/// `(C p p) H W -> C (H p) (W p)`, the inverse of [`patchify`].
fn unpatchify<B: Backend>(x: &Tensor<B>, p: usize) -> Result<Tensor<B>> {
    if p == 1 {
        return Ok(x.clone());
    }
    let s = x.shape();
    let (b, c, h, w) = (s[0], s[1] / (p * p), s[2], s[3]);
    Ok(x.reshape(&[b, c, p, p, h, w])?
        .permute(&[0, 1, 4, 2, 5, 3])?
        .reshape(&[b, c, h * p, w * p])?)
}
