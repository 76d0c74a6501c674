use std::path::PathBuf;

/// Everything that can go wrong in the tensor runtime. Messages name the op, the tensor or the
/// file involved so that a failure deep inside a model points at its cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op}: invalid argument: {detail}")]
    Invalid { op: &'static str, detail: String },
    #[error(
        "no GPU adapter found ({detail}). On a machine without a GPU install Mesa's lavapipe \
         (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`), or set LEMUR_BACKEND=cpu to run on the CPU backend"
    )]
    NoAdapter { detail: String },
    #[error("GPU device request failed: {0}")]
    RequestDevice(String),
    #[error("GPU {kind} error during {context}: {message}")]
    Gpu {
        kind: &'static str,
        context: String,
        message: String,
    },
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("GPU buffer readback failed: {0}")]
    Readback(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {detail}")]
    Safetensors { path: PathBuf, detail: String },
    #[error("{path}: parameter `{key}`: {detail}")]
    Param {
        path: PathBuf,
        key: String,
        detail: String,
    },
    #[error("backward: {0}")]
    Autodiff(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape {
        op,
        detail: detail.into(),
    }
}

pub(crate) fn invalid(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Invalid {
        op,
        detail: detail.into(),
    }
}
