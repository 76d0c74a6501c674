//! `lemur train autoencoder`: the DCAE on frames of a Well-layout dataset.

use std::path::{Path, PathBuf};

use lemur_models::dcae::{Dcae, DcaeConfig, Loss, Periodic, TrainCtx};
use lemur_models::nn::Builder;
use lemur_tensor::{AnyBackend, Backend, ParamStore, Tensor};
use lemur_well::dataset::{SPLITS, Stats, WellDataset, WindowSpec, split_files};
use lemur_well::{BoundaryType, WellFile};
use serde_json::Value;

use crate::batch::{self, Stream};
use crate::error::{Result, TrainError};
use crate::options::TrainOptions;
use crate::provenance::{DataProvenance, FileEntry, absolute, git_revision};
use crate::run::{CheckpointMeta, FORMAT, ModelKind};
use crate::session::{self, CommonArgs, ConfigSource, Start};
use crate::trainer::{Objective, Summary};

/// Parses (and validates) a DCAE configuration, as the normalised JSON stored in checkpoints.
pub fn normalise_config(v: Value) -> Result<Value> {
    let cfg = parse_config(&v)?;
    Ok(serde_json::to_value(cfg).expect("a parsed configuration serialises"))
}

pub fn parse_config(v: &Value) -> Result<DcaeConfig> {
    let cfg: DcaeConfig = serde_json::from_value(v.clone())
        .map_err(|e| lemur_models::Error::Config(format!("Dcae: {e}")))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The loss named by `--loss`.
pub fn parse_loss(name: &str) -> Result<Loss> {
    match name {
        "vrmse" => Ok(Loss::Vrmse),
        "mse" => Ok(Loss::Mse),
        "mae" => Ok(Loss::Mae),
        other => Err(TrainError::Options(format!(
            "--loss {other}: the autoencoder trains with vrmse, mse or mae"
        ))),
    }
}

/// The most memory one batch of frames may take (the model's activations take several times
/// more): a typo in `--batch` is refused before any work instead of allocating without bound.
pub const MAX_BATCH_BYTES: u64 = 4 << 30;

/// Checks `--batch` against [`MAX_BATCH_BYTES`] for samples of `sample` f32 values (a frame
/// `[C, H, W]`, or an emulator's window `[C, L, H, W]`), with checked arithmetic.
pub fn check_batch(batch: usize, sample: &[usize]) -> Result<()> {
    let bytes = sample
        .iter()
        .chain(&[batch, 4])
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    if bytes > MAX_BATCH_BYTES {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(TrainError::Options(format!(
            "--batch {batch}: {batch} samples of {sample:?} values take {:.1} GiB before the \
             model's activations (at most {:.0} GiB)",
            gib(bytes),
            gib(MAX_BATCH_BYTES)
        )));
    }
    Ok(())
}

/// Checks that `root` is a dataset directory with statistics and returns them.
pub fn open_stats(root: &Path) -> Result<Stats> {
    if !root.is_dir() {
        return Err(TrainError::Missing {
            path: root.into(),
            hint: " (expected a dataset directory, as written by `lemur generate`)".into(),
        });
    }
    let stats = Stats::path(root);
    if !stats.is_file() {
        return Err(TrainError::Missing {
            path: stats,
            hint: " (the dataset's normalisation statistics)".into(),
        });
    }
    Ok(Stats::load(root)?)
}

/// The provenance of a dataset directory: every split's files with their sizes.
pub fn dataset_provenance(root: &Path, stats: &Stats, grid: [usize; 2]) -> Result<DataProvenance> {
    let mut files = vec![FileEntry::of(&Stats::path(root))?];
    for split in SPLITS {
        for f in split_files(root, split)? {
            files.push(FileEntry::of(&f)?);
        }
    }
    Ok(DataProvenance {
        kind: "well".into(),
        root: absolute(root),
        files,
        channels: stats.channels.clone(),
        grid,
    })
}

/// Checks that a dataset's channels and grid fit a DCAE configuration.
pub fn check_fit(root: &Path, stats: &Stats, grid: [usize; 2], cfg: &DcaeConfig) -> Result<()> {
    if stats.channels.len() != cfg.pix_channels {
        return Err(TrainError::Data {
            path: root.into(),
            detail: format!(
                "the dataset has {} channels {:?}, the configuration's pix_channels is {}",
                stats.channels.len(),
                stats.channels,
                cfg.pix_channels
            ),
        });
    }
    cfg.latent_shape(grid[0], grid[1])
        .map_err(|e| TrainError::Data {
            path: root.into(),
            detail: format!("grid {}x{}: {e}", grid[0], grid[1]),
        })?;
    Ok(())
}

/// A built-in preset describes an architecture, not a dataset: its `pix_channels` becomes the
/// channel count of the dataset at `data` (5 for Euler, 4 for Rayleigh-Bénard). A file given
/// with `--config` is taken as written, and a dataset without readable statistics is left to
/// the data check, which names it.
pub fn fit_preset_to_data(config: &mut ConfigSource, data: &Path) -> Result<()> {
    let ConfigSource::Preset { name, json } = config else {
        return Ok(());
    };
    let Ok(stats) = Stats::load(data) else {
        return Ok(());
    };
    let mut v: Value = serde_json::from_str(json).map_err(|e| {
        TrainError::Options(format!("the built-in preset {name} does not parse: {e}"))
    })?;
    v["pix_channels"] = stats.channels.len().into();
    *json = serde_json::to_string(&v).expect("a JSON value serialises");
    Ok(())
}

/// Which axes `[H, W]` of the dataset at `root` are periodic, by its first training file's
/// boundary conditions; `None` where that file cannot be read (the data checks name it later).
pub fn data_periodic(root: &Path) -> Option<Periodic> {
    let file = split_files(root, "train").ok()?.into_iter().next()?;
    let file = WellFile::open(&file).ok()?;
    let meta = file.meta();
    if meta.n_spatial_dims != 2 {
        return None;
    }
    Some(Periodic([0, 1].map(|axis| {
        meta.axis_boundary(axis) == Some(BoundaryType::Periodic)
    })))
}

/// How a configuration pads, in words.
fn padding(p: Periodic) -> &'static str {
    match p.0 {
        [true, true] => "circular",
        [false, false] => "zeros",
        [true, false] => "circular along H and zeros along W",
        [false, true] => "zeros along H and circular along W",
    }
}

/// Zeros padding at a periodic boundary makes the network learn the wrap-around from the
/// data: on the built-in periodic Euler data, 400 fine-tuning steps from the same weights
/// reconstruct 11-12% better with circular padding than with zeros (Rayleigh-Bénard, periodic
/// in x only: 5-7%). So a new run from a preset or from `--init` pads circularly along exactly
/// the axes its data is periodic along (the weights are the same either way). A configuration
/// file is taken as written, and a resumed run keeps its padding. With `--freeze-encoder` the
/// run keeps `--init`'s padding: the encoder's makes the latents, and a decoder retrained alone
/// to another padding than its encoder's reconstructed worse (crates/lemur-train/README.md).
fn fit_padding_to_data(start: &mut Start, args: &AutoencoderArgs) {
    if start.resumed.is_some() || matches!(args.common.config, Some(ConfigSource::File(_))) {
        return;
    }
    let Some(periodic) = args.data.as_deref().and_then(data_periodic) else {
        return;
    };
    let stored: Periodic = start
        .model_config
        .get("periodic")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if stored == periodic {
        return;
    }
    let Some((dir, _)) = &start.init else {
        start.model_config["periodic"] =
            serde_json::to_value(periodic).expect("a padding serialises");
        return;
    };
    if start.options.freeze_encoder {
        eprintln!(
            "lemur: --init {} pads with {}; with its encoder frozen the new run keeps that \
             padding, though its data's boundaries ask for {}",
            dir.display(),
            padding(stored),
            padding(periodic),
        );
        return;
    }
    start.model_config["periodic"] = serde_json::to_value(periodic).expect("a padding serialises");
    eprintln!(
        "lemur: --init {} pads with {}; the new run pads with {}, as its data's boundaries ask",
        dir.display(),
        padding(stored),
        padding(periodic),
    );
}

/// With the encoder frozen, the step whose latents this run keeps (see
/// [`CheckpointMeta::latent_step`]): its `--init`'s, or what the resumed run recorded.
fn encoder_step(start: &Start) -> Option<u32> {
    if !start.options.freeze_encoder {
        return None;
    }
    match (&start.init, &start.resumed) {
        (Some((_, init)), _) => Some(init.latent_step()),
        (None, Some(run)) => Some(run.latent_step()),
        (None, None) => None,
    }
}

/// Arguments of `lemur train autoencoder`.
#[derive(Clone, Debug)]
pub struct AutoencoderArgs {
    /// The dataset; optional with `--resume` (then the run's own).
    pub data: Option<PathBuf>,
    pub common: CommonArgs,
}

/// Frame batches `(B, C, H, W)` for the DCAE.
struct Frames<B: Backend> {
    backend: B,
    model: Dcae<B>,
    train: WellDataset,
    valid: WellDataset,
    options: TrainOptions,
    loss: Loss,
    model_seed: u64,
    val_seed: u64,
}

impl<B: Backend> Frames<B> {
    fn batch(
        &self,
        ds: &WellDataset,
        pick: impl Fn(usize) -> Result<Vec<f32>>,
    ) -> Result<Tensor<B>> {
        let [_, c, h, w] = ds.window_shape();
        let n = self.options.batch;
        let mut data = Vec::with_capacity(n * c * h * w);
        for j in 0..n {
            data.extend(pick(j)?);
        }
        Ok(Tensor::from_slice(&self.backend, &data, &[n, c, h, w])?)
    }
}

impl<B: Backend> Objective<B> for Frames<B> {
    fn train_loss(&mut self, step: u32, micro: usize) -> Result<Tensor<B>> {
        let (seed, n) = (self.options.seed, self.train.len());
        let x = self.batch(&self.train, |j| {
            let i = batch::index(seed, Stream::TrainIndex, step, micro, j, n);
            let w = if self.options.augment {
                self.train.sample(
                    i,
                    batch::item_seed(seed, Stream::TrainAugment, step, micro, j),
                )?
            } else {
                self.train.window(i)?
            };
            Ok(w.data)
        })?;
        let ctx = TrainCtx {
            seed: self.model_seed,
            step: batch::pass(step, self.options.accum, micro),
        };
        Ok(match self.options.freeze_encoder {
            true => self.model.decoder_loss(&x, self.loss, Some(&ctx))?,
            false => self.model.loss(&x, self.loss, Some(&ctx))?,
        })
    }

    fn val_loss(&mut self, index: usize) -> Result<Option<Tensor<B>>> {
        if self.valid.is_empty() {
            return Ok(None);
        }
        let n = self.valid.len();
        let x = self.batch(&self.valid, |j| {
            Ok(self
                .valid
                .window(batch::index(
                    self.val_seed,
                    Stream::ValIndex,
                    0,
                    index,
                    j,
                    n,
                ))?
                .data)
        })?;
        Ok(Some(self.model.loss(&x, self.loss, None)?))
    }
}

/// Defaults of the autoencoder (DESIGN.md: AdamW is the first step; the reference uses PSGD).
pub fn defaults() -> TrainOptions {
    TrainOptions {
        window: 1,
        stride: 1,
        ..TrainOptions::defaults()
    }
}

/// Trains (or resumes) an autoencoder run.
pub fn train(args: &AutoencoderArgs) -> Result<Summary> {
    let mut start = session::start(
        ModelKind::Autoencoder,
        &args.common,
        defaults(),
        normalise_config,
    )?;
    if start.options.freeze_encoder && start.init.is_none() && start.resumed.is_none() {
        return Err(TrainError::Options(
            "--freeze-encoder trains the decoder of a trained autoencoder: give its run with \
             --init (a new run's encoder is random)"
                .into(),
        ));
    }
    if start.options.context_noise != 0.0 {
        return Err(TrainError::Options(
            "--context-noise perturbs the context frames of the emulators' windows; an \
             autoencoder has none"
                .into(),
        ));
    }
    fit_padding_to_data(&mut start, args);
    let backend = AnyBackend::open_blocking(args.common.backend)?;
    eprintln!("lemur: backend {}", backend.name());
    match backend {
        AnyBackend::Cpu(b) => train_on(b, args, start),
        AnyBackend::Gpu(b) => train_on(b, args, start),
    }
}

fn train_on<B: Backend>(backend: B, args: &AutoencoderArgs, start: Start) -> Result<Summary> {
    let cfg = parse_config(&start.model_config)?;
    let loss = parse_loss(&start.options.loss)?;
    let root = match (&args.data, &start.resumed) {
        (Some(d), _) => d.clone(),
        (None, Some(meta)) => meta.data.root.clone(),
        (None, None) => {
            return Err(TrainError::Options(
                "--data DIR is required for a new run".into(),
            ));
        }
    };
    let stats = open_stats(&root)?;
    let spec = WindowSpec {
        length: 1,
        stride: 1,
    };
    let first = start.options.first_frame;
    let train = WellDataset::open(&root, "train", spec)?.starting_at(first);
    let valid = WellDataset::open(&root, "valid", spec)?.starting_at(first);
    if train.is_empty() {
        return Err(TrainError::Data {
            path: root.clone(),
            detail: match first {
                0 => "the train split has no frames".into(),
                f => format!("the train split has no frames from frame {f} on (--first-frame)"),
            },
        });
    }
    let [_, _, h, w] = train.window_shape();
    check_fit(&root, &stats, [h, w], &cfg)?;
    check_batch(start.options.batch, &[stats.channels.len(), h, w])?;
    // An imported run's grid is the reference's data, recorded, not trained on by lemur:
    // fine-tuning may use any grid the model takes.
    if let Some(meta) = &start.resumed
        && (meta.data.channels != stats.channels
            || (meta.data.grid != [h, w] && !session::imported(meta)))
    {
        return Err(TrainError::Data {
            path: root.clone(),
            detail: format!(
                "the run was trained on channels {:?} at {:?}, this dataset has {:?} at {:?}",
                meta.data.channels,
                meta.data.grid,
                stats.channels,
                [h, w]
            ),
        });
    }
    if let Some((dir, meta)) = &start.init
        && meta.data.channels != stats.channels
    {
        return Err(TrainError::Data {
            path: root.clone(),
            detail: format!(
                "--init {}: its autoencoder was trained on channels {:?}, this dataset has {:?}",
                dir.display(),
                meta.data.channels,
                stats.channels
            ),
        });
    }
    let mut params = ParamStore::new();
    let model = Dcae::new(
        &cfg,
        &mut Builder::with_memory_limit(
            &backend,
            &mut params,
            start.options.seed,
            session::trainable_params(),
        ),
    )
    .map_err(|e| session::model_error(&args.common, e))?;
    let restored = session::restore(&start, &params)?;
    let template = CheckpointMeta {
        format: FORMAT.into(),
        kind: ModelKind::Autoencoder,
        step: 0,
        dir: String::new(),
        model_config: start.model_config.clone(),
        options: start.options.clone(),
        backend: backend.name(),
        stats: stats.clone(),
        data: dataset_provenance(&root, &stats, [h, w])?,
        extra: session::with_init(&start, {
            let mut extra = serde_json::json!({ "latent_shape": cfg.latent_shape(h, w)? });
            if let Some(step) = encoder_step(&start) {
                extra["encoder_step"] = step.into();
            }
            extra
        }),
        git_revision: git_revision(),
        loss: None,
        val_loss: None,
        params: model.param_count(),
        elapsed_s: 0.0,
        created_unix: 0,
    };
    let seed = start.options.seed;
    let mut objective = Frames {
        backend: backend.clone(),
        model,
        train,
        valid,
        options: start.options.clone(),
        loss,
        model_seed: batch::model_seed(seed, Stream::Model),
        val_seed: batch::model_seed(seed, Stream::ValModel),
    };
    let mut trainer = start.trainer(&args.common, &backend, &params, restored, template);
    trainer.train(&mut objective)
}
