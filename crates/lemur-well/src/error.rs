use std::path::PathBuf;

/// Everything that can go wrong reading or writing a Well-layout file or dataset.
///
/// Every variant names the file and the HDF5 path (or `/` for the file as a whole), because
/// a dataset is hundreds of files and "shape mismatch" alone would not say which one is bad.
#[derive(Debug, thiserror::Error)]
pub enum WellError {
    #[error("{file}: {path}: {source}")]
    Hdf5 {
        file: PathBuf,
        path: String,
        #[source]
        source: hdf5_pure::Error,
    },
    #[error("{file}: {path}: missing")]
    Missing { file: PathBuf, path: String },
    #[error("{file}: {path}: expected shape {expected:?}, found {found:?}")]
    Shape {
        file: PathBuf,
        path: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("{file}: {path}: non-finite value at element {index}")]
    NonFinite {
        file: PathBuf,
        path: String,
        index: usize,
    },
    #[error("{file}: {path}: truncated file: data ends at byte {needed} but the file has {len}")]
    Truncated {
        file: PathBuf,
        path: String,
        needed: u64,
        len: u64,
    },
    #[error("{file}: {path}: {reason}")]
    Invalid {
        file: PathBuf,
        path: String,
        reason: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl WellError {
    pub(crate) fn invalid(file: &std::path::Path, path: &str, reason: impl Into<String>) -> Self {
        WellError::Invalid {
            file: file.to_path_buf(),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(file: &std::path::Path, path: &str) -> Self {
        WellError::Missing {
            file: file.to_path_buf(),
            path: path.to_string(),
        }
    }

    pub(crate) fn hdf5(file: &std::path::Path, path: &str, source: hdf5_pure::Error) -> Self {
        WellError::Hdf5 {
            file: file.to_path_buf(),
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn io(file: &std::path::Path, source: std::io::Error) -> Self {
        WellError::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, WellError>;
