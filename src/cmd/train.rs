//! `lemur train autoencoder|diffusion|surrogate`: headless training runs (see
//! `crates/lemur-train/README.md` for the run directory, resume semantics and log format).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use lemur_train::{CommonArgs, ConfigSource, ModelKind, Overrides, Summary};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// The DCAE autoencoder on the frames of a dataset (`lemur generate`).
    Autoencoder {
        /// Dataset directory (with stats.json); defaults to the run's when resuming.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Train the decoder alone, from --init's weights: the encoder, and so the latents the
        /// emulators were trained on, stay as they are (padding included). Kept by --resume.
        #[arg(long)]
        freeze_encoder: bool,
        #[command(flatten)]
        common: TrainArgs,
    },
    /// The EDM diffusion denoiser on windows of a latent cache (`lemur encode`).
    Diffusion {
        /// Latent cache directory; defaults to the run's when resuming.
        #[arg(long)]
        latents: Option<PathBuf>,
        #[command(flatten)]
        emulator: EmulatorArgs,
        #[command(flatten)]
        common: TrainArgs,
    },
    /// The deterministic surrogate on windows of a latent cache (`lemur encode`).
    Surrogate {
        /// Latent cache directory; defaults to the run's when resuming.
        #[arg(long)]
        latents: Option<PathBuf>,
        #[command(flatten)]
        emulator: EmulatorArgs,
        #[command(flatten)]
        common: TrainArgs,
    },
    /// Training throughput (samples/s of one optimizer step) of the small presets and the
    /// issue's fixed configurations, on each backend.
    Bench(super::bench_training::BenchTrainingArgs),
}

/// Options of the emulators alone.
#[derive(clap::Args, Clone, Debug)]
pub struct EmulatorArgs {
    /// Standard deviation of Gaussian noise on the context frames of training windows
    /// (the latent cache's units; the targets and validation stay clean), so that the emulator
    /// learns to predict from a slightly wrong state, as in a rollout. Kept by --resume
    /// [default: 0, the reference's training].
    #[arg(long)]
    pub context_noise: Option<f32>,
}

/// The measuring options of `lemur bench training` (and its alias `lemur train bench`).
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Backends to measure: cpu, gpu or both.
    #[arg(long, default_value = "both")]
    pub backend: String,
    /// Minimum measuring time per figure, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub min_ms: u64,
    /// Only the configurations whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

/// Options shared by every model. Unset options take the defaults of a new run, or the
/// stored values of a resumed one.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// Model configuration: a built-in preset (tiny, small, paper; or the full name such as
    /// autoencoder-small) or a JSON file. With --resume it is optional and must match the run's.
    #[arg(long)]
    pub config: Option<String>,
    /// New run directory.
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Fine-tune: the new run (--out) starts from the weights of this run's latest checkpoint,
    /// of one checkpoint directory, or of an embedded run (pretrained-autoencoder, pretrained,
    /// pretrained-surrogate; pretrained-rb-* for Rayleigh-Bénard), with a fresh optimizer and
    /// schedule. --config defaults to its
    /// configuration.
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Total optimizer steps [default: 1000].
    #[arg(long)]
    pub steps: Option<u32>,
    /// Samples per micro-batch [default: 16].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Micro-batches accumulated per optimizer step [default: 1].
    #[arg(long)]
    pub accum: Option<usize>,
    /// Peak learning rate of the cosine schedule [default: 1e-4].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Linear warmup steps [default: 0].
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Global gradient-norm clipping (0: off) [default: 1].
    #[arg(long)]
    pub clip: Option<f32>,
    /// Decoupled weight decay [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Overrides the configuration's dropout.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Seed of the initialisation, batches and model randomness [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training loss (autoencoder: vrmse, mse or mae) [default: vrmse].
    #[arg(long)]
    pub loss: Option<String>,
    /// Optimizer: adamw, or soap (Adam in the eigenbasis of Shampoo's preconditioner; betas
    /// (0.95, 0.95)). Kept by --resume [default: adamw].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// SOAP: refresh the eigenbases of each parameter's preconditioner every N of its steps;
    /// fewer refreshes cost less time and track the curvature less closely [default: 10].
    #[arg(long)]
    pub precondition_frequency: Option<u32>,
    /// SOAP: axes longer than this are not rotated (plain Adam along them); bounds each
    /// eigendecomposition's cost [default: 512].
    #[arg(long)]
    pub max_precond_dim: Option<usize>,
    /// Backend: gpu, cpu or auto [default: $LEMUR_BACKEND, else auto].
    #[arg(long)]
    pub backend: Option<String>,
    /// Checkpoint and validate every N steps (and at the end) [default: 100].
    #[arg(long)]
    pub checkpoint_every: Option<u32>,
    /// Validation batches per evaluation (0: none) [default: 4].
    #[arg(long)]
    pub val_batches: Option<usize>,
    /// A log line every N steps [default: 10].
    #[arg(long)]
    pub log_every: Option<u32>,
    /// Emulators: frames per training window [default: 5].
    #[arg(long)]
    pub window: Option<usize>,
    /// Emulators: cached frames between consecutive window frames [default: 4].
    #[arg(long)]
    pub stride: Option<usize>,
    /// Train and validate only on what starts at this frame of each trajectory or later:
    /// the autoencoder's frames, the emulators' windows. Skips an initial transient, such as
    /// Rayleigh-Bénard's motionless conduction state (where `lemur eval` starts at frame 80).
    /// Kept by --resume [default: 0].
    #[arg(long)]
    pub first_frame: Option<usize>,
    /// Keep an exponential moving average of the weights with this decay (0.999 averages about
    /// the last 1000 steps): checkpoints, validation, eval, rollouts and --init use the
    /// average, training goes on from the raw weights. Kept by --resume [default: 0, none, the
    /// reference's training].
    #[arg(long)]
    pub ema: Option<f32>,
    /// Stop after this step with a checkpoint, as if interrupted (resume continues the run).
    #[arg(long)]
    pub stop_after: Option<u32>,
    /// Fit this session into a time: 90s, 45m, 8h (a bare number is seconds). Once the rate is
    /// measured, --steps is lowered to the steps that fit (and fitted again as the rate
    /// changes), so the cosine schedule still ends at the last step; the run also stops with a
    /// checkpoint at the limit (resume continues it).
    #[arg(long, value_parser = parse_duration)]
    pub time_limit: Option<f64>,
}

/// Seconds from `90`, `90s`, `45m` or `8h`.
fn parse_duration(text: &str) -> std::result::Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1.0),
        Some((i, 'm')) => (&t[..i], 60.0),
        Some((i, 'h')) => (&t[..i], 3600.0),
        _ => (t, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "'{text}' is not a positive duration (seconds, or a number with s, m or h: 90s, 45m, 8h)"
        )),
    }
}

impl TrainArgs {
    pub fn common(&self, kind: ModelKind) -> Result<CommonArgs> {
        if let Some(out) = &self.out {
            super::common::check_out_dir(out)?;
        }
        Ok(CommonArgs {
            config: self
                .config
                .as_deref()
                .map(|value| config_source(kind, value))
                .transpose()?,
            out: self.out.clone(),
            resume: self.resume.clone(),
            init: self
                .init
                .as_deref()
                .map(super::pretrained::resolve)
                .transpose()?,
            overrides: Overrides {
                steps: self.steps,
                batch: self.batch,
                accum: self.accum,
                lr: self.lr,
                warmup: self.warmup,
                clip: self.clip,
                weight_decay: self.weight_decay,
                dropout: self.dropout,
                seed: self.seed,
                loss: self.loss.clone(),
                optimizer: self.optimizer.clone(),
                precondition_frequency: self.precondition_frequency,
                max_precond_dim: self.max_precond_dim,
                checkpoint_every: self.checkpoint_every,
                val_batches: self.val_batches,
                log_every: self.log_every,
                window: self.window,
                stride: self.stride,
                freeze_encoder: None,
                first_frame: self.first_frame,
                context_noise: None,
                ema: self.ema,
            },
            backend: super::common::backend_kind(self.backend.as_deref())?,
            stop_after: self.stop_after,
            time_limit: self.time_limit,
            stop: Some(super::interrupt::install(
                "finishing the current step, then saving a checkpoint",
            )?),
        })
    }

    fn run_dir(&self) -> PathBuf {
        self.resume
            .clone()
            .or_else(|| self.out.clone())
            .unwrap_or_default()
    }
}

/// `word` as one shell word, so that the printed resume command can be pasted as it is.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints the summary; an interrupted run ends as an [`Interrupted`] error that says where
/// its checkpoint is and how to resume it (`main` exits with 130).
///
/// [`Interrupted`]: super::interrupt::Interrupted
fn report(kind: &str, args: &TrainArgs, s: &Summary) -> Result<()> {
    let fmt = |v: Option<f32>| v.map_or("-".to_string(), |v| format!("{v:.5}"));
    println!(
        "{kind}: step {} in {}, loss {} -> {}, val_loss {}, {:.1} samples/s",
        s.step,
        args.run_dir().display(),
        fmt(s.first_loss),
        fmt(s.last_loss),
        fmt(s.val_loss),
        s.samples_per_s
    );
    if s.out_of_time {
        // Not an error: the time was what the user asked for; a script goes on.
        let why = if s.fitted {
            "before the fitted end (the steps ran slower than at first)"
        } else {
            "before the steps' rate was measured to fit the schedule"
        };
        eprintln!(
            "lemur: --time-limit reached {why}: saved a checkpoint at step {} in {}; --resume finishes the schedule",
            s.step,
            args.run_dir().join(format!("step-{:08}", s.step)).display()
        );
    }
    if s.interrupted {
        let run = args.run_dir();
        // The backend is not stored in the run: repeat the one asked for.
        let backend = args
            .backend
            .as_deref()
            .map_or(String::new(), |b| format!(" --backend {}", shell_word(b)));
        return Err(super::interrupt::Interrupted(format!(
            "interrupted: saved a checkpoint at step {} in {}\nresume with: lemur train {kind} --resume {}{backend}",
            s.step,
            run.join(format!("step-{:08}", s.step)).display(),
            shell_word(&run.display().to_string())
        ))
        .into());
    }
    Ok(())
}

/// `--config VALUE`: an embedded preset of the model's kind, else a JSON file.
fn config_source(kind: ModelKind, value: &str) -> Result<ConfigSource> {
    let prefix = match kind {
        ModelKind::Autoencoder => "autoencoder",
        ModelKind::Diffusion => "denoiser",
        ModelKind::Surrogate => "surrogate",
    };
    if let Some(json) = super::presets::builtin(prefix, value) {
        let name = if value.contains('-') {
            value.to_string()
        } else {
            format!("{prefix}-{value}")
        };
        return Ok(ConfigSource::Preset {
            name,
            json: json.to_string(),
        });
    }
    let path = PathBuf::from(value);
    if !path.is_file() {
        // A preset of another kind is a likelier slip than a missing file.
        if super::presets::PRESETS.iter().any(|(n, _)| *n == value) {
            bail!(
                "--config {value}: that preset is for another kind of model; the {prefix} presets are {}",
                super::presets::names(prefix)
            );
        }
        if value.contains(std::path::MAIN_SEPARATOR) || value.ends_with(".json") {
            bail!(
                "--config {value}: the file does not exist (the built-in {prefix} presets are {})",
                super::presets::names(prefix)
            );
        }
        bail!(
            "--config {value}: neither a built-in {prefix} preset nor a file; the presets are {}",
            super::presets::names(prefix)
        );
    }
    Ok(ConfigSource::File(path))
}

pub fn run(command: TrainCommand) -> Result<()> {
    let fresh_out = match &command {
        TrainCommand::Autoencoder { common, .. }
        | TrainCommand::Diffusion { common, .. }
        | TrainCommand::Surrogate { common, .. } => common.out.clone().filter(|o| !o.exists()),
        TrainCommand::Bench(_) => None,
    };
    let result = run_command(command);
    // A new run refused before its first checkpoint (bad data, a batch too large for memory)
    // leaves nothing that looks like a run: the directory it created goes.
    if result.is_err()
        && let Some(out) = fresh_out
        && out.is_dir()
        && !out.join(lemur_train::run::META_FILE).exists()
        && let Err(e) = std::fs::remove_dir_all(&out)
    {
        eprintln!(
            "lemur: could not remove the unstarted run {}: {e}",
            out.display()
        );
    }
    result
}

fn run_command(command: TrainCommand) -> Result<()> {
    match command {
        TrainCommand::Autoencoder {
            data,
            freeze_encoder,
            common,
        } => {
            let mut args = lemur_train::autoencoder::AutoencoderArgs {
                data,
                common: common.common(ModelKind::Autoencoder)?,
            };
            args.common.overrides.freeze_encoder = freeze_encoder.then_some(true);
            if let (Some(config), Some(data)) = (&mut args.common.config, &args.data) {
                lemur_train::autoencoder::fit_preset_to_data(config, data)?;
            }
            report(
                "autoencoder",
                &common,
                &lemur_train::autoencoder::train(&args)?,
            )?;
        }
        TrainCommand::Diffusion {
            latents,
            emulator: options,
            common,
        } => emulator(ModelKind::Diffusion, latents, &options, &common)?,
        TrainCommand::Surrogate {
            latents,
            emulator: options,
            common,
        } => emulator(ModelKind::Surrogate, latents, &options, &common)?,
        TrainCommand::Bench(args) => super::bench_training::run(&args)?,
    }
    Ok(())
}

fn emulator(
    kind: ModelKind,
    latents: Option<PathBuf>,
    options: &EmulatorArgs,
    common: &TrainArgs,
) -> Result<()> {
    let mut args = lemur_train::emulator::EmulatorArgs {
        latents,
        common: common.common(kind)?,
    };
    args.common.overrides.context_noise = options.context_noise;
    if let (Some(config), Some(latents)) = (&mut args.common.config, &args.latents) {
        lemur_train::emulator::fit_preset_to_latents(config, latents)?;
    }
    let summary = lemur_train::emulator::train(kind, &args)?;
    report(&kind.to_string(), common, &summary)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_take_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("90"), Ok(90.0));
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("2.5m"), Ok(150.0));
        assert_eq!(parse_duration(" 8h "), Ok(28_800.0));
        for bad in ["", "m", "-5m", "0", "10d", "inf", "1e400"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }
}
