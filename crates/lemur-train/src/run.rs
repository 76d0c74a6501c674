//! The run directory: atomic checkpoints, the pointer to the latest one, and the JSONL log.
//!
//! ```text
//! RUN/
//!   checkpoint.json          pointer: the latest complete checkpoint's metadata + its "dir"
//!   log.jsonl                one JSON object per line (see LogLine)
//!   step-00000100/           a complete checkpoint
//!     model.safetensors      weights (reference parameter names); with --ema, their average
//!     optimizer.safetensors  AdamW moments (<param>.exp_avg, <param>.exp_avg_sq), or SOAP's;
//!                            with --ema also the raw weights training goes on from (<param>.raw)
//!     checkpoint.json        the same metadata as the pointer
//!   step-00000200/ ...       the previous checkpoint is kept too (KEEP)
//! ```
//!
//! A checkpoint is first written to a hidden temporary directory, every file synced, then the
//! directory is renamed to `step-N` and only then is `RUN/checkpoint.json` replaced (write to
//! a temporary file, rename). A process killed at any point leaves either the old pointer
//! (and at worst an unreferenced directory, removed on resume) or the new one, never a
//! pointer to incomplete files. Old checkpoints are renamed to a hidden name before they are
//! deleted, so a kill during the deletion never leaves a half-deleted `step-N` behind.
//!
//! `RUN/train.lock` holds an OS lock (`flock`) for as long as a process trains the run, with
//! that process's PID as its text: a second `--resume` (or `--out`) of the same directory is
//! refused instead of both writing, and a killed holder's lock goes with its process.

use std::io::Write;
use std::path::{Path, PathBuf};

use lemur_tensor::params::{read_safetensors, write_atomic, write_safetensors};
use lemur_well::dataset::Stats;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError, io_err, json_err};
use crate::options::TrainOptions;
use crate::provenance::DataProvenance;

/// The pointer file in a run directory (and the metadata file in each checkpoint).
pub const META_FILE: &str = "checkpoint.json";
pub const LOG_FILE: &str = "log.jsonl";
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIM_FILE: &str = "optimizer.safetensors";
/// The lock file of a run being trained (see the module docs).
pub const LOCK_FILE: &str = "train.lock";
/// Complete checkpoints kept in a run directory (the latest and the one before it).
pub const KEEP: usize = 2;
/// The `format` tag of checkpoint metadata.
pub const FORMAT: &str = "lemur-train-checkpoint/1";

/// Host tensors by name: `(shape, values)`.
pub use lemur_tensor::HostTensors;

/// Which model a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Autoencoder,
    Diffusion,
    Surrogate,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Autoencoder => "autoencoder",
            ModelKind::Diffusion => "diffusion",
            ModelKind::Surrogate => "surrogate",
        })
    }
}

/// Everything about a checkpoint but its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT`].
    pub format: String,
    pub kind: ModelKind,
    /// Optimizer steps completed.
    pub step: u32,
    /// The checkpoint's directory name inside the run (`step-00000100`).
    pub dir: String,
    /// The model configuration trained (with `--dropout` applied).
    pub model_config: serde_json::Value,
    pub options: TrainOptions,
    /// The backend the last stretch of training ran on.
    pub backend: String,
    /// The physical fields' normalisation statistics (for emulators: the autoencoder's).
    pub stats: Stats,
    pub data: DataProvenance,
    /// Kind-specific records: for emulators, the latent cache's autoencoder provenance and
    /// latent shape.
    #[serde(default)]
    pub extra: serde_json::Value,
    /// `git rev-parse HEAD` of the source, or `"unknown"`.
    pub git_revision: String,
    /// Mean training loss over the steps since the previous log line.
    pub loss: Option<f32>,
    pub val_loss: Option<f32>,
    /// Trainable scalars.
    pub params: usize,
    /// Training wall time over every session of the run, in seconds.
    pub elapsed_s: f64,
    /// Seconds since the Unix epoch when the checkpoint was written.
    pub created_unix: u64,
}

impl CheckpointMeta {
    /// The autoencoder step that names this autoencoder's latents
    /// ([`lemur_models::dcae::latent_step`]); emulators decode with any checkpoint whose latent
    /// step is their `autoencoder_step`.
    pub fn latent_step(&self) -> u32 {
        u32::try_from(lemur_models::dcae::latent_step(
            self.step.into(),
            &self.extra,
        ))
        .unwrap_or(self.step)
    }
}

/// One line of `log.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub step: u32,
    /// Mean training loss since the previous line.
    pub loss: f32,
    /// Validation loss, on checkpoint steps (else `null`).
    pub val_loss: Option<f32>,
    /// Learning rate of this step.
    pub lr: f32,
    /// Training samples per second since the previous line.
    pub samples_per_s: f64,
    /// Training wall time since the start of the run (all sessions), in seconds.
    pub elapsed_s: f64,
}

/// A run directory, opened for training: it holds the run's lock until the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
    /// The locked `train.lock` (released by the OS when the file closes or the process dies).
    _lock: std::sync::Arc<std::fs::File>,
}

fn step_dir_name(step: u32) -> String {
    format!("step-{step:08}")
}

fn parse_step_dir(name: &str) -> Option<u32> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Takes the run's lock, or says who holds it.
fn lock(run: &Path) -> Result<std::sync::Arc<std::fs::File>> {
    let path = run.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => {
            // The PID is only for the message of a refused process; the lock itself is the
            // OS's, so a stale PID left by a killed holder is never mistaken for a live one.
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|()| file.write_all(pid.as_bytes()))
                .map_err(io_err(&path))?;
            Ok(std::sync::Arc::new(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let pid = if holder.is_empty() {
                "PID unknown".to_string()
            } else {
                format!("PID {holder}")
            };
            Err(TrainError::Busy {
                run: run.to_path_buf(),
                detail: format!(
                    "another lemur process ({pid}) is training it; wait for it to finish or \
                     stop it (Ctrl-C saves a checkpoint), then try again (lock: {})",
                    path.display()
                ),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Removes a directory by first renaming it to a hidden name (`.step-N.del-PID`, removed by
/// the next resume if this process dies first), so that no `step-N` is ever half-deleted.
fn remove_checkpoint_dir(dir: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let doomed = dir.with_file_name(format!(".{name}.del-{}", std::process::id()));
    std::fs::rename(dir, &doomed).map_err(io_err(dir))?;
    std::fs::remove_dir_all(&doomed).map_err(io_err(&doomed))
}

/// A hidden leftover of a killed process: a checkpoint being written or being deleted.
fn is_leftover(name: &str) -> bool {
    name.starts_with(".step-") && (name.contains(".tmp-") || name.contains(".del-"))
}

fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

/// Reads checkpoint metadata from `path` (a pointer or a checkpoint's own file).
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(json_err(path))?;
    if meta.format != FORMAT {
        return Err(TrainError::Mismatch {
            path: path.into(),
            detail: format!("format {:?}, expected {FORMAT:?}", meta.format),
        });
    }
    // The rest is what readers use without looking: `dir` is joined to the run's path (one
    // plain name, or `.` for a checkpoint that is its own directory as in the embedded
    // pretrained runs; never `..` or an absolute path), the statistics normalise every
    // frame, and the window sizes tensors.
    let bad = |detail: String| TrainError::Mismatch {
        path: path.into(),
        detail,
    };
    let mut parts = Path::new(&meta.dir).components();
    if !matches!(
        (parts.next(), parts.next()),
        (
            Some(std::path::Component::Normal(_) | std::path::Component::CurDir),
            None
        )
    ) {
        return Err(bad(format!(
            "dir {:?} is not a checkpoint directory name",
            meta.dir
        )));
    }
    meta.stats.validate(path)?;
    meta.options
        .validate()
        .map_err(|e| bad(format!("options: {e}")))?;
    if meta.options.window > MAX_WINDOW {
        return Err(bad(format!(
            "options: window {} (at most {MAX_WINDOW} frames)",
            meta.options.window
        )));
    }
    Ok(meta)
}

/// The longest training window a checkpoint may record, far above any real one (the paper's is
/// 5 latent frames): a rollout allocates a window of this many frames.
pub const MAX_WINDOW: usize = 1024;

impl RunDir {
    /// A new run at `path` (created if needed), locked. A directory that already holds a run
    /// is refused, so a finished run is never overwritten by accident, and so is one that
    /// another process is writing. The leftovers of a run killed before its first checkpoint
    /// (temporary directories, log lines) are removed, so that it starts over cleanly.
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(io_err(path))?;
        // The lock first: a run being trained is reported as in use, not as finished.
        let run = RunDir {
            path: path.to_path_buf(),
            _lock: lock(path)?,
        };
        if path.join(META_FILE).exists() {
            return Err(TrainError::Options(format!(
                "{} already holds a run; continue it with --resume {0}, or choose another --out",
                path.display()
            )));
        }
        run.prepare_resume(0)?;
        Ok(run)
    }

    /// An existing run (it must have a complete checkpoint), locked for training.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(TrainError::Missing {
                path: path.into(),
                hint: " (no such run directory)".into(),
            });
        }
        if !path.join(META_FILE).is_file() {
            return Err(TrainError::Missing {
                path: path.join(META_FILE),
                hint: " (the run has no complete checkpoint yet: nothing to resume or load; \
                       start it again with --out)"
                    .into(),
            });
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: lock(path)?,
        })
    }

    /// The latest complete checkpoint's metadata.
    pub fn latest(&self) -> Result<CheckpointMeta> {
        read_meta(&self.path.join(META_FILE))
    }

    pub fn checkpoint_path(&self, meta: &CheckpointMeta) -> PathBuf {
        self.path.join(&meta.dir)
    }

    /// The weights of checkpoint `meta`.
    pub fn read_weights(&self, meta: &CheckpointMeta) -> Result<(PathBuf, HostTensors)> {
        self.read_tensors(meta, MODEL_FILE)
    }

    /// The optimizer moments of checkpoint `meta`.
    pub fn read_optimizer(&self, meta: &CheckpointMeta) -> Result<(PathBuf, HostTensors)> {
        self.read_tensors(meta, OPTIM_FILE)
    }

    fn read_tensors(&self, meta: &CheckpointMeta, file: &str) -> Result<(PathBuf, HostTensors)> {
        let path = self.checkpoint_path(meta).join(file);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let tensors = read_safetensors(&bytes, &path)?;
        Ok((path, tensors))
    }

    /// Writes a complete checkpoint and switches the pointer to it (see the module docs), then
    /// removes checkpoints older than the last [`KEEP`].
    /// A failure (a full disk) names the file and the checkpoint still in place, and removes
    /// the temporary directory.
    pub fn write_checkpoint(
        &self,
        meta: &CheckpointMeta,
        weights: &HostTensors,
        optimizer: &HostTensors,
    ) -> Result<PathBuf> {
        let name = step_dir_name(meta.step);
        let tmp = self
            .path
            .join(format!(".{name}.tmp-{}", std::process::id()));
        let written = self.write_files(&tmp, &name, meta, weights, optimizer);
        let json = match written {
            Ok(json) => json,
            Err(e) => {
                // Free the space again; a leftover would be removed by the next resume anyway.
                let _ = std::fs::remove_dir_all(&tmp);
                let previous = match self.latest() {
                    Ok(m) => format!(
                        "the previous checkpoint {} (step {}) is intact",
                        self.path.join(&m.dir).display(),
                        m.step
                    ),
                    Err(_) => "there is no previous checkpoint".into(),
                };
                return Err(TrainError::Checkpoint {
                    step: meta.step,
                    detail: format!("{e}; {previous}"),
                });
            }
        };
        let dir = self.path.join(&name);
        // An existing directory of that name is unreferenced (the pointer is only ever moved
        // forward, and only to a renamed, complete directory): a leftover of a killed run.
        if dir.exists() && self.latest().map(|m| m.dir != name).unwrap_or(true) {
            remove_checkpoint_dir(&dir)?;
        }
        std::fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        sync_dir(&self.path)?;
        write_atomic(&self.path.join(META_FILE), &json)?;
        sync_dir(&self.path)?;
        self.prune(meta.step)?;
        Ok(dir)
    }

    /// The files of checkpoint `name` in the temporary directory `tmp`, each synced; returns
    /// the metadata JSON.
    fn write_files(
        &self,
        tmp: &Path,
        name: &str,
        meta: &CheckpointMeta,
        weights: &HostTensors,
        optimizer: &HostTensors,
    ) -> Result<Vec<u8>> {
        if tmp.exists() {
            std::fs::remove_dir_all(tmp).map_err(io_err(tmp))?;
        }
        std::fs::create_dir(tmp).map_err(io_err(tmp))?;
        let mut meta = meta.clone();
        meta.dir = name.to_string();
        let json = serde_json::to_vec_pretty(&meta).map_err(json_err(tmp))?;
        write_safetensors(&tmp.join(MODEL_FILE), weights, None)?;
        write_safetensors(&tmp.join(OPTIM_FILE), optimizer, None)?;
        write_atomic(&tmp.join(META_FILE), &json)?;
        sync_dir(tmp)?;
        Ok(json)
    }

    /// Every complete checkpoint directory, by step.
    pub fn checkpoints(&self) -> Result<Vec<(u32, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(io_err(&self.path))? {
            let entry = entry.map_err(io_err(&self.path))?;
            if let Some(step) = entry.file_name().to_str().and_then(parse_step_dir) {
                out.push((step, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn prune(&self, latest: u32) -> Result<()> {
        let older: Vec<_> = self
            .checkpoints()?
            .into_iter()
            .filter(|(s, _)| *s <= latest)
            .collect();
        for (_, path) in older.iter().rev().skip(KEEP) {
            remove_checkpoint_dir(path)?;
        }
        Ok(())
    }

    /// Before continuing from checkpoint `step`: removes temporary directories and
    /// checkpoints newer than it (never referenced: the process died before switching the
    /// pointer), and drops log lines after `step` and any torn last line, so the log of a
    /// resumed run reads like an uninterrupted one.
    pub fn prepare_resume(&self, step: u32) -> Result<()> {
        for entry in std::fs::read_dir(&self.path).map_err(io_err(&self.path))? {
            let entry = entry.map_err(io_err(&self.path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = is_leftover(&name) || parse_step_dir(&name).is_some_and(|s| s > step);
            if stale {
                let p = entry.path();
                if p.is_dir() && !is_leftover(&name) {
                    remove_checkpoint_dir(&p)?;
                } else if p.is_dir() {
                    std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
                } else {
                    std::fs::remove_file(&p).map_err(io_err(&p))?;
                }
            }
        }
        let log = self.path.join(LOG_FILE);
        if log.exists() {
            let text = std::fs::read_to_string(&log).map_err(io_err(&log))?;
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<LogLine>(l).is_ok_and(|line| line.step <= step))
                .flat_map(|l| [l, "\n"])
                .collect();
            write_atomic(&log, kept.as_bytes())?;
        }
        Ok(())
    }

    /// Appends one line to `log.jsonl`.
    pub fn append_log(&self, line: &LogLine) -> Result<()> {
        let path = self.path.join(LOG_FILE);
        let mut text = serde_json::to_string(line).map_err(json_err(&path))?;
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(text.as_bytes()).map_err(io_err(&path))
    }

    /// Every line of `log.jsonl`.
    pub fn read_log(&self) -> Result<Vec<LogLine>> {
        let path = self.path.join(LOG_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(json_err(&path)))
            .collect()
    }
}

/// The checkpoint directory and metadata of a model given as a run directory (its latest
/// checkpoint) or as one checkpoint directory (`RUN/step-00000100`).
pub fn locate(path: &Path) -> Result<(PathBuf, CheckpointMeta)> {
    if !path.exists() {
        return Err(TrainError::Missing {
            path: path.into(),
            hint: " (expected a run directory or a checkpoint directory)".into(),
        });
    }
    let file = path.join(META_FILE);
    let meta = read_meta(&file)?;
    // The pointer names its checkpoint directory; a checkpoint's own file names itself.
    let dir = if !matches!(meta.dir.as_str(), "" | ".")
        && path.join(&meta.dir).join(META_FILE).is_file()
    {
        path.join(&meta.dir)
    } else {
        path.to_path_buf()
    };
    Ok((dir, meta))
}

/// Reads the weights of a located checkpoint.
pub fn read_weights_at(dir: &Path) -> Result<(PathBuf, HostTensors)> {
    let path = dir.join(MODEL_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let tensors = read_safetensors(&bytes, &path)?;
    Ok((path, tensors))
}
