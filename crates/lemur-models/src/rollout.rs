//! Autoregressive rollout in latent space (DESIGN.md section 6): predict a window of L frames
//! from `context` known frames, keep the new frames, and reuse the last `overlap` predicted
//! frames as the next window's context until the horizon is reached. Ensembles are batches of
//! independent members of the same rollout.
//!
//! Shape legend: (B, C, L, H, W) windows, B ensemble members; frames are latent frames, one
//! per training stride.

use lemur_tensor::{Backend, Tensor, no_grad};

use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use crate::sampling::{Conditioned, Denoise, Observation, Sampler};
use crate::surrogate::Surrogate;

/// Window bookkeeping of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolloutPlan {
    /// L, frames per emulated window.
    pub window: usize,
    /// Known frames at the start of the trajectory.
    pub context: usize,
    /// Frames each later window takes from the previous one as its context.
    pub overlap: usize,
    /// Frames of the result, the initial context included.
    pub frames: usize,
}

impl RolloutPlan {
    pub fn validate(&self) -> Result<()> {
        let RolloutPlan {
            window,
            context,
            overlap,
            frames,
        } = *self;
        if context == 0 || overlap == 0 || context >= window || overlap >= window {
            return Err(Error::Config(format!(
                "rollout needs 0 < context < window and 0 < overlap < window \
                 (context {context}, overlap {overlap}, window {window})"
            )));
        }
        if frames <= context {
            return Err(Error::Config(format!(
                "rollout of {frames} frames from {context} context frames predicts nothing"
            )));
        }
        Ok(())
    }

    /// `(first frame, known frames)` of every window: the first starts at 0 with `context`
    /// known frames, each next one `window - overlap` frames later with `overlap` known.
    pub fn windows(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(0, self.context)];
        let mut have = self.window;
        while have < self.frames {
            out.push((have - self.overlap, self.overlap));
            have += self.window - self.overlap;
        }
        out
    }
}

/// A model that fills one window: given `y` (B, C, L, H, W), valid where `mask` (B, C, L, H,
/// W) is 1 (the known frames, zeros elsewhere), return the whole window. `index` is the
/// window's number in the rollout (its noise stream).
pub trait WindowEmulator<B: Backend> {
    fn emulate(&mut self, y: &Tensor<B>, mask: &Tensor<B>, index: usize) -> Result<Tensor<B>>;
}

/// Rolls out from `init` (B, C, context, H, W) to (B, C, frames, H, W). The first window's
/// known frames come back as the emulator returns them (as in the reference), later windows
/// contribute their `window - overlap` new frames.
pub fn rollout<B: Backend>(
    emulator: &mut impl WindowEmulator<B>,
    init: &Tensor<B>,
    plan: &RolloutPlan,
) -> Result<Tensor<B>> {
    plan.validate()?;
    let s = init.shape().to_vec();
    if s.len() != 5 || s[2] != plan.context {
        return Err(Error::Input {
            model: "rollout",
            got: s,
            expected: format!("initial frames (B, C, {}, H, W)", plan.context),
        });
    }
    let be = init.backend().clone();
    let (b, c, h, w) = (s[0], s[1], s[3], s[4]);
    let l = plan.window;
    no_grad(|| {
        let mut kept: Vec<Tensor<B>> = Vec::new();
        let mut known = init.clone();
        for (index, &(_, n_known)) in plan.windows().iter().enumerate() {
            let pad = Tensor::zeros(&be, &[b, c, l - n_known, h, w])?;
            let y = Tensor::concat(&[&known, &pad], 2)?;
            let mut m = vec![0.0f32; l];
            m[..n_known].fill(1.0);
            let mask = Tensor::from_slice(&be, &m, &[1, 1, l, 1, 1])?.broadcast_to(y.shape())?;
            let out = emulator.emulate(&y, &mask, index)?;
            if out.shape() != y.shape() {
                return Err(Error::Input {
                    model: "rollout emulator",
                    got: out.shape().to_vec(),
                    expected: format!("a window of shape {:?}", y.shape()),
                });
            }
            let new = if index == 0 {
                out.clone()
            } else {
                out.slice(2, n_known, l - n_known)?
            };
            kept.push(new);
            known = out.slice(2, l - plan.overlap, plan.overlap)?;
        }
        let all = Tensor::concat(&kept.iter().collect::<Vec<_>>(), 2)?;
        Ok(all.slice(2, 0, plan.frames)?)
    })
}

/// The diffusion emulator: each window is a reverse process with the known frames as an
/// inpainting observation (and as the condition channels of a masked denoiser).
pub struct DiffusionEmulator<'a, B: Backend> {
    pub denoiser: &'a Denoiser<B>,
    pub label: Option<&'a Tensor<B>>,
    pub sampler: Sampler,
}

impl<B: Backend> WindowEmulator<B> for DiffusionEmulator<'_, B> {
    fn emulate(&mut self, y: &Tensor<B>, mask: &Tensor<B>, index: usize) -> Result<Tensor<B>> {
        let cond = self.denoiser.config.masked.then_some(mask);
        let den = Conditioned {
            denoiser: self.denoiser,
            label: self.label,
            cond,
        };
        // Each window draws its own initial noise and sampler noise.
        let seed = lemur_tensor::rng::bits(self.sampler.seed, index as u64) as u64
            | (u64::from(lemur_tensor::rng::bits(!self.sampler.seed, index as u64)) << 32);
        let sampler = Sampler {
            seed,
            ..self.sampler
        };
        let x1 = sampler.init(y.backend(), &den.schedule(), y.shape(), seed ^ 0x5eed)?;
        sampler.sample(&den, x1, Some(&Observation::new(y, mask)?))
    }
}

/// The deterministic surrogate: `S(y * mask, mask)`.
pub struct SurrogateEmulator<'a, B: Backend> {
    pub surrogate: &'a Surrogate<B>,
    pub label: Option<&'a Tensor<B>>,
}

impl<B: Backend> WindowEmulator<B> for SurrogateEmulator<'_, B> {
    fn emulate(&mut self, y: &Tensor<B>, mask: &Tensor<B>, _index: usize) -> Result<Tensor<B>> {
        self.surrogate.forward(y, mask, self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_horizon() {
        let plan = RolloutPlan {
            window: 5,
            context: 2,
            overlap: 1,
            frames: 14,
        };
        // Windows at 0 (5 frames), then 4 new frames each: 5, 9, 13, 17 >= 14.
        assert_eq!(plan.windows(), vec![(0, 2), (4, 1), (8, 1), (12, 1)]);
        assert!(RolloutPlan { overlap: 5, ..plan }.validate().is_err());
        assert!(RolloutPlan { frames: 2, ..plan }.validate().is_err());
    }
}
