//! Errors of the readers and of the import: each names the file and the tensor, key or
//! option involved.

use std::path::PathBuf;

/// Everything that can stop reading or importing a reference run.
#[derive(Debug, thiserror::Error)]
pub enum LolaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: does not exist{hint}")]
    Missing { path: PathBuf, hint: String },
    /// The zip container of a `torch.save` file is damaged or not what torch writes.
    #[error("{path}: not a readable torch.save archive: {detail}")]
    Archive { path: PathBuf, detail: String },
    /// An opcode outside the few that `torch.save` uses for a state dict.
    #[error(
        "{path}: pickle opcode {name} (0x{opcode:02x}) at byte {offset} of {entry} is not allowed \
         (only the opcodes torch.save uses for a state dict of tensors are)"
    )]
    ForbiddenOpcode {
        path: PathBuf,
        entry: String,
        offset: usize,
        opcode: u8,
        name: &'static str,
    },
    /// A global outside the allowlist (tensor rebuild, ordered dict, float storages).
    #[error(
        "{path}: the pickle in {entry} refers to the global `{global}`, which is not allowed \
         (only torch._utils._rebuild_tensor_v2, collections.OrderedDict and the float32/float16/\
         bfloat16 storage types are)"
    )]
    ForbiddenGlobal {
        path: PathBuf,
        entry: String,
        global: String,
    },
    /// A malformed pickle program (stack underflow, wrong argument types, truncation, ...).
    #[error("{path}: malformed pickle in {entry} at byte {offset}: {detail}")]
    Pickle {
        path: PathBuf,
        entry: String,
        offset: usize,
        detail: String,
    },
    /// A tensor whose storage, offset, size or stride does not fit the archive.
    #[error("{path}: tensor `{tensor}`: {detail}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        detail: String,
    },
    #[error("{path}: invalid YAML: {detail}")]
    Yaml { path: PathBuf, detail: String },
    /// A configuration key that is missing or holds the wrong kind of value.
    #[error("{path}: `{key}`: {detail}")]
    Config {
        path: PathBuf,
        key: String,
        detail: String,
    },
    /// An option the reference accepts and lemur does not implement.
    #[error("{path}: `{key}`: {detail} is not supported by lemur")]
    Unsupported {
        path: PathBuf,
        key: String,
        detail: String,
    },
    /// The state dict does not match the model its configuration describes.
    #[error("{path}: {detail}")]
    Weights { path: PathBuf, detail: String },
    /// A problem with the command's arguments (output directory, autoencoder, grid).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Train(#[from] lemur_train::TrainError),
    #[error(transparent)]
    Model(#[from] lemur_models::Error),
    #[error(transparent)]
    Tensors(#[from] lemur_tensor::Error),
}

pub type Result<T, E = LolaError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LolaError {
    let path = path.into();
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LolaError::Missing {
                path,
                hint: String::new(),
            }
        } else {
            LolaError::Io { path, source }
        }
    }
}
