//! A SOAP autoencoder run stopped mid-way and resumed equals an uninterrupted one byte for
//! byte (weights and optimizer state: moments, Shampoo statistics, eigenbases, per-parameter
//! steps), across a basis refresh after the resume; and `--resume` keeps the optimizer.

use std::path::{Path, PathBuf};

use lemur_tensor::BackendKind;
use lemur_train::autoencoder::{AutoencoderArgs, train};
use lemur_train::{CommonArgs, ConfigSource, Overrides, RunDir};
use lemur_well::dataset::write_stats;
use lemur_well::{BoundaryType, TrajectoryData, write_file};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lemur-soap-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Smooth Euler-like fields (energy, density, pressure > 0; momentum around 0) on an 8x8 grid.
fn trajectory(seed: u32, n: usize, nt: usize) -> TrajectoryData {
    let nc = 5;
    let data = (0..nt * n * n * nc)
        .map(|i| {
            let (c, cell, t) = (i % nc, (i / nc) % (n * n), i / (nc * n * n));
            let (x, y) = ((cell / n) as f32, (cell % n) as f32);
            let phase = seed as f32 + 0.3 * c as f32 + 0.2 * t as f32;
            let v = (0.7 * x + phase).sin() * (0.5 * y - phase).cos();
            if c < 3 { 1.0 + 0.4 * v } else { 0.3 * v }
        })
        .collect();
    TrajectoryData {
        dataset_name: "euler_multi_quadrants_periodicBC".into(),
        x: (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect(),
        y: (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect(),
        times: (0..nt).map(|i| i as f64 * 0.015).collect(),
        t0_fields: vec!["energy".into(), "density".into(), "pressure".into()],
        t1_fields: vec!["momentum".into()],
        data,
        scalars: vec![("gamma".into(), 1.4)],
        boundaries: [BoundaryType::Periodic; 2],
    }
}

fn dataset(root: &Path) {
    for (split, seeds) in [("train", vec![1, 2]), ("valid", vec![3]), ("test", vec![4])] {
        let dir = root.join("data").join(split);
        std::fs::create_dir_all(&dir).unwrap();
        let t: Vec<TrajectoryData> = seeds.iter().map(|&s| trajectory(s, 8, 4)).collect();
        write_file(dir.join("euler.hdf5"), &t.iter().collect::<Vec<_>>()).unwrap();
    }
    write_stats(root).unwrap();
}

fn args(
    data: &Path,
    out: Option<&Path>,
    resume: Option<&Path>,
    backend: BackendKind,
    stop_after: Option<u32>,
    optimizer: Option<&str>,
) -> AutoencoderArgs {
    let preset =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/presets/autoencoder-tiny.json");
    AutoencoderArgs {
        data: Some(data.to_path_buf()),
        common: CommonArgs {
            config: Some(ConfigSource::File(preset)),
            out: out.map(Path::to_path_buf),
            init: None,
            resume: resume.map(Path::to_path_buf),
            overrides: Overrides {
                steps: Some(14),
                batch: Some(2),
                lr: Some(3e-3),
                seed: Some(5),
                checkpoint_every: Some(7),
                val_batches: Some(1),
                optimizer: optimizer.map(String::from),
                ..Default::default()
            },
            backend,
            stop_after,
            time_limit: None,
            stop: None,
        },
    }
}

fn resume_on(backend: BackendKind, tag: &str) {
    let dir = scratch(tag);
    let data = dir.join("euler");
    dataset(&data);
    let (a, b) = (dir.join("a"), dir.join("b"));

    let first = train(&args(&data, Some(&a), None, backend, Some(6), Some("soap"))).unwrap();
    assert_eq!(first.step, 6);
    let stored = RunDir::open(&a).unwrap().latest().unwrap();
    assert_eq!(stored.options.optimizer, "soap");
    assert_eq!(stored.options.betas, (0.95, 0.95));
    // --resume with the other optimizer is refused; without --optimizer it keeps SOAP.
    let e = train(&args(&data, None, Some(&a), backend, None, Some("adamw")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--optimizer adamw (the run has soap)"), "{e}");
    let resumed = train(&args(&data, None, Some(&a), backend, None, None)).unwrap();
    assert_eq!(resumed.step, 14);

    let whole = train(&args(&data, Some(&b), None, backend, None, Some("soap"))).unwrap();
    assert_eq!(whole.step, 14);
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let (x, y) = (
            std::fs::read(a.join("step-00000014").join(f)).unwrap(),
            std::fs::read(b.join("step-00000014").join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{f} differs between the resumed and the uninterrupted run"
        );
    }
    // The state is SOAP's: a conv kernel's bases and statistics are saved, and its Adam step
    // (13 updates after the initialising call) crossed the refresh at 10 after the resume.
    let run = RunDir::open(&b).unwrap();
    let (_, state) = run.read_optimizer(&run.latest().unwrap()).unwrap();
    let q: Vec<&String> = state.keys().filter(|k| k.ends_with(".soap_q_l")).collect();
    assert!(
        !q.is_empty(),
        "no SOAP bases in {:?}",
        state.keys().collect::<Vec<_>>()
    );
    let step_key = q[0].replace(".soap_q_l", ".soap_step");
    assert_eq!(state[&step_key].1, vec![13.0], "{step_key}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soap_resume_is_bit_identical_cpu() {
    resume_on(BackendKind::Cpu, "cpu");
}

#[test]
fn soap_resume_is_bit_identical_gpu() {
    if lemur_tensor::testing::skip_gpu("the GPU backend") {
        return;
    }
    resume_on(BackendKind::Gpu, "gpu");
}

#[test]
fn optimizer_names_are_checked_and_soap_takes_its_betas() {
    use lemur_train::TrainOptions;
    let with = |name: &str| {
        TrainOptions::new_run(
            TrainOptions::defaults(),
            &Overrides {
                optimizer: Some(name.into()),
                ..Default::default()
            },
        )
    };
    let e = with("sgd").unwrap_err().to_string();
    assert!(e.contains("--optimizer sgd: expected adamw or soap"), "{e}");
    assert_eq!(with("adamw").unwrap().betas, (0.9, 0.99));
    let soap = with("soap").unwrap();
    assert_eq!(
        (soap.optimizer.as_str(), soap.betas),
        ("soap", (0.95, 0.95))
    );
    // Checkpoints from before the option existed are AdamW's.
    let mut old = serde_json::to_value(TrainOptions::defaults()).unwrap();
    old.as_object_mut().unwrap().remove("optimizer");
    let old: TrainOptions = serde_json::from_value(old).unwrap();
    assert_eq!(old.optimizer, "adamw");
}
