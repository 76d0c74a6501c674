//! Helpers shared by the commands: the backend choice (`--backend`, else `LEMUR_BACKEND`,
//! else `auto`) and output checks done before any work.

use std::path::Path;

use anyhow::{Result, bail};
use lemur_tensor::{AnyBackend, BackendKind};

/// The variable that gives `--backend` its default.
pub const BACKEND_VAR: &str = "LEMUR_BACKEND";

/// The backend to use: `--backend` when given, else `LEMUR_BACKEND`, else `auto`.
pub fn backend_kind(flag: Option<&str>) -> Result<BackendKind> {
    if let Some(flag) = flag {
        return flag
            .parse::<BackendKind>()
            .map_err(|_| anyhow::anyhow!("--backend {flag}: use gpu, cpu or auto"));
    }
    match std::env::var(BACKEND_VAR) {
        Ok(v) => v.trim().parse::<BackendKind>().map_err(|_| {
            anyhow::anyhow!("{BACKEND_VAR}={v}: unknown backend (use gpu, cpu or auto)")
        }),
        Err(std::env::VarError::NotPresent) => Ok(BackendKind::Auto),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{BACKEND_VAR} is not valid UTF-8 (use gpu, cpu or auto)")
        }
    }
}

/// Says once on stderr which backend (and adapter) a command computes on.
pub fn announce(name: &str) {
    eprintln!("lemur: backend {name}");
}

/// Opens the backend `--backend` / `LEMUR_BACKEND` choose and says which one it is.
pub fn open_backend(flag: Option<&str>) -> Result<AnyBackend> {
    let backend = AnyBackend::open_blocking(backend_kind(flag)?)?;
    announce(&backend.name());
    Ok(backend)
}

/// `--out` must be a directory or not exist yet: refuse a file before any work starts.
pub fn check_out_dir(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_dir()
    {
        bail!(
            "--out {}: a file of that name exists; give a directory",
            path.display()
        );
    }
    Ok(())
}
