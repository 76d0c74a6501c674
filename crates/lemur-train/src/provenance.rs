//! Where a run's data and code came from: data files with their sizes, and the git revision.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, io_err};

/// One input file: its path and size in bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: PathBuf,
    pub bytes: u64,
}

impl FileEntry {
    pub fn of(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        Ok(FileEntry {
            path: absolute(path),
            bytes: meta.len(),
        })
    }
}

/// The data a run was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataProvenance {
    /// `"well"` (a dataset directory) or `"latents"` (an encoded latent cache).
    pub kind: String,
    /// The directory given on the command line, made absolute.
    pub root: PathBuf,
    /// Every file read, with its size.
    pub files: Vec<FileEntry>,
    /// Channel names of the data (physical fields, or `latent.<i>`).
    pub channels: Vec<String>,
    /// Spatial size `[H, W]` of the data.
    pub grid: [usize; 2],
}

/// `path` made absolute against the current directory (without resolving links), so a
/// provenance record stays meaningful when read from elsewhere.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The source's `git rev-parse HEAD` when this crate was built (see `build.rs`), or
/// `"unknown"` when it was built outside a git checkout or without git. Nothing runs at run
/// time, so an installed binary records the commit it was built from.
pub fn git_revision() -> String {
    env!("LEMUR_GIT_REVISION").to_string()
}
