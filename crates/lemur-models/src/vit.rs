//! The ViT backbone over space-time tokens (DESIGN.md section 3), with AdaLN-zero modulation,
//! skip gating, per-head RMS-normalised q/k and rotary embedding with learned angles.
//!
//! Shape legend: B batch, C channels, (L, H, W) the frame/space grid, T = L'H'W' tokens after
//! patchify, D modulation features, `hid` token channels, `heads` x `ch` = `hid`.

use lemur_tensor::backend::NormKind;
use lemur_tensor::{Backend, Tensor, rng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{Builder, Linear};

/// Noise schedule settings of a denoiser (the reference's `schedule` block).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// `log_logit` or `log_linear`.
    pub name: String,
    #[serde(default = "default_sigma_min")]
    pub sigma_min: f64,
    #[serde(default = "default_sigma_max")]
    pub sigma_max: f64,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub shift: f64,
}

fn default_sigma_min() -> f64 {
    1e-3
}
fn default_sigma_max() -> f64 {
    1e3
}
fn one() -> f64 {
    1.0
}
fn default_emb() -> usize {
    256
}
fn default_spatial() -> usize {
    3
}
fn default_heads() -> usize {
    1
}
fn default_true() -> bool {
    true
}
fn default_patch() -> PatchSize {
    PatchSize([1; 3])
}

/// The ViT's patch size over (L, H, W): one number for all three axes or a list of three, as
/// the reference accepts (`patch_size: 2` or `patch_size: [1, 2, 2]`). It serialises as one
/// number when the three are equal, so existing checkpoints and presets read the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchSize(pub [usize; 3]);

impl PatchSize {
    /// Values per token and channel: `pl * ph * pw`.
    pub fn volume(self) -> usize {
        self.0.iter().product()
    }
}

impl Serialize for PatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let [a, b, c] = self.0;
        if a == b && b == c {
            s.serialize_u64(a as u64)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(usize),
            Many(Vec<usize>),
        }
        match Repr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "patch_size must be a non-negative integer or a list of three, for (L, H, W)",
            )
        })? {
            Repr::One(p) => Ok(PatchSize([p; 3])),
            Repr::Many(v) => match v[..] {
                [a, b, c] => Ok(PatchSize([a, b, c])),
                _ => Err(serde::de::Error::custom(format!(
                    "patch_size {v:?} must have three entries, for (L, H, W)"
                ))),
            },
        }
    }
}
fn default_ffn() -> usize {
    4
}

/// The configuration of a ViT denoiser or surrogate, with the reference's JSON keys (unknown
/// reference keys such as `window_size` or `checkpointing` are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Channels of each (latent) frame.
    pub channels: usize,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Width of the time/label modulation vector.
    #[serde(default = "default_emb")]
    pub emb_features: usize,
    /// Number of conditioning labels (0: none).
    #[serde(default)]
    pub label_features: usize,
    /// Whether the denoiser takes the context mask as condition channels.
    #[serde(default)]
    pub masked: bool,
    #[serde(default = "default_spatial")]
    pub spatial: usize,
    pub hid_channels: usize,
    pub hid_blocks: usize,
    #[serde(default = "default_heads")]
    pub attention_heads: usize,
    #[serde(default = "default_true")]
    pub qk_norm: bool,
    #[serde(default = "default_true")]
    pub rope: bool,
    #[serde(default = "default_patch")]
    pub patch_size: PatchSize,
    #[serde(default)]
    pub dropout: Option<f32>,
    #[serde(default = "default_ffn")]
    pub ffn_factor: usize,
    /// The denoiser's noise schedule (absent for surrogates).
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
}

impl VitConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.spatial != 3 {
            return bad(format!(
                "spatial = {} (lemur's ViT works over (L, H, W) tokens: 3)",
                self.spatial
            ));
        }
        if self.channels == 0
            || self.hid_channels == 0
            || self.attention_heads == 0
            || self.patch_size.0.contains(&0)
        {
            return bad(
                "channels, hid_channels, attention_heads and patch_size must be positive".into(),
            );
        }
        if !self.hid_channels.is_multiple_of(self.attention_heads)
            || !(self.hid_channels / self.attention_heads).is_multiple_of(2)
        {
            return bad(format!(
                "hid_channels {} must split into {} heads of an even width",
                self.hid_channels, self.attention_heads
            ));
        }
        if !self.emb_features.is_multiple_of(2) {
            return bad(format!("emb_features {} must be even", self.emb_features));
        }
        if let Some(p) = self.dropout
            && !(0.0..1.0).contains(&p)
        {
            return bad(format!("dropout {p} must be in [0, 1)"));
        }
        // Bounds far above any real model, so that no size computed from a configuration
        // (which may come from a corrupt file) can overflow (see the DCAE's).
        use crate::dcae::{MAX_BLOCKS, MAX_CHANNELS, MAX_FACTOR};
        for (name, v) in [
            ("channels", self.channels),
            ("hid_channels", self.hid_channels),
            ("emb_features", self.emb_features),
            ("label_features", self.label_features),
        ] {
            if v > MAX_CHANNELS {
                return bad(format!("{name} {v} (at most {MAX_CHANNELS})"));
            }
        }
        if self.hid_blocks > MAX_BLOCKS {
            return bad(format!(
                "hid_blocks {} (at most {MAX_BLOCKS})",
                self.hid_blocks
            ));
        }
        if self.ffn_factor > MAX_FACTOR || self.patch_size.0.iter().any(|&p| p > MAX_FACTOR) {
            return bad(format!(
                "ffn_factor {} and patch_size {:?} must be at most {MAX_FACTOR}",
                self.ffn_factor, self.patch_size.0
            ));
        }
        Ok(())
    }
}

/// `[sin(x f_0..), cos(x f_0..)]` with `f = omega^-linspace(0, 1, features/2)`, omega = 1e3.
pub fn sine_freqs(features: usize) -> Vec<f32> {
    let n = features / 2;
    (0..n)
        .map(|i| {
            let u = if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.0
            };
            1e3f64.powf(-u) as f32
        })
        .collect()
}

/// Sine encoding of each value (rows of `features` values), computed in f32 like the reference.
pub fn sine_encode(values: &[f32], freqs: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len() * 2 * freqs.len());
    for &v in values {
        out.extend(freqs.iter().map(|f| (v * f).sin()));
        out.extend(freqs.iter().map(|f| (v * f).cos()));
    }
    out
}

enum Ada<B: Backend> {
    /// `Linear(D, D), SiLU, Linear(D, 4 hid)` of the modulation vector.
    Mlp(Linear<B>, Linear<B>),
    /// A learned (4, hid) table when there is no modulation.
    Table(Tensor<B>),
}

struct Block<B: Backend> {
    ada: Ada<B>,
    qkv: Linear<B>,
    y_proj: Linear<B>,
    theta: Option<Tensor<B>>,
    ffn0: Linear<B>,
    ffn3: Linear<B>,
}

/// Dropout state for a training forward pass: the counter-based stream and its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropout {
    pub seed: u64,
}

/// The modulated ViT: `(B, C_in, L, H, W)` (+ condition channels) to `(B, C_out, L, H, W)`.
pub struct Vit<B: Backend> {
    in_channels: usize,
    out_channels: usize,
    cond_channels: usize,
    hid: usize,
    heads: usize,
    patch: [usize; 3],
    qk_norm: bool,
    dropout: f32,
    in_proj: Linear<B>,
    out_proj: Linear<B>,
    pos_freqs: Vec<f32>,
    pos_proj: Linear<B>,
    blocks: Vec<Block<B>>,
}

impl<B: Backend> Vit<B> {
    /// Builds the backbone under `b`'s prefix with the reference's parameter names.
    pub fn new(
        cfg: &VitConfig,
        in_channels: usize,
        out_channels: usize,
        cond_channels: usize,
        mod_features: usize,
        b: &mut Builder<'_, B>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (hid, p3) = (cfg.hid_channels, cfg.patch_size.volume());
        let in_proj = Linear::new(
            &mut b.sub("in_proj"),
            p3 * (in_channels + cond_channels),
            hid,
            true,
        )?;
        let out_proj = Linear::new(&mut b.sub("out_proj"), hid, p3 * out_channels, true)?;
        let pos_freqs = sine_freqs(hid);
        b.tensor("positional_embedding.0.freqs", &pos_freqs, &[hid / 2])?;
        let pos_proj = Linear::new(&mut b.sub("positional_embedding.2"), 3 * hid, hid, true)?;
        let mut blocks = Vec::new();
        for k in 0..cfg.hid_blocks {
            let mut bb = b.sub(format!("blocks.{k}"));
            let ada = if mod_features > 0 {
                let l0 = Linear::new(&mut bb.sub("ada_zero.0"), mod_features, mod_features, true)?;
                let mut s2 = bb.sub("ada_zero.2");
                // The reference scales the last modulation layer's weight by 1e-2 so each
                // block starts close to the identity ("zero" in AdaLN-zero).
                let bound = 1.0 / (mod_features as f32).sqrt();
                let weight = s2.uniform("weight", &[4 * hid, mod_features], bound * 1e-2)?;
                let bias = Some(s2.uniform("bias", &[4 * hid], bound)?);
                Ada::Mlp(l0, Linear { weight, bias })
            } else {
                Ada::Table(bb.normal("ada_zero", &[4, hid], 1e-2)?)
            };
            let qkv = Linear::new(&mut bb.sub("msa.qkv_proj"), hid, 3 * hid, false)?;
            let y_proj = Linear::new(&mut bb.sub("msa.y_proj"), hid, hid, true)?;
            let theta = if cfg.rope {
                Some(init_theta(&mut bb, hid)?)
            } else {
                None
            };
            let ffn0 = Linear::new(&mut bb.sub("ffn.0"), hid, cfg.ffn_factor * hid, true)?;
            let ffn3 = Linear::new(&mut bb.sub("ffn.3"), cfg.ffn_factor * hid, hid, true)?;
            blocks.push(Block {
                ada,
                qkv,
                y_proj,
                theta,
                ffn0,
                ffn3,
            });
        }
        Ok(Self {
            in_channels,
            out_channels,
            cond_channels,
            hid,
            heads: cfg.attention_heads,
            patch: cfg.patch_size.0,
            qk_norm: cfg.qk_norm,
            dropout: cfg.dropout.unwrap_or(0.0),
            in_proj,
            out_proj,
            pos_freqs,
            pos_proj,
            blocks,
        })
    }

    /// `x`: (B, C_in, L, H, W); `emb`: (B, D) when the blocks are modulated; `cond`:
    /// (B, C_c, L, H, W) when there are condition channels; `dropout`: training draws.
    pub fn forward(
        &self,
        x: &Tensor<B>,
        emb: Option<&Tensor<B>>,
        cond: Option<&Tensor<B>>,
        dropout: Option<Dropout>,
    ) -> Result<Tensor<B>> {
        let s = x.shape().to_vec();
        let p = self.patch;
        let shape_ok = s.len() == 5
            && s[1] == self.in_channels
            && s[2].is_multiple_of(p[0])
            && s[3].is_multiple_of(p[1])
            && s[4].is_multiple_of(p[2]);
        let cond_ok = match cond {
            Some(c) => {
                self.cond_channels > 0 && c.shape() == [s[0], self.cond_channels, s[2], s[3], s[4]]
            }
            None => self.cond_channels == 0,
        };
        if !shape_ok || !cond_ok {
            return Err(Error::Input {
                model: "Vit",
                got: s.clone(),
                expected: format!(
                    "(B, {}, L, H, W) with (L, H, W) multiples of {p:?}, and a condition (B, {}, L, H, W){}",
                    self.in_channels,
                    self.cond_channels,
                    cond.map(|c| format!(" (got {:?})", c.shape()))
                        .unwrap_or_default()
                ),
            });
        }
        let be = x.backend().clone();
        let x = match cond {
            Some(c) => Tensor::concat(&[x, c], 1)?,
            None => x.clone(),
        };
        let (b, grid) = (s[0], [s[2] / p[0], s[3] / p[1], s[4] / p[2]]);
        let t = grid.iter().product::<usize>();
        let tokens = self.in_proj.forward(&x.patchify(p)?)?;
        let skip = tokens.clone();
        // Integer (l, h, w) of each token, row-major like torch.cartesian_prod.
        let mut coords = Vec::with_capacity(3 * t);
        for l in 0..grid[0] {
            for h in 0..grid[1] {
                for w in 0..grid[2] {
                    coords.extend([l as f32, h as f32, w as f32]);
                }
            }
        }
        let pos = Tensor::from_slice(
            &be,
            &sine_encode(&coords, &self.pos_freqs),
            &[t, 3 * self.hid],
        )?;
        let mut y = tokens.add(&self.pos_proj.forward(&pos)?)?;
        let coords = Tensor::from_slice(&be, &coords, &[t, 3])?;
        for (k, blk) in self.blocks.iter().enumerate() {
            let drop = dropout.map(|d| Dropout {
                seed: d.seed ^ rng::mix32(k as u32 + 1) as u64,
            });
            y = self.block(blk, &y, emb, &coords, &skip, b, t, drop)?;
        }
        let out = self.out_proj.forward(&y)?;
        Ok(out.unpatchify(grid, self.out_channels, p)?)
    }

    fn block(
        &self,
        blk: &Block<B>,
        x: &Tensor<B>,
        emb: Option<&Tensor<B>>,
        coords: &Tensor<B>,
        skip: &Tensor<B>,
        b: usize,
        t: usize,
        dropout: Option<Dropout>,
    ) -> Result<Tensor<B>> {
        let hid = self.hid;
        // a, b, c, d: (B, 1, hid) from the modulation, or (1, hid) from the table.
        let mods = match (&blk.ada, emb) {
            (Ada::Mlp(l0, l2), Some(e)) => {
                l2.forward(&l0.forward(e)?.silu()?)?
                    .reshape(&[b, 1, 4 * hid])?
            }
            (Ada::Table(table), _) => table.reshape(&[1, 4 * hid])?,
            (Ada::Mlp(..), None) => {
                return Err(Error::Input {
                    model: "Vit",
                    got: vec![],
                    expected: "a modulation vector (B, D)".into(),
                });
            }
        };
        let axis = mods.rank() - 1;
        let [ma, mb, mc, md] = [0, 1, 2, 3].map(|i| mods.slice(axis, i * hid, hid));
        let (ma, mb, mc, md) = (ma?, mb?, mc?, md?);
        let mut y = Tensor::modulate(&x.norm(2, NormKind::Layer, 1e-5)?, &ma, &mb)?;
        y = y.add(&self.msa(blk, &y, coords, b, t)?)?;
        let mut h = blk.ffn0.forward(&y)?.silu()?;
        if let Some(d) = dropout {
            h = h.dropout(self.dropout, d.seed, 0)?;
        }
        y = blk.ffn3.forward(&h)?;
        // (x + g y) rsqrt(1 + g^2), each gated residual one kernel.
        let y = Tensor::gated_residual(x, &mc, &y)?;
        Ok(Tensor::gated_residual(&y, &md, skip)?)
    }

    fn msa(
        &self,
        blk: &Block<B>,
        x: &Tensor<B>,
        coords: &Tensor<B>,
        b: usize,
        t: usize,
    ) -> Result<Tensor<B>> {
        let (hid, heads) = (self.hid, self.heads);
        let ch = hid / heads;
        // "(n H C)" channel order: q, k, v each split by head.
        let qkv = blk
            .qkv
            .forward(x)?
            .reshape(&[b, t, 3, heads, ch])?
            .permute(&[2, 0, 3, 1, 4])?;
        let part = |i: usize| -> Result<Tensor<B>> {
            Ok(qkv.slice(0, i, 1)?.reshape(&[b, heads, t, ch])?)
        };
        let (mut q, mut k, v) = (part(0)?, part(1)?, part(2)?);
        if self.qk_norm {
            q = q.norm(3, NormKind::Rms, 1e-5)?;
            k = k.norm(3, NormKind::Rms, 1e-5)?;
        }
        if let Some(theta) = &blk.theta {
            let angles = coords.matmul(theta)?;
            q = q.rope(&angles)?;
            k = k.rope(&angles)?;
        }
        let y = Tensor::attention(&q, &k, &v, 1.0 / (ch as f32).sqrt())?;
        let y = y.permute(&[0, 2, 1, 3])?.reshape(&[b, t, hid])?;
        blk.y_proj.forward(&y)
    }
}

/// The reference's learned-angle initialisation: amplitude `1e2^-U(0,1)` times a unit
/// direction drawn normally over the 3 axes, per angle.
fn init_theta<B: Backend>(b: &mut Builder<'_, B>, hid: usize) -> Result<Tensor<B>> {
    let n = hid / 2;
    let stream = b.stream("theta");
    let mut data = vec![0.0f32; 3 * n];
    for j in 0..n {
        let amp = 1e2f32.powf(-rng::uniform(stream, j as u64));
        let dir: Vec<f32> = (0..3)
            .map(|i| rng::normal(stream ^ 0x5555, (i * n + j) as u64))
            .collect();
        let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        for i in 0..3 {
            data[i * n + j] = amp * dir[i] / norm;
        }
    }
    b.tensor("theta", &data, &[3, n])
}

/// Trainable parameters of a ViT backbone with the given input, condition, output and
/// modulation sizes (buffers such as the sine frequencies excluded).
pub fn vit_param_count(
    cfg: &VitConfig,
    in_channels: usize,
    cond_channels: usize,
    out_channels: usize,
    mod_features: usize,
) -> usize {
    let lin = |i: usize, o: usize, bias: bool| i * o + if bias { o } else { 0 };
    let (hid, p3) = (cfg.hid_channels, cfg.patch_size.volume());
    let per_block = if mod_features > 0 {
        lin(mod_features, mod_features, true) + lin(mod_features, 4 * hid, true)
    } else {
        4 * hid
    } + lin(hid, 3 * hid, false)
        + lin(hid, hid, true)
        + if cfg.rope { 3 * hid / 2 } else { 0 }
        + lin(hid, cfg.ffn_factor * hid, true)
        + lin(cfg.ffn_factor * hid, hid, true);
    lin(p3 * (in_channels + cond_channels), hid, true)
        + lin(hid, p3 * out_channels, true)
        + lin(3 * hid, hid, true)
        + cfg.hid_blocks * per_block
}
