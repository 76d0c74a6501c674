//! `lemur import lola` end to end through the binary: the reference's three fixture runs
//! (`../shared/fixtures/lola-runs`, or `$LEMUR_LOLA_RUNS_DIR`) imported, then used as any lemur
//! run: rollout, eval, encode, and fine-tuning with `train --resume`; and the command's bad
//! inputs. The models' outputs themselves are checked against the reference in
//! `crates/lemur-lola/tests/parity.rs`.

use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod support;

use support::{fails, ok, s};

fn scratch(name: &str) -> PathBuf {
    support::scratch_in("import", name)
}

/// `$LEMUR_LOLA_RUNS_DIR`, else `$LEMUR_FIXTURES_DIR/lola-runs`, else the shared folder beside
/// the workspace.
fn runs_dir() -> PathBuf {
    match (
        std::env::var_os("LEMUR_LOLA_RUNS_DIR"),
        std::env::var_os("LEMUR_FIXTURES_DIR"),
    ) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(root)) => PathBuf::from(root).join("lola-runs"),
        (None, None) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/lola-runs"),
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn tensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    lemur_tensor::params::read_safetensors(&std::fs::read(path).unwrap(), path).unwrap()
}

/// The weights of a run's latest checkpoint.
fn weights(run: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let dir = json(&run.join("checkpoint.json"))["dir"]
        .as_str()
        .unwrap()
        .to_string();
    tensors(&run.join(dir).join("model.safetensors"))
}

#[test]
fn imported_runs_roll_out_evaluate_encode_and_fine_tune() {
    let dir = scratch("end_to_end");
    let runs = dir.join("runs");
    let (ae, dif, sur) = (
        runs.join("autoencoder"),
        runs.join("diffusion"),
        runs.join("surrogate"),
    );
    // The fixture models are tiny; a 16x16 grid gives 2x2 latents (f8).
    let out = ok(&[
        "import",
        "lola",
        s(&runs_dir().join("ae")),
        "--out",
        s(&ae),
        "--grid",
        "16x16",
    ]);
    assert!(
        out.contains("imported the autoencoder run") && out.contains("60 tensors"),
        "{out}"
    );
    assert!(out.contains("ae.latent_noise 0.01 is not applied"), "{out}");
    for (src, run) in [("diffusion", &dif), ("surrogate", &sur)] {
        let out = ok(&["import", "lola", s(&runs_dir().join(src)), "--out", s(run)]);
        assert!(
            out.contains(&format!("imported the {src} run"))
                && out.contains("autoencoder run next to --out"),
            "{out}"
        );
    }
    // What the imported runs record: configuration (interpolations kept as text), statistics,
    // window and stride, the autoencoder, the source.
    let meta = json(&ae.join("checkpoint.json"));
    assert_eq!(meta["kind"], "autoencoder");
    assert_eq!(meta["step"], 0);
    assert_eq!(
        meta["model_config"]["name"],
        "dcae_f8c${.lat_channels}_tiny"
    );
    assert_eq!(
        meta["model_config"]["hid_channels"],
        serde_json::json!([8, 16, 32, 32])
    );
    assert_eq!(
        meta["stats"]["transforms"],
        serde_json::json!(["log1p", "log1p", "log1p", "identity", "identity"])
    );
    assert_eq!(meta["stats"]["std"][1], 0.27);
    assert_eq!(meta["data"]["grid"], serde_json::json!([16, 16]));
    assert_eq!(meta["extra"]["latent_shape"], serde_json::json!([4, 2, 2]));
    assert_eq!(meta["extra"]["imported"]["update_steps"], 32);
    let dmeta = json(&dif.join("checkpoint.json"));
    assert_eq!(dmeta["kind"], "diffusion");
    assert_eq!(dmeta["options"]["window"], 5);
    assert_eq!(dmeta["options"]["stride"], 4);
    assert_eq!(dmeta["model_config"]["schedule"]["name"], "log_logit");
    assert_eq!(
        Path::new(dmeta["extra"]["autoencoder_path"].as_str().unwrap()),
        std::path::absolute(&ae).unwrap()
    );
    let dweights = weights(&dif);
    assert_eq!(dweights.len(), 40);
    assert_eq!(dweights["backbone.backbone.in_proj.weight"].0, vec![48, 8]);

    // Rollouts on a fresh solver trajectory (the reference's data is not here).
    for run in [&dif, &sur] {
        let out_dir = dir.join(format!(
            "rollout-{}",
            run.file_name().unwrap().to_string_lossy()
        ));
        let out = ok(&[
            "rollout",
            "--run",
            s(run),
            "--simulate",
            "--horizon",
            "8",
            "--backend",
            "cpu",
            "--no-images",
            "--out",
            s(&out_dir),
        ]);
        assert!(out.contains("9 frames x 1 member(s) at stride 4"), "{out}");
        let pred = tensors(&out_dir.join("prediction.safetensors"));
        let (shape, values) = &pred["prediction"];
        assert_eq!(shape, &vec![1, 9, 5, 16, 16]);
        assert!(values.iter().all(|v| v.is_finite()));
    }

    // A dataset of lemur's own Euler solver, encoded by the imported autoencoder.
    let data = dir.join("data");
    ok(&[
        "generate",
        "euler",
        "--trajectories",
        "3",
        "--frames",
        "21",
        "--size",
        "16x16",
        "--seed",
        "1",
        "--out",
        s(&data),
    ]);
    let latents = dir.join("latents");
    let out = ok(&[
        "encode",
        "--autoencoder",
        s(&ae),
        "--data",
        s(&data),
        "--out",
        s(&latents),
        "--backend",
        "cpu",
    ]);
    assert!(out.contains("to latents [4, 2, 2]"), "{out}");
    let out = ok(&[
        "eval",
        "--run",
        s(&sur),
        "--data",
        s(&data),
        "--trajectories",
        "1",
        "--horizon",
        "4",
        "--backend",
        "cpu",
        "--out",
        s(&dir.join("eval")),
    ]);
    assert!(out.to_lowercase().contains("vrmse"), "{out}");

    // Fine-tuning: the reference saved no optimizer state, so the optimizer starts fresh (said so),
    // and an imported run takes any training options for its first session.
    for (kind, run, data_flag, data_dir) in [
        ("diffusion", &dif, "--latents", &latents),
        ("surrogate", &sur, "--latents", &latents),
        ("autoencoder", &ae, "--data", &data),
    ] {
        let before = weights(run);
        let out = ok(&[
            "train",
            kind,
            "--resume",
            s(run),
            data_flag,
            s(data_dir),
            "--steps",
            "2",
            "--batch",
            "2",
            "--backend",
            "cpu",
        ]);
        assert!(
            out.contains("the optimizer (adamw) starts from fresh moments"),
            "{kind}: {out}"
        );
        let meta = json(&run.join("checkpoint.json"));
        assert_eq!(meta["step"], 2, "{kind}");
        assert_eq!(meta["options"]["batch"], 2, "{kind}");
        assert!(
            meta["extra"].get("imported").is_none(),
            "{kind}: trained by lemur now"
        );
        let after = weights(run);
        let moved = before
            .iter()
            .filter(|(k, (_, v))| after[*k].1 != *v)
            .count();
        assert!(
            moved > before.len() / 2,
            "{kind}: {moved} of {} tensors changed",
            before.len()
        );
        // The second session is an ordinary resume: moments stored, options fixed.
        let out = ok(&[
            "train",
            kind,
            "--resume",
            s(run),
            data_flag,
            s(data_dir),
            "--steps",
            "3",
            "--backend",
            "cpu",
        ]);
        assert!(!out.contains("fresh moments"), "{kind}: {out}");
        assert_eq!(json(&run.join("checkpoint.json"))["step"], 3);
        let e = fails(&[
            "train",
            kind,
            "--resume",
            s(run),
            data_flag,
            s(data_dir),
            "--steps",
            "4",
            "--batch",
            "3",
            "--backend",
            "cpu",
        ]);
        assert!(
            e.contains("cannot resume with different settings"),
            "{kind}: {e}"
        );
    }
}

#[test]
fn import_bad_inputs_are_clear_errors_and_leave_no_out() {
    let dir = scratch("bad");
    let out = dir.join("out");
    let no_out = |e: &str| {
        assert!(!out.exists(), "--out left behind after: {e}");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".import-"), "leftover {name} after: {e}");
        }
    };
    // No autoencoder anywhere.
    let e = fails(&[
        "import",
        "lola",
        s(&runs_dir().join("diffusion")),
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("no autoencoder for this diffusion run")
            && e.contains("ae_run /tmp/lola-public/ae does not exist here"),
        "{e}"
    );
    no_out(&e);
    // A damaged state.pth names the file.
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(runs_dir().join("ae/config.yaml"), src.join("config.yaml")).unwrap();
    let good = std::fs::read(runs_dir().join("ae/state.pth")).unwrap();
    std::fs::write(src.join("state.pth"), &good[..good.len() / 2]).unwrap();
    let e = fails(&[
        "import",
        "lola",
        s(&src),
        "--out",
        s(&out),
        "--grid",
        "32x32",
    ]);
    assert!(
        e.contains("state.pth") && e.contains("not a readable torch.save archive"),
        "{e}"
    );
    no_out(&e);
    // state_best.pth is read when state.pth is absent.
    std::fs::remove_file(src.join("state.pth")).unwrap();
    let e = fails(&[
        "import",
        "lola",
        s(&src),
        "--out",
        s(&out),
        "--grid",
        "32x32",
    ]);
    assert!(
        e.contains("state.pth") && e.contains("state_best.pth"),
        "{e}"
    );
    std::fs::write(src.join("state_best.pth"), &good).unwrap();
    let done = ok(&[
        "import",
        "lola",
        s(&src),
        "--out",
        s(&out),
        "--grid",
        "32x32",
    ]);
    assert!(done.contains("state_best.pth"), "{done}");
    // An existing run is never overwritten.
    let e = fails(&[
        "import",
        "lola",
        s(&src),
        "--out",
        s(&out),
        "--grid",
        "32x32",
    ]);
    assert!(e.contains("already exists"), "{e}");
    // A lemur run is not a reference run; a grid the autoencoder cannot take is refused.
    let e = fails(&["import", "lola", s(&out), "--out", s(&dir.join("again"))]);
    assert!(e.contains("already a lemur run"), "{e}");
    let e = fails(&[
        "import",
        "lola",
        s(&src),
        "--out",
        s(&dir.join("odd")),
        "--grid",
        "20x20",
    ]);
    assert!(
        e.contains("--grid 20x20") && e.contains("multiples of 8"),
        "{e}"
    );
    let e = fails(&[
        "import",
        "lola",
        s(&src),
        "--out",
        s(&dir.join("odd")),
        "--grid",
        "20",
    ]);
    assert!(e.contains("expected HxW"), "{e}");
}
