//! The pretrained default, embedded in the binary: the `small` presets trained on the built-in
//! Euler data (`lemur generate euler` defaults: 40 trajectories of 101 frames at 64x64), so
//! `lemur rollout` runs with no arguments. See `assets/pretrained/README.md` for how they were
//! trained and what they score.
//!
//! The runs are written once to a cache directory keyed by a hash of their bytes, because
//! every command reads runs from directories; the emulators' checkpoints are patched there to
//! point at the cached autoencoder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

macro_rules! embed {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!("../../assets/pretrained/euler64/", $path)).as_slice(),
        )
    };
}

const FILES: &[(&str, &[u8])] = &[
    embed!("autoencoder/checkpoint.json"),
    embed!("autoencoder/model.safetensors"),
    embed!("diffusion/checkpoint.json"),
    embed!("diffusion/model.safetensors"),
    embed!("surrogate/checkpoint.json"),
    embed!("surrogate/model.safetensors"),
];

/// `--run` names of the embedded runs.
pub const NAMES: [(&str, &str); 3] = [
    ("pretrained", "diffusion"),
    ("pretrained-surrogate", "surrogate"),
    ("pretrained-autoencoder", "autoencoder"),
];

/// The run directory for `--run`: an embedded run by name, else the path as given.
pub fn resolve(run: &Path) -> Result<PathBuf> {
    let Some(kind) = run
        .to_str()
        .and_then(|r| NAMES.iter().find(|(n, _)| *n == r))
        .map(|(_, k)| *k)
    else {
        return Ok(run.to_path_buf());
    };
    Ok(materialise()?.join(kind))
}

/// Whether `--run` names an embedded run.
pub fn is_pretrained(run: &Path) -> bool {
    run.to_str()
        .is_some_and(|r| NAMES.iter().any(|(n, _)| *n == r))
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Writes the embedded runs under the cache directory (once) and returns it.
fn materialise() -> Result<PathBuf> {
    let hash = FILES
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, (name, bytes)| {
            fnv(bytes, fnv(name.as_bytes(), h))
        });
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lemur");
    let dir = base.join(format!("pretrained-euler64-{hash:016x}"));
    if dir.join("complete").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&base).with_context(|| format!("{}", base.display()))?;
    let tmp = base.join(format!(
        ".pretrained-{hash:016x}.tmp-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, bytes) in FILES {
        let path = tmp.join(name);
        std::fs::create_dir_all(path.parent().expect("files live in run directories"))
            .with_context(|| format!("{}", path.display()))?;
        let mut bytes = bytes.to_vec();
        if name.ends_with("checkpoint.json") && !name.starts_with("autoencoder") {
            let mut meta: serde_json::Value = serde_json::from_slice(&bytes)?;
            meta["extra"]["autoencoder_path"] = dir.join("autoencoder").to_string_lossy().into();
            bytes = serde_json::to_vec_pretty(&meta)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("{}", path.display()))?;
    }
    std::fs::write(tmp.join("complete"), b"")?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process got there first: theirs is complete.
        Err(_) if dir.join("complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    }
    Ok(dir)
}
