//! Adapters from `lemur-models`' denoiser and surrogate to the emulator training loop.

use lemur_models::diffusion::{CONTEXT_AT_START, Denoiser, TrainDraw, context_mask};
use lemur_models::nn::Builder;
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::{Backend, ParamStore, Tensor};
use serde_json::Value;

use crate::emulator::{EmulatorInput, EmulatorModel};
use crate::error::Result;
use crate::run::ModelKind;

pub(crate) fn parse(kind: ModelKind, v: &Value) -> Result<VitConfig> {
    let cfg: VitConfig = serde_json::from_value(v.clone())
        .map_err(|e| lemur_models::Error::Config(format!("{kind}: {e}")))?;
    cfg.validate()?;
    if kind == ModelKind::Diffusion && cfg.schedule.is_none() {
        return Err(lemur_models::Error::Config(
            "diffusion: the configuration needs a `schedule`".into(),
        )
        .into());
    }
    if kind == ModelKind::Diffusion && !cfg.masked {
        return Err(lemur_models::Error::Config(
            "diffusion: emulation needs `masked: true` (the context mask as condition)".into(),
        )
        .into());
    }
    Ok(cfg)
}

/// Parses and validates an emulator configuration, as the normalised JSON stored in checkpoints.
pub fn normalise_config(kind: ModelKind, v: Value) -> Result<Value> {
    Ok(serde_json::to_value(parse(kind, &v)?).expect("a parsed configuration serialises"))
}

/// What the configuration expects of the latent cache.
pub fn input(kind: ModelKind, v: &Value) -> Result<EmulatorInput> {
    let cfg = parse(kind, v)?;
    Ok(EmulatorInput {
        channels: cfg.channels,
        labels: cfg.label_features,
    })
}

/// The trained emulator with its trainable parameter count.
enum Model<B: Backend> {
    Diffusion(Denoiser<B>, usize),
    Surrogate(Surrogate<B>, usize),
}

/// The (B, 1, L, 1, 1) context masks of one pass: a pure function of (seed, pass).
fn masks<B: Backend>(x: &Tensor<B>, seed: u64, pass: u64) -> Result<Tensor<B>> {
    let (b, l) = (x.shape()[0], x.shape()[2]);
    let stream = TrainDraw {
        seed,
        step: pass,
        micro: 0,
    }
    .stream(4);
    Ok(Tensor::from_slice(
        x.backend(),
        &context_mask(b, l, CONTEXT_AT_START, stream),
        &[b, 1, l, 1, 1],
    )?)
}

impl<B: Backend> EmulatorModel<B> for Model<B> {
    fn loss(
        &self,
        x: &Tensor<B>,
        labels: Option<&Tensor<B>>,
        seed: u64,
        pass: u64,
        train: bool,
    ) -> Result<Tensor<B>> {
        let mask = masks(x, seed, pass)?;
        let draw = TrainDraw {
            seed,
            step: pass,
            micro: 0,
        };
        Ok(match self {
            Model::Diffusion(m, _) => m.loss(x, labels, &mask, draw, train)?,
            Model::Surrogate(m, _) => m.loss(x, labels, &mask, draw, train)?,
        })
    }

    fn param_count(&self) -> usize {
        match self {
            Model::Diffusion(_, n) | Model::Surrogate(_, n) => *n,
        }
    }
}

/// Builds the emulator of `kind` with its parameters registered in `params`.
pub fn build<B: Backend>(
    kind: ModelKind,
    v: &Value,
    backend: &B,
    params: &mut ParamStore<B>,
    seed: u64,
) -> Result<Box<dyn EmulatorModel<B>>> {
    let cfg = parse(kind, v)?;
    let mut b =
        Builder::with_memory_limit(backend, params, seed, crate::session::trainable_params());
    Ok(match kind {
        ModelKind::Surrogate => Box::new(Model::Surrogate(
            Surrogate::new(&cfg, &mut b)?,
            Surrogate::<B>::param_count(&cfg),
        )),
        _ => Box::new(Model::Diffusion(
            Denoiser::new(&cfg, &mut b)?,
            Denoiser::<B>::param_count(&cfg),
        )),
    })
}
