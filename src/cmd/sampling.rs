//! Options shared by the commands that emulate (`rollout`, `eval`, `bench emulation`): the
//! sampler, the window bookkeeping and the backend.

use anyhow::Result;
use lemur_models::sampling::{Method, Sampler};
use lemur_train::emulate::RolloutOptions;

#[derive(clap::Args, Clone, Debug)]
pub struct SamplerArgs {
    /// Sampler: ab (Adams-Bashforth), eab (exponential AB), euler, ddim, ddpm, heun, pc.
    #[arg(long, default_value = "ab")]
    pub sampler: String,
    /// Denoising steps per window.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Order of the multistep samplers (ab, eab).
    #[arg(long, default_value_t = 3)]
    pub order: usize,
    /// DDIM stochasticity (ddim only: 0 deterministic, 1 = ddpm, which always uses 1).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    /// Langevin corrections per step (pc).
    #[arg(long, default_value_t = 1)]
    pub corrections: usize,
    /// Langevin step size (pc).
    #[arg(long, default_value_t = 0.1)]
    pub delta: f64,
    /// Latent frames known at the start of the rollout.
    #[arg(long, default_value_t = 1)]
    pub context: usize,
    /// Frames each window takes from the previous one [default: the run's recommendation
    /// (`extra.rollout.overlap`), else 1].
    #[arg(long)]
    pub overlap: Option<usize>,
    /// Seed of the sampler's noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend: gpu, cpu or auto [default: $LEMUR_BACKEND, else auto].
    #[arg(long)]
    pub backend: Option<String>,
}

impl SamplerArgs {
    /// The rollout options; `--overlap` where given, else the run's `recommended` overlap
    /// (said on stderr), else 1.
    pub fn options(
        &self,
        horizon: usize,
        ensemble: usize,
        recommended: Option<usize>,
    ) -> Result<RolloutOptions> {
        if ensemble == 0 {
            anyhow::bail!("--ensemble must be at least 1");
        }
        // Zero known frames leaves nothing to encode or condition on (and used to surface as
        // "0 values are not whole frames").
        if self.context == 0 {
            anyhow::bail!("--context must be at least 1");
        }
        if self.overlap == Some(0) {
            anyhow::bail!("--overlap must be at least 1");
        }
        let overlap = match (self.overlap, recommended) {
            (Some(o), _) => o,
            (None, Some(o)) => {
                eprintln!("lemur: overlap {o}, as the run recommends (--overlap N to change)");
                o
            }
            (None, None) => 1,
        };
        // The model layer's errors say what is wrong; name the flag too.
        let method = Method::parse(
            &self.sampler,
            self.order,
            self.eta,
            self.corrections,
            self.delta,
        )
        .map_err(|e| anyhow::anyhow!("--sampler {}: {e}", self.sampler))?;
        let sampler = Sampler::new(method, self.steps, self.seed).map_err(|e| {
            anyhow::anyhow!("--sampler {} --steps {}: {e}", self.sampler, self.steps)
        })?;
        Ok(RolloutOptions {
            context: self.context,
            overlap,
            horizon,
            ensemble,
            sampler,
        })
    }
}
