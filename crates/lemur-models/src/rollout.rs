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
use crate::sampling::{Conditioned, Observation, Sampler, SamplerState};
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

/// The window overlap a run recommends in its checkpoint's `extra` (`extra.rollout.overlap`,
/// which `scripts/pack-pretrained.py --overlap` records), or `None`; `Err` says why windows of
/// `window` frames cannot take the recorded value. `lemur eval`, `lemur rollout` and the app
/// read it alike.
pub fn recommended_overlap(
    extra: &serde_json::Value,
    window: usize,
) -> std::result::Result<Option<usize>, String> {
    let Some(v) = extra.pointer("/rollout/overlap") else {
        return Ok(None);
    };
    match v.as_u64().map(|o| o as usize) {
        Some(o) if (1..window).contains(&o) => Ok(Some(o)),
        _ => Err(format!(
            "rollout.overlap {v}: windows of {window} frames overlap by 1 to {}",
            window.saturating_sub(1)
        )),
    }
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

/// A rollout in progress, one window at a time: [`window`](Self::window) gives the next
/// window's observation, [`accept`](Self::accept) takes the emulated window back. The loop in
/// [`rollout`] and the app's frame-sliced rollouts share this bookkeeping.
pub struct Cursor<B: Backend> {
    plan: RolloutPlan,
    windows: Vec<(usize, usize)>,
    index: usize,
    known: Tensor<B>,
    /// Frames produced so far.
    frames: usize,
}

impl<B: Backend> Cursor<B> {
    /// Starts from `init` (B, C, context, H, W).
    pub fn new(init: &Tensor<B>, plan: &RolloutPlan) -> Result<Self> {
        plan.validate()?;
        let s = init.shape();
        if s.len() != 5 || s[2] != plan.context {
            return Err(Error::Input {
                model: "rollout",
                got: s.to_vec(),
                expected: format!("initial frames (B, C, {}, H, W)", plan.context),
            });
        }
        Ok(Self {
            plan: *plan,
            windows: plan.windows(),
            index: 0,
            known: init.clone(),
            frames: 0,
        })
    }

    /// The next window's number (its noise stream), or `None` when the rollout is complete.
    pub fn next_index(&self) -> Option<usize> {
        (self.index < self.windows.len()).then_some(self.index)
    }

    /// The next window: `y` (B, C, L, H, W) holding the known frames and zeros, and `mask`
    /// (B, C, L, H, W), 1 at the known frames.
    pub fn window(&self) -> Result<(Tensor<B>, Tensor<B>)> {
        let (_, n_known) = *self.windows.get(self.index).ok_or_else(|| {
            Error::Config(format!(
                "the rollout is complete after {} windows",
                self.windows.len()
            ))
        })?;
        let s = self.known.shape();
        let be = self.known.backend().clone();
        let l = self.plan.window;
        no_grad(|| {
            let pad = Tensor::zeros(&be, &[s[0], s[1], l - n_known, s[3], s[4]])?;
            let y = Tensor::concat(&[&self.known, &pad], 2)?;
            let mut m = vec![0.0f32; l];
            m[..n_known].fill(1.0);
            let mask = Tensor::from_slice(&be, &m, &[1, 1, l, 1, 1])?.broadcast_to(y.shape())?;
            Ok((y, mask))
        })
    }

    /// Takes the emulated window `out` (the shape of [`window`](Self::window)'s `y`) and
    /// returns the frames it adds to the rollout (B, C, n, H, W): the whole first window (its
    /// known frames as the emulator returned them, as in the reference), then `window -
    /// overlap` new frames per window, cut at the plan's length.
    pub fn accept(&mut self, out: &Tensor<B>) -> Result<Tensor<B>> {
        let (_, n_known) = self.windows[self.index.min(self.windows.len() - 1)];
        let s = self.known.shape();
        let expected = [s[0], s[1], self.plan.window, s[3], s[4]];
        if self.next_index().is_none() || out.shape() != expected {
            return Err(Error::Input {
                model: "rollout emulator",
                got: out.shape().to_vec(),
                expected: format!("a window of shape {expected:?} while windows remain"),
            });
        }
        let l = self.plan.window;
        no_grad(|| {
            let new = if self.index == 0 {
                out.clone()
            } else {
                out.slice(2, n_known, l - n_known)?
            };
            self.known = out.slice(2, l - self.plan.overlap, self.plan.overlap)?;
            self.index += 1;
            let keep = new.dim(2).min(self.plan.frames - self.frames);
            self.frames += keep;
            Ok(new.slice(2, 0, keep)?)
        })
    }
}

/// Rolls out from `init` (B, C, context, H, W) to (B, C, frames, H, W). The first window's
/// known frames come back as the emulator returns them (as in the reference), later windows
/// contribute their `window - overlap` new frames.
pub fn rollout<B: Backend>(
    emulator: &mut impl WindowEmulator<B>,
    init: &Tensor<B>,
    plan: &RolloutPlan,
) -> Result<Tensor<B>> {
    let mut cursor = Cursor::new(init, plan)?;
    no_grad(|| {
        let mut kept: Vec<Tensor<B>> = Vec::new();
        while let Some(index) = cursor.next_index() {
            let (y, mask) = cursor.window()?;
            let out = emulator.emulate(&y, &mask, index)?;
            kept.push(cursor.accept(&out)?);
        }
        Ok(Tensor::concat(&kept.iter().collect::<Vec<_>>(), 2)?)
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
        let mut job = DiffusionWindow::start(self.denoiser, self.sampler, y, mask, index)?;
        while !job.step(self.denoiser, self.label)? {}
        job.finish()
    }
}

/// One window's reverse process, one sampler step at a time (so that a UI can spread it over
/// frames). Each window draws its own initial noise and sampler noise from (seed, index).
/// The denoiser and labels are passed to every step rather than held, so that the caller may
/// own them beside the window.
pub struct DiffusionWindow<B: Backend> {
    cond: Option<Tensor<B>>,
    obs: Observation<B>,
    state: SamplerState<B>,
    times: Vec<f64>,
    step: usize,
    x: Tensor<B>,
}

impl<B: Backend> DiffusionWindow<B> {
    pub fn start(
        denoiser: &Denoiser<B>,
        sampler: Sampler,
        y: &Tensor<B>,
        mask: &Tensor<B>,
        index: usize,
    ) -> Result<Self> {
        let seed = lemur_tensor::rng::bits(sampler.seed, index as u64) as u64
            | (u64::from(lemur_tensor::rng::bits(!sampler.seed, index as u64)) << 32);
        let sampler = Sampler { seed, ..sampler };
        let x =
            no_grad(|| sampler.init(y.backend(), &denoiser.schedule, y.shape(), seed ^ 0x5eed))?;
        Ok(Self {
            cond: denoiser.config.masked.then(|| mask.clone()),
            obs: Observation::new(y, mask)?,
            state: sampler.start(y.backend(), y.shape())?,
            times: sampler.timesteps(),
            step: 0,
            x,
        })
    }

    /// Sampler steps in this window.
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// Steps taken so far.
    pub fn taken(&self) -> usize {
        self.step
    }

    /// Runs the next step with `denoiser` (the one the window started with) and its labels
    /// (B, F); true once the window has reached t = 0.
    pub fn step(&mut self, denoiser: &Denoiser<B>, label: Option<&Tensor<B>>) -> Result<bool> {
        if self.step < self.steps() {
            let den = Conditioned {
                denoiser,
                label,
                cond: self.cond.as_ref(),
            };
            let (t, s) = (self.times[self.step], self.times[self.step + 1]);
            self.x = no_grad(|| self.state.step(&den, &self.x, t, s, Some(&self.obs)))?;
            self.step += 1;
        }
        Ok(self.step == self.steps())
    }

    /// The sampled window (B, C, L, H, W).
    pub fn finish(self) -> Result<Tensor<B>> {
        if self.step < self.steps() {
            return Err(Error::Config(format!(
                "the window's reverse process stopped after {} of {} steps",
                self.step,
                self.steps()
            )));
        }
        Ok(self.x)
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
    fn the_recommended_overlap_is_read_within_the_window() {
        let extra = |v: serde_json::Value| serde_json::json!({ "rollout": { "overlap": v } });
        assert_eq!(recommended_overlap(&serde_json::json!({}), 5), Ok(None));
        assert_eq!(recommended_overlap(&extra(2.into()), 5), Ok(Some(2)));
        assert_eq!(recommended_overlap(&extra(4.into()), 5), Ok(Some(4)));
        for bad in [0.into(), 5.into(), (-1).into(), 1.5.into(), "2".into()] {
            let e = recommended_overlap(&extra(bad), 5).unwrap_err();
            assert!(e.ends_with("windows of 5 frames overlap by 1 to 4"), "{e}");
        }
    }

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
