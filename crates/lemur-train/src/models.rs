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

/// An emulator with the training's context noise (`--context-noise`).
struct Noisy<B: Backend> {
    model: Model<B>,
    context_noise: f32,
}

/// The stream of the context noise, beside the models' own streams 1-4 of a [`TrainDraw`].
const CONTEXT_NOISE_STREAM: u64 = 5;

/// `x + sigma n` with `n ~ N(0, 1)` drawn from `draw`, the context a training window is seen
/// through; `x` itself where `sigma` is 0.
pub fn noisy_context<B: Backend>(x: &Tensor<B>, sigma: f32, draw: TrainDraw) -> Result<Tensor<B>> {
    if sigma == 0.0 {
        return Ok(x.clone());
    }
    let n = Tensor::randn(x.backend(), x.shape(), draw.stream(CONTEXT_NOISE_STREAM), 0)?;
    Ok(x.add(&n.scale(sigma)?)?)
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

impl<B: Backend> EmulatorModel<B> for Noisy<B> {
    /// Validation (`train` false) sees clean contexts, so that its losses compare across runs
    /// trained with any noise.
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
        let sigma = if train { self.context_noise } else { 0.0 };
        let context = noisy_context(x, sigma, draw)?;
        Ok(match &self.model {
            Model::Diffusion(m, _) => {
                m.loss_with_context(x, &context, labels, &mask, draw, train)?
            }
            Model::Surrogate(m, _) => {
                m.loss_with_context(x, &context, labels, &mask, draw, train)?
            }
        })
    }

    fn param_count(&self) -> usize {
        match self.model {
            Model::Diffusion(_, n) | Model::Surrogate(_, n) => n,
        }
    }
}

/// Builds the emulator of `kind` with its parameters registered in `params`, trained with
/// Gaussian noise of standard deviation `context_noise` on its training windows' contexts.
pub fn build<B: Backend>(
    kind: ModelKind,
    v: &Value,
    backend: &B,
    params: &mut ParamStore<B>,
    seed: u64,
    context_noise: f32,
) -> Result<Box<dyn EmulatorModel<B>>> {
    let cfg = parse(kind, v)?;
    let mut b =
        Builder::with_memory_limit(backend, params, seed, crate::session::trainable_params());
    let model = match kind {
        ModelKind::Surrogate => Model::Surrogate(
            Surrogate::new(&cfg, &mut b)?,
            Surrogate::<B>::param_count(&cfg),
        ),
        _ => Model::Diffusion(
            Denoiser::new(&cfg, &mut b)?,
            Denoiser::<B>::param_count(&cfg),
        ),
    };
    Ok(Box::new(Noisy {
        model,
        context_noise,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lemur_tensor::{CpuBackend, no_grad};

    const CONFIG: &str = r#"{"channels": 3, "emb_features": 16, "label_features": 0, "masked": true,
        "hid_channels": 24, "hid_blocks": 2, "attention_heads": 3, "patch_size": 1,
        "ffn_factor": 2, "dropout": 0.1, "schedule": {"name": "log_linear"}}"#;

    fn draw(step: u64) -> TrainDraw {
        TrainDraw {
            seed: 3,
            step,
            micro: 0,
        }
    }

    #[test]
    fn context_noise_is_a_seeded_standard_normal_times_sigma() {
        let b = CpuBackend;
        let x = Tensor::randn(&b, &[7, 3, 5, 31, 29], 1, 0).unwrap();
        let xs = x.to_vec().unwrap();
        assert_eq!(
            noisy_context(&x, 0.0, draw(2)).unwrap().to_vec().unwrap(),
            xs
        );
        let c = noisy_context(&x, 0.25, draw(2)).unwrap().to_vec().unwrap();
        let n: Vec<f64> = c
            .iter()
            .zip(&xs)
            .map(|(c, x)| f64::from(c - x) / 0.25)
            .collect();
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var.sqrt() - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
        assert_eq!(
            noisy_context(&x, 0.25, draw(2)).unwrap().to_vec().unwrap(),
            c
        );
        assert_ne!(
            noisy_context(&x, 0.25, draw(3)).unwrap().to_vec().unwrap(),
            c
        );
    }

    /// Random weights in place of the initialisation, whose zeroed output layers (AdaLN-zero)
    /// leave the surrogate's prediction all but independent of its input.
    fn randomise(params: &ParamStore<CpuBackend>) {
        for (i, (name, t)) in params.iter().enumerate() {
            if !name.ends_with("freqs") {
                let v = Tensor::randn(&CpuBackend, t.shape(), 40 + i as u64, 0).unwrap();
                let v = v.scale(0.3).unwrap().to_vec().unwrap();
                t.set_storage(CpuBackend.upload(&v).unwrap()).unwrap();
            }
        }
    }

    /// Training losses see `x + sigma n` as context; validation losses (`train` false) see `x`.
    #[test]
    fn context_noise_reaches_training_losses_alone() {
        let b = CpuBackend;
        let v: Value = serde_json::from_str(CONFIG).unwrap();
        let x = Tensor::randn(&b, &[3, 3, 4, 5, 3], 8, 0).unwrap();
        for kind in [ModelKind::Diffusion, ModelKind::Surrogate] {
            let mut v = v.clone();
            if kind == ModelKind::Surrogate {
                v.as_object_mut().unwrap().remove("schedule");
            }
            let loss = |sigma: f32, train: bool| {
                let mut params = ParamStore::new();
                let m = build(kind, &v, &b, &mut params, 5, sigma).unwrap();
                randomise(&params);
                no_grad(|| m.loss(&x, None, 3, 6, train))
                    .unwrap()
                    .item()
                    .unwrap()
            };
            assert_eq!(loss(0.3, false), loss(0.0, false), "{kind}");
            let (clean, noisy) = (loss(0.0, true), loss(0.3, true));
            assert!(
                (noisy - clean).abs() > 1e-4 * clean.abs(),
                "{kind}: {noisy} {clean}"
            );

            let mut params = ParamStore::new();
            let cfg = parse(kind, &v).unwrap();
            let mut bld =
                Builder::with_memory_limit(&b, &mut params, 5, crate::session::trainable_params());
            let mask = masks(&x, 3, 6).unwrap();
            let c = noisy_context(&x, 0.3, draw(6)).unwrap();
            let model = match kind {
                ModelKind::Surrogate => {
                    Model::Surrogate(Surrogate::new(&cfg, &mut bld).unwrap(), 0)
                }
                _ => Model::Diffusion(Denoiser::new(&cfg, &mut bld).unwrap(), 0),
            };
            randomise(&params);
            let by_hand = no_grad(|| match &model {
                Model::Surrogate(m, _) => m.loss_with_context(&x, &c, None, &mask, draw(6), true),
                Model::Diffusion(m, _) => m.loss_with_context(&x, &c, None, &mask, draw(6), true),
            })
            .unwrap()
            .item()
            .unwrap();
            assert_eq!(noisy, by_hand, "{kind}");
        }
    }
}
