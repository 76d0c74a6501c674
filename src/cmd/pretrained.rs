//! The pretrained runs, embedded in the binary: the `small` presets trained on the built-in
//! solvers' data, one set per system (`web/pretrained/<set>`, the same F16 files the browser
//! fetches; they load as F32), so that `lemur rollout` runs with no arguments. See
//! `web/pretrained/README.md` for how they were trained and what they score.
//!
//! A set is written once to a cache directory keyed by a hash of its bytes, because every
//! command reads runs from directories; the emulators' checkpoints are patched there to point
//! at the cached autoencoder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

type Files = [(&'static str, &'static [u8]); 6];

macro_rules! embed {
    ($set:literal) => {
        [
            embed!($set, "autoencoder/checkpoint.json"),
            embed!($set, "autoencoder/model.safetensors"),
            embed!($set, "diffusion/checkpoint.json"),
            embed!($set, "diffusion/model.safetensors"),
            embed!($set, "surrogate/checkpoint.json"),
            embed!($set, "surrogate/model.safetensors"),
        ]
    };
    ($set:literal, $path:literal) => {
        (
            $path,
            include_bytes!(concat!("../../web/pretrained/", $set, "/", $path)).as_slice(),
        )
    };
}

/// The embedded sets: (directory name, `--run` prefix, files).
const SETS: [(&str, &str, Files); 2] = [
    ("euler64", "pretrained", embed!("euler64")),
    ("rb128x32", "pretrained-rb", embed!("rb128x32")),
];

/// The runs of a set, by the `--run` suffix after its prefix.
const RUNS: [(&str, &str); 3] = [
    ("", "diffusion"),
    ("-surrogate", "surrogate"),
    ("-autoencoder", "autoencoder"),
];

/// The embedded set and run kind that `--run` names, if it names one.
fn lookup(run: &Path) -> Option<(&'static str, &'static Files, &'static str)> {
    let run = run.to_str()?;
    SETS.iter().find_map(|(set, prefix, files)| {
        let suffix = run.strip_prefix(prefix)?;
        RUNS.iter()
            .find(|(s, _)| *s == suffix)
            .map(|(_, kind)| (*set, files, *kind))
    })
}

/// The run directory for `--run`: an embedded run by name, else the path as given.
pub fn resolve(run: &Path) -> Result<PathBuf> {
    match lookup(run) {
        Some((set, files, kind)) => Ok(materialise(set, files)?.join(kind)),
        None => Ok(run.to_path_buf()),
    }
}

/// Whether `--run` names an embedded run.
pub fn is_pretrained(run: &Path) -> bool {
    lookup(run).is_some()
}

/// The autoencoder directory for `--autoencoder`: an embedded autoencoder by name, else the
/// path as given. An embedded emulator's name is refused, naming the autoencoders.
pub fn resolve_autoencoder(path: &Path) -> Result<PathBuf> {
    match lookup(path) {
        Some((_, _, "autoencoder")) | None => resolve(path),
        Some((_, _, kind)) => anyhow::bail!(
            "{}: an embedded {kind} run, not an autoencoder (the embedded autoencoders are {})",
            path.display(),
            SETS.iter()
                .map(|(_, prefix, _)| format!("{prefix}-autoencoder"))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Writes an embedded set under the cache directory (once) and returns it.
fn materialise(set: &str, files: &Files) -> Result<PathBuf> {
    let hash = files
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, (name, bytes)| {
            fnv(bytes, fnv(name.as_bytes(), h))
        });
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lemur");
    let dir = base.join(format!("pretrained-{set}-{hash:016x}"));
    if dir.join("complete").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&base).with_context(|| format!("{}", base.display()))?;
    let tmp = base.join(format!(
        ".pretrained-{hash:016x}.tmp-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, bytes) in files {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_pick_a_set_and_a_kind() {
        let pick = |name: &str| lookup(Path::new(name)).map(|(set, _, kind)| (set, kind));
        assert_eq!(pick("pretrained"), Some(("euler64", "diffusion")));
        assert_eq!(pick("pretrained-surrogate"), Some(("euler64", "surrogate")));
        assert_eq!(
            pick("pretrained-autoencoder"),
            Some(("euler64", "autoencoder"))
        );
        assert_eq!(pick("pretrained-rb"), Some(("rb128x32", "diffusion")));
        assert_eq!(
            pick("pretrained-rb-surrogate"),
            Some(("rb128x32", "surrogate"))
        );
        assert_eq!(
            pick("pretrained-rb-autoencoder"),
            Some(("rb128x32", "autoencoder"))
        );
        for path in [
            "pretrained-",
            "pretrained-rbx",
            "runs/pretrained",
            "pretrained-rb-",
        ] {
            assert_eq!(pick(path), None, "{path}");
        }
    }
}
