//! Seeded mutations of trained runs (`checkpoint.json`, the pointer and a checkpoint's own,
//! and `model.safetensors`, of an autoencoder run and of a surrogate run that names it) and of
//! the model configurations (`assets/presets`): no panic and no allocation sized by an
//! unchecked number, whatever the bytes (see `tests/support/mutate.rs` at the workspace root;
//! `LEMUR_MUTATIONS=1000000 cargo test -p lemur-train --test mutate` for a long run).

#[path = "../../../tests/support/mutate.rs"]
mod mutate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lemur_models::dcae::Dcae;
use lemur_models::nn::Builder;
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::{CpuBackend, ParamStore};
use lemur_train::autoencoder::parse_config;
use lemur_train::emulate::{Emulation, RolloutOptions};
use lemur_train::provenance::DataProvenance;
use lemur_train::run::{FORMAT, HostTensors};
use lemur_train::{CheckpointMeta, ModelKind, RunDir, TrainOptions};
use lemur_well::dataset::{Stats, Transform};
use mutate::{Rng, campaign, mutate_bytes, mutate_json, seeds};
use serde_json::Value;

#[global_allocator]
static ALLOC: mutate::Capped = mutate::Capped;

fn preset(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/presets")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn meta(kind: ModelKind, step: u32, model_config: Value, extra: Value) -> CheckpointMeta {
    let channels: Vec<String> = ["density", "energy", "pressure", "momentum_x", "momentum_y"]
        .map(String::from)
        .to_vec();
    CheckpointMeta {
        format: FORMAT.into(),
        kind,
        step,
        dir: String::new(),
        model_config,
        options: TrainOptions {
            window: 2,
            stride: 1,
            ..TrainOptions::defaults()
        },
        backend: "cpu".into(),
        stats: Stats {
            dataset_name: "euler_mutate".into(),
            channels: channels.clone(),
            transforms: vec![
                Transform::Log1p,
                Transform::Log1p,
                Transform::Log1p,
                Transform::Identity,
                Transform::Identity,
            ],
            mean: vec![0.5, 0.4, 0.3, 0.0, 0.0],
            std: vec![1.0, 2.0, 3.0, 0.5, 0.5],
            frames: 12,
        },
        data: DataProvenance {
            kind: "well".into(),
            root: "/nowhere".into(),
            files: vec![],
            channels,
            grid: [8, 8],
        },
        extra,
        git_revision: "unknown".into(),
        loss: Some(0.5),
        val_loss: None,
        params: 0,
        elapsed_s: 1.0,
        created_unix: 0,
    }
}

/// An autoencoder run and a surrogate run on its latents, as `lemur train` leaves them.
struct Runs {
    ae: PathBuf,
    sur: PathBuf,
}

fn runs(root: &Path) -> Runs {
    let ae = root.join("ae");
    let sur = root.join("sur");
    let ae_cfg = preset("autoencoder-tiny");
    let mut params = ParamStore::new();
    Dcae::new(
        &parse_config(&ae_cfg).unwrap(),
        &mut Builder::new(&CpuBackend, &mut params, 1),
    )
    .unwrap();
    let weights: HostTensors = pollster::block_on(params.to_host()).unwrap();
    let run = RunDir::create(&ae).unwrap();
    run.write_checkpoint(
        &meta(ModelKind::Autoencoder, 10, ae_cfg, Value::Null),
        &weights,
        &BTreeMap::new(),
    )
    .unwrap();
    drop(run);

    let sur_cfg = preset("surrogate-tiny");
    let mut params = ParamStore::new();
    Surrogate::new(
        &serde_json::from_value(sur_cfg.clone()).unwrap(),
        &mut Builder::new(&CpuBackend, &mut params, 2),
    )
    .unwrap();
    let weights: HostTensors = pollster::block_on(params.to_host()).unwrap();
    let run = RunDir::create(&sur).unwrap();
    let extra = serde_json::json!({
        "autoencoder_path": ae.to_str().unwrap(),
        "autoencoder_step": 10,
    });
    run.write_checkpoint(
        &meta(ModelKind::Surrogate, 20, sur_cfg, extra),
        &weights,
        &BTreeMap::new(),
    )
    .unwrap();
    Runs { ae, sur }
}

/// Opens `run` and uses it as `rollout` does: a reconstruction of two 8 x 8 frames, and for
/// the surrogate one predicted frame. Returns whether the run opened.
fn open_and_use(run: &Path) -> bool {
    let em = match Emulation::open(CpuBackend, run) {
        Ok(em) => em,
        Err(e) => {
            // Every error names a file or directory of the runs.
            let text = e.to_string();
            assert!(text.contains("lemur-mutate"), "{text}");
            return false;
        }
    };
    let channels = em.stats.channels.len();
    let frames: Vec<f32> = (0..2 * channels * 64)
        .map(|i| (i % 7) as f32 * 0.1)
        .collect();
    if let Ok(out) = em.reconstruct(&frames, [8, 8]) {
        assert_eq!(out.len(), frames.len());
    }
    if em.kind == ModelKind::Surrogate {
        let labels = vec![0.5; em.label_features];
        let opts = RolloutOptions::new(1, 1, 0);
        if let Ok(p) = em.predict(&frames[..channels * 64], [8, 8], &labels, &opts) {
            assert_eq!(p.frames.len(), 2 * channels * 64);
        }
    }
    true
}

#[test]
fn runs_moved_together_find_their_autoencoder_beside_them() {
    let scratch = mutate::Scratch::new(env!("CARGO_TARGET_TMPDIR"), "moved");
    let Runs { sur, .. } = runs(&scratch.0.join("before"));
    let after = scratch.0.join("after");
    std::fs::rename(scratch.0.join("before"), &after).unwrap();
    assert!(!sur.exists());
    // The recorded path is gone; the autoencoder moved with the surrogate, at its recorded
    // step.
    let em = Emulation::open(CpuBackend, &after.join("sur")).unwrap();
    assert_eq!(em.kind, ModelKind::Surrogate);
    assert!(open_and_use(&after.join("sur")));
    // Without it beside the run, the error names the recorded autoencoder.
    std::fs::rename(after.join("ae"), after.join("elsewhere")).unwrap();
    let e = Emulation::open(CpuBackend, &after.join("sur"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&scratch.0.join("before/ae").display().to_string()),
        "{e}"
    );
}

#[test]
fn run_mutations_never_panic_or_overallocate() {
    let scratch = mutate::Scratch::new(env!("CARGO_TARGET_TMPDIR"), "runs");
    let root = &scratch.0;
    let Runs { ae, sur } = runs(root);
    assert!(open_and_use(&ae));
    assert!(open_and_use(&sur));
    // (file, run to open) pairs; the surrogate reads the autoencoder's own checkpoint file
    // (its recorded step), the autoencoder run its pointer.
    let targets: Vec<(PathBuf, PathBuf)> = vec![
        (ae.join("checkpoint.json"), ae.clone()),
        (ae.join("step-00000010/checkpoint.json"), sur.clone()),
        (ae.join("step-00000010/model.safetensors"), ae.clone()),
        (sur.join("checkpoint.json"), sur.clone()),
        (sur.join("step-00000020/model.safetensors"), sur.clone()),
    ];
    let originals: Vec<Vec<u8>> = targets
        .iter()
        .map(|(f, _)| std::fs::read(f).unwrap())
        .collect();
    let report = campaign("run", &seeds(10_000), |seed| {
        let mut rng = Rng::new(seed);
        let i = rng.below(targets.len());
        let (file, run) = &targets[i];
        let bytes = if file.extension().is_some_and(|e| e == "json") {
            let doc: Value = serde_json::from_slice(&originals[i]).unwrap();
            mutate_json(&mut rng, &doc)
        } else {
            mutate_bytes(&mut rng, &originals[i])
        };
        std::fs::write(file, &bytes).unwrap();
        let opened = open_and_use(run);
        std::fs::write(file, &originals[i]).unwrap();
        opened
    });
    report.assert_clean();
    if report.cases >= 1000 {
        assert!(report.accepted > report.cases / 100, "{report:?}");
        assert!(report.rejected > report.cases / 2, "{report:?}");
    }
}

/// The most parameters a mutated configuration may build in this test: the tiny presets are
/// tens of thousands; a limit keeps a valid but huge configuration from taking the test's
/// memory while its constructor's arithmetic still runs on whatever sizes it was given.
const BUILD_LIMIT: usize = 2_000_000;

#[test]
fn model_config_mutations_never_panic_or_overallocate() {
    let configs: Vec<(ModelKind, Value)> = vec![
        (ModelKind::Autoencoder, preset("autoencoder-tiny")),
        (ModelKind::Autoencoder, preset("autoencoder-small")),
        (ModelKind::Diffusion, preset("denoiser-tiny")),
        (ModelKind::Surrogate, preset("surrogate-tiny")),
        (ModelKind::Diffusion, preset("denoiser-paper")),
    ];
    let report = campaign("model-config", &seeds(10_000), |seed| {
        let mut rng = Rng::new(seed);
        let (kind, base) = rng.pick(&configs);
        let bytes = mutate_json(&mut rng, base);
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            return false;
        };
        let mut params = ParamStore::new();
        let mut b = Builder::with_limit(&CpuBackend, &mut params, 0, BUILD_LIMIT);
        match kind {
            ModelKind::Autoencoder => match parse_config(&doc) {
                Ok(cfg) => {
                    if let Ok(m) = Dcae::new(&cfg, &mut b) {
                        assert!(m.param_count() <= BUILD_LIMIT);
                        let _ = cfg.latent_shape(16, 16);
                    }
                    true
                }
                Err(_) => false,
            },
            // What `lemur train` and the run loader do with a ViT configuration.
            kind => match serde_json::from_value::<VitConfig>(doc)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
            {
                Ok(cfg) => {
                    let built = if *kind == ModelKind::Diffusion {
                        lemur_models::diffusion::Denoiser::new(&cfg, &mut b).map(|_| ())
                    } else {
                        Surrogate::new(&cfg, &mut b).map(|_| ())
                    };
                    if built.is_ok() {
                        assert!(params.count() <= BUILD_LIMIT);
                    }
                    true
                }
                Err(_) => false,
            },
        }
    });
    report.assert_clean();
    if report.cases >= 1000 {
        assert!(report.accepted > report.cases / 100, "{report:?}");
        assert!(report.rejected > report.cases / 10, "{report:?}");
    }
}
