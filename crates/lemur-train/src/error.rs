//! Errors of training runs: each names the file, the option or the step involved.

use std::path::PathBuf;

/// Everything that can stop a training command.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Tensor(#[from] lemur_tensor::Error),
    #[error(transparent)]
    Model(#[from] lemur_models::Error),
    #[error(transparent)]
    Well(#[from] lemur_well::WellError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: does not exist{hint}")]
    Missing { path: PathBuf, hint: String },
    /// The checkpoint was written for another model or other settings than the ones given.
    #[error("{path}: the checkpoint does not match: {detail}")]
    Mismatch { path: PathBuf, detail: String },
    /// The data does not fit the model configuration (fields, channels, grid).
    #[error("{path}: the data does not fit the model: {detail}")]
    Data { path: PathBuf, detail: String },
    /// A NaN or infinite loss: training stops without logging or checkpointing the interval.
    /// Losses are read back once per log interval: `step` is the first non-finite step of the
    /// steps `read` (first, last) read together.
    #[error(
        "non-finite loss ({loss}) at step {step}{}; the last good checkpoint is {last_good}",
        read_range(*read)
    )]
    NonFinite {
        step: u64,
        loss: f32,
        read: (u64, u64),
        last_good: String,
    },
    /// Another process holds the run's lock.
    #[error("run {run} is in use: {detail}")]
    Busy { run: PathBuf, detail: String },
    /// Writing a checkpoint failed (e.g. a full disk); `detail` names the file and says what
    /// is left to resume from.
    #[error("could not write the checkpoint of step {step}: {detail}")]
    Checkpoint { step: u32, detail: String },
    #[error("invalid option: {0}")]
    Options(String),
}

fn read_range((first, last): (u64, u64)) -> String {
    if first == last {
        String::new()
    } else {
        format!(" (found when the losses of steps {first}-{last} were read back together)")
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TrainError::Missing {
                path,
                hint: String::new(),
            }
        } else {
            TrainError::Io { path, source }
        }
    }
}

pub(crate) fn json_err(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Json { path, source }
}
