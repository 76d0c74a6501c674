//! Training throughput: samples per second of one optimizer step (forward, backward, AdamW)
//! and of inference, on random data, for the `small` presets and the issue's fixed
//! configurations. Each figure also carries the work its timed calls asked of the backend
//! ([`OpCounters`]: dispatches, submissions, synchronisations), so per-step overheads are
//! measurable on any adapter, lavapipe included.

use std::time::{Duration, Instant};

pub use lemur_models::dcae::DcaeConfig as AutoencoderConfig;
use lemur_models::dcae::DcaeConfig;
use lemur_models::dcae::{Dcae, Loss, TrainCtx};
use lemur_models::nn::Builder;
use lemur_tensor::{AdamW, AdamWConfig, Backend, OpCounters, ParamStore, Tensor, no_grad};

use crate::error::Result;

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct BenchLine {
    pub name: String,
    pub backend: String,
    pub params: usize,
    pub batch: usize,
    /// Samples per second of one optimizer step.
    pub train_per_s: f64,
    /// Samples (frames) per second of inference (autoencoder: encode + decode).
    pub infer_per_s: f64,
    /// The reference's figures (PyTorch, 2 CPU threads) where the issue gives them.
    pub reference: Option<(f64, f64)>,
    /// What the timed optimizer steps asked of the backend.
    pub train_ops: Counted,
    /// What the timed inference calls asked of the backend.
    pub infer_ops: Counted,
}

/// Counter totals over `calls` timed calls (each followed by the bench's own `sync`, which is
/// counted: one synchronisation per call at least).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counted {
    pub ops: OpCounters,
    pub calls: u64,
}

impl Counted {
    /// A count per call, e.g. `per_call(|c| c.dispatches)`.
    pub fn per_call(&self, field: impl Fn(&OpCounters) -> u64) -> f64 {
        field(&self.ops) as f64 / self.calls.max(1) as f64
    }
}

/// Runs `f` at least once and until `min` has elapsed, after one warm-up call; seconds per call
/// and the backend's counters over the timed calls.
fn time<B: Backend>(
    backend: &B,
    min: Duration,
    mut f: impl FnMut() -> Result<()>,
) -> Result<(f64, Counted)> {
    f()?;
    pollster::block_on(backend.sync())?;
    let before = backend.counters();
    let start = Instant::now();
    let mut n = 0u32;
    while n == 0 || start.elapsed() < min {
        f()?;
        pollster::block_on(backend.sync())?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64() / f64::from(n);
    let ops = backend.counters().since(&before);
    Ok((
        secs,
        Counted {
            ops,
            calls: u64::from(n),
        },
    ))
}

/// The issue's fixed autoencoder: 64x64x5 fields, hid_channels [32, 64, 128, 256, 256],
/// 2 blocks each, 4 latent channels, batch 16 (PyTorch: 8.4 samples/s per training step, 26
/// frames/s encode + decode).
pub fn fixed_autoencoder() -> DcaeConfig {
    DcaeConfig::from_json(
        r#"{"pix_channels": 5, "lat_channels": 4, "hid_channels": [32, 64, 128, 256, 256], "hid_blocks": [2, 2, 2, 2, 2]}"#,
    )
    .expect("a valid configuration")
}

/// Throughput of the DCAE `cfg` on `batch` random `hw` fields.
pub fn autoencoder<B: Backend>(
    backend: &B,
    name: &str,
    cfg: &DcaeConfig,
    batch: usize,
    hw: [usize; 2],
    min: Duration,
) -> Result<BenchLine> {
    let mut params = ParamStore::new();
    let model = Dcae::new(cfg, &mut Builder::new(backend, &mut params, 0))?;
    let mut optimizer = AdamW::new(AdamWConfig::default());
    let x = Tensor::randn(backend, &[batch, cfg.pix_channels, hw[0], hw[1]], 1, 0)?;
    let mut pass = 0u64;
    let (train, train_ops) = time(backend, min, || {
        pass += 1;
        model
            .loss(
                &x,
                Loss::Vrmse,
                Some(&TrainCtx {
                    seed: 0,
                    step: pass,
                }),
            )?
            .backward()?;
        optimizer.step(&params)?;
        Ok(())
    })?;
    let (infer, infer_ops) = time(backend, min, || {
        no_grad(|| model.forward(&x))?;
        Ok(())
    })?;
    Ok(BenchLine {
        name: name.into(),
        backend: backend.name(),
        params: model.param_count(),
        batch,
        train_per_s: batch as f64 / train,
        infer_per_s: batch as f64 / infer,
        reference: None,
        train_ops,
        infer_ops,
    })
}

/// The issue's fixed denoiser: 4 latent channels over (L, H, W) = (5, 4, 4), width 256, 8
/// blocks, 4 heads, batch 32 (PyTorch: 26.5 samples/s per training step, 86 samples/s
/// forward). Labels and modulation width as in the paper presets (3 labels, 256 features).
pub fn fixed_denoiser() -> lemur_models::vit::VitConfig {
    serde_json::from_str(
        r#"{"channels": 4, "emb_features": 256, "label_features": 3, "masked": true, "hid_channels": 256,
            "hid_blocks": 8, "attention_heads": 4, "ffn_factor": 4, "schedule": {"name": "log_logit"}}"#,
    )
    .expect("a valid configuration")
}

/// Throughput of the denoiser `cfg` on `batch` random windows of `lhw` latent frames: one
/// optimizer step of the denoising loss, and one forward pass without gradients.
pub fn denoiser<B: Backend>(
    backend: &B,
    name: &str,
    cfg: &lemur_models::vit::VitConfig,
    batch: usize,
    lhw: [usize; 3],
    min: Duration,
) -> Result<BenchLine> {
    use lemur_models::diffusion::{Denoiser, TrainDraw, context_mask};
    let mut params = ParamStore::new();
    let model = Denoiser::new(cfg, &mut Builder::new(backend, &mut params, 0))?;
    let mut optimizer = AdamW::new(AdamWConfig::default());
    let [l, h, w] = lhw;
    let x = Tensor::randn(backend, &[batch, cfg.channels, l, h, w], 1, 0)?;
    let labels = (cfg.label_features > 0)
        .then(|| Tensor::randn(backend, &[batch, cfg.label_features], 2, 0))
        .transpose()?;
    let mask = Tensor::from_slice(
        backend,
        &context_mask(batch, l, 0.66, 3),
        &[batch, 1, l, 1, 1],
    )?;
    let mut step = 0u64;
    let (train, train_ops) = time(backend, min, || {
        step += 1;
        model
            .loss(
                &x,
                labels.as_ref(),
                &mask,
                TrainDraw {
                    seed: 0,
                    step,
                    micro: 0,
                },
                true,
            )?
            .backward()?;
        optimizer.step(&params)?;
        Ok(())
    })?;
    let cond = mask.broadcast_to(x.shape())?;
    let t: Vec<f32> = (0..batch)
        .map(|i| (i as f32 + 0.5) / batch as f32)
        .collect();
    let (infer, infer_ops) = time(backend, min, || {
        no_grad(|| model.forward(&x, &t, labels.as_ref(), Some(&cond)))?;
        Ok(())
    })?;
    Ok(BenchLine {
        name: name.to_string(),
        backend: backend.name(),
        params: Denoiser::<B>::param_count(cfg),
        batch,
        train_per_s: batch as f64 / train,
        infer_per_s: batch as f64 / infer,
        reference: None,
        train_ops,
        infer_ops,
    })
}
