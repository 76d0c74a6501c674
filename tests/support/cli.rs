//! What the CLI's integration tests share: the `lemur` binary of this build run with Mesa
//! quiet, fresh scratch directories, the presets' files and one tiny dataset.

// Each test binary includes this file and uses its own subset of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const LEMUR: &str = env!("CARGO_BIN_EXE_lemur");

/// `lemur ARGS`, with `XDG_RUNTIME_DIR` set so that Mesa's Vulkan drivers stay quiet.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(LEMUR);
    c.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

pub fn lemur(args: &[&str]) -> Output {
    command(args).output().expect("run lemur")
}

/// (stdout, stderr) as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The output (stdout then stderr) of a command that must succeed.
pub fn ok(args: &[&str]) -> String {
    let out = lemur(args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "lemur {args:?} failed:\n{stdout}\n{stderr}"
    );
    format!("{stdout}{stderr}")
}

/// The error output of a command that must fail.
pub fn fails(args: &[&str]) -> String {
    let out = lemur(args);
    let (_, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "lemur {args:?} should have failed:\n{stderr}"
    );
    stderr
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The file of a preset in `assets/presets`.
pub fn preset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/presets")
        .join(format!("{name}.json"))
}

/// A fresh, empty `group/name` under the target's scratch directory.
pub fn scratch_in(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One tiny dataset (3 trajectories, 9 frames, 16x16) under `group`, made once per test binary.
pub fn tiny_dataset(group: &str) -> PathBuf {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = scratch_in(group, "dataset").join("euler");
        ok(&[
            "generate",
            "euler",
            "--trajectories",
            "3",
            "--frames",
            "9",
            "--size",
            "16x16",
            "--seed",
            "1",
            "--out",
            s(&dir),
        ]);
        dir
    })
    .clone()
}

/// Every file under `dir` (none when it does not exist).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// The `checkpoint.json` of a run (its latest checkpoint) or of a packed directory.
pub fn checkpoint_meta(dir: &Path) -> serde_json::Value {
    let path = dir.join("checkpoint.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
