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

/// The first frame of a rollout or an evaluation when `--start` is not given
/// ([`lemur_solvers::System::start_frame`]; 0 for data of other systems).
pub fn default_start(dataset_name: &str) -> usize {
    lemur_solvers::System::of(dataset_name).map_or(0, |s| s.start_frame())
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

/// Most ensemble members one `rollout` or `eval` draws: they run as one batch, so memory
/// grows with them.
pub const MAX_ENSEMBLE: usize = 64;
/// Most denoising steps per window: each is a full pass of the denoiser.
pub const MAX_STEPS: usize = 1000;
/// Most frames (context and prediction) a rollout makes without a dataset to bound it (a
/// simulated truth, or `--init`): a simulated truth holds `--start` plus this many frames
/// times the stride.
pub const MAX_FRAMES: usize = 1000;
/// Most bytes of the predicted ensemble (physical f32 frames, all members) held in memory.
pub const MAX_PREDICTION_BYTES: usize = 4 << 30;

/// Checks `--ensemble` and `--steps` before any work.
pub fn check_sampling(ensemble: usize, steps: usize) -> Result<()> {
    if ensemble == 0 || ensemble > MAX_ENSEMBLE {
        bail!(
            "--ensemble {ensemble}: between 1 and {MAX_ENSEMBLE} members (they run as one \
             batch; run several commands with different --seed for more)"
        );
    }
    if steps == 0 || steps > MAX_STEPS {
        bail!("--steps {steps}: between 1 and {MAX_STEPS} denoising steps per window");
    }
    Ok(())
}

/// Checks that `ensemble` members of `frames` frames of `frame` values fit the memory budget.
pub fn check_prediction_size(ensemble: usize, frames: usize, frame: usize) -> Result<()> {
    let bytes = ensemble
        .checked_mul(frames)
        .and_then(|n| n.checked_mul(frame))
        .and_then(|n| n.checked_mul(4));
    match bytes {
        Some(b) if b <= MAX_PREDICTION_BYTES => Ok(()),
        _ => bail!(
            "--ensemble {ensemble} x {frames} frames (context and --horizon) of {frame} values \
             exceed the {} GiB a prediction may hold; use fewer members or a shorter --horizon",
            MAX_PREDICTION_BYTES >> 30
        ),
    }
}

/// The trajectories of `--data` (a dataset directory or one Well file) in `split`: an error
/// naming the path when there is nothing there.
pub fn data_trajectories(root: &Path, split: &str) -> Result<Vec<(std::path::PathBuf, usize)>> {
    if !root.exists() {
        bail!("--data {}: no such file or directory", root.display());
    }
    let all = lemur_train::emulate::split_trajectories(root, split)?;
    if all.is_empty() {
        bail!(
            "--data {}: no trajectories in its {split} split (no .hdf5 files in {}); give a \
             dataset directory (`lemur generate`) or one .hdf5 file",
            root.display(),
            lemur_well::dataset::data_dir(root).join(split).display()
        );
    }
    Ok(all)
}
