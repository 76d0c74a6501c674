//! EDM diffusion in latent space (DESIGN.md section 4): noise schedules, the preconditioned
//! denoiser around the ViT, random context masks and the denoising loss.
//!
//! Shape legend: x (B, C, L, H, W) latent windows, labels (B, F), t (B) diffusion times.

use lemur_tensor::{Backend, Tensor, rng};

use crate::error::{Error, Result};
use crate::nn::{Builder, Linear};
use crate::vit::{
    Dropout, ScheduleConfig, Vit, VitConfig, sine_encode, sine_freqs, vit_param_count,
};

/// A variance-exploding schedule: alpha_t = 1 and sigma_t rising from sigma_min to sigma_max.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// `sigma_t = exp(scale * logit(t (t_max - t_min) + t_min) + shift)`, with
    /// `t_min = s_min / (1 + s_min)`, `t_max = s_max / (1 + s_max)`.
    LogLogit {
        t_min: f64,
        t_max: f64,
        scale: f64,
        shift: f64,
    },
    /// `sigma_t = exp((1 - t) ln s_min + t ln s_max)`.
    LogLinear { ln_min: f64, ln_max: f64 },
}

impl Schedule {
    pub fn from_config(c: &ScheduleConfig) -> Result<Self> {
        if !(c.sigma_min > 0.0 && c.sigma_max > c.sigma_min) {
            return Err(Error::Config(format!(
                "schedule needs 0 < sigma_min < sigma_max, got {} and {}",
                c.sigma_min, c.sigma_max
            )));
        }
        match c.name.as_str() {
            "log_logit" => Ok(Self::LogLogit {
                t_min: c.sigma_min / (1.0 + c.sigma_min),
                t_max: c.sigma_max / (1.0 + c.sigma_max),
                scale: c.scale,
                shift: c.shift,
            }),
            "log_linear" => Ok(Self::LogLinear {
                ln_min: c.sigma_min.ln(),
                ln_max: c.sigma_max.ln(),
            }),
            other => Err(Error::Config(format!(
                "unknown schedule `{other}` (log_logit or log_linear)"
            ))),
        }
    }

    /// (alpha_t, sigma_t) for t in [0, 1], in f64 (samplers solve their coefficients in f64).
    pub fn alpha_sigma(&self, t: f64) -> (f64, f64) {
        let sigma = match *self {
            Self::LogLogit {
                t_min,
                t_max,
                scale,
                shift,
            } => {
                let u = t * (t_max - t_min) + t_min;
                (scale * (u / (1.0 - u)).ln() + shift).exp()
            }
            Self::LogLinear { ln_min, ln_max } => ((1.0 - t) * ln_min + t * ln_max).exp(),
        };
        (1.0, sigma)
    }
}

/// Per-sample context masks (B, 1, L, 1, 1) of 0/1: the number of context frames is
/// `Poisson(1) mod (L - 1) + 1`, placed at the start with probability `rho`, else at the end.
/// Drawn from stream `seed` (same on every backend).
pub fn context_mask(batch: usize, frames: usize, rho: f64, seed: u64) -> Vec<f32> {
    let mut out = vec![0.0; batch * frames];
    for i in 0..batch {
        let u = rng::uniform(seed, 2 * i as u64) as f64;
        // Inverse CDF of Poisson(1).
        let (mut k, mut p, mut cdf) = (0usize, (-1.0f64).exp(), (-1.0f64).exp());
        while u > cdf && k < 64 {
            k += 1;
            p /= k as f64;
            cdf += p;
        }
        let n = if frames > 1 { k % (frames - 1) + 1 } else { 1 };
        let at_start = (rng::uniform(seed, 2 * i as u64 + 1) as f64) <= rho;
        for l in 0..frames {
            let ctx = if at_start { l < n } else { l >= frames - n };
            out[i * frames + l] = f32::from(u8::from(ctx));
        }
    }
    out
}

/// Randomness of one training pass, a pure function of (seed, step, micro-batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainDraw {
    pub seed: u64,
    pub step: u64,
    pub micro: u64,
}

impl TrainDraw {
    /// The stream for purpose `k` of this draw.
    pub fn stream(&self, k: u64) -> u64 {
        let hi = rng::bits(self.seed, (self.step << 8) ^ (self.micro << 4) ^ k) as u64;
        (hi << 32)
            | rng::bits(
                self.seed ^ 0x9e37_79b9_7f4a_7c15,
                (self.step << 8) ^ (self.micro << 4) ^ k,
            ) as u64
    }
}

/// `mean = c_skip x_t + c_out F(c_in x_t, c_noise)` around the ViT, with the time embedding
/// `sine(c_noise) -> Linear -> SiLU -> Linear` plus the label embedding as modulation.
pub struct Denoiser<B: Backend> {
    pub config: VitConfig,
    pub schedule: Schedule,
    vit: Vit<B>,
    time_freqs: Vec<f32>,
    time1: Linear<B>,
    time3: Linear<B>,
    label: Option<(Linear<B>, Linear<B>)>,
}

/// Probability that the context sits at the start of a training window (DESIGN.md).
pub const CONTEXT_AT_START: f64 = 0.66;

impl<B: Backend> Denoiser<B> {
    /// Parameters under `backbone.backbone.*`, `backbone.time_embedding.*` and
    /// `backbone.label_embedding.*`, as in the reference.
    pub fn new(cfg: &VitConfig, b: &mut Builder<'_, B>) -> Result<Self> {
        cfg.validate()?;
        let schedule = Schedule::from_config(
            cfg.schedule
                .as_ref()
                .ok_or_else(|| Error::Config("a denoiser needs a `schedule`".into()))?,
        )?;
        let d = cfg.emb_features;
        let mut bb = b.sub("backbone");
        let cond = if cfg.masked { cfg.channels } else { 0 };
        let vit = Vit::new(
            cfg,
            cfg.channels,
            cfg.channels,
            cond,
            d,
            &mut bb.sub("backbone"),
        )?;
        let time_freqs = sine_freqs(d);
        bb.tensor("time_embedding.0.freqs", &time_freqs, &[d / 2])?;
        let time1 = Linear::new(&mut bb.sub("time_embedding.1"), d, d, true)?;
        let time3 = Linear::new(&mut bb.sub("time_embedding.3"), d, d, true)?;
        let label = if cfg.label_features > 0 {
            Some((
                Linear::new(
                    &mut bb.sub("label_embedding.0"),
                    cfg.label_features,
                    d,
                    true,
                )?,
                Linear::new(&mut bb.sub("label_embedding.2"), d, d, true)?,
            ))
        } else {
            None
        };
        Ok(Self {
            config: cfg.clone(),
            schedule,
            vit,
            time_freqs,
            time1,
            time3,
            label,
        })
    }

    /// Trainable parameters (buffers excluded), as the reference counts them.
    pub fn param_count(cfg: &VitConfig) -> usize {
        let d = cfg.emb_features;
        let cond = if cfg.masked { cfg.channels } else { 0 };
        let labels = if cfg.label_features > 0 {
            cfg.label_features * d + d + d * d + d
        } else {
            0
        };
        vit_param_count(cfg, cfg.channels, cond, cfg.channels, d) + 2 * (d * d + d) + labels
    }

    fn check(&self, x: &Tensor<B>, t: &[f32], label: Option<&Tensor<B>>) -> Result<()> {
        let s = x.shape();
        let ok = s.len() == 5 && s[1] == self.config.channels && t.len() == s[0];
        let label_ok = match (label, self.config.label_features) {
            (None, 0) => true,
            (Some(l), f) => f > 0 && l.shape() == [s[0], f],
            _ => false,
        };
        if !ok || !label_ok {
            return Err(Error::Input {
                model: "Denoiser",
                got: s.to_vec(),
                expected: format!(
                    "x (B, {}, L, H, W) with {} times and labels (B, {}) (got {} times, labels {:?})",
                    self.config.channels,
                    s.first().copied().unwrap_or(0),
                    self.config.label_features,
                    t.len(),
                    label.map(|l| l.shape().to_vec())
                ),
            });
        }
        Ok(())
    }

    /// Posterior mean and variance of x given x_t at times `t` (one per sample), with the
    /// context mask `cond` (B, C, L, H, W) when the denoiser is masked.
    pub fn forward(
        &self,
        x_t: &Tensor<B>,
        t: &[f32],
        label: Option<&Tensor<B>>,
        cond: Option<&Tensor<B>>,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        self.forward_with(x_t, t, label, cond, None)
    }

    fn forward_with(
        &self,
        x_t: &Tensor<B>,
        t: &[f32],
        label: Option<&Tensor<B>>,
        cond: Option<&Tensor<B>>,
        dropout: Option<Dropout>,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        self.check(x_t, t, label)?;
        let be = x_t.backend().clone();
        let bsz = t.len();
        let per = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f32> {
            t.iter()
                .map(|&ti| {
                    let (a, s) = self.schedule.alpha_sigma(ti as f64);
                    f(a, s) as f32
                })
                .collect()
        };
        let col = |v: Vec<f32>| Tensor::from_slice(&be, &v, &[bsz, 1, 1, 1, 1]);
        let c_in = col(per(&|a, s| 1.0 / (a * a + s * s).sqrt()))?;
        let c_out = col(per(&|a, s| s / (a * a + s * s).sqrt()))?;
        let c_skip = col(per(&|a, s| a / (a * a + s * s)))?;
        let var = col(per(&|a, s| s * s / (a * a + s * s)))?;
        let c_noise = per(&|a, s| 10.0 * (s / a).ln());
        let temb = Tensor::from_slice(
            &be,
            &sine_encode(&c_noise, &self.time_freqs),
            &[bsz, self.config.emb_features],
        )?;
        let mut emb = self.time3.forward(&self.time1.forward(&temb)?.silu()?)?;
        if let (Some((l0, l2)), Some(label)) = (&self.label, label) {
            emb = emb.add(&l2.forward(&l0.forward(label)?.silu()?)?)?;
        }
        let f = self
            .vit
            .forward(&x_t.mul(&c_in)?, Some(&emb), cond, dropout)?;
        let mean = c_skip.mul(x_t)?.add(&c_out.mul(&f)?)?;
        let var = var.broadcast_to(x_t.shape())?;
        Ok((mean, var))
    }

    /// The denoising loss `mean((mean - x)^2 / var)` at `t ~ U(0, 1)`, `x_t = a x + s eps`, with
    /// context positions (mask (B, 1, L, 1, 1), see [`context_mask`]) clamped to
    /// `sqrt(a^2 + s^2) x`. All randomness comes from `draw`.
    pub fn loss(
        &self,
        x: &Tensor<B>,
        label: Option<&Tensor<B>>,
        mask: &Tensor<B>,
        draw: TrainDraw,
        train: bool,
    ) -> Result<Tensor<B>> {
        self.loss_with_context(x, x, label, mask, draw, train)
    }

    /// [`Self::loss`] with the context positions clamped to `sqrt(a^2 + s^2) c` for a context
    /// `c` (B, C, L, H, W) other than the target `x`, such as `x` with noise on it: the model
    /// is asked for the clean `x` at the other positions from a perturbed condition, and for
    /// `c` itself at the context positions. `c`'s other positions are unused.
    pub fn loss_with_context(
        &self,
        x: &Tensor<B>,
        context: &Tensor<B>,
        label: Option<&Tensor<B>>,
        mask: &Tensor<B>,
        draw: TrainDraw,
        train: bool,
    ) -> Result<Tensor<B>> {
        crate::error::check_context("denoiser loss context", x, context)?;
        let be = x.backend().clone();
        let s = x.shape().to_vec();
        let bsz = s[0];
        let t: Vec<f32> = (0..bsz as u64)
            .map(|i| rng::uniform(draw.stream(1), i))
            .collect();
        let (mut a, mut sg, mut norm) = (Vec::new(), Vec::new(), Vec::new());
        for &ti in &t {
            let (al, si) = self.schedule.alpha_sigma(ti as f64);
            a.push(al as f32);
            sg.push(si as f32);
            norm.push((al * al + si * si).sqrt() as f32);
        }
        let col = |v: &[f32]| Tensor::from_slice(&be, v, &[bsz, 1, 1, 1, 1]);
        let eps = Tensor::randn(&be, &s, draw.stream(2), 0)?;
        let noisy = col(&a)?.mul(x)?.add(&col(&sg)?.mul(&eps)?)?;
        let mask = mask.broadcast_to(&s)?;
        let x_t = Tensor::select(&mask, &col(&norm)?.mul(context)?, &noisy)?;
        let cond = self.config.masked.then_some(&mask);
        let dropout = train.then(|| Dropout {
            seed: draw.stream(3),
        });
        let (mean, var) = self.forward_with(&x_t, &t, label, cond, dropout)?;
        // The context positions ask for what the model was shown, as with a clean context: a
        // noisy context is not to be denoised there, where the 1 / var weights would let its
        // noise drown the target frames' signal.
        let target = Tensor::select(&mask, context, x)?;
        Ok(mean
            .sub(&target)?
            .square()?
            .div(&var.detach())?
            .mean_all()?)
    }
}
