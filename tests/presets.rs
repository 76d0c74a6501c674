//! `lemur train --config` takes the built-in presets by name (short or full), gives the same
//! model as the preset's file, and names the presets when the value is neither a preset of the
//! model's kind nor a file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LEMUR: &str = env!("CARGO_BIN_EXE_lemur");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("presets")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lemur(cwd: &Path, args: &[&str]) -> Output {
    Command::new(LEMUR)
        .args(args)
        .current_dir(cwd)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("LEMUR_BACKEND", "cpu")
        .output()
        .expect("run lemur")
}

fn ok(cwd: &Path, args: &[&str]) {
    let out = lemur(cwd, args);
    assert!(
        out.status.success(),
        "lemur {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn model_config(run: &Path) -> serde_json::Value {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint.json")).unwrap())
            .unwrap();
    meta["model_config"].clone()
}

#[test]
fn train_config_takes_preset_names_and_files_alike() {
    let dir = scratch("names");
    ok(
        &dir,
        &[
            "generate",
            "euler",
            "--trajectories",
            "2",
            "--frames",
            "3",
            "--size",
            "16x16",
            "--out",
            "data",
        ],
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/presets/autoencoder-tiny.json");
    let file = file.to_str().unwrap();
    for (config, out) in [("tiny", "a"), ("autoencoder-tiny", "b"), (file, "c")] {
        ok(
            &dir,
            &[
                "train",
                "autoencoder",
                "--data",
                "data",
                "--config",
                config,
                "--out",
                out,
                "--steps",
                "1",
                "--batch",
                "2",
            ],
        );
    }
    let a = model_config(&dir.join("a"));
    assert_eq!(a["name"], "dcae_tiny", "{a}");
    assert_eq!(a, model_config(&dir.join("b")));
    assert_eq!(a, model_config(&dir.join("c")));
    // Resuming with the preset's name checks it against the run like a file.
    ok(
        &dir,
        &[
            "train",
            "autoencoder",
            "--resume",
            "a",
            "--config",
            "tiny",
            "--steps",
            "2",
        ],
    );

    for (config, expect) in [
        ("denoiser-small", "that preset is for another kind of model"),
        ("huge", "neither a built-in autoencoder preset nor a file"),
    ] {
        let out = lemur(
            &dir,
            &[
                "train",
                "autoencoder",
                "--data",
                "data",
                "--config",
                config,
                "--out",
                "bad",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--config {config} should fail");
        assert!(stderr.contains(&format!("--config {config}")), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        assert!(
            stderr.contains("tiny, small, paper (or autoencoder-tiny"),
            "{stderr}"
        );
        assert!(!dir.join("bad").exists(), "--config {config} left --out");
    }
}

/// A preset is an architecture: trained on Rayleigh-Bénard data (4 fields, 4 labels), it takes
/// the data's channels and labels, where a file is taken as written.
#[test]
fn presets_fit_the_channels_and_labels_of_the_data() {
    let dir = scratch("rayleigh-benard");
    ok(
        &dir,
        &[
            "generate",
            "rayleigh-benard",
            "--trajectories",
            "3",
            "--frames",
            "6",
            "--size",
            "32x16",
            "--out",
            "data",
        ],
    );
    let train = |kind: &str, source: &str, config: &str, out: &str| {
        lemur(
            &dir,
            &[
                "train", kind, source, "data", "--config", config, "--out", out, "--steps", "1",
                "--batch", "2",
            ],
        )
    };
    let out = train("autoencoder", "--data", "tiny", "ae");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(model_config(&dir.join("ae"))["pix_channels"], 4);
    ok(
        &dir,
        &[
            "train",
            "autoencoder",
            "--resume",
            "ae",
            "--config",
            "tiny",
            "--steps",
            "2",
        ],
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/presets/autoencoder-tiny.json");
    let out = train("autoencoder", "--data", file.to_str().unwrap(), "file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the configuration's pix_channels is 5"),
        "{stderr}"
    );

    ok(
        &dir,
        &[
            "encode",
            "--autoencoder",
            "ae",
            "--data",
            "data",
            "--out",
            "lat",
        ],
    );
    for kind in ["diffusion", "surrogate"] {
        let out = lemur(
            &dir,
            &[
                "train",
                kind,
                "--latents",
                "lat",
                "--config",
                "tiny",
                "--out",
                kind,
                "--steps",
                "1",
                "--batch",
                "2",
                "--window",
                "2",
                "--stride",
                "1",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = model_config(&dir.join(kind));
        assert_eq!(cfg["label_features"], 4, "{cfg}");
        assert_eq!(
            cfg["channels"],
            model_config(&dir.join("ae"))["lat_channels"],
            "{cfg}"
        );
    }
}
