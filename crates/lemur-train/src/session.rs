//! Starting or resuming a run: the run directory, the model configuration (checked against
//! the checkpoint's), the options, and the model's parameters and optimizer state.

use std::path::{Path, PathBuf};

use lemur_tensor::{Backend, BackendKind, Optimizer, ParamStore};
use serde_json::Value;

use crate::ema::Ema;
use crate::error::{Result, TrainError, io_err, json_err};
use crate::options::{Overrides, TrainOptions, apply_dropout};
use crate::run::{CheckpointMeta, ModelKind, RunDir};
use crate::trainer::Trainer;

/// A model configuration as given to `--config`: a JSON file, or a preset embedded in the
/// binary (so that an installed `lemur` needs no source tree).
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    Preset { name: String, json: String },
}

impl ConfigSource {
    fn read(&self) -> Result<Value> {
        match self {
            Self::File(path) => read_json(path),
            Self::Preset { name, json } => serde_json::from_str(json).map_err(|e| {
                TrainError::Options(format!("the built-in preset {name} does not parse: {e}"))
            }),
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Preset { name, .. } => write!(f, "{name} (built-in preset)"),
        }
    }
}

/// What every `lemur train` command takes.
#[derive(Clone, Debug)]
pub struct CommonArgs {
    /// The model configuration. Optional with `resume`, where it must then match.
    pub config: Option<ConfigSource>,
    /// A new run directory.
    pub out: Option<PathBuf>,
    /// An existing run to continue.
    pub resume: Option<PathBuf>,
    /// A new run (`out`) starts from this run's weights (its latest checkpoint) or from this
    /// checkpoint directory, with a fresh optimizer and schedule: fine-tuning.
    pub init: Option<PathBuf>,
    pub overrides: Overrides,
    pub backend: BackendKind,
    /// Stop after this step (with a checkpoint), as if interrupted there.
    pub stop_after: Option<u32>,
    /// Fit this session into this many seconds (see `trainer::fit_steps`).
    pub time_limit: Option<f64>,
    /// Set on an interrupt (the binary's Ctrl-C handler): training checkpoints the step in
    /// progress and returns.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// A run ready to build its model.
#[derive(Debug)]
pub struct Start {
    pub run: RunDir,
    /// The model configuration, normalised by the model's own parser.
    pub model_config: Value,
    pub options: TrainOptions,
    /// The checkpoint continued from, if resuming.
    pub resumed: Option<CheckpointMeta>,
    /// The checkpoint directory and metadata a new run's weights start from (`--init`).
    pub init: Option<(PathBuf, CheckpointMeta)>,
}

impl Start {
    /// The trainer of this session: the run's options, its earlier training time, the rate it
    /// last trained at on `backend`, and the session's stop conditions from `args`.
    pub fn trainer<'a, B: Backend>(
        &self,
        args: &CommonArgs,
        backend: &B,
        params: &'a ParamStore<B>,
        (optimizer, ema): (Optimizer<B>, Option<Ema<B>>),
        template: CheckpointMeta,
    ) -> Trainer<'a, B> {
        Trainer {
            run: self.run.clone(),
            params,
            optimizer,
            ema,
            options: self.options.clone(),
            template,
            elapsed_before: self.resumed.as_ref().map_or(0.0, |m| m.elapsed_s),
            stop_after: args.stop_after,
            time_limit: args.time_limit,
            prior_rate: measured_rate(self, &backend.name()),
            last_good: last_good(self),
            stop: args.stop.clone(),
        }
    }
}

/// The most parameters this machine can train: its available memory (Linux's
/// `MemAvailable`) over 16 bytes a parameter (f32 weights, gradients and two optimizer moments).
/// Activations come on top, so this refuses only what cannot fit at all, before allocating;
/// without `/proc/meminfo` there is no limit.
pub fn trainable_params() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("MemAvailable:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
        })
        .map_or(usize::MAX, |kb| kb.saturating_mul(1024) / 16)
}

/// Names the model configuration in an error from building the model (a model too large to
/// train, a size the model refuses).
pub fn model_error(args: &CommonArgs, e: impl std::fmt::Display) -> TrainError {
    match &args.config {
        Some(source) => TrainError::Options(format!("--config {source}: {e}")),
        None => TrainError::Options(format!("the run's model configuration: {e}")),
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(json_err(path))
}

/// The kind of model a configuration file describes, from its shape: `"arch": "dcae"` is an
/// autoencoder, a ViT with a noise `schedule` a diffusion denoiser, any other ViT a surrogate.
pub fn config_kind(v: &Value) -> Option<ModelKind> {
    match v.get("arch")?.as_str()? {
        "dcae" => Some(ModelKind::Autoencoder),
        "vit" if v.get("schedule").is_some() => Some(ModelKind::Diffusion),
        "vit" => Some(ModelKind::Surrogate),
        _ => None,
    }
}

fn article(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Autoencoder => "an autoencoder",
        ModelKind::Diffusion => "a diffusion (denoiser)",
        ModelKind::Surrogate => "a surrogate",
    }
}

fn preset_prefix(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Autoencoder => "autoencoder",
        ModelKind::Diffusion => "denoiser",
        ModelKind::Surrogate => "surrogate",
    }
}

/// The keys whose values differ between two JSON objects (for mismatch messages).
fn differing_keys(a: &Value, b: &Value) -> Vec<String> {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| {
                    format!(
                        "{k}: {} in the checkpoint, {} given",
                        b.get(k).unwrap_or(&Value::Null),
                        a.get(k).unwrap_or(&Value::Null)
                    )
                })
                .collect()
        }
        _ => vec!["the configurations differ".into()],
    }
}

/// Opens or creates the run. `normalise` parses a configuration with the model's own type
/// and serialises it back, so that equal models compare equal whatever defaults were spelled
/// out in the file.
pub fn start(
    kind: ModelKind,
    args: &CommonArgs,
    defaults: TrainOptions,
    normalise: impl Fn(Value) -> Result<Value>,
) -> Result<Start> {
    let given = |source: &ConfigSource| -> Result<Value> {
        let v = source.read()?;
        let kind_of = config_kind(&v);
        normalise(apply_dropout(v, args.overrides.dropout)?).map_err(|e| match kind_of {
            // A configuration of another kind fails on its first foreign field; say what it is.
            Some(other) if other != kind => TrainError::Options(format!(
                "--config {source}: this is {} configuration, and `train {kind}` needs {} one \
                 (e.g. --config {}-tiny)",
                article(other),
                article(kind),
                preset_prefix(kind)
            )),
            // Name the file: the error alone says what is wrong, not where.
            _ => TrainError::Options(format!("--config {source}: {e}")),
        })
    };
    match (&args.resume, &args.out) {
        (Some(resume), out) => {
            if let Some(init) = &args.init {
                return Err(TrainError::Options(format!(
                    "--init {} and --resume {}: --init starts a new run (--out) from another \
                     run's weights; a resumed run continues from its own",
                    init.display(),
                    resume.display()
                )));
            }
            if let Some(out) = out
                && out != resume
            {
                return Err(TrainError::Options(format!(
                    "--out {} and --resume {}: a resumed run continues in its own directory; give only --resume",
                    out.display(),
                    resume.display()
                )));
            }
            let run = RunDir::open(resume)?;
            let meta = run.latest()?;
            let pointer = run.path.join(crate::run::META_FILE);
            if meta.kind != kind {
                return Err(TrainError::Mismatch {
                    path: pointer,
                    detail: format!("the run trains a {} model, not a {kind} model", meta.kind),
                });
            }
            let stored =
                normalise(meta.model_config.clone()).map_err(|e| TrainError::Mismatch {
                    path: pointer.clone(),
                    detail: format!("its model configuration no longer parses: {e}"),
                })?;
            let model_config = match &args.config {
                Some(path) => same_model(given(path)?, &stored, args).map_err(|diff| {
                    TrainError::Mismatch {
                        path: pointer,
                        detail: format!("--config {path} describes another model ({diff})"),
                    }
                })?,
                None => {
                    let cfg = normalise(apply_dropout(stored.clone(), args.overrides.dropout)?)?;
                    if cfg != stored {
                        return Err(TrainError::Mismatch {
                            path: pointer,
                            detail: "--dropout differs from the run's; resume without it".into(),
                        });
                    }
                    cfg
                }
            };
            let options = if imported(&meta) && meta.step == 0 {
                // No step has been taken under the stored options (the reference's settings,
                // as defaults), so any of them may change, as for a new run.
                TrainOptions::new_run(meta.options.clone(), &args.overrides)?
            } else {
                TrainOptions::resume(&meta.options, &args.overrides)?
            };
            if meta.step >= options.steps {
                return Err(TrainError::Options(format!(
                    "the run already completed {} of {} steps; pass a larger --steps to continue it",
                    meta.step, options.steps
                )));
            }
            run.prepare_resume(meta.step)?;
            Ok(Start {
                run,
                model_config,
                options,
                resumed: Some(meta),
                init: None,
            })
        }
        (None, Some(out)) => {
            let init = args.init.as_deref().map(locate_init(kind)).transpose()?;
            let model_config = match (&args.config, &init) {
                (Some(source), None) => given(source)?,
                (source, Some((dir, meta))) => init_config(
                    kind,
                    dir,
                    meta,
                    source.as_ref().map(given).transpose()?,
                    args,
                    &normalise,
                )?,
                (None, None) => {
                    return Err(TrainError::Options(format!(
                        "--config is required for a new run: a built-in preset (tiny, small, \
                         paper, or {0}-tiny, ...) or a JSON file (or --init RUN to start from \
                         a trained run's weights and configuration)",
                        preset_prefix(kind)
                    )));
                }
            };
            let options = TrainOptions::new_run(defaults, &args.overrides)?;
            let run = RunDir::create(out)?;
            Ok(Start {
                run,
                model_config,
                options,
                resumed: None,
                init,
            })
        }
        (None, None) => Err(TrainError::Options(
            "give --out RUN for a new run or --resume RUN to continue one".into(),
        )),
    }
}

/// `--init PATH`: the checkpoint a new run starts from, which must train the same kind of
/// model.
fn locate_init(kind: ModelKind) -> impl Fn(&Path) -> Result<(PathBuf, CheckpointMeta)> {
    move |path| {
        let (dir, meta) = crate::run::locate(path)?;
        if meta.kind != kind {
            return Err(TrainError::Mismatch {
                path: dir.join(crate::run::META_FILE),
                detail: format!(
                    "--init {}: the run trains {} model, and `train {kind}` needs {} one",
                    path.display(),
                    article(meta.kind),
                    article(kind)
                ),
            });
        }
        Ok((dir, meta))
    }
}

/// The configuration of a run started from `--init`: the initial run's (with `--dropout`
/// applied), or `--config` where it describes the same model.
fn init_config(
    kind: ModelKind,
    dir: &Path,
    meta: &CheckpointMeta,
    given: Option<Value>,
    args: &CommonArgs,
    normalise: &impl Fn(Value) -> Result<Value>,
) -> Result<Value> {
    let file = dir.join(crate::run::META_FILE);
    let stored = normalise(apply_dropout(
        meta.model_config.clone(),
        args.overrides.dropout,
    )?)
    .map_err(|e| TrainError::Mismatch {
        path: file.clone(),
        detail: format!("its {kind} configuration does not parse: {e}"),
    })?;
    let Some(cfg) = given else {
        return Ok(stored);
    };
    same_model(cfg, &stored, args).map_err(|diff| {
        let source = args
            .config
            .as_ref()
            .expect("a given configuration has a source");
        TrainError::Mismatch {
            path: file,
            detail: format!(
                "--config {source} describes another model than --init's ({diff}); leave out \
                 --config to take the initial run's"
            ),
        }
    })
}

/// The keys of a model configuration that describe its data, not its architecture: a built-in
/// preset takes them from the data of a new run (`autoencoder::fit_preset_to_data`,
/// `emulator::fit_preset_to_latents`, and the autoencoder's padding in
/// `autoencoder::train`), or from the run it must match.
const DATA_KEYS: [&str; 4] = ["pix_channels", "periodic", "channels", "label_features"];

/// `--config`'s configuration where it describes the `stored` run's model, else the keys that
/// differ. Without `--dropout` the stored (possibly overridden) dropout stands, and a built-in
/// preset takes the stored run's [`DATA_KEYS`].
fn same_model(
    mut cfg: Value,
    stored: &Value,
    args: &CommonArgs,
) -> std::result::Result<Value, String> {
    let mut inherited: Vec<&str> = Vec::new();
    if args.overrides.dropout.is_none() {
        inherited.push("dropout");
    }
    if matches!(args.config, Some(ConfigSource::Preset { .. })) {
        inherited.extend(DATA_KEYS);
    }
    if let Some(c) = cfg.as_object_mut() {
        for key in inherited {
            if let Some(v) = stored.get(key) {
                c.insert(key.into(), v.clone());
            }
        }
    }
    if cfg != *stored {
        return Err(differing_keys(&cfg, stored).join("; "));
    }
    Ok(cfg)
}

/// Where a run's weights started, for its checkpoints' `extra.init`: the `--init` checkpoint
/// of a new run, else the record a resumed run already carries.
pub fn init_record(start: &Start) -> Option<Value> {
    match (&start.init, &start.resumed) {
        (Some((dir, meta)), _) => Some(serde_json::json!({
            "path": crate::provenance::absolute(dir),
            "step": meta.step,
            "dataset_name": meta.stats.dataset_name,
            "git_revision": meta.git_revision,
        })),
        (None, Some(meta)) => meta.extra.get("init").cloned(),
        (None, None) => None,
    }
}

/// Adds [`init_record`] to a checkpoint template's `extra` object.
pub fn with_init(start: &Start, mut extra: Value) -> Value {
    if let (Some(record), Some(obj)) = (init_record(start), extra.as_object_mut()) {
        obj.insert("init".into(), record);
    }
    extra
}

/// A run imported from the reference implementation (`lemur import lola`) and not trained by
/// lemur since: its weights come without optimizer moments, and its data was described by the
/// reference's configuration (grid included) rather than read by lemur.
pub fn imported(meta: &CheckpointMeta) -> bool {
    meta.extra.get("imported").is_some()
}

/// After the model is built: an optimizer, with the checkpoint's weights and moments loaded
/// when resuming, and the run's weight average (`--ema`) if it keeps one.
pub fn restore<B: Backend>(
    start: &Start,
    params: &ParamStore<B>,
) -> Result<(Optimizer<B>, Option<Ema<B>>)> {
    let mut optimizer = start.options.optimizer();
    let decay = start.options.ema;
    let mut ema = None;
    if let Some((dir, _)) = &start.init {
        let (path, weights) = crate::run::read_weights_at(dir)?;
        params.load_host(&weights, &path)?;
    }
    if let Some(meta) = &start.resumed {
        let (path, weights) = start.run.read_weights(meta)?;
        params.load_host(&weights, &path)?;
        let (path, mut moments) = start.run.read_optimizer(meta)?;
        if decay > 0.0 {
            ema = Some(Ema::resume(params, decay, &mut moments, &path)?);
        }
        // Every key is `<parameter>.<one of this optimizer's state tensors>`.
        let suffixes = optimizer.state_suffixes();
        let known = |key: &String| {
            params.iter().any(|(n, _)| {
                key.strip_prefix(n)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|s| suffixes.contains(&s))
            })
        };
        if !moments.keys().all(known) {
            return Err(TrainError::Mismatch {
                path: start.run.checkpoint_path(meta).join(crate::run::OPTIM_FILE),
                detail: "optimizer moments name parameters the model does not have".into(),
            });
        }
        if moments.is_empty() && imported(meta) {
            eprintln!(
                "lemur: {} was imported from the reference implementation, which saves weights \
                 only: the optimizer ({}) starts from fresh moments",
                start.run.path.display(),
                start.options.optimizer
            );
        }
        optimizer.load_state(params, &moments, meta.step)?;
    }
    if ema.is_none() && decay > 0.0 {
        ema = Some(Ema::new(params, decay)?);
    }
    Ok((optimizer, ema))
}

/// Steps per second of a resumed run's last session, for a time-limited session to fit its
/// schedule from its first step (see [`crate::trainer::TimeFit::fit_prior`]): the median
/// `samples_per_s` of the log's last lines up to the checkpoint resumed, over the samples of a
/// step. `None` for a new run, a log without rates, or a checkpoint trained on another backend
/// (`backend`, as [`Backend::name`] gives it): a CPU's rate says nothing about a GPU's.
pub fn measured_rate(start: &Start, backend: &str) -> Option<f64> {
    /// Enough lines to outvote an interval slowed by a checkpoint or other work.
    const LINES: usize = 8;
    let meta = start.resumed.as_ref().filter(|m| m.backend == backend)?;
    let log = start.run.read_log().ok()?;
    let mut rates: Vec<f64> = log
        .iter()
        .filter(|l| l.step <= meta.step && l.samples_per_s.is_finite() && l.samples_per_s > 0.0)
        .map(|l| l.samples_per_s)
        .collect();
    rates.drain(..rates.len().saturating_sub(LINES));
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    Some(rates[rates.len() / 2] / start.options.samples_per_step() as f64)
}

/// A description of the latest checkpoint for error messages.
fn last_good(start: &Start) -> String {
    match &start.resumed {
        Some(meta) => format!(
            "{} (step {})",
            start.run.checkpoint_path(meta).display(),
            meta.step
        ),
        None => format!("none yet in {}", start.run.path.display()),
    }
}
