//! The run directory, checkpoints and options, without training.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lemur_models::dcae::{Dcae, DcaeConfig};
use lemur_models::nn::Builder;
use lemur_tensor::{CpuBackend, ParamStore};
use lemur_train::provenance::DataProvenance;
use lemur_train::run::{FORMAT, HostTensors, KEEP, locate, read_weights_at};
use lemur_train::{CheckpointMeta, ModelKind, Overrides, RunDir, TrainError, TrainOptions, batch};
use lemur_well::dataset::{Stats, Transform};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("lemur-train")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny() -> DcaeConfig {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/presets/autoencoder-tiny.json"
    ))
    .unwrap();
    DcaeConfig::from_json(&text).unwrap()
}

fn meta(step: u32) -> CheckpointMeta {
    CheckpointMeta {
        format: FORMAT.into(),
        kind: ModelKind::Autoencoder,
        step,
        dir: String::new(),
        model_config: serde_json::to_value(tiny()).unwrap(),
        options: TrainOptions::defaults(),
        backend: "cpu".into(),
        stats: Stats {
            dataset_name: "t".into(),
            channels: vec!["a".into()],
            transforms: vec![Transform::Identity],
            mean: vec![0.5],
            std: vec![2.0],
            frames: 3,
        },
        data: DataProvenance {
            kind: "well".into(),
            root: "/x".into(),
            files: vec![],
            channels: vec!["a".into()],
            grid: [16, 16],
        },
        extra: serde_json::Value::Null,
        git_revision: "unknown".into(),
        loss: Some(1.5),
        val_loss: None,
        params: 10,
        elapsed_s: 1.0,
        created_unix: 0,
    }
}

fn model_tensors(seed: u64) -> (ParamStore<CpuBackend>, HostTensors) {
    let mut params = ParamStore::new();
    Dcae::new(&tiny(), &mut Builder::new(&CpuBackend, &mut params, seed)).unwrap();
    let host = pollster::block_on(params.to_host()).unwrap();
    (params, host)
}

#[test]
fn checkpoints_round_trip_and_rotate() {
    let dir = scratch("rotate");
    let run = RunDir::create(&dir).unwrap();
    let (_, weights) = model_tensors(1);
    let moments: HostTensors =
        BTreeMap::from([("x.exp_avg".to_string(), (vec![2], vec![1.0, -2.0]))]);
    for step in [10, 20, 30] {
        run.write_checkpoint(&meta(step), &weights, &moments)
            .unwrap();
    }
    let latest = run.latest().unwrap();
    assert_eq!((latest.step, latest.dir.as_str()), (30, "step-00000030"));
    let steps: Vec<u32> = run
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps.len(), KEEP);
    assert_eq!(steps, [20, 30]);
    let (_, back) = run.read_weights(&latest).unwrap();
    assert_eq!(back, weights);
    assert_eq!(run.read_optimizer(&latest).unwrap().1, moments);
    // The weights load into a model initialised differently and reproduce it exactly.
    let (params, other) = model_tensors(2);
    assert_ne!(other, weights);
    params.load_host(&back, &dir).unwrap();
    assert_eq!(pollster::block_on(params.to_host()).unwrap(), weights);
    // A run directory and one checkpoint directory both locate.
    let (d, m) = locate(&dir).unwrap();
    assert_eq!((d, m.step), (dir.join("step-00000030"), 30));
    let (d, m) = locate(&dir.join("step-00000020")).unwrap();
    assert_eq!((d.clone(), m.step), (dir.join("step-00000020"), 20));
    assert_eq!(read_weights_at(&d).unwrap().1, weights);
    // A second process refuses the same directory while the first trains it (an OS lock:
    // another open file description in this process conflicts just like another process)...
    let busy = RunDir::create(&dir).unwrap_err();
    assert!(matches!(busy, TrainError::Busy { .. }), "{busy}");
    let text = busy.to_string();
    let pid = format!("PID {}", std::process::id());
    assert!(
        text.contains(&pid) && text.contains(dir.to_str().unwrap()),
        "{text}"
    );
    assert!(matches!(RunDir::open(&dir), Err(TrainError::Busy { .. })));
    // ...and once it is done, a new run still refuses a directory that holds one.
    drop(run);
    assert!(matches!(RunDir::create(&dir), Err(TrainError::Options(_))));
    assert_eq!(RunDir::open(&dir).unwrap().latest().unwrap().step, 30);
}

#[test]
fn resume_discards_what_the_pointer_does_not_reference() {
    let dir = scratch("stale");
    let run = RunDir::create(&dir).unwrap();
    let (_, weights) = model_tensors(1);
    run.write_checkpoint(&meta(5), &weights, &BTreeMap::new())
        .unwrap();
    // A kill after renaming step 10 into place but before moving the pointer, and another
    // during the writing of step 15.
    std::fs::create_dir(dir.join("step-00000010")).unwrap();
    std::fs::create_dir(dir.join(".step-00000015.tmp-9")).unwrap();
    // And a kill while deleting an old checkpoint (renamed aside first, so no `step-N` is
    // ever half-deleted).
    std::fs::create_dir(dir.join(".step-00000001.del-9")).unwrap();
    drop(run);
    std::fs::write(dir.join("log.jsonl"), "{\"step\":5,\"loss\":1.0,\"val_loss\":null,\"lr\":0.1,\"samples_per_s\":1.0,\"elapsed_s\":1.0}\n{\"step\":7,\"loss\":1.0,\"val_loss\":null,\"lr\":0.1,\"samples_per_s\":1.0,\"elapsed_s\":1.0}\n{\"st").unwrap();
    let run = RunDir::open(&dir).unwrap();
    assert_eq!(run.latest().unwrap().step, 5);
    run.prepare_resume(5).unwrap();
    assert!(!dir.join("step-00000010").exists() && !dir.join(".step-00000015.tmp-9").exists());
    assert!(!dir.join(".step-00000001.del-9").exists());
    assert_eq!(
        run.read_log()
            .unwrap()
            .iter()
            .map(|l| l.step)
            .collect::<Vec<_>>(),
        [5]
    );
    // Writing step 10 for real afterwards works.
    run.write_checkpoint(&meta(10), &weights, &BTreeMap::new())
        .unwrap();
    assert_eq!(run.latest().unwrap().step, 10);
}

#[test]
fn open_reports_missing_runs() {
    let dir = scratch("missing");
    assert!(matches!(
        RunDir::open(&dir.join("nope")),
        Err(TrainError::Missing { .. })
    ));
    let e = RunDir::open(&dir).unwrap_err().to_string();
    assert!(e.contains("no complete checkpoint"), "{e}");
}

#[test]
fn resume_allows_only_harmless_changes() {
    let stored = TrainOptions::new_run(
        TrainOptions::defaults(),
        &Overrides {
            lr: Some(3e-3),
            ..Default::default()
        },
    )
    .unwrap();
    let more = TrainOptions::resume(
        &stored,
        &Overrides {
            steps: Some(5000),
            checkpoint_every: Some(7),
            lr: Some(3e-3),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (more.steps, more.checkpoint_every, more.lr),
        (5000, 7, 3e-3)
    );
    let e = TrainOptions::resume(
        &stored,
        &Overrides {
            batch: Some(3),
            seed: Some(9),
            first_frame: Some(40),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--batch") && e.contains("--seed") && e.contains("--first-frame 40"),
        "{e}"
    );
    // The first frame is stored (checkpoints written before it existed read as 0) and kept.
    let later = TrainOptions::new_run(
        TrainOptions::defaults(),
        &Overrides {
            first_frame: Some(40),
            ..Default::default()
        },
    )
    .unwrap();
    let json = serde_json::to_value(&later).unwrap();
    assert_eq!(json["first_frame"], 40);
    let old = serde_json::to_value(&stored).unwrap();
    assert!(old.get("first_frame").is_none());
    let read: TrainOptions = serde_json::from_value(old).unwrap();
    assert_eq!(read.first_frame, 0);
    let kept = TrainOptions::resume(&later, &Overrides::default()).unwrap();
    assert_eq!(kept.first_frame, 40);
    assert!(
        TrainOptions::new_run(
            TrainOptions::defaults(),
            &Overrides {
                accum: Some(0),
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn batches_are_pure_functions_of_their_counters() {
    use batch::Stream::TrainIndex;
    let draw = |seed, step, micro| {
        (0..32)
            .map(|j| batch::index(seed, TrainIndex, step, micro, j, 1000))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(3, 17, 1), draw(3, 17, 1));
    assert_ne!(draw(3, 17, 1), draw(3, 17, 0));
    assert_ne!(draw(3, 17, 1), draw(3, 18, 1));
    assert_ne!(draw(3, 17, 1), draw(4, 17, 1));
    assert!(draw(3, 17, 1).iter().all(|&i| i < 1000));
}

#[test]
fn soap_settings_reach_the_optimizer_and_are_kept_by_resume() {
    let soap = |pf: Option<u32>, dim: Option<usize>| Overrides {
        optimizer: Some("soap".into()),
        precondition_frequency: pf,
        max_precond_dim: dim,
        ..Default::default()
    };
    let stored = TrainOptions::new_run(TrainOptions::defaults(), &soap(Some(3), Some(64))).unwrap();
    match stored.optimizer::<CpuBackend>() {
        lemur_tensor::Optimizer::Soap(s) => {
            assert_eq!(
                (s.config.precondition_frequency, s.config.max_precond_dim),
                (3, 64)
            );
            assert_eq!(s.config.betas, lemur_train::options::SOAP_BETAS);
        }
        other => panic!("expected SOAP, got {other:?}"),
    }
    // Checkpoints written before the settings existed have SOAP's defaults.
    let mut json = serde_json::to_value(&stored).unwrap();
    let map = json.as_object_mut().unwrap();
    map.remove("precondition_frequency");
    map.remove("max_precond_dim");
    let old: TrainOptions = serde_json::from_value(json).unwrap();
    assert_eq!((old.precondition_frequency, old.max_precond_dim), (10, 512));

    assert!(TrainOptions::resume(&stored, &soap(Some(3), None)).is_ok());
    let e = TrainOptions::resume(&stored, &soap(Some(5), Some(32)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--precondition-frequency 5 (the run has 3)")
            && e.contains("--max-precond-dim 32 (the run has 64)"),
        "{e}"
    );
    let e = TrainOptions::new_run(
        TrainOptions::defaults(),
        &Overrides {
            precondition_frequency: Some(3),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "--precondition-frequency applies only to --optimizer soap (this run uses adamw)"
        ),
        "{e}"
    );
    let e = TrainOptions::new_run(TrainOptions::defaults(), &soap(Some(0), None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--precondition-frequency 0"), "{e}");
}
