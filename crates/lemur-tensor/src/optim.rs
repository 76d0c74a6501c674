//! AdamW over a `ParamStore`, with global grad-norm clipping and a cosine learning-rate
//! schedule with linear warmup; [`Optimizer`] chooses between it and SOAP (`crate::soap`).

use std::collections::HashMap;

use crate::backend::{AdamWDesc, Backend, SUM_SQUARES_INPUTS};
use crate::error::Result;
use crate::params::ParamStore;
use crate::tensor::Tensor;

/// Linear warmup from 0 to `peak` over `warmup` steps, then a cosine decay to `min_lr` at
/// `total` steps (constant afterwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineSchedule {
    pub peak: f32,
    pub min_lr: f32,
    pub warmup: u32,
    pub total: u32,
}

impl CosineSchedule {
    /// The learning rate for (1-based) optimizer step `step`.
    pub fn lr(&self, step: u32) -> f32 {
        if self.warmup > 0 && step <= self.warmup {
            return self.peak * step as f32 / self.warmup as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f32;
        let progress = ((step - self.warmup) as f32 / span).min(1.0);
        self.min_lr
            + 0.5 * (self.peak - self.min_lr) * (1.0 + (std::f32::consts::PI * progress).cos())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    /// Clip the global gradient norm to this value (0 disables clipping).
    pub max_norm: f32,
    pub schedule: CosineSchedule,
}

impl Default for AdamWConfig {
    /// The reference's emulator settings: lr 1e-4, betas (0.9, 0.99), no weight decay, clip 1.
    fn default() -> Self {
        Self {
            betas: (0.9, 0.99),
            eps: 1e-8,
            weight_decay: 0.0,
            max_norm: 1.0,
            schedule: CosineSchedule {
                peak: 1e-4,
                min_lr: 0.0,
                warmup: 0,
                total: 1,
            },
        }
    }
}

/// Adam moments per parameter, by name; `step` counts completed updates.
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    pub step: u32,
    state: HashMap<String, (B::Storage, B::Storage)>,
}

impl<B: Backend> std::fmt::Debug for AdamW<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdamW(step {}, {:?})", self.step, self.config)
    }
}

impl<B: Backend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            state: HashMap::new(),
        }
    }

    /// The squared global norm of all gradients, as a one-element tensor left on the device:
    /// one [`Backend::sum_squares`] per [`SUM_SQUARES_INPUTS`] gradients, each adding to the
    /// running sum.
    pub fn grad_norm_sq(params: &ParamStore<B>) -> Result<Option<Tensor<B>>> {
        let grads: Vec<(B, B::Storage)> = params
            .iter()
            .filter_map(|(_, p)| p.grad().map(|g| (p.backend().clone(), g.storage())))
            .collect();
        let mut total: Option<(B, B::Storage)> = None;
        for chunk in grads.chunks(SUM_SQUARES_INPUTS) {
            let b = &chunk[0].0;
            let xs: Vec<&B::Storage> = chunk.iter().map(|(_, s)| s).collect();
            let sum = b.sum_squares(&xs, total.as_ref().map(|(_, t)| t))?;
            total = Some((b.clone(), sum));
        }
        total
            .map(|(b, t)| Tensor::from_storage(&b, t, &[1]))
            .transpose()
    }

    /// Applies one update to every parameter with a gradient, then clears the gradients.
    pub fn step(&mut self, params: &ParamStore<B>) -> Result<()> {
        self.step += 1;
        let gnorm = if self.config.max_norm > 0.0 {
            Self::grad_norm_sq(params)?
        } else {
            None
        };
        let c = &self.config;
        let desc = AdamWDesc {
            lr: c.schedule.lr(self.step),
            beta1: c.betas.0,
            beta2: c.betas.1,
            eps: c.eps,
            weight_decay: c.weight_decay,
            step: self.step,
            max_norm: c.max_norm,
        };
        for (name, p) in params.iter() {
            let Some(g) = p.grad() else { continue };
            let b = p.backend();
            let (m, v) = match self.state.remove(name) {
                Some(mv) => mv,
                None => (b.fill(p.numel(), 0.0)?, b.fill(p.numel(), 0.0)?),
            };
            let (np, nm, nv) = b.adamw(
                p.storage(),
                m,
                v,
                &g.storage(),
                &desc,
                gnorm.as_ref().map(|t| t.storage()).as_ref(),
            )?;
            p.set_storage(np)?;
            self.state.insert(name.to_string(), (nm, nv));
        }
        params.zero_grad();
        Ok(())
    }

    /// Moments as host tensors named `<param>.exp_avg` / `<param>.exp_avg_sq` (for checkpoints).
    pub async fn state_to_host(
        &self,
        params: &ParamStore<B>,
    ) -> Result<crate::params::HostTensors> {
        let mut out = std::collections::BTreeMap::new();
        for (name, p) in params.iter() {
            if let Some((m, v)) = self.state.get(name) {
                let b = p.backend();
                out.insert(
                    format!("{name}.exp_avg"),
                    (p.shape().to_vec(), b.read(m).await?),
                );
                out.insert(
                    format!("{name}.exp_avg_sq"),
                    (p.shape().to_vec(), b.read(v).await?),
                );
            }
        }
        Ok(out)
    }

    /// Restores moments saved by `state_to_host`. A parameter has both moments or neither;
    /// one alone is an error naming the missing tensor.
    pub fn load_state(
        &mut self,
        params: &ParamStore<B>,
        host: &crate::params::HostTensors,
        step: u32,
    ) -> Result<()> {
        self.state.clear();
        for (name, p) in params.iter() {
            let (mk, vk) = (format!("{name}.exp_avg"), format!("{name}.exp_avg_sq"));
            match (host.get(&mk), host.get(&vk)) {
                (Some((_, m)), Some((_, v))) => {
                    let b = p.backend();
                    self.state
                        .insert(name.to_string(), (b.upload(m)?, b.upload(v)?));
                }
                (None, None) => {}
                (m, _) => {
                    return Err(crate::error::Error::Invalid {
                        op: "AdamW::load_state",
                        detail: format!("`{}` is missing", if m.is_none() { mk } else { vk }),
                    });
                }
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The optimizer of a training run, AdamW or SOAP, behind one surface.
#[derive(Debug)]
pub enum Optimizer<B: Backend> {
    AdamW(AdamW<B>),
    Soap(crate::soap::Soap<B>),
}

impl<B: Backend> Optimizer<B> {
    /// Updates completed (the schedule's step).
    pub fn steps(&self) -> u32 {
        match self {
            Optimizer::AdamW(o) => o.step,
            Optimizer::Soap(o) => o.step,
        }
    }

    /// Applies one update to every parameter with a gradient, then clears the gradients.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self, params: &ParamStore<B>) -> Result<()> {
        match self {
            Optimizer::AdamW(o) => o.step(params),
            Optimizer::Soap(o) => o.step(params),
        }
    }

    /// The state as host tensors named `<param>.<suffix>` (for checkpoints).
    pub async fn state_to_host(
        &self,
        params: &ParamStore<B>,
    ) -> Result<crate::params::HostTensors> {
        match self {
            Optimizer::AdamW(o) => o.state_to_host(params).await,
            Optimizer::Soap(o) => o.state_to_host(params).await,
        }
    }

    /// Restores state saved by `state_to_host`; `step` is the schedule's step.
    pub fn load_state(
        &mut self,
        params: &ParamStore<B>,
        host: &crate::params::HostTensors,
        step: u32,
    ) -> Result<()> {
        match self {
            Optimizer::AdamW(o) => o.load_state(params, host, step),
            Optimizer::Soap(o) => o.load_state(params, host, step),
        }
    }

    /// Moves the end of the cosine schedule (a run fitted to a time limit ends earlier).
    pub fn set_total_steps(&mut self, total: u32) {
        match self {
            Optimizer::AdamW(o) => o.config.schedule.total = total,
            Optimizer::Soap(o) => o.config.schedule.total = total,
        }
    }

    /// The suffixes after `<param>.` that this optimizer's state keys may have.
    pub fn state_suffixes(&self) -> &'static [&'static str] {
        match self {
            Optimizer::AdamW(_) => &["exp_avg", "exp_avg_sq"],
            Optimizer::Soap(_) => &crate::soap::STATE_SUFFIXES,
        }
    }
}
