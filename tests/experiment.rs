//! `lemur experiment compression` end to end on tiny shapes: the nine runs, the table and the
//! plot; a second invocation redoes nothing; more emulator steps resume the emulators (not the
//! autoencoders) and score them again; a lost evaluation is redone alone.

use std::path::{Path, PathBuf};
use std::process::Command;

const LEMUR: &str = env!("CARGO_BIN_EXE_lemur");

fn experiment(out: &Path, extra: &[&str]) -> (String, String) {
    let o = Command::new(LEMUR)
        .args(["experiment", "compression", "--out"])
        .arg(out)
        .args(["--preset", "tiny", "--size", "16", "--trajectories", "8"])
        .args(["--frames", "17", "--ae-steps", "3", "--batch", "4"])
        .args([
            "--eval-trajectories",
            "1",
            "--ensemble",
            "2",
            "--steps",
            "2",
        ])
        .args(["--backend", "cpu"])
        .args(extra)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run lemur");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

fn step(run: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint.json")).unwrap())
            .unwrap();
    v["step"].as_u64().unwrap()
}

/// The table's rows: rate -> numbers (autoencoder, 3 diffusion, 3 surrogate, spread-skill).
fn table(md: &str) -> Vec<(String, Vec<f64>)> {
    md.lines()
        .filter(|l| l.starts_with("| ") && l.contains("x |") && !l.contains("rate"))
        .map(|l| {
            let cells: Vec<&str> = l
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let nums = cells[2..]
                .iter()
                .map(|c| c.parse::<f64>().unwrap())
                .collect();
            (cells[0].to_string(), nums)
        })
        .collect()
}

#[test]
fn compression_experiment_runs_resumes_and_redoes_only_what_is_missing() {
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("experiment");
    let _ = std::fs::remove_dir_all(&out);
    let (stdout, _) = experiment(&out, &["--emulator-steps", "2"]);

    let md = std::fs::read_to_string(out.join("compression.md")).unwrap();
    assert!(stdout.contains(&md), "the table is printed");
    let rows = table(&md);
    let rates: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(rates, ["80x", "320x", "1280x"], "{md}");
    for (rate, nums) in &rows {
        assert_eq!(nums.len(), 8, "{rate}: {nums:?}");
        // VRMSE of an untrained model is about 1 (the field's own scale), never 0 or NaN.
        assert!(
            nums.iter().all(|v| v.is_finite() && *v > 0.0 && *v < 100.0),
            "{rate}: {nums:?}"
        );
    }
    let png = std::fs::read(out.join("compression.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let plan = std::fs::read_to_string(out.join("commands.sh")).unwrap();
    // Periodic by default: open boundaries empty the domain and inflate late-lead VRMSE.
    let generate = plan
        .lines()
        .find(|l| l.starts_with("lemur generate"))
        .unwrap();
    assert!(generate.ends_with("--periodic"), "{generate}");
    let stats = std::fs::read_to_string(out.join("data/stats.json")).unwrap();
    assert!(stats.contains("periodicBC"), "{stats}");
    assert_eq!(
        plan.lines().filter(|l| l.starts_with("lemur ")).count(),
        1 + 3 * 7,
        "{plan}"
    );
    for rate in ["80", "320", "1280"] {
        assert_eq!(step(&out.join(format!("runs/ae-{rate}x"))), 3);
        assert_eq!(step(&out.join(format!("runs/diffusion-{rate}x-ae3"))), 2);
        assert!(
            out.join(format!("latents/{rate}x-ae3/latents.json"))
                .is_file()
        );
    }
    // The latents' channels give the rate: 16x16x5 fields to 1x1xc latents.
    let latents: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("latents/1280x-ae3/latents.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(latents["latent_shape"], serde_json::json!([1, 1, 1]));

    // Again: every stage is done, the table is the same.
    let (_, stderr) = experiment(&out, &["--emulator-steps", "2"]);
    assert_eq!(stderr.matches("is done").count(), 1 + 3 * 7, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("compression.md")).unwrap(),
        md
    );

    // More emulator steps: the emulators resume from step 2 to 3 and are scored again; the
    // autoencoders, latents and their evaluations stay.
    std::fs::remove_dir_all(out.join("eval/ae-320x-step3")).unwrap();
    let (_, stderr) = experiment(&out, &["--emulator-steps", "3"]);
    for rate in ["80", "320", "1280"] {
        assert_eq!(step(&out.join(format!("runs/surrogate-{rate}x-ae3"))), 3);
        assert!(
            stderr.contains(&format!("train ae-{rate}x is done")),
            "{stderr}"
        );
        assert!(
            out.join(format!("eval/diffusion-{rate}x-ae3-step3/summary.json"))
                .is_file()
        );
    }
    assert!(
        stderr.contains("lemur experiment: eval ae-320x\n"),
        "{stderr}"
    );
    assert!(stderr.contains("eval ae-80x is done"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
}

#[test]
fn compression_experiment_rejects_what_it_cannot_run() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("experiment-bad");
    for (args, expect) in [
        (&["--rates", "100"][..], "--rates 100"),
        (&["--size", "20"][..], "--size 20"),
        (&["--preset", "paper"][..], "--preset paper"),
        (&["--ae-steps", "0"][..], "--ae-steps"),
        (&["--optimizer", "sgd"][..], "--optimizer sgd"),
    ] {
        let o = Command::new(LEMUR)
            .args(["experiment", "compression", "--out"])
            .arg(&out)
            .args(args)
            .output()
            .expect("run lemur");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
}
