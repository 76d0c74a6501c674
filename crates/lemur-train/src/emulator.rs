//! `lemur train diffusion|surrogate`: the emulators on windows of a latent cache.
//!
//! Windows are `L` latent frames `stride` apart (DESIGN.md: 5 and 4), batched as
//! `(B, C, L, H, W)` (channels first, as the ViT expects), with the trajectories' labels as
//! `(B, n_labels)`.

use std::path::{Path, PathBuf};

use lemur_tensor::{AnyBackend, Backend, ParamStore, Tensor};

use crate::batch::{self, Stream};
use crate::error::{Result, TrainError};
use crate::latents::{LatentCache, LatentSet};
use crate::options::TrainOptions;
use crate::provenance::{DataProvenance, absolute, git_revision};
use crate::run::{CheckpointMeta, FORMAT, ModelKind};
use crate::session::{self, CommonArgs, ConfigSource, Start};
use crate::trainer::{Objective, Summary};

/// Arguments of `lemur train diffusion|surrogate`.
#[derive(Clone, Debug)]
pub struct EmulatorArgs {
    /// The latent cache; optional with `--resume` (then the run's own).
    pub latents: Option<PathBuf>,
    pub common: CommonArgs,
}

/// What the training loop needs from an emulator model (implemented in [`crate::models`] over
/// `lemur-models`' denoiser and surrogate).
pub trait EmulatorModel<B: Backend> {
    /// The training loss of a window batch `x` `(B, C, L, H, W)` with labels `(B, n)` (or none
    /// for a model without labels), with the model's randomness (noise levels, context masks,
    /// dropout) drawn from `(seed, pass)`; `train` enables dropout.
    fn loss(
        &self,
        x: &Tensor<B>,
        labels: Option<&Tensor<B>>,
        seed: u64,
        pass: u64,
        train: bool,
    ) -> Result<Tensor<B>>;
    /// Trainable scalars.
    fn param_count(&self) -> usize;
}

/// What an emulator's configuration says about its input, to check against the cache.
#[derive(Clone, Debug, PartialEq)]
pub struct EmulatorInput {
    pub channels: usize,
    /// Label features (0: no labels).
    pub labels: usize,
}

struct Windows<B: Backend> {
    backend: B,
    model: Box<dyn EmulatorModel<B>>,
    train: LatentSet,
    train_index: Vec<(usize, usize)>,
    valid: LatentSet,
    valid_index: Vec<(usize, usize)>,
    options: TrainOptions,
    use_labels: bool,
    model_seed: u64,
    val_seed: u64,
}

impl<B: Backend> Windows<B> {
    /// `(B, C, L, H, W)` and `(B, n)` from windows `picks` of `set`.
    fn batch(
        &self,
        set: &LatentSet,
        picks: &[(usize, usize)],
    ) -> Result<(Tensor<B>, Option<Tensor<B>>)> {
        let (l, stride) = (self.options.window, self.options.stride);
        let [c, h, w] = set.frame_shape;
        let plane = h * w;
        let mut data = Vec::with_capacity(picks.len() * l * c * plane);
        let mut labels = Vec::new();
        for &(traj, start) in picks {
            let win = set.window(traj, start, l, stride);
            // [L, C, H, W] -> [C, L, H, W]
            for ch in 0..c {
                for f in 0..l {
                    data.extend_from_slice(&win[(f * c + ch) * plane..(f * c + ch + 1) * plane]);
                }
            }
            labels.extend_from_slice(&set.labels[traj]);
        }
        let n = picks.len();
        let x = Tensor::from_slice(&self.backend, &data, &[n, c, l, h, w])?;
        let y = if self.use_labels {
            Some(Tensor::from_slice(
                &self.backend,
                &labels,
                &[n, labels.len() / n],
            )?)
        } else {
            None
        };
        Ok((x, y))
    }
}

impl<B: Backend> Objective<B> for Windows<B> {
    fn train_loss(&mut self, step: u32, micro: usize) -> Result<Tensor<B>> {
        let (seed, n) = (self.options.seed, self.train_index.len());
        let picks: Vec<_> = (0..self.options.batch)
            .map(|j| self.train_index[batch::index(seed, Stream::TrainIndex, step, micro, j, n)])
            .collect();
        let (x, y) = self.batch(&self.train, &picks)?;
        self.model.loss(
            &x,
            y.as_ref(),
            self.model_seed,
            batch::pass(step, self.options.accum, micro),
            true,
        )
    }

    fn val_loss(&mut self, index: usize) -> Result<Option<Tensor<B>>> {
        if self.valid_index.is_empty() {
            return Ok(None);
        }
        let n = self.valid_index.len();
        let picks: Vec<_> = (0..self.options.batch)
            .map(|j| {
                self.valid_index[batch::index(self.val_seed, Stream::ValIndex, 0, index, j, n)]
            })
            .collect();
        let (x, y) = self.batch(&self.valid, &picks)?;
        // The same noise levels and masks at every evaluation, so validation losses compare.
        Ok(Some(self.model.loss(
            &x,
            y.as_ref(),
            self.val_seed,
            index as u64,
            false,
        )?))
    }
}

/// The emulators' defaults (DESIGN.md sections 4 and 5).
pub fn defaults(kind: ModelKind) -> TrainOptions {
    let loss = if kind == ModelKind::Diffusion {
        "edm"
    } else {
        "mse"
    };
    TrainOptions {
        augment: false,
        loss: loss.into(),
        ..TrainOptions::defaults()
    }
}

/// A built-in preset describes an architecture, not a latent cache: its `channels` and
/// `label_features` become those of the latents at `latents` (Euler's and Rayleigh-Bénard's
/// solvers label their trajectories with 3 and 4 numbers). A file given with `--config` is
/// taken as written, and an unreadable cache is left to the data check, which names it.
pub fn fit_preset_to_latents(config: &mut ConfigSource, latents: &Path) -> Result<()> {
    let ConfigSource::Preset { name, json } = config else {
        return Ok(());
    };
    let Ok(cache) = LatentCache::open(latents) else {
        return Ok(());
    };
    let mut v: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        TrainError::Options(format!("the built-in preset {name} does not parse: {e}"))
    })?;
    v["channels"] = cache.manifest.latent_shape[0].into();
    v["label_features"] = cache.manifest.label_count.into();
    *json = serde_json::to_string(&v).expect("a JSON value serialises");
    Ok(())
}

/// Trains (or resumes) a diffusion or surrogate run.
pub fn train(kind: ModelKind, args: &EmulatorArgs) -> Result<Summary> {
    let start = session::start(kind, &args.common, defaults(kind), |v| {
        crate::models::normalise_config(kind, v)
    })?;
    let expected = defaults(kind).loss;
    if start.options.loss != expected {
        return Err(TrainError::Options(format!(
            "--loss {}: the {kind} model trains with {expected}",
            start.options.loss
        )));
    }
    let backend = AnyBackend::open_blocking(args.common.backend)?;
    eprintln!("lemur: backend {}", backend.name());
    match backend {
        AnyBackend::Cpu(b) => train_on(b, kind, args, start),
        AnyBackend::Gpu(b) => train_on(b, kind, args, start),
    }
}

fn train_on<B: Backend>(
    backend: B,
    kind: ModelKind,
    args: &EmulatorArgs,
    start: Start,
) -> Result<Summary> {
    let root = match (&args.latents, &start.resumed) {
        (Some(d), _) => d.clone(),
        (None, Some(meta)) => meta.data.root.clone(),
        (None, None) => {
            return Err(TrainError::Options(
                "--latents DIR is required for a new run".into(),
            ));
        }
    };
    let cache = LatentCache::open(&root)?;
    let m = &cache.manifest;
    let input = crate::models::input(kind, &start.model_config)?;
    let [c, h, w] = m.latent_shape;
    crate::autoencoder::check_batch(start.options.batch, &[c, start.options.window, h, w])?;
    if input.channels != c {
        return Err(TrainError::Data {
            path: root.clone(),
            detail: format!(
                "the latents have {c} channels, the {kind} configuration expects {}",
                input.channels
            ),
        });
    }
    if input.labels != 0 && input.labels != m.label_count {
        return Err(TrainError::Data {
            path: root.clone(),
            detail: format!(
                "the latents carry {} labels, the {kind} configuration expects {}",
                m.label_count, input.labels
            ),
        });
    }
    let channels: Vec<String> = (0..c).map(|i| format!("latent.{i}")).collect();
    // An imported run's grid is the reference's data, recorded, not trained on by lemur:
    // fine-tuning may use any grid the model takes.
    if let Some(meta) = &start.resumed
        && (meta.data.channels != channels
            || (meta.data.grid != [h, w] && !session::imported(meta)))
    {
        return Err(TrainError::Data {
            path: root.clone(),
            detail: format!(
                "the run was trained on latents {:?} at {:?}, these are {c} channels at {:?}",
                meta.data.channels,
                meta.data.grid,
                [h, w]
            ),
        });
    }
    let (l, stride, first) = (
        start.options.window,
        start.options.stride,
        start.options.first_frame,
    );
    let train = cache.split("train")?;
    let valid = cache.split("valid")?;
    let train_index = train.windows(l, stride, first);
    if train_index.is_empty() {
        let after = match first {
            0 => String::new(),
            f => format!(" starting at frame {f} or later (--first-frame)"),
        };
        return Err(TrainError::Data {
            path: root.clone(),
            detail: format!(
                "no training window of {l} frames {stride} apart{after}: the trajectories have {:?} frames",
                train.frames
            ),
        });
    }
    let valid_index = valid.windows(l, stride, first);
    let mut params = ParamStore::new();
    let model = crate::models::build(
        kind,
        &start.model_config,
        &backend,
        &mut params,
        start.options.seed,
        start.options.context_noise,
    )
    .map_err(|e| session::model_error(&args.common, e))?;
    let restored = session::restore(&start, &params)?;
    let template = CheckpointMeta {
        format: FORMAT.into(),
        kind,
        step: 0,
        dir: String::new(),
        model_config: start.model_config.clone(),
        options: start.options.clone(),
        backend: backend.name(),
        stats: m.stats.clone(),
        data: DataProvenance {
            kind: "latents".into(),
            root: absolute(&root),
            files: cache.files()?,
            channels,
            grid: [h, w],
        },
        extra: session::with_init(
            &start,
            serde_json::json!({
                "latent_shape": m.latent_shape,
                "label_count": m.label_count,
                "autoencoder_path": m.autoencoder_path,
                "autoencoder_step": m.autoencoder.latent_step(),
                "autoencoder_config": m.autoencoder.model_config,
                "autoencoder_git_revision": m.autoencoder.git_revision,
                "physical_data": m.data,
            }),
        ),
        git_revision: git_revision(),
        loss: None,
        val_loss: None,
        params: model.param_count(),
        elapsed_s: 0.0,
        created_unix: 0,
    };
    let seed = start.options.seed;
    let mut objective = Windows {
        backend: backend.clone(),
        model,
        train,
        train_index,
        valid,
        valid_index,
        options: start.options.clone(),
        use_labels: input.labels > 0,
        model_seed: batch::model_seed(seed, Stream::Model),
        val_seed: batch::model_seed(seed, Stream::ValModel),
    };
    let mut trainer = start.trainer(&args.common, &backend, &params, restored, template);
    trainer.train(&mut objective)
}
