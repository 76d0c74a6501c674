//! Training options: what the command line may set, their defaults (DESIGN.md sections 4
//! and 5) and the rules for changing them when a run is resumed.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Calls `$m!` with the plain-valued options that change the computation: a new run may set
/// them, a resumed run must keep them. One list, so that the two cannot drift apart.
macro_rules! fixed_options {
    ($m:ident) => {
        $m!(
            batch,
            accum,
            lr,
            warmup,
            clip,
            weight_decay,
            precondition_frequency,
            max_precond_dim,
            seed,
            window,
            stride,
            freeze_encoder,
            first_frame,
            context_noise,
            ema
        )
    };
}

/// Resolved optimisation settings, stored in every checkpoint so that `--resume` continues
/// with exactly the same ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Total optimizer steps (the cosine schedule ends there).
    pub steps: u32,
    /// Samples per micro-batch.
    pub batch: usize,
    /// Micro-batches accumulated into one optimizer step.
    pub accum: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f32,
    /// Linear warmup steps.
    pub warmup: u32,
    /// Global gradient-norm clipping threshold (0 disables it).
    pub clip: f32,
    pub weight_decay: f32,
    pub betas: (f32, f32),
    pub eps: f32,
    /// `adamw` or `soap` (SOAP: Adam in the eigenbasis of Shampoo's preconditioner, with its
    /// own betas (0.95, 0.95)). Checkpoints written before the choice existed are AdamW's.
    #[serde(default = "adamw")]
    pub optimizer: String,
    /// SOAP: refresh each parameter's eigenbases every this many of its steps.
    #[serde(default = "precondition_frequency")]
    pub precondition_frequency: u32,
    /// SOAP: sides longer than this are not rotated (Adam along that axis), which bounds the
    /// eigendecompositions at `max_precond_dim`^3 work and `max_precond_dim`^2 memory each.
    #[serde(default = "max_precond_dim")]
    pub max_precond_dim: usize,
    /// Seed of the initialisation, the batches and every random draw of the models.
    pub seed: u64,
    /// Window length in frames (emulators) and the stride between its frames.
    pub window: usize,
    pub stride: usize,
    /// Random symmetries of the data on training batches (autoencoder).
    pub augment: bool,
    /// Autoencoder: train the decoder alone, from `--init`'s weights, so that the latents (and
    /// the emulators trained on them) stay valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_encoder: bool,
    /// Train and validate only on windows (autoencoder: frames) that start at this frame of
    /// their trajectory or later, skipping an initial transient. Earlier checkpoints used all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_frame: usize,
    /// Emulators: the standard deviation of Gaussian noise added to the context frames of
    /// training windows (the latent cache's units), so that the model learns to predict from a
    /// slightly wrong state, as it must in a rollout, where each context is its own earlier
    /// prediction. The targets and validation windows stay clean. 0 (the reference's
    /// training, and checkpoints written before the option existed) adds none.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub context_noise: f32,
    /// The decay of an exponential moving average of the weights (see [`crate::ema`]): the
    /// checkpoints' model files hold the average. 0 (the reference's training, and checkpoints
    /// written before the option existed) keeps none.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub ema: f32,
    /// The training loss: `vrmse`, `mse` or `mae` for the autoencoder; the emulators have
    /// one loss each (`edm`, `mse`).
    pub loss: String,
    /// Checkpoint (and validate) every this many steps, and at the end.
    pub checkpoint_every: u32,
    /// Validation batches per evaluation (0: no validation).
    pub val_batches: usize,
    /// A log line every this many steps.
    pub log_every: u32,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}

fn adamw() -> String {
    "adamw".into()
}

fn precondition_frequency() -> u32 {
    lemur_tensor::SoapConfig::default().precondition_frequency
}

fn max_precond_dim() -> usize {
    lemur_tensor::SoapConfig::default().max_precond_dim
}

/// SOAP's betas (soap.py's defaults), used by `--optimizer soap` in place of AdamW's.
pub const SOAP_BETAS: (f32, f32) = (0.95, 0.95);

/// The options as given on the command line: `None` where not given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub steps: Option<u32>,
    pub batch: Option<usize>,
    pub accum: Option<usize>,
    pub lr: Option<f32>,
    pub warmup: Option<u32>,
    pub clip: Option<f32>,
    pub weight_decay: Option<f32>,
    pub dropout: Option<f32>,
    pub seed: Option<u64>,
    pub loss: Option<String>,
    pub optimizer: Option<String>,
    pub precondition_frequency: Option<u32>,
    pub max_precond_dim: Option<usize>,
    pub checkpoint_every: Option<u32>,
    pub val_batches: Option<usize>,
    pub log_every: Option<u32>,
    pub window: Option<usize>,
    pub stride: Option<usize>,
    pub freeze_encoder: Option<bool>,
    pub first_frame: Option<usize>,
    pub context_noise: Option<f32>,
    pub ema: Option<f32>,
}

impl TrainOptions {
    /// The defaults: the reference's emulator settings (AdamW, lr 1e-4, betas (0.9, 0.99), no
    /// weight decay, clipping at 1, windows of 5 frames with stride 4).
    pub fn defaults() -> Self {
        TrainOptions {
            steps: 1000,
            batch: 16,
            accum: 1,
            lr: 1e-4,
            min_lr: 0.0,
            warmup: 0,
            clip: 1.0,
            weight_decay: 0.0,
            betas: (0.9, 0.99),
            eps: 1e-8,
            optimizer: adamw(),
            precondition_frequency: precondition_frequency(),
            max_precond_dim: max_precond_dim(),
            seed: 0,
            window: 5,
            stride: 4,
            augment: true,
            freeze_encoder: false,
            first_frame: 0,
            context_noise: 0.0,
            ema: 0.0,
            loss: "vrmse".into(),
            checkpoint_every: 100,
            val_batches: 4,
            log_every: 10,
        }
    }

    /// `defaults` with the given overrides applied (a new run).
    pub fn new_run(defaults: Self, o: &Overrides) -> Result<Self> {
        let mut t = defaults;
        t.apply_free(o);
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { t.$f = v; } )* };
        }
        fixed_options!(set);
        if let Some(l) = &o.loss {
            t.loss = l.clone();
        }
        if let Some(opt) = &o.optimizer
            && *opt != t.optimizer
        {
            t.optimizer = opt.clone();
            if opt == "soap" {
                t.betas = SOAP_BETAS;
            }
        }
        if t.optimizer != "soap" {
            let given: Vec<&str> = [
                o.precondition_frequency.map(|_| "--precondition-frequency"),
                o.max_precond_dim.map(|_| "--max-precond-dim"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !given.is_empty() {
                let verb = if given.len() == 1 { "applies" } else { "apply" };
                return Err(TrainError::Options(format!(
                    "{} {verb} only to --optimizer soap (this run uses {})",
                    given.join(" and "),
                    t.optimizer
                )));
            }
        }
        t.validate()?;
        Ok(t)
    }

    /// The options of a resumed run: the stored ones, where only the settings that do not
    /// change the computation may differ (`--steps`, which moves the end of the schedule,
    /// `--checkpoint-every`, `--val-batches`, `--log-every`). Any other option given with a
    /// different value is an error, since the run would no longer continue where it stopped.
    pub fn resume(stored: &Self, o: &Overrides) -> Result<Self> {
        let mut t = stored.clone();
        t.apply_free(o);
        let mut diffs = Vec::new();
        macro_rules! same {
            ($($f:ident),*) => { $( if let Some(v) = o.$f && v != stored.$f {
                diffs.push(format!("--{} {:?} (the run has {:?})", stringify!($f).replace('_', "-"), v, stored.$f));
            } )* };
        }
        fixed_options!(same);
        if let Some(l) = &o.loss
            && *l != stored.loss
        {
            diffs.push(format!("--loss {l} (the run has {})", stored.loss));
        }
        if let Some(opt) = &o.optimizer
            && *opt != stored.optimizer
        {
            diffs.push(format!(
                "--optimizer {opt} (the run has {})",
                stored.optimizer
            ));
        }
        if !diffs.is_empty() {
            return Err(TrainError::Options(format!(
                "cannot resume with different settings: {}; resume without them, or start a new run",
                diffs.join(", ")
            )));
        }
        t.validate()?;
        Ok(t)
    }

    fn apply_free(&mut self, o: &Overrides) {
        if let Some(v) = o.steps {
            self.steps = v;
        }
        if let Some(v) = o.checkpoint_every {
            self.checkpoint_every = v;
        }
        if let Some(v) = o.val_batches {
            self.val_batches = v;
        }
        if let Some(v) = o.log_every {
            self.log_every = v;
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Options(m));
        if self.steps == 0 || self.batch == 0 || self.accum == 0 {
            return bad(format!(
                "--steps {}, --batch {} and --accum {} must be positive",
                self.steps, self.batch, self.accum
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr {} must be a positive number", self.lr));
        }
        if !(self.clip >= 0.0 && self.weight_decay >= 0.0) {
            return bad(format!(
                "--clip {} and --weight-decay {} must be >= 0",
                self.clip, self.weight_decay
            ));
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return bad("--checkpoint-every and --log-every must be positive".into());
        }
        if !["adamw", "soap"].contains(&self.optimizer.as_str()) {
            return bad(format!(
                "--optimizer {}: expected adamw or soap",
                self.optimizer
            ));
        }
        if self.precondition_frequency == 0 || self.max_precond_dim == 0 {
            return bad(format!(
                "--precondition-frequency {} and --max-precond-dim {} must be positive",
                self.precondition_frequency, self.max_precond_dim
            ));
        }
        if !(self.context_noise >= 0.0 && self.context_noise.is_finite()) {
            return bad(format!(
                "--context-noise {} must be a number >= 0",
                self.context_noise
            ));
        }
        if !(0.0..1.0).contains(&self.ema) {
            return bad(format!(
                "--ema {} must be a decay in [0, 1) (0: no average)",
                self.ema
            ));
        }
        if self.window == 0 || self.stride == 0 {
            return bad("the window length and stride must be positive".into());
        }
        Ok(())
    }

    /// Samples per optimizer step.
    pub fn samples_per_step(&self) -> usize {
        self.batch * self.accum
    }

    /// The optimizer these options describe, with no state yet.
    pub fn optimizer<B: lemur_tensor::Backend>(&self) -> lemur_tensor::Optimizer<B> {
        let adamw = self.adamw();
        match self.optimizer.as_str() {
            "soap" => {
                lemur_tensor::Optimizer::Soap(lemur_tensor::Soap::new(lemur_tensor::SoapConfig {
                    betas: adamw.betas,
                    eps: adamw.eps,
                    weight_decay: adamw.weight_decay,
                    max_norm: adamw.max_norm,
                    schedule: adamw.schedule,
                    precondition_frequency: self.precondition_frequency,
                    max_precond_dim: self.max_precond_dim,
                    ..lemur_tensor::SoapConfig::default()
                }))
            }
            _ => lemur_tensor::Optimizer::AdamW(lemur_tensor::AdamW::new(adamw)),
        }
    }

    /// The AdamW configuration these options describe (its schedule, betas, eps, weight decay
    /// and clipping are SOAP's too).
    pub fn adamw(&self) -> lemur_tensor::AdamWConfig {
        lemur_tensor::AdamWConfig {
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            max_norm: self.clip,
            schedule: lemur_tensor::CosineSchedule {
                peak: self.lr,
                min_lr: self.min_lr,
                warmup: self.warmup,
                total: self.steps,
            },
        }
    }
}

/// A model configuration as JSON with `--dropout` applied (every model configuration has a
/// `dropout` key), so the stored configuration is the one actually trained.
pub fn apply_dropout(
    mut config: serde_json::Value,
    dropout: Option<f32>,
) -> Result<serde_json::Value> {
    if let Some(p) = dropout {
        if !(0.0..1.0).contains(&p) {
            return Err(TrainError::Options(format!(
                "--dropout {p} must be in [0, 1)"
            )));
        }
        let obj = config.as_object_mut().ok_or_else(|| {
            TrainError::Options("the model configuration is not a JSON object".into())
        })?;
        obj.insert("dropout".into(), serde_json::json!(p));
    }
    Ok(config)
}
