//! End to end through the `lemur` binary: generate a tiny Euler dataset, train the
//! autoencoder, encode, train the emulators, on the CPU and the GPU backend (lavapipe where
//! there is no GPU; skipped with `LEMUR_TEST_CPU_ONLY=1`), resume, and every bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/cli.rs"]
mod support;

use support::{LEMUR, checkpoint_meta, fails, lemur, ok, preset, s, walk};

fn scratch(name: &str) -> PathBuf {
    support::scratch_in("cli", name)
}

/// One tiny dataset shared by every test (3 trajectories, 9 frames, 16x16).
fn dataset() -> PathBuf {
    support::tiny_dataset("cli")
}

fn gpu_too() -> Vec<&'static str> {
    if lemur_tensor::testing::skip_gpu("the GPU backend") {
        vec!["cpu"]
    } else {
        vec!["cpu", "gpu"]
    }
}

/// `(step, loss)` of every line of a run's log.
fn log(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

fn assert_falls(run: &Path) {
    let log = log(run);
    let (first, last) = (log.first().unwrap().1, log.last().unwrap().1);
    assert!(
        last < 0.8 * first,
        "{}: loss did not fall: {log:?}",
        run.display()
    );
}

const AE_FAST: [&str; 10] = [
    "--steps",
    "40",
    "--batch",
    "4",
    "--lr",
    "3e-3",
    "--checkpoint-every",
    "20",
    "--log-every",
    "10",
];

fn train_autoencoder(dir: &Path, backend: &str) -> PathBuf {
    let run = dir.join(format!("ae-{backend}"));
    let data = dataset();
    let config = preset("autoencoder-tiny");
    let mut a: Vec<&str> = vec![
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--out",
        s(&run),
        "--backend",
        backend,
    ];
    a.extend(AE_FAST);
    ok(&a);
    run
}

#[test]
fn a_time_limit_stops_with_a_checkpoint_and_succeeds() {
    let dir = scratch("time-limit");
    let run = dir.join("ae");
    let (data, config) = (dataset(), preset("autoencoder-tiny"));
    let base = [
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--backend",
        "cpu",
        "--batch",
        "2",
        "--steps",
        "100000",
    ];
    // Shorter than a step: one step, checkpointed, and a script goes on (exit status 0).
    let mut a = base.to_vec();
    a.extend(["--out", s(&run), "--time-limit", "0.001s"]);
    let out = ok(&a);
    assert!(
        out.contains(
            "--time-limit reached before the steps' rate was measured to fit the schedule: \
             saved a checkpoint at step 1"
        ),
        "{out}"
    );
    assert!(
        run.join("step-00000001/model.safetensors").is_file(),
        "{out}"
    );
    // A resume continues it under a new limit, its schedule fitted at once to the rate of
    // the run's last session (here the one step the limit leaves); a bad duration names
    // itself.
    let out = ok(&[
        "train",
        "autoencoder",
        "--resume",
        s(&run),
        "--backend",
        "cpu",
        "--time-limit",
        "0.001",
    ]);
    assert!(
        run.join("step-00000002/model.safetensors").is_file(),
        "{out}"
    );
    assert!(
        out.contains("(the run's last session); the schedule now ends at step 2 (was 100000)"),
        "{out}"
    );
    let bad = dir.join("bad");
    let mut a = base.to_vec();
    a.extend(["--out", s(&bad), "--time-limit", "5 min"]);
    let e = fails(&a);
    assert!(e.contains("'5 min' is not a positive duration"), "{e}");
}

#[test]
fn autoencoder_trains_and_encodes_on_each_backend() {
    let dir = scratch("autoencoder");
    for backend in gpu_too() {
        let run = train_autoencoder(&dir, backend);
        assert_falls(&run);
        let meta = checkpoint_meta(&run);
        assert_eq!(meta["step"], 40);
        assert_eq!(meta["dir"], "step-00000040");
        assert!(meta["val_loss"].as_f64().is_some());
        assert!(meta["git_revision"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(meta["data"]["channels"].as_array().unwrap().len(), 5);
        for f in [
            "model.safetensors",
            "optimizer.safetensors",
            "checkpoint.json",
        ] {
            assert!(run.join("step-00000040").join(f).is_file());
        }
        assert!(
            run.join("step-00000020").is_dir(),
            "the previous checkpoint is kept"
        );

        let latents = dir.join(format!("latents-{backend}"));
        ok(&[
            "encode",
            "--autoencoder",
            s(&run),
            "--data",
            s(&dataset()),
            "--out",
            s(&latents),
            "--augment",
            "2",
            "--backend",
            backend,
        ]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(latents.join("latents.json")).unwrap()).unwrap();
        assert_eq!(manifest["latent_shape"], serde_json::json!([4, 8, 8]));
        // 1 training trajectory (80/10/10 of 3) with 2 augmented copies; 1 each for valid, test.
        assert_eq!(
            manifest["splits"]["train"]["trajectories"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            manifest["splits"]["valid"]["trajectories"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(manifest["autoencoder"]["step"], 40);
        for split in ["train", "valid", "test"] {
            // Values, not just the files: finite, in the few units the softclipped latents
            // span, and not constant. Fails on a NaN from the encoder on this backend or an
            // encoding that lost the input (all zeros).
            let t = tensors(&latents.join(format!("{split}.safetensors")));
            for (name, (shape, v)) in t.iter().filter(|(k, _)| k.starts_with("traj.")) {
                assert_eq!(shape[1..], [4, 8, 8], "{split} {name}");
                let n = v.len() as f64;
                let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
                let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
                assert!(
                    v.iter().all(|x| x.is_finite() && x.abs() < 10.0) && sd > 1e-2,
                    "{backend}: {split} {name}: latents out of range or constant (sd {sd})"
                );
            }
        }
        let again = fails(&[
            "encode",
            "--autoencoder",
            s(&run),
            "--data",
            s(&dataset()),
            "--out",
            s(&latents),
            "--backend",
            backend,
        ]);
        assert!(again.contains("already exists"), "{again}");
    }
}

/// `encode --autoencoder` takes an embedded autoencoder by name, as `train --init` and `eval
/// --run` do, and refuses an embedded emulator's name, naming the autoencoders.
#[test]
fn encode_takes_an_embedded_autoencoder_by_name() {
    let dir = scratch("encode-pretrained");
    let latents = dir.join("latents");
    let (cache, data) = (dir.join("cache"), dataset());
    let encode = |autoencoder: &str| {
        support::command(&[
            "encode",
            "--autoencoder",
            autoencoder,
            "--data",
            s(&data),
            "--out",
            s(&latents),
            "--backend",
            "cpu",
        ])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap()
    };
    let out = encode("pretrained-autoencoder");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latents.join("latents.json")).unwrap()).unwrap();
    // The f8 autoencoder takes the 16x16 fields to 2x2 latents of its 4 channels.
    assert_eq!(manifest["latent_shape"], serde_json::json!([4, 2, 2]));
    let path = manifest["autoencoder_path"].as_str().unwrap();
    assert!(
        path.starts_with(s(&cache)) && path.contains("pretrained-euler64"),
        "{manifest}"
    );
    assert!(manifest["autoencoder"]["step"].as_u64().unwrap() > 0);

    std::fs::remove_dir_all(&latents).unwrap();
    let out = encode("pretrained-rb");
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("pretrained-rb: an embedded diffusion run, not an autoencoder")
            && e.contains("pretrained-autoencoder and pretrained-rb-autoencoder"),
        "{e}"
    );
    assert!(
        !latents.exists(),
        "a refused encode wrote {}",
        latents.display()
    );
}

/// Stopped at step 13 (with a torn checkpoint and log after it), resumed, and compared byte
/// for byte with an uninterrupted run, with dropout and gradient accumulation, on each
/// backend. The GPU is bit-deterministic too: its kernels reduce in a fixed order (no kernel
/// uses atomics), and dropout masks and latent noise are pure functions of the seed and step
/// drawn from the counter-based stream. Fails when resume loses or re-rounds state (AdamW's
/// moments, the schedule's step, the data order, the dropout stream) or a kernel is
/// nondeterministic.
#[test]
fn autoencoder_resume_is_bit_identical() {
    for backend in gpu_too() {
        // lavapipe trains this autoencoder at about 1.5 s a step: the GPU run is shorter.
        if backend == "cpu" {
            autoencoder_resume_on(
                backend,
                Schedule {
                    steps: 24,
                    every: 5,
                    stop: 13,
                    batch: 3,
                },
            );
        } else {
            autoencoder_resume_on(
                backend,
                Schedule {
                    steps: 8,
                    every: 3,
                    stop: 4,
                    batch: 2,
                },
            );
        }
    }
}

/// `--steps`, `--checkpoint-every`, `--stop-after` and `--batch` of a resume test.
struct Schedule {
    steps: u64,
    every: u64,
    stop: u64,
    batch: u64,
}

fn autoencoder_resume_on(backend: &str, sch: Schedule) {
    let dir = scratch(&format!("resume-{backend}"));
    let (steps, every, stop, batch) = (
        sch.steps.to_string(),
        sch.every.to_string(),
        sch.stop.to_string(),
        sch.batch.to_string(),
    );
    // The checkpoint after the stop, which the simulated kill tears.
    let next = (sch.stop / sch.every + 1) * sch.every;
    let torn = format!(".step-{next:08}.tmp-1");
    let (data, config) = (dataset(), preset("autoencoder-tiny"));
    let (a, b) = (dir.join("a"), dir.join("b"));
    let common = [
        "--steps",
        &steps,
        "--batch",
        &batch,
        "--accum",
        "2",
        "--lr",
        "3e-3",
        "--dropout",
        "0.1",
        "--seed",
        "7",
        "--checkpoint-every",
        &every,
        "--backend",
        backend,
    ];
    let mut first: Vec<&str> = vec![
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--out",
        s(&a),
        "--stop-after",
        &stop,
    ];
    first.extend(common);
    ok(&first);
    assert!(a.join(format!("step-{:08}", sch.stop)).is_dir());
    // Simulate a kill during the next checkpoint: a half-written temporary directory and a
    // log line past the checkpoint must both be discarded by the resume.
    std::fs::create_dir_all(a.join(&torn)).unwrap();
    std::fs::write(a.join(&torn).join("model.safetensors"), b"torn").unwrap();
    let mut log = std::fs::read_to_string(a.join("log.jsonl")).unwrap();
    log.push_str(&format!(
        "{{\"step\":{},\"loss\":1.0,\"val_loss\":null,\"lr\":0.001,\"samples_per_s\":1.0,\"elapsed_s\":1.0}}\n{{\"step\":{next},\"lo",
        next - 1
    ));
    std::fs::write(a.join("log.jsonl"), log).unwrap();
    ok(&[
        "train",
        "autoencoder",
        "--resume",
        s(&a),
        "--config",
        s(&config),
        "--backend",
        backend,
    ]);
    assert!(!a.join(&torn).exists());

    let mut whole: Vec<&str> = vec![
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--out",
        s(&b),
    ];
    whole.extend(common);
    ok(&whole);
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let (x, y) = (
            std::fs::read(a.join(format!("step-{:08}", sch.steps)).join(f)).unwrap(),
            std::fs::read(b.join(format!("step-{:08}", sch.steps)).join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{f} differs between the resumed and the uninterrupted run on {backend}"
        );
    }
    let steps: Vec<u64> = self::log(&a).iter().map(|l| l.0).collect();
    // A line at each checkpoint, at the stop and at the end; none of the torn ones.
    let mut want: Vec<u64> = (1..=sch.steps / sch.every).map(|k| k * sch.every).collect();
    want.extend([sch.stop, sch.steps]);
    want.sort();
    want.dedup();
    assert_eq!(steps, want);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = scratch("bad");
    let (data, tiny) = (dataset(), preset("autoencoder-tiny"));
    let run = dir.join("run");
    ok(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&tiny),
        "--out",
        s(&run),
        "--steps",
        "2",
        "--batch",
        "2",
        "--backend",
        "cpu",
    ]);

    // Resuming with another model configuration.
    let e = fails(&[
        "train",
        "autoencoder",
        "--resume",
        s(&run),
        "--config",
        s(&preset("autoencoder-small")),
        "--steps",
        "4",
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains("checkpoint does not match") && e.contains("hid_channels"),
        "{e}"
    );
    // Resuming with other optimisation settings.
    let e = fails(&[
        "train",
        "autoencoder",
        "--resume",
        s(&run),
        "--steps",
        "4",
        "--lr",
        "1",
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains("cannot resume with different settings") && e.contains("--lr"),
        "{e}"
    );
    // A new run into an existing one.
    let e = fails(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&tiny),
        "--out",
        s(&run),
        "--backend",
        "cpu",
    ]);
    assert!(e.contains("already holds a run"), "{e}");
    // A first frame past every trajectory's 9 frames.
    let e = fails(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&tiny),
        "--out",
        s(&dir.join("too-late")),
        "--first-frame",
        "9",
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains("no frames from frame 9 on (--first-frame)") && e.contains(s(&data)),
        "{e}"
    );

    // A configuration whose channel count does not fit the data (5 Euler channels).
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tiny).unwrap()).unwrap();
    cfg["pix_channels"] = 3.into();
    let three = dir.join("three.json");
    std::fs::write(&three, cfg.to_string()).unwrap();
    let e = fails(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&three),
        "--out",
        s(&dir.join("r3")),
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains("does not fit the model")
            && e.contains("5 channels")
            && e.contains("pix_channels is 3"),
        "{e}"
    );

    // A NaN/inf loss: an absurd learning rate blows the weights up after the first update.
    let nan = dir.join("nan");
    let e = fails(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&tiny),
        "--out",
        s(&nan),
        "--steps",
        "5",
        "--batch",
        "2",
        "--lr",
        "1e38",
        "--clip",
        "0",
        "--checkpoint-every",
        "1",
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains("non-finite loss") && e.contains("at step 2") && e.contains("step-00000001"),
        "{e}"
    );

    // Missing files and directories.
    let e = fails(&[
        "train",
        "autoencoder",
        "--data",
        s(&dir.join("nowhere")),
        "--config",
        s(&tiny),
        "--out",
        s(&dir.join("r4")),
        "--backend",
        "cpu",
    ]);
    assert!(e.contains("nowhere") && e.contains("does not exist"), "{e}");
    let e = fails(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&dir.join("none.json")),
        "--out",
        s(&dir.join("r5")),
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains("none.json") && e.contains("does not exist"),
        "{e}"
    );
    let e = fails(&[
        "train",
        "autoencoder",
        "--resume",
        s(&dir.join("r6")),
        "--backend",
        "cpu",
    ]);
    assert!(e.contains("r6") && e.contains("does not exist"), "{e}");
    let e = fails(&[
        "encode",
        "--autoencoder",
        s(&dir.join("r7")),
        "--data",
        s(&data),
        "--out",
        s(&dir.join("l7")),
        "--backend",
        "cpu",
    ]);
    assert!(e.contains("r7") && e.contains("does not exist"), "{e}");
}

/// `lemur train diffusion|surrogate` on the latents of a tiny autoencoder: losses fall on each
/// backend, a stopped-and-resumed denoiser run is bit-identical to an uninterrupted one, and a
/// configuration that does not fit the latents is refused.
#[test]
fn emulators_train_resume_and_check_their_latents() {
    let dir = scratch("emulators");
    let ae = train_autoencoder(&dir, "cpu");
    let latents = dir.join("latents");
    ok(&[
        "encode",
        "--autoencoder",
        s(&ae),
        "--data",
        s(&dataset()),
        "--out",
        s(&latents),
        "--augment",
        "2",
        "--backend",
        "cpu",
    ]);
    // 9 latent frames: windows of 3 frames 2 apart.
    let fast = [
        "--steps",
        "40",
        "--batch",
        "4",
        "--lr",
        "3e-3",
        "--window",
        "3",
        "--stride",
        "2",
        "--checkpoint-every",
        "20",
        "--log-every",
        "5",
    ];
    let train = |kind: &str, preset_name: &str, run: &Path, backend: &str, extra: &[&str]| {
        let config = preset(preset_name);
        let mut a = vec![
            "train",
            kind,
            "--latents",
            s(&latents),
            "--config",
            s(&config),
            "--out",
            s(run),
            "--backend",
            backend,
        ];
        a.extend(fast);
        a.extend(extra);
        ok(&a)
    };
    for backend in gpu_too() {
        for (kind, preset_name) in [
            ("diffusion", "denoiser-tiny"),
            ("surrogate", "surrogate-tiny"),
        ] {
            let run = dir.join(format!("{kind}-{backend}"));
            train(kind, preset_name, &run, backend, &[]);
            let log = log(&run);
            let first = log[0].1;
            let tail = log[log.len() - 3..].iter().map(|l| l.1).sum::<f64>() / 3.0;
            assert!(
                tail < 0.85 * first,
                "{kind} on {backend}: loss did not fall: {log:?}"
            );
            let meta = checkpoint_meta(&run);
            assert_eq!(meta["step"], 40);
            assert_eq!(meta["extra"]["latent_shape"], serde_json::json!([4, 8, 8]));
        }
    }

    // Stop at step 13, resume, and compare with the uninterrupted run, on each backend. On
    // the GPU too the weights and optimizer state must be bit-identical: every kernel reduces
    // in a fixed order (no float atomics), the random streams are counter-based, and the
    // resumed run reloads exactly the f32 values it saved. Fails when resume loses or
    // re-rounds state (the step, the learning-rate schedule, AdamW's moments, the data
    // order), or when a GPU kernel is nondeterministic.
    // Trains `parted` with `extra` to step 13, resumes it, and compares its last checkpoint's
    // files with those of `whole`, trained with `extra` uninterrupted.
    let resumes_bitwise = |whole: &Path, parted: &Path, backend: &str, extra: &[&str]| {
        let mut first = extra.to_vec();
        first.extend(["--stop-after", "13"]);
        train("diffusion", "denoiser-tiny", parted, backend, &first);
        ok(&[
            "train",
            "diffusion",
            "--resume",
            s(parted),
            "--backend",
            backend,
        ]);
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let a = std::fs::read(whole.join("step-00000040").join(f)).unwrap();
            let b = std::fs::read(parted.join("step-00000040").join(f)).unwrap();
            assert!(
                a == b,
                "{f} differs between the resumed and the uninterrupted run on {backend} {extra:?}"
            );
        }
    };
    for backend in gpu_too() {
        let whole = dir.join(format!("diffusion-{backend}"));
        let parted = dir.join(format!("diffusion-parted-{backend}"));
        resumes_bitwise(&whole, &parted, backend, &[]);
    }

    // --ema: the same bit-identical resume with a weight average, whose model file is the
    // average and whose optimizer file keeps the raw weights; the decay is stored and kept.
    let averaged = dir.join("diffusion-ema");
    let averaged_parted = dir.join("diffusion-ema-parted");
    train(
        "diffusion",
        "denoiser-tiny",
        &averaged,
        "cpu",
        &["--ema", "0.9"],
    );
    resumes_bitwise(&averaged, &averaged_parted, "cpu", &["--ema", "0.9"]);
    assert_eq!(checkpoint_meta(&averaged)["options"]["ema"], 0.9);
    let model = tensors(&averaged.join("step-00000040/model.safetensors"));
    let optim = tensors(&averaged.join("step-00000040/optimizer.safetensors"));
    let plain = tensors(&dir.join("diffusion-cpu/step-00000040/model.safetensors"));
    let (mut raw_is_plain, mut avg_differs) = (0, 0);
    for (name, values) in &model {
        let raw = &optim[&format!("{name}.raw")];
        raw_is_plain += usize::from(*raw == plain[name]);
        avg_differs += usize::from(raw != values);
    }
    // Averaging does not change the training: the raw weights are the plain run's.
    assert_eq!(raw_is_plain, model.len());
    assert!(
        avg_differs > model.len() / 2,
        "{avg_differs} of {}",
        model.len()
    );
    let err = fails(&[
        "train",
        "diffusion",
        "--resume",
        s(&averaged),
        "--ema",
        "0.99",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("--ema 0.99 (the run has 0.9)"), "{err}");
    let err = fails(&[
        "train",
        "surrogate",
        "--latents",
        s(&latents),
        "--config",
        s(&preset("surrogate-tiny")),
        "--out",
        s(&dir.join("ema-one")),
        "--ema",
        "1",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("--ema 1 must be a decay in [0, 1)"), "{err}");

    // --first-frame trains on the later windows only (9 frames: starts 0-4), and is stored.
    let later = dir.join("diffusion-later");
    train(
        "diffusion",
        "denoiser-tiny",
        &later,
        "cpu",
        &["--first-frame", "3", "--stop-after", "2"],
    );
    let meta = checkpoint_meta(&later);
    assert_eq!(meta["options"]["first_frame"], 3);
    assert!(meta["options"].get("context_noise").is_none());
    // --context-noise is stored, kept by --resume, and checked.
    let noisy = dir.join("surrogate-noisy");
    train(
        "surrogate",
        "surrogate-tiny",
        &noisy,
        "cpu",
        &["--context-noise", "0.25", "--stop-after", "2"],
    );
    let meta = checkpoint_meta(&noisy);
    assert_eq!(meta["options"]["context_noise"], 0.25);
    let err = fails(&[
        "train",
        "surrogate",
        "--resume",
        s(&noisy),
        "--context-noise",
        "0.5",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("--context-noise 0.5 (the run has 0.25)"),
        "{err}"
    );
    let err = fails(&[
        "train",
        "diffusion",
        "--latents",
        s(&latents),
        "--config",
        s(&preset("denoiser-tiny")),
        "--out",
        s(&dir.join("negative-noise")),
        "--context-noise=-0.1",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("--context-noise -0.1 must be a number >= 0"),
        "{err}"
    );
    let err = fails(&[
        "train",
        "surrogate",
        "--latents",
        s(&latents),
        "--config",
        s(&preset("surrogate-tiny")),
        "--out",
        s(&dir.join("too-late")),
        "--window",
        "3",
        "--stride",
        "2",
        "--first-frame",
        "5",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("starting at frame 5 or later (--first-frame)") && err.contains("[9, "),
        "{err}"
    );

    rollouts(&dir, &ae);
    evals(&dir, &ae);

    // A denoiser for 5 latent channels does not fit these 4-channel latents.
    let wrong = dir.join("denoiser-5ch.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(preset("denoiser-tiny")).unwrap()).unwrap();
    cfg["channels"] = 5.into();
    std::fs::write(&wrong, cfg.to_string()).unwrap();
    let err = fails(&[
        "train",
        "diffusion",
        "--latents",
        s(&latents),
        "--config",
        s(&wrong),
        "--out",
        s(&dir.join("bad")),
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("4 channels") && err.contains("expects 5"),
        "{err}"
    );
}

/// Tensor shapes of a safetensors file.
fn shapes(path: &Path) -> std::collections::BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let shape = v["shape"].as_array().unwrap();
            (
                k.clone(),
                shape.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
            )
        })
        .collect()
}

type Tensors = std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Every tensor of a safetensors file, as f32.
fn tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lemur_tensor::params::read_safetensors(&bytes, path).unwrap_or_else(|e| panic!("{e}"))
}

/// `(min, max)` of channel `c` of `[.., C, H, W]` values.
fn channel_range(x: &[f32], channels: usize, plane: usize, c: usize) -> (f32, f32) {
    x.chunks_exact(plane)
        .skip(c)
        .step_by(channels)
        .flatten()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Values, not just shapes, of a `prediction.safetensors` (`prediction` [M, T, C, H, W],
/// `mean` and `spread` [T, C, H, W], `truth` [T, C, H, W] when there is one):
/// - every value finite (a NaN from a diverged sampler or a 0/0 in the denormalisation);
/// - each predicted channel within the truth's range widened by its width on both sides (a
///   rollout left in normalised units, denormalised twice or blown up is not);
/// - `mean` and `spread` equal to the members' mean and sample standard deviation recomputed
///   here (a member written twice, or the ensemble statistics over the wrong axis, are not);
/// - with several members: they agree on the context frame (to 1% of the channel's range: the
///   rollout conditions on it) and differ after it (by at least 1%: each member has its own
///   noise).
fn check_rollout_values(what: &str, t: &Tensors) {
    for (name, (_, v)) in t {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            panic!("{what}: {name}[{i}] = {}", v[i]);
        }
    }
    let (shape, pred) = &t["prediction"];
    let (members, frames, channels) = (shape[0], shape[1], shape[2]);
    let plane = shape[3] * shape[4];
    let per = frames * channels * plane;
    let (mean, spread) = (&t["mean"].1, &t["spread"].1);
    assert_eq!((mean.len(), spread.len()), (per, per), "{what}");
    for i in 0..per {
        let m = (0..members).map(|n| pred[n * per + i] as f64).sum::<f64>() / members as f64;
        let sd = if members > 1 {
            ((0..members)
                .map(|n| (pred[n * per + i] as f64 - m).powi(2))
                .sum::<f64>()
                / (members - 1) as f64)
                .sqrt()
        } else {
            0.0
        };
        assert!(
            (mean[i] as f64 - m).abs() <= 1e-5 * (1.0 + m.abs())
                && (spread[i] as f64 - sd).abs() <= 1e-5 * (1.0 + sd),
            "{what}: at {i} mean {} spread {} written, members give {m} and {sd}",
            mean[i],
            spread[i]
        );
    }
    let Some((_, truth)) = t.get("truth") else {
        return;
    };
    for c in 0..channels {
        let (lo, hi) = channel_range(truth, channels, plane, c);
        let (plo, phi) = channel_range(pred, channels, plane, c);
        let w = hi - lo;
        assert!(
            w > 0.0 && plo >= lo - w && phi <= hi + w,
            "{what}: channel {c} predicted in [{plo}, {phi}], the truth spans [{lo}, {hi}]"
        );
        if members > 1 {
            let (_, first) = channel_range(&spread[..channels * plane], channels, plane, c);
            let (_, later) = channel_range(&spread[channels * plane..], channels, plane, c);
            assert!(
                first <= 1e-2 * w && later >= 1e-2 * w,
                "{what}: channel {c}: members' spread {first} on the context frame, up to \
                 {later} after it (truth range {w})"
            );
        }
    }
}

/// `max |got - want| / max |want|`, checked against `tol`; the failure names the worst index.
fn rel_diff(what: &str, got: &[f32], want: &[f32], tol: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0.0f32), |(j, m), (i, d)| {
            if d > m || d.is_nan() { (i, d) } else { (j, m) }
        });
    let rel = d / scale;
    assert!(
        rel <= tol,
        "{what}: max |diff| {d:e} at {i} (got {}, want {}) = {rel:e} x scale {scale:e} > {tol:e}",
        got[i],
        want[i]
    );
    rel
}

/// The same run, seed and sampler on both backends gives the same rollout. Both draw their
/// noise from the one counter-based stream (`lemur_tensor::rng`, mirrored in
/// `shaders/random.wgsl`: integer hashing bit-identical, the normal transform to a few ulps),
/// so even the diffusion ensemble is compared value by value, not by statistics: what
/// separates the backends is float rounding (reduction order in matmul, attention and norms)
/// carried through the sampler's steps and the decoder. Fails on a GPU kernel that differs
/// from the CPU one (a wrong stride, a missed partial sum, noise drawn at other offsets).
fn backends_agree_on_rollouts(dir: &Path) {
    if !gpu_too().contains(&"gpu") {
        return;
    }
    for (run, extra) in [
        (
            "diffusion-cpu",
            &["--ensemble", "2", "--sampler", "ab", "--steps", "3"][..],
        ),
        ("surrogate-cpu", &[][..]),
    ] {
        let (run_dir, data) = (dir.join(run), dataset());
        let mut outs = Vec::new();
        for backend in ["cpu", "gpu"] {
            let out = dir.join(format!("agree-{run}-on-{backend}"));
            let mut a = vec![
                "rollout",
                "--run",
                s(&run_dir),
                "--data",
                s(&data),
                "--horizon",
                "4",
                "--no-images",
                "--out",
                s(&out),
                "--backend",
                backend,
            ];
            a.extend(extra);
            ok(&a);
            outs.push(tensors(&out.join("prediction.safetensors")));
        }
        for name in ["prediction", "spread"] {
            let rel = rel_diff(
                &format!("{run}: {name} on gpu vs cpu"),
                &outs[1][name].1,
                &outs[0][name].1,
                // Observed on lavapipe: 4.5e-6 (diffusion prediction), 1.5e-5 (its spread, a
                // difference of members), 2.3e-7 (surrogate).
                if name == "spread" { 1e-3 } else { 1e-4 },
            );
            eprintln!("{run}: {name} gpu vs cpu: max |diff| / scale {rel:.2e}");
        }
    }
}

/// `lemur rollout` with the runs trained above: diffusion ensembles on each backend, the
/// surrogate, the autoencoder's reconstruction, initial frames from a file, and bad input.
fn rollouts(dir: &Path, ae: &Path) {
    for backend in gpu_too() {
        let out = dir.join(format!("rollout-diffusion-{backend}"));
        let run = dir.join(format!("diffusion-{backend}"));
        let log = ok(&[
            "rollout",
            "--run",
            s(&run),
            "--data",
            s(&dataset()),
            "--index",
            "0",
            "--ensemble",
            "2",
            "--sampler",
            "ab",
            "--steps",
            "3",
            "--out",
            s(&out),
            "--backend",
            backend,
            "--well",
        ]);
        assert!(log.contains("timings: encode"), "{log}");
        // 9 frames at stride 2: frames 0, 2, 4, 6, 8; one context frame and 4 predicted.
        let t = shapes(&out.join("prediction.safetensors"));
        assert_eq!(t["prediction"], vec![2, 5, 5, 16, 16]);
        assert_eq!(t["truth"], vec![5, 5, 16, 16]);
        assert_eq!(t["spread"], vec![5, 5, 16, 16]);
        assert!(out.join("prediction.hdf5").is_file());
        // Per field: a GIF and one PNG per frame, which decode.
        for field in ["energy", "density", "pressure", "momentum_x", "momentum_y"] {
            let gif = std::fs::read(out.join(format!("{field}.gif"))).unwrap();
            assert!(gif.starts_with(b"GIF89a"), "{field}.gif");
            let png = std::fs::read(out.join(format!("frames/{field}/t0004.png"))).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{field} t0004.png");
        }
        assert!(!out.join("frames/density/t0005.png").exists());
        check_rollout_values(
            &format!("diffusion rollout on {backend}"),
            &tensors(&out.join("prediction.safetensors")),
        );
        let info = ok(&["data", "info", s(&out.join("prediction.hdf5"))]);
        assert!(
            info.contains("trajectories: 2") && info.contains("steps: 5"),
            "{info}"
        );
    }
    backends_agree_on_rollouts(dir);
    let out = dir.join("rollout-surrogate");
    ok(&[
        "rollout",
        "--run",
        s(&dir.join("surrogate-cpu")),
        "--horizon",
        "4",
        "--out",
        s(&out),
        "--backend",
        "cpu",
        "--data",
        s(&dataset()),
    ]);
    assert_eq!(
        shapes(&out.join("prediction.safetensors"))["prediction"],
        vec![1, 5, 5, 16, 16]
    );
    check_rollout_values(
        "surrogate rollout",
        &tensors(&out.join("prediction.safetensors")),
    );
    let out = dir.join("rollout-ae");
    ok(&[
        "rollout",
        "--run",
        s(ae),
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert_eq!(
        shapes(&out.join("prediction.safetensors"))["prediction"],
        vec![1, 9, 5, 16, 16]
    );
    check_rollout_values(
        "autoencoder reconstruction",
        &tensors(&out.join("prediction.safetensors")),
    );

    // The embedded pretrained run against a fresh solver trajectory.
    let out = dir.join("rollout-pretrained");
    let cache = dir.join("cache");
    let o = Command::new(LEMUR)
        .args([
            "rollout",
            "--simulate",
            "--horizon",
            "2",
            "--steps",
            "3",
            "--ensemble",
            "2",
            "--out",
            s(&out),
            "--backend",
            "cpu",
            "--no-images",
        ])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("simulating Euler trajectory 0"), "{log}");
    let t = shapes(&out.join("prediction.safetensors"));
    assert_eq!(t["prediction"], vec![2, 3, 5, 64, 64]);
    assert_eq!(t["truth"], vec![3, 5, 64, 64]);
    assert!(out.join("truth.hdf5").is_file());
    check_rollout_values(
        "pretrained rollout against a simulation",
        &tensors(&out.join("prediction.safetensors")),
    );

    // The embedded Rayleigh-Bénard run starts past the onset of convection, and its images
    // put x across and the hot plate at the bottom.
    let out = dir.join("rollout-pretrained-rb");
    let o = Command::new(LEMUR)
        .args([
            "rollout",
            "--run",
            "pretrained-rb",
            "--horizon",
            "2",
            "--steps",
            "3",
            "--out",
            s(&out),
            "--backend",
            "cpu",
        ])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("simulating Rayleigh-Bénard trajectory 0 (92 frames at 128x32)"),
        "{log}"
    );
    let t = shapes(&out.join("prediction.safetensors"));
    assert_eq!(t["prediction"], vec![1, 3, 4, 128, 32]);
    assert_eq!(t["truth"], vec![3, 4, 128, 32]);
    let png = std::fs::read(out.join("frames/buoyancy/t0000.png")).unwrap();
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    // Two panels of 128x32 cells at 4 pixels each, side by side.
    assert!(
        dim(16) > 2 * 4 * 128 && dim(20) < 4 * 128,
        "{}x{}",
        dim(16),
        dim(20)
    );
    check_rollout_values(
        "pretrained Rayleigh-Bénard rollout",
        &tensors(&out.join("prediction.safetensors")),
    );

    // Initial frames from a file.
    let init = dir.join("init.safetensors");
    write_init(&init, 2, 5);
    let out = dir.join("rollout-init");
    ok(&[
        "rollout",
        "--run",
        s(&dir.join("diffusion-cpu")),
        "--init",
        s(&init),
        "--horizon",
        "3",
        "--steps",
        "2",
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert_eq!(
        shapes(&out.join("prediction.safetensors"))["prediction"],
        vec![1, 4, 5, 16, 16]
    );
    check_rollout_values(
        "rollout from --init",
        &tensors(&out.join("prediction.safetensors")),
    );

    let err = fails(&[
        "rollout",
        "--run",
        s(&dir.join("diffusion-cpu")),
        "--init",
        s(&init),
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("--horizon"), "{err}");
    let bad = dir.join("init-bad.safetensors");
    write_init(&bad, 1, 3);
    let err = fails(&[
        "rollout",
        "--run",
        s(&dir.join("diffusion-cpu")),
        "--init",
        s(&bad),
        "--horizon",
        "2",
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("init-bad.safetensors") && err.contains("frames"),
        "{err}"
    );
    let err = fails(&[
        "rollout",
        "--run",
        s(&dir.join("diffusion-cpu")),
        "--index",
        "7",
        "--out",
        s(&out),
        "--backend",
        "cpu",
        "--data",
        s(&dataset()),
    ]);
    assert!(
        err.contains("trajectory 7") && err.contains("has 1"),
        "{err}"
    );
    let err = fails(&[
        "rollout",
        "--run",
        s(&dir.join("nope")),
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
    let err = fails(&[
        "rollout",
        "--run",
        s(&dir.join("diffusion-cpu")),
        "--sampler",
        "rk4",
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("rk4"), "{err}");
}

/// A safetensors file with `frames` [k, c, 16, 16] of smooth positive values and 3 labels.
fn write_init(path: &Path, k: usize, c: usize) {
    let n = k * c * 256;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| (1.0f32 + 0.1 * ((i % 256) as f32 / 40.0).sin()).to_le_bytes())
        .collect();
    let labels: Vec<u8> = [1.4f32, 1.0, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let header = serde_json::json!({
        "frames": {"dtype": "F32", "shape": [k, c, 16, 16], "data_offsets": [0, data.len()]},
        "labels": {"dtype": "F32", "shape": [3], "data_offsets": [data.len(), data.len() + labels.len()]},
    })
    .to_string();
    std::fs::write(path, safetensors(header.as_bytes(), &[&data, &labels])).unwrap();
}

/// A safetensors file's bytes: the header padded with spaces to 8 bytes, then the data.
fn safetensors(header: &[u8], data: &[&[u8]]) -> Vec<u8> {
    let mut header = header.to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    for d in data {
        bytes.extend_from_slice(d);
    }
    bytes
}

/// `lemur eval --backend gpu` of the same run, data, seed and sampler gives the CPU's figures
/// (each metric in `metrics.csv`, within a tolerance) and the same summary. Before this every
/// `eval` test ran on the CPU only. The noise is the same stream on both backends (see
/// `backends_agree_on_rollouts`), so differences are rounding only. Fails on a GPU-only slip
/// in eval's path: the autoencoder's reconstruction (the floor) on the GPU, the ensemble
/// drawn differently, frames read back in another layout.
fn evals_agree_on_gpu(run: &Path, cpu_out: &Path, eval: &dyn Fn(&Path, &Path, &str) -> String) {
    let gpu_out = cpu_out.with_file_name(format!(
        "{}-gpu",
        cpu_out.file_name().unwrap().to_string_lossy()
    ));
    let log = eval(run, &gpu_out, "gpu");
    assert!(log.contains("lemur: backend gpu"), "{log}");
    let table = |out: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    let (cpu, gpu) = (table(cpu_out), table(&gpu_out));
    assert_eq!(cpu.len(), gpu.len());
    assert_eq!(cpu[0], gpu[0], "headers");
    let mut worst = vec![0f64; cpu[0].len()];
    for (c, g) in cpu[1..].iter().zip(&gpu[1..]) {
        assert_eq!(c[..2], g[..2], "field and lead");
        for j in 2..c.len() {
            let (a, b): (f64, f64) = (c[j].parse().unwrap(), g[j].parse().unwrap());
            // Relative, with 1e-3 absolute for figures near zero (a total relative error).
            let rel = (a - b).abs() / (a.abs() + 1e-3);
            assert!(
                rel <= 1e-3,
                "{}: {} lead {}: {} on gpu {b}, on cpu {a}",
                run.display(),
                c[0],
                c[1],
                cpu[0][j]
            );
            worst[j] = worst[j].max(rel);
        }
    }
    // Observed on lavapipe: at most 5.1e-5 (a cross-correlation error), 8.4e-7 for VRMSE.
    let (j, w) = worst.iter().enumerate().fold(
        (0, 0.0),
        |(j, m), (i, &w)| if w > m { (i, w) } else { (j, m) },
    );
    eprintln!(
        "{}: eval gpu vs cpu: worst relative difference {w:.2e} ({})",
        run.display(),
        cpu[0][j]
    );
    let summary = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
    };
    let (a, b) = (summary(cpu_out), summary(&gpu_out));
    for key in [
        "kind",
        "trajectories",
        "ensemble",
        "horizon",
        "stride",
        "sampler",
        "steps",
    ] {
        assert_eq!(a[key], b[key], "summary.json {key}");
    }
}

/// VRMSE of one field, as DESIGN.md defines it (written out here, independently of
/// lemur-metrics): `sqrt(mean((u - v)^2) / (var(u) + 1e-6))` with the unbiased variance.
fn vrmse(u: &[f32], v: &[f32]) -> f64 {
    let n = u.len() as f64;
    let mse = u
        .iter()
        .zip(v)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        / n;
    let mean = u.iter().map(|&a| a as f64).sum::<f64>() / n;
    let var = u.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mse / (var + 1e-6)).sqrt()
}

/// `lemur eval` of `run` on one trajectory of `data`, 2 members of 2 sampler steps, into `out`.
fn quick_eval<'a>(run: &'a Path, data: &'a Path, out: &'a Path, backend: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "--run",
        s(run),
        "--data",
        s(data),
        "--trajectories",
        "1",
        "--ensemble",
        "2",
        "--steps",
        "2",
        "--out",
        s(out),
        "--backend",
        backend,
    ]
}

/// `lemur eval` on the three kinds of run: CSV rows per field and lead time, plots, the table.
fn evals(dir: &Path, ae: &Path) {
    let runs = [
        (dir.join("diffusion-cpu"), 4),
        (dir.join("surrogate-cpu"), 4),
        (ae.to_path_buf(), 8),
    ];
    let data = dataset();
    let eval = |run: &Path, out: &Path, backend: &str| ok(&quick_eval(run, &data, out, backend));
    for (run, leads) in &runs {
        let out = dir.join(format!(
            "eval-{}",
            run.file_name().unwrap().to_string_lossy()
        ));
        let log = eval(run, &out, "cpu");
        assert!(
            log.contains("ae floor") && log.contains("density") && log.contains("mean"),
            "{log}"
        );
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header[..3], ["field", "lead", "vrmse"]);
        assert_eq!(header[header.len() - 2..], ["truth_std", "ae_vrmse"]);
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 5 * leads, "{csv}");
        for r in &rows {
            assert_eq!(r.len(), header.len());
            let vrmse: f64 = r[2].parse().unwrap();
            let floor: f64 = r[r.len() - 1].parse().unwrap();
            assert!(
                vrmse.is_finite() && vrmse > 0.0 && floor.is_finite() && floor > 0.0,
                "{r:?}"
            );
        }
        // The floor, recomputed here from the autoencoder's reconstruction that `rollout`
        // wrote (frames 0 to 8 of test trajectory 0) and the truth: at lead l and stride s it
        // is the VRMSE of physical frame l s. Fails when `eval` scores other frames or
        // fields, takes the floor from the wrong vector (for the autoencoder run itself,
        // where vrmse and floor are the same vector by construction, this is the check that
        // can fail), or computes VRMSE wrongly.
        let stride = if run == ae { 1 } else { 2 };
        let recon = tensors(&dir.join("rollout-ae").join("prediction.safetensors"));
        let (truth, pred) = (&recon["truth"].1, &recon["prediction"].1);
        let plane = 16 * 16;
        for (i, r) in rows.iter().enumerate() {
            let (c, lead) = (i % 5, i / 5 + 1);
            assert_eq!(r[1], lead.to_string(), "{csv}");
            let at = (lead * stride * 5 + c) * plane;
            let want = vrmse(&truth[at..at + plane], &pred[at..at + plane]);
            let floor: f64 = r[r.len() - 1].parse().unwrap();
            assert!(
                (floor - want).abs() <= 1e-4 * want,
                "{}: {} lead {lead}: floor {floor}, the reconstruction's VRMSE is {want}",
                run.display(),
                r[0]
            );
            // VRMSE's denominator, which collapses where an open domain empties.
            let u = &truth[at..at + plane];
            let mean = u.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
            let want_std = (u.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()
                / (plane - 1) as f64)
                .sqrt();
            let std: f64 = r[r.len() - 2].parse().unwrap();
            assert!(
                (std - want_std).abs() <= 1e-5 * want_std,
                "{r:?}: {want_std}"
            );
            if run == ae {
                let v: f64 = r[2].parse().unwrap();
                assert!((v - want).abs() <= 1e-4 * want, "{r:?}: {want}");
            }
        }
        for png in ["vrmse.png", "spread_skill.png", "spectrum.png"] {
            assert!(
                std::fs::read(out.join(png))
                    .unwrap()
                    .starts_with(b"\x89PNG"),
                "{png}"
            );
        }
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["horizon"], *leads);
        // Only the diffusion run has an ensemble (2 members) and so a spread-skill ratio.
        let ss = &summary["fields"]["density"]["spread_skill"];
        let ranges = &summary["mean"]["spread_skill_ranges"];
        if run == &runs[0].0 {
            assert!(
                ss.as_f64().is_some_and(|v| v.is_finite() && v > 0.0),
                "{summary}"
            );
            // The mean over fields and leads of metrics.csv's spread_skill column, per lead
            // range and past the first one (leads 2-4 of 4), as the second table prints it.
            let col = header.iter().position(|&h| h == "spread_skill").unwrap();
            let want = |a: usize, b: usize| {
                let v: Vec<f64> = rows
                    .iter()
                    .filter(|r| (a..=b).contains(&r[1].parse::<usize>().unwrap()))
                    .map(|r| r[col].parse::<f64>().unwrap())
                    .collect();
                v.iter().sum::<f64>() / v.len() as f64
            };
            let spans: Vec<(usize, usize, f64)> = ranges
                .as_array()
                .unwrap_or_else(|| panic!("{summary}"))
                .iter()
                .map(|r| {
                    let l = &r["leads"];
                    let (a, b) = (l[0].as_u64().unwrap(), l[1].as_u64().unwrap());
                    (a as usize, b as usize, r["ratio"].as_f64().unwrap())
                })
                .collect();
            let bounds: Vec<(usize, usize)> = spans.iter().map(|&(a, b, _)| (a, b)).collect();
            assert_eq!(bounds, [(1, 1), (2, 2), (3, 4), (2, 4)], "{summary}");
            for (a, b, got) in spans {
                assert!((got - want(a, b)).abs() < 1e-5, "leads {a}-{b}: {got}");
            }
            let table = log.lines().skip_while(|l| !l.starts_with("spread-skill"));
            let mean = table.filter(|l| l.starts_with("mean")).last();
            let late: f64 = mean
                .and_then(|l| l.split_whitespace().last())
                .unwrap()
                .parse()
                .unwrap();
            assert!((late - want(2, 4)).abs() < 1e-4, "{log}");
        } else {
            assert!(ss.is_null() && ranges.is_null(), "{summary}");
            assert!(!log.contains("spread-skill ("), "{log}");
            let density = log.lines().find(|l| l.starts_with("density")).unwrap();
            assert!(density.trim_end().ends_with("n/a"), "{log}");
        }
        if gpu_too().contains(&"gpu") {
            evals_agree_on_gpu(run, &out, &eval);
        }
    }
    let err = fails(&[
        "eval",
        "--run",
        s(&runs[0].0),
        "--data",
        s(&dataset()),
        "--trajectories",
        "9",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("--trajectories 9") && err.contains("has 1"),
        "{err}"
    );
    let err = fails(&[
        "eval",
        "--run",
        s(&runs[0].0),
        "--data",
        s(&dataset()),
        "--horizon",
        "30",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("--horizon 30") && err.contains("at most 4"),
        "{err}"
    );

    // A run's recommended overlap (`extra.rollout.overlap`, as `pack-pretrained.py --overlap`
    // records it) is eval's default, said on stderr; `--overlap` wins; a bad one names the
    // checkpoint. The windows of these runs are 3 frames long.
    let rec = dir.join("diffusion-overlap");
    let _ = std::fs::remove_dir_all(&rec);
    let cp = Command::new("cp")
        .args(["-r", s(&runs[0].0), s(&rec)])
        .status()
        .unwrap();
    assert!(cp.success());
    let recommend = |overlap: serde_json::Value| {
        for file in [
            rec.join("checkpoint.json"),
            latest_checkpoint(&rec).0.join("checkpoint.json"),
        ] {
            let mut meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            meta["extra"]["rollout"] = serde_json::json!({ "overlap": overlap });
            std::fs::write(&file, meta.to_string()).unwrap();
        }
    };
    recommend(2.into());
    let scored = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut a = quick_eval(&rec, &data, &out, "cpu");
        a.extend(extra);
        let log = ok(&a);
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        (log, summary["overlap"].clone(), csv)
    };
    let plain = std::fs::read_to_string(dir.join("eval-diffusion-cpu/metrics.csv")).unwrap();
    let (log, overlap, csv) = scored("eval-recommended", &[]);
    assert!(log.contains("overlap 2, as the run recommends"), "{log}");
    assert_eq!(overlap, 2);
    assert_ne!(csv, plain, "overlap 2 scored as overlap 1");
    let (log, overlap, csv) = scored("eval-overlap-1", &["--overlap", "1"]);
    assert!(!log.contains("recommends"), "{log}");
    assert_eq!(overlap, 1);
    assert_eq!(
        csv, plain,
        "--overlap 1 is the run without a recommendation"
    );
    recommend(3.into());
    let err = fails(&[
        "eval",
        "--run",
        s(&rec),
        "--data",
        s(&dataset()),
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("checkpoint.json")
            && err.contains("extra.rollout.overlap 3: windows of 3 frames overlap by 1 to 2"),
        "{err}"
    );
}

fn lemur_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(LEMUR);
    cmd.args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env_remove("LEMUR_BACKEND");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lemur")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `LEMUR_BACKEND` gives `--backend` its default, an explicit flag wins, a bad value names
/// the variable, and every command that computes says once which backend it used.
#[test]
fn lemur_backend_is_the_default_backend() {
    let dir = scratch("backend-env");
    let (data, tiny) = (dataset(), preset("autoencoder-tiny"));
    let run = dir.join("ae");
    let train = |out: &Path, backend: Option<&str>, env: &str| {
        let mut a = vec![
            "train",
            "autoencoder",
            "--data",
            s(&data),
            "--config",
            s(&tiny),
            "--out",
            s(out),
            "--steps",
            "1",
            "--batch",
            "2",
        ];
        if let Some(b) = backend {
            a.extend(["--backend", b]);
        }
        lemur_env(&a, &[("LEMUR_BACKEND", env)])
    };
    // The variable alone picks the CPU: no GPU probe, no fallback notice.
    let out = train(&run, None, "cpu");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("lemur: backend ").count(), 1, "{stderr}");
    assert!(stderr.contains("lemur: backend cpu ("), "{stderr}");
    assert!(
        !stderr.contains("falling back") && !stderr.contains("software one"),
        "{stderr}"
    );
    // An invalid value is an error naming the variable, before any work.
    let bad = dir.join("bad");
    let out = train(&bad, None, "tpu");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("LEMUR_BACKEND=tpu") && stderr.contains("gpu, cpu or auto"),
        "{stderr}"
    );
    assert!(!bad.exists(), "a run started despite the bad backend");
    // An explicit flag wins over the variable.
    let out = train(&dir.join("flag"), Some("cpu"), "tpu");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("lemur: backend cpu ("), "{stderr}");
    // encode and eval say it too, once.
    let env = [("LEMUR_BACKEND", "cpu")];
    let out = lemur_env(
        &[
            "encode",
            "--autoencoder",
            s(&run),
            "--data",
            s(&data),
            "--out",
            s(&dir.join("latents")),
        ],
        &env,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stderr.matches("lemur: backend cpu (").count(),
        1,
        "{stderr}"
    );
    let out = lemur_env(
        &[
            "eval",
            "--run",
            s(&run),
            "--data",
            s(&data),
            "--trajectories",
            "1",
            "--out",
            s(&dir.join("eval")),
        ],
        &env,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stderr.matches("lemur: backend cpu (").count(),
        1,
        "{stderr}"
    );
    // A one-member run has no spread: its spread-skill is not a number.
    let density = stdout
        .lines()
        .find(|l| l.starts_with("density"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(density.trim_end().ends_with("n/a"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval/summary.json")).unwrap()).unwrap();
    assert!(
        summary["fields"]["density"]["spread_skill"].is_null(),
        "{summary}"
    );
    assert!(summary["fields"]["density"]["ae_vrmse"].as_f64().unwrap() > 0.0);
}

/// A closed stdout ends the program quietly, and user errors print once, without a
/// backtrace, even with `RUST_BACKTRACE=1`.
#[test]
fn broken_pipes_and_errors_are_quiet() {
    let data = dataset();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(LEMUR)
        .args(["data", "info", s(&data)])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    let dir = scratch("quiet-errors");
    let missing = dir.join("nowhere");
    // Its error wraps the JSON parser's, whose text it already shows.
    let bad_json = dir.join("nowhere.json");
    std::fs::write(&bad_json, "not json").unwrap();
    for args in [
        vec![
            "train",
            "autoencoder",
            "--data",
            s(&data),
            "--config",
            s(&bad_json),
            "--out",
            s(&missing),
            "--backend",
            "cpu",
        ],
        vec![
            "train",
            "autoencoder",
            "--resume",
            s(&missing),
            "--backend",
            "cpu",
        ],
        vec!["data", "info", s(&missing)],
        vec![
            "rollout",
            "--run",
            s(&missing),
            "--backend",
            "cpu",
            "--out",
            s(&dir),
        ],
    ] {
        let out = lemur_env(
            &args,
            &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")],
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            !stderr.to_lowercase().contains("backtrace") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("nowhere"), "{args:?}: {stderr}");
        // Each line of the report says something the lines before it did not.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("lemur: "))
            .map(|l| {
                l.trim()
                    .trim_start_matches("error: ")
                    .trim_start_matches("caused by: ")
            })
            .collect();
        for (i, l) in lines.iter().enumerate() {
            assert!(
                !lines[..i].iter().any(|p| p.contains(l)),
                "{args:?}: repeated cause {l:?} in\n{stderr}"
            );
        }
    }
}

/// `--out` naming a file fails at once, naming it; `generate` refuses a non-empty directory
/// unless `--overwrite`, which replaces the dataset rather than mixing old and new files.
#[test]
fn outputs_are_checked_before_any_work() {
    let dir = scratch("outputs");
    let data = dataset();
    let file = dir.join("taken");
    std::fs::write(&file, b"not a directory").unwrap();
    let f = s(&file);
    let tiny = preset("autoencoder-tiny");
    let cases: Vec<Vec<&str>> = vec![
        vec!["rollout", "--run", "pretrained-surrogate", "--out", f],
        vec![
            "eval",
            "--run",
            "pretrained-surrogate",
            "--data",
            s(&data),
            "--out",
            f,
        ],
        vec!["generate", "euler", "--out", f],
        vec![
            "encode",
            "--autoencoder",
            "pretrained-autoencoder",
            "--data",
            s(&data),
            "--out",
            f,
        ],
        vec![
            "train",
            "autoencoder",
            "--data",
            s(&data),
            "--config",
            s(&tiny),
            "--out",
            f,
        ],
    ];
    for args in &cases {
        let start = std::time::Instant::now();
        let out = lemur_env(args, &[("LEMUR_BACKEND", "cpu")]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains(&format!("--out {f}")) && stderr.contains("a file of that name"),
            "{args:?}: {stderr}"
        );
        // Refused before opening a backend or simulating anything.
        assert!(!stderr.contains("lemur: "), "{args:?}: {stderr}");
        assert!(
            start.elapsed().as_secs() < 10,
            "{args:?} took {:?}",
            start.elapsed()
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    }

    let set = dir.join("set");
    let generate = |n: &str, overwrite: bool| {
        let mut a = vec![
            "generate",
            "euler",
            "--trajectories",
            n,
            "--frames",
            "3",
            "--size",
            "8x8",
            "--out",
            s(&set),
        ];
        if overwrite {
            a.push("--overwrite");
        }
        lemur_env(&a, &[])
    };
    let files = || {
        ["train", "valid", "test"]
            .iter()
            .map(|split| {
                std::fs::read_dir(set.join("data").join(split))
                    .unwrap()
                    .count()
            })
            .sum::<usize>()
    };
    assert!(generate("10", false).status.success());
    assert_eq!(files(), 10);
    let out = generate("3", false);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(s(&set)) && stderr.contains("not empty") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(files(), 10, "a refused generate changed the dataset");
    let out = generate("3", true);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(files(), 3, "old trajectories mixed with new ones");
    ok(&["data", "info", s(&set)]);
}

/// `scripts/pack-pretrained.py` rounds a run's F32 weights to F16 and copies a packed run's
/// F16 weights unchanged (an embedded run kept beside retrained ones), into `--out`, with each
/// checkpoint's metadata pointing at its own directory.
#[test]
fn pack_pretrained_rounds_f32_runs_and_keeps_f16_ones() {
    let dir = scratch("pack-pretrained");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = root.join("web/pretrained/euler64");
    // An F32 run: the embedded surrogate's values moved towards zero by less than half an F16
    // step (2^-13 of each value, the step being 2^-10 of it), so that rounding to nearest
    // gives back exactly the embedded values (truncating would not).
    // A run directory: the embedded surrogate's metadata beside a safetensors file of this
    // header and data.
    let write_run = |run: &Path, header: &[u8], data: &[u8]| {
        std::fs::create_dir_all(run).unwrap();
        std::fs::copy(
            set.join("surrogate/checkpoint.json"),
            run.join("checkpoint.json"),
        )
        .unwrap();
        std::fs::write(run.join("model.safetensors"), safetensors(header, &[data])).unwrap();
    };
    let f32_run = dir.join("sur-f32");
    let embedded = tensors(&set.join("surrogate/model.safetensors"));
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, (shape, values)) in &embedded {
        let begin = data.len();
        for v in values {
            data.extend((v * (1.0 - 2f32.powi(-13))).to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    write_run(&f32_run, header.as_bytes(), &data);

    // The embedded autoencoder and diffusion runs (F16) beside SURROGATE, into dir/NAME.
    let pack = |surrogate: &Path, name: &str| {
        Command::new("python3")
            .arg(root.join("scripts/pack-pretrained.py"))
            .args([
                s(&set.join("autoencoder")),
                s(&set.join("diffusion")),
                s(surrogate),
                "--name",
                name,
                "--out",
                s(&dir),
            ])
            .output()
            .expect("python3 runs scripts/pack-pretrained.py: install it (apt-get install python3)")
    };
    let out = pack(&f32_run, "packed");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("limit 12 MB"), "{stdout}");
    for kind in ["autoencoder", "diffusion", "surrogate"] {
        let packed = dir.join("packed").join(kind);
        let file = packed.join("model.safetensors");
        let raw = std::fs::read(&file).unwrap();
        let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
        assert!(
            header
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__metadata__")
                .all(|(_, t)| t["dtype"] == "F16"),
            "{kind}: not all F16"
        );
        let want = tensors(&set.join(kind).join("model.safetensors"));
        assert_eq!(tensors(&file), want, "{kind}: the values changed");
        let meta = checkpoint_meta(&packed);
        assert_eq!(meta["dir"], ".", "{kind}");
    }
    // Packed again into the same place: a run with the same weights at the same step keeps
    // its packed metadata (here a mark on the autoencoder's); one at another step (the
    // surrogate's, as if packed from another checkpoint) is written anew.
    let meta_path = |kind: &str| dir.join("packed").join(kind).join("checkpoint.json");
    let read = |kind: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(meta_path(kind)).unwrap()).unwrap()
    };
    let mut marked = read("autoencoder");
    marked["mark"] = "kept".into();
    std::fs::write(meta_path("autoencoder"), marked.to_string()).unwrap();
    let mut moved = read("surrogate");
    moved["step"] = 1.into();
    std::fs::write(meta_path("surrogate"), moved.to_string()).unwrap();
    let out = pack(&f32_run, "packed");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.matches("unchanged").count(), 2, "{stdout}");
    assert_eq!(read("autoencoder")["mark"], "kept", "{stdout}");
    assert_ne!(read("surrogate")["step"], 1, "{stdout}");
    assert_eq!(
        tensors(&dir.join("packed/surrogate/model.safetensors")),
        embedded
    );
    // --overlap records the diffusion run's recommended overlap (its weights unchanged), and a
    // later packing without it keeps it.
    for extra in [&["--overlap", "2"][..], &[]] {
        let out = Command::new("python3")
            .arg(root.join("scripts/pack-pretrained.py"))
            .args([
                s(&set.join("autoencoder")),
                s(&set.join("diffusion")),
                s(&f32_run),
                "--name",
                "packed",
                "--out",
                s(&dir),
            ])
            .args(extra)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert_eq!(
            read("diffusion")["extra"]["rollout"]["overlap"],
            2,
            "{extra:?}"
        );
        assert!(read("surrogate")["extra"].get("rollout").is_none());
    }
    // An emulator that learnt another autoencoder step's latents is refused, naming both; a
    // decoder fine-tuned with that step's encoder frozen (`encoder_step`) is not.
    let shifted = dir.join("sur-shifted");
    write_run(&shifted, header.as_bytes(), &data);
    let mut meta = checkpoint_meta(&shifted);
    let learnt = meta["extra"]["autoencoder_step"].as_u64().unwrap() + 7;
    meta["extra"]["autoencoder_step"] = learnt.into();
    std::fs::write(shifted.join("checkpoint.json"), meta.to_string()).unwrap();
    let out = pack(&shifted, "shifted");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "this surrogate run learnt the latents of autoencoder step {learnt}, but"
        )),
        "{stderr}"
    );
    assert!(!dir.join("shifted").exists(), "a refused set was written");
    // The same check passes for the embedded runs' own decoder, marked as fine-tuned alone.
    let decoder = dir.join("decoder");
    std::fs::create_dir_all(&decoder).unwrap();
    std::fs::copy(
        set.join("autoencoder/model.safetensors"),
        decoder.join("model.safetensors"),
    )
    .unwrap();
    let mut ae = checkpoint_meta(&set.join("autoencoder"));
    ae["step"] = (learnt + 100).into();
    ae["extra"]["encoder_step"] = learnt.into();
    std::fs::write(decoder.join("checkpoint.json"), ae.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(root.join("scripts/pack-pretrained.py"))
        .args([
            s(&decoder),
            s(&shifted),
            s(&shifted),
            "--name",
            "decoder",
            "--out",
            s(&dir),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // A tensor in neither precision is refused, naming it; nothing is left half packed.
    let bad = dir.join("bad");
    write_run(
        &bad,
        br#"{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#,
        &1f64.to_le_bytes(),
    );
    let out = pack(&bad, "refused");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("tensor w is F64, expected F32 (or F16, kept as it is)"),
        "{stderr}"
    );
    let left: Vec<_> = walk(&dir.join("refused"));
    assert!(
        left.iter().all(|p| !p.to_string_lossy().contains(".tmp")),
        "{left:?}"
    );
}

/// `generate --extend` adds training trajectories numbered after the dataset's last one: the
/// very files a larger set from the same seed holds under those numbers. The validation and
/// test splits and stats.json are kept byte for byte; other solver options, a directory
/// without a dataset and `--overwrite` are refused, and a refusal adds nothing.
#[test]
fn generate_extend_adds_training_trajectories_and_keeps_the_rest() {
    let dir = scratch("generate-extend");
    let (set, big) = (dir.join("set"), dir.join("big"));
    let args = |n: &'static str, out: &Path, extra: &[&'static str]| {
        let mut a: Vec<String> = ["generate", "euler", "--trajectories", n, "--frames", "3"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        a.extend(["--out".into(), s(out).into()]);
        a.extend(extra.iter().map(|a| a.to_string()));
        if !extra.contains(&"--size") {
            a.extend(["--size".into(), "8x8".into()]);
        }
        a
    };
    let run = |a: Vec<String>| lemur(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let listing = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for split in ["train", "valid", "test"] {
            for e in std::fs::read_dir(root.join("data").join(split)).unwrap() {
                let path = e.unwrap().path();
                let name = format!("{split}/{}", path.file_name().unwrap().to_string_lossy());
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
        files.sort();
        files
    };
    assert!(run(args("10", &set, &[])).status.success());
    assert!(run(args("14", &big, &[])).status.success());
    let before = listing(&set);
    let stats = std::fs::read(set.join("stats.json")).unwrap();

    let out = run(args("4", &set, &["--extend"]));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("4 training trajectories x 3 frames (numbers 10 to 13) added to"),
        "{stdout}"
    );
    let after = listing(&set);
    assert_eq!(std::fs::read(set.join("stats.json")).unwrap(), stats);
    // Everything that was there is there unchanged, and 4 files more, all in train.
    assert!(before.iter().all(|f| after.contains(f)));
    let added: Vec<_> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(added.len(), 4);
    // Each is the file of the same number in the 14-trajectory set, whichever split holds it
    // there (12/1/1: numbers 10 and 11 in train, 12 in valid, 13 in test).
    let big_files = listing(&big);
    for (name, bytes) in &added {
        let file = name.strip_prefix("train/").expect("new files go to train");
        let twin = big_files
            .iter()
            .find(|(n, _)| n.ends_with(&format!("/{file}")))
            .unwrap_or_else(|| panic!("{file} is not in the 14-trajectory set"));
        assert_eq!(&twin.1, bytes, "{file} differs from the larger set's");
    }
    assert!(!dir.read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".set.tmp")
    }));

    // Refusals, each leaving the dataset as it was.
    let e = run(args("2", &set, &["--extend", "--size", "16x8"]));
    let (_, e) = text(&e);
    assert!(
        e.contains("the new trajectories (euler_multi_quadrants_openBC, 16x8 grid, 3 frames) do not match")
            && e.contains("(euler_multi_quadrants_openBC, 8x8 grid, 3 frames): give the options the dataset was generated with"),
        "{e}"
    );
    let e = run(args("2", &set, &["--extend", "--periodic"]));
    assert!(
        text(&e).1.contains("euler_multi_quadrants_periodicBC"),
        "{:?}",
        text(&e)
    );
    assert_eq!(
        listing(&set),
        after,
        "a refused --extend changed the dataset"
    );
    let e = text(&run(args("2", &dir.join("none"), &["--extend"]))).1;
    assert!(e.contains("holds no dataset (no stats.json)"), "{e}");
    let e = text(&run(args("2", &set, &["--extend", "--overwrite"]))).1;
    assert!(
        e.contains("'--extend' cannot be used with '--overwrite'"),
        "{e}"
    );
    ok(&["data", "info", s(&set)]);
}

/// `--init` with a file of zero frames and `--context 0` used to divide by zero (a panic).
/// `--context 0` is now refused before anything is read; a file of zero frames is an error
/// naming the file and the frames it needs. Neither panics nor writes an output.
#[test]
fn rollout_init_without_frames_is_an_error() {
    let dir = scratch("rollout-init-empty");
    let init = dir.join("empty.safetensors");
    write_init(&init, 0, 5);
    for (context, want) in [
        (
            "1",
            format!(
                "{}: `frames` has shape [0, 5, 16, 16]; expected [K >= 1, 5, H, W]",
                init.display()
            ),
        ),
        ("0", "--context must be at least 1".to_string()),
    ] {
        let out = lemur(&[
            "rollout",
            "--init",
            s(&init),
            "--context",
            context,
            "--horizon",
            "2",
            "--out",
            s(&dir.join("out")),
            "--backend",
            "cpu",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(&want), "--context {context}: {stderr}");
        assert!(!dir.join("out").exists());
    }
}

/// An installed `lemur` needs no source tree: a copy of the binary, run from a directory
/// outside the repository with no `git` on `PATH`, benchmarks the built-in presets by name and
/// records the commit it was built from (read at build time, not by running git).
#[test]
fn installed_binary_needs_no_source_tree() {
    let root = scratch("installed");
    let (bin, work) = (root.join("bin"), root.join("work"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let exe = bin.join("lemur");
    std::fs::copy(LEMUR, &exe).unwrap();
    let run = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .current_dir(&work)
            .env("PATH", "")
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env_remove("LEMUR_BACKEND")
            .output()
            .expect("run the copied lemur")
    };
    let good = |args: &[&str]| {
        let out = run(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}:\n{stdout}\n{stderr}");
        stdout
    };
    for config in ["tiny", "autoencoder-tiny"] {
        let out = good(&[
            "bench",
            "training",
            "--backend",
            "cpu",
            "--min-ms",
            "1",
            "--only",
            "tiny",
            "--config",
            config,
        ]);
        assert!(out.contains("autoencoder-tiny 64x64 batch 16"), "{out}");
        assert!(out.contains("samples/s"), "{out}");
        // The PyTorch figures are labelled with where they were measured.
        assert!(out.contains("2-core CPU, 2 threads"), "{out}");
    }
    let out = run(&["bench", "training", "--backend", "cpu", "--config", "huge"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("--config huge"), "{stderr}");
    assert!(stderr.contains("tiny, small, paper"), "{stderr}");
    let out = good(&[
        "bench",
        "emulation",
        "--backend",
        "cpu",
        "--preset",
        "tiny",
        "--size",
        "16",
        "--horizon",
        "1",
        "--stride",
        "1",
        "--ensembles",
        "1",
        "--steps",
        "1",
    ]);
    assert!(out.contains("emulation vs simulation"), "{out}");
    let out = run(&["bench", "emulation", "--backend", "cpu", "--preset", "huge"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--preset huge") && stderr.contains("tiny, small, paper"),
        "{stderr}"
    );

    // Provenance: the commit recorded at build time, although git cannot run now.
    let config = work.join("ae.json");
    std::fs::copy(preset("autoencoder-tiny"), &config).unwrap();
    let data = dataset();
    good(&[
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        "ae.json",
        "--out",
        "ae",
        "--backend",
        "cpu",
        "--steps",
        "1",
        "--batch",
        "2",
        "--log-every",
        "1",
    ]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("ae/checkpoint.json")).unwrap())
            .unwrap();
    let recorded = meta["git_revision"].as_str().unwrap();
    let git_here = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .is_ok_and(|o| o.status.success());
    if git_here {
        assert!(
            recorded.len() == 40 && recorded.chars().all(|c| c.is_ascii_hexdigit()),
            "git_revision {recorded:?}"
        );
    } else {
        assert_eq!(recorded, "unknown");
    }
}

/// A command that must fail within 30 s (killed and reported otherwise), with the embedded
/// runs extracted under `cache`: its stderr, checked to hold one error and no panic.
fn fails_fast(args: &[&str], cache: &Path) -> String {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(LEMUR)
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lemur");
    let begun = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if begun.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("lemur {args:?} still ran after 30 s: a size was not checked first");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "lemur {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "lemur {args:?}: {stderr}");
    stderr
}

/// Every size `rollout` takes is checked against the data, a simulated truth's cap and the
/// memory caps before any work, naming the flag and the limit (`--horizon 100000` used to
/// simulate a 400,004-frame truth, and ran past the end of a dataset trajectory silently).
#[test]
fn rollout_sizes_are_checked_before_any_work() {
    let dir = scratch("rollout-sizes");
    let cache = dir.join("cache");
    let data = dataset();
    let out = dir.join("out");
    let rollout = |extra: &[&str]| {
        let mut args = vec![
            "rollout",
            "--run",
            "pretrained-surrogate",
            "--backend",
            "cpu",
            "--no-images",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        fails_fast(&args, &cache)
    };
    // Against the data: 9 frames, the pretrained stride 4 gives 3 (one of them context).
    let e = rollout(&["--data", s(&data), "--horizon", "40"]);
    assert!(
        e.contains("--horizon 40 runs past the end of the truth")
            && e.contains("has 3 frames (9 physical), so at most 2 can be predicted"),
        "{e}"
    );
    let e = rollout(&["--data", s(&data), "--index", "7"]);
    assert!(
        e.contains("--index 7: trajectory 7 requested, the test split of")
            && e.contains("has 1 (0 to 0)"),
        "{e}"
    );
    let e = rollout(&["--data", s(&data), "--start", "50"]);
    assert!(
        e.contains("--start 50: trajectory 0 of") && e.contains("has 9 frames (0 to 8)"),
        "{e}"
    );
    let e = rollout(&["--data", s(&data), "--context", "3"]);
    assert!(
        e.contains("leaves 3 for --context 3 and at least one prediction"),
        "{e}"
    );
    // A simulated truth: at most 1000 frames, context included.
    let e = rollout(&["--simulate", "--horizon", "100000"]);
    assert!(
        e.contains("--horizon 100000: with --context 1 that is 100001 frames")
            && e.contains("at most 1000")
            && e.contains("--horizon can be at most 999"),
        "{e}"
    );
    let e = rollout(&["--simulate", "--horizon", "2", "--context", "999"]);
    assert!(e.contains("--horizon can be at most 1"), "{e}");
    let e = rollout(&["--simulate", "--horizon", "2", "--start", "100000000"]);
    assert!(
        e.contains("--start 100000000: a simulated truth starts at most 4000 frames in"),
        "{e}"
    );
    assert!(
        !out.join("truth.hdf5").exists(),
        "simulated before checking"
    );
    // Initial frames from a file have no truth to end them either.
    let init = dir.join("init.safetensors");
    write_init(&init, 2, 5);
    let e = rollout(&["--init", s(&init), "--horizon", "5000"]);
    assert!(
        e.contains("--horizon 5000") && e.contains("at most 1000"),
        "{e}"
    );
    // Ensemble and steps, for rollout and eval alike.
    let e = rollout(&["--simulate", "--ensemble", "100000"]);
    assert!(e.contains("--ensemble 100000: between 1 and 64"), "{e}");
    let e = rollout(&["--simulate", "--steps", "100000"]);
    assert!(e.contains("--steps 100000: between 1 and 1000"), "{e}");
    let e = rollout(&["--simulate", "--horizon", "0"]);
    assert!(e.contains("--horizon must be at least 1"), "{e}");
    for extra in [["--ensemble", "65"], ["--steps", "0"]] {
        let mut args = vec![
            "eval",
            "--run",
            "pretrained-surrogate",
            "--data",
            s(&data),
            "--backend",
            "cpu",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(&extra);
        let e = fails_fast(&args, &cache);
        assert!(
            e.contains(&format!("{} {}: between 1 and", extra[0], extra[1])),
            "{e}"
        );
    }
    assert!(!out.exists(), "an output was written before the checks");
}

/// `--data` takes one Well file (as `data info` does) for `rollout` and `eval`; an empty
/// directory is an error naming it; a configuration of another kind says so.
#[test]
fn data_files_empty_dirs_and_wrong_configs_are_clear() {
    let dir = scratch("data-kinds");
    let cache = dir.join("cache");
    let test_dir = dataset().join("data").join("test");
    let file = std::fs::read_dir(&test_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .unwrap();
    let run = |args: &[&str]| {
        Command::new(LEMUR)
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };
    let out = dir.join("rollout");
    let o = run(&[
        "rollout",
        "--run",
        "pretrained-surrogate",
        "--data",
        s(&file),
        "--horizon",
        "2",
        "--backend",
        "cpu",
        "--no-images",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let t = shapes(&out.join("prediction.safetensors"));
    assert_eq!(t["prediction"], vec![1, 3, 5, 16, 16]);
    assert_eq!(t["truth"], vec![3, 5, 16, 16]);
    let out = dir.join("eval");
    let o = run(&[
        "eval",
        "--run",
        "pretrained-surrogate",
        "--data",
        s(&file),
        "--backend",
        "cpu",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["horizon"], 2, "{summary}");
    assert_eq!(summary["trajectories"], 1, "{summary}");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for cmd in ["rollout", "eval"] {
        let e = fails_fast(
            &[
                cmd,
                "--run",
                "pretrained-surrogate",
                "--data",
                s(&empty),
                "--backend",
                "cpu",
                "--out",
                s(&dir.join("never")),
            ],
            &cache,
        );
        assert!(
            e.contains(&format!(
                "--data {}: no trajectories in its test split",
                empty.display()
            )) && !e.contains("does not fit"),
            "{cmd}: {e}"
        );
    }

    let e = fails_fast(
        &[
            "train",
            "autoencoder",
            "--data",
            s(&dataset()),
            "--config",
            s(&preset("denoiser-tiny")),
            "--out",
            s(&dir.join("ae")),
            "--backend",
            "cpu",
        ],
        &cache,
    );
    assert!(
        e.contains("denoiser-tiny.json: this is a diffusion (denoiser) configuration")
            && e.contains("`train autoencoder` needs an autoencoder one")
            && !e.contains("unknown field"),
        "{e}"
    );
    let e = fails_fast(
        &[
            "train",
            "diffusion",
            "--latents",
            s(&dir),
            "--config",
            s(&preset("autoencoder-tiny")),
            "--out",
            s(&dir.join("dm")),
            "--backend",
            "cpu",
        ],
        &cache,
    );
    assert!(
        e.contains("this is an autoencoder configuration, and `train diffusion` needs a diffusion"),
        "{e}"
    );
}

/// `LEMUR_GPU_BACKEND` takes only the graphics APIs compiled in (no GL): any other value is an
/// error naming the variable and the accepted values, not silently all of them.
#[test]
fn lemur_gpu_backend_rejects_unknown_apis() {
    for value in ["gl", "bogus", "vulkan,gl"] {
        let args = [
            "bench",
            "training",
            "--backend",
            "gpu",
            "--only",
            "none",
            "--min-ms",
            "1",
        ];
        let out = lemur_env(&args, &[("LEMUR_GPU_BACKEND", value)]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{value}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("LEMUR_GPU_BACKEND={value}")),
            "{value}: {stderr}"
        );
        assert!(stderr.contains("vulkan, metal, dx12"), "{value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The largest absolute difference between two checkpoints' tensors of the same names.
fn max_weight_diff(a: &Path, b: &Path) -> f32 {
    let (a, b) = (
        tensors(&a.join("model.safetensors")),
        tensors(&b.join("model.safetensors")),
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the checkpoints name different tensors"
    );
    a.iter()
        .flat_map(|(k, (_, x))| x.iter().zip(&b[k].1).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

fn latest_checkpoint(run: &Path) -> (PathBuf, serde_json::Value) {
    let meta = checkpoint_meta(run);
    (run.join(meta["dir"].as_str().unwrap()), meta)
}

#[test]
fn init_fine_tunes_from_another_runs_weights() {
    let dir = scratch("init");
    let data = dataset();
    let base = train_autoencoder(&dir, "cpu");
    let (base_ckpt, base_meta) = latest_checkpoint(&base);
    // A learning rate of 1e-12 leaves the weights where they started, to f32 precision.
    let still = |run: &Path, extra: &[&str]| {
        let mut a = vec![
            "train",
            "autoencoder",
            "--data",
            s(&data),
            "--out",
            s(run),
            "--steps",
            "1",
            "--batch",
            "2",
            "--lr",
            "1e-12",
            "--backend",
            "cpu",
        ];
        a.extend(extra);
        ok(&a);
        latest_checkpoint(run)
    };

    let tuned = dir.join("tuned");
    let (tuned_ckpt, meta) = still(&tuned, &["--init", s(&base)]);
    let moved = max_weight_diff(&base_ckpt, &tuned_ckpt);
    assert!(
        moved < 1e-6,
        "--init did not start from the run's weights: {moved}"
    );
    let init = &meta["extra"]["init"];
    assert_eq!(init["step"], base_meta["step"], "{init}");
    assert_eq!(
        Path::new(init["path"].as_str().unwrap()),
        std::fs::canonicalize(&base_ckpt).unwrap(),
        "{init}"
    );
    assert_eq!(meta["model_config"], base_meta["model_config"]);
    assert_eq!(meta["step"], 1, "a fine-tuning run counts its own steps");
    // The same model from its seed is far from the trained weights: --init mattered.
    let (fresh_ckpt, _) = still(
        &dir.join("fresh"),
        &["--config", s(&preset("autoencoder-tiny"))],
    );
    let trained = max_weight_diff(&base_ckpt, &fresh_ckpt);
    assert!(trained > 1e-3, "training moved the weights by {trained}");

    // A resumed fine-tuning run keeps the record of where it started.
    ok(&[
        "train",
        "autoencoder",
        "--resume",
        s(&tuned),
        "--steps",
        "2",
        "--backend",
        "cpu",
    ]);
    let (_, resumed) = latest_checkpoint(&tuned);
    assert_eq!(resumed["step"], 2);
    assert_eq!(resumed["extra"]["init"], *init);

    // An embedded run by name, on a grid it was not trained on (the DCAE is convolutional).
    let (_, meta) = still(
        &dir.join("from-pretrained"),
        &["--init", "pretrained-autoencoder"],
    );
    let init = &meta["extra"]["init"];
    assert!(init["step"].as_u64().unwrap() > 0, "{init}");
    assert!(
        init["path"].as_str().unwrap().ends_with("autoencoder"),
        "{init}"
    );

    let other = dir.join("other");
    let err = fails(&[
        "train",
        "diffusion",
        "--init",
        s(&base),
        "--latents",
        s(&data),
        "--out",
        s(&other),
    ]);
    assert!(err.contains("trains an autoencoder model"), "{err}");
    let err = fails(&[
        "train",
        "autoencoder",
        "--init",
        s(&base),
        "--config",
        "small",
        "--data",
        s(&data),
        "--out",
        s(&other),
    ]);
    assert!(
        err.contains("describes another model than --init's") && err.contains("hid_channels"),
        "{err}"
    );
    let err = fails(&[
        "train",
        "autoencoder",
        "--init",
        s(&base),
        "--resume",
        s(&tuned),
    ]);
    assert!(err.contains("--init") && err.contains("--resume"), "{err}");
    let missing = dir.join("no-such-run");
    let err = fails(&[
        "train",
        "autoencoder",
        "--init",
        s(&missing),
        "--data",
        s(&data),
        "--out",
        s(&other),
    ]);
    assert!(err.contains(s(&missing)), "{err}");
    assert!(!other.exists(), "a refused run left {}", other.display());
}

/// A tiny periodic Euler dataset (3 trajectories, 5 frames, 16x16) in `dir/periodic`.
fn periodic_dataset(dir: &Path, seed: u32) -> PathBuf {
    let periodic = dir.join("periodic");
    let seed = seed.to_string();
    ok(&[
        "generate",
        "euler",
        "--periodic",
        "--trajectories",
        "3",
        "--frames",
        "5",
        "--size",
        "16x16",
        "--seed",
        &seed,
        "--out",
        s(&periodic),
    ]);
    periodic
}

#[test]
fn autoencoder_padding_follows_the_datas_boundaries() {
    let dir = scratch("padding");
    let open = dataset();
    let periodic = periodic_dataset(&dir, 1);
    let file = preset("autoencoder-tiny");
    let train = |run: &str, data: &Path, start: &[&str]| {
        let run = dir.join(run);
        let mut a = vec!["train", "autoencoder", "--data", s(data), "--out", s(&run)];
        a.extend(start);
        a.extend(["--steps", "1", "--batch", "2", "--backend", "cpu"]);
        let out = ok(&a);
        (
            latest_checkpoint(&run).1["model_config"]["periodic"].clone(),
            out,
        )
    };
    // A preset pads as its data's boundaries ask; a file is taken as written.
    let (pad, _) = train("preset-periodic", &periodic, &["--config", "tiny"]);
    assert_eq!(pad, true);
    let (pad, _) = train("preset-open", &open, &["--config", "tiny"]);
    assert_eq!(pad, false);
    let (pad, _) = train("file-periodic", &periodic, &["--config", s(&file)]);
    assert_eq!(pad, false);
    // Rayleigh-Bénard's box is periodic in x (H) and walled in z (W).
    let rb = dir.join("rb");
    ok(&[
        "generate",
        "rayleigh-benard",
        "--trajectories",
        "3",
        "--frames",
        "3",
        "--size",
        "16x8",
        "--out",
        s(&rb),
    ]);
    let (pad, _) = train("preset-rb", &rb, &["--config", "tiny"]);
    assert_eq!(pad, serde_json::json!([true, false]));
    let mut zeros: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    zeros["pix_channels"] = 4.into();
    let zeros_file = dir.join("zeros-rb.json");
    std::fs::write(&zeros_file, zeros.to_string()).unwrap();
    let (pad, _) = train("file-rb", &rb, &["--config", s(&zeros_file)]);
    assert_eq!(pad, false);
    let (pad, out) = train("init-rb", &rb, &["--init", s(&dir.join("file-rb"))]);
    assert_eq!(pad, serde_json::json!([true, false]));
    assert!(
        out.contains("pads with zeros; the new run pads with circular along H and zeros along W"),
        "{out}"
    );
    // --init keeps the weights and takes the new data's padding, with a note when it changes;
    // a preset given beside it describes the same model whatever its padding.
    let circular = dir.join("preset-periodic");
    let (pad, out) = train("init-open", &open, &["--init", s(&circular)]);
    assert_eq!(pad, false);
    assert!(
        out.contains("pads with circular; the new run pads with zeros"),
        "{out}"
    );
    let (pad, out) = train(
        "init-periodic",
        &periodic,
        &["--init", s(&dir.join("file-periodic")), "--config", "tiny"],
    );
    assert_eq!(pad, true);
    assert!(
        out.contains("pads with zeros; the new run pads with circular"),
        "{out}"
    );
    // A resumed run keeps its own padding.
    ok(&[
        "train",
        "autoencoder",
        "--resume",
        s(&circular),
        "--data",
        s(&periodic),
        "--steps",
        "2",
        "--backend",
        "cpu",
    ]);
    let meta = latest_checkpoint(&circular).1;
    assert_eq!(
        (
            meta["step"].clone(),
            meta["model_config"]["periodic"].clone()
        ),
        (2.into(), true.into())
    );
}

#[test]
fn freeze_encoder_trains_the_decoder_alone() {
    let dir = scratch("freeze-encoder");
    let periodic = periodic_dataset(&dir, 2);
    // `lemur train autoencoder` on that data, which must succeed or fail; its output.
    let train = |run: &Path, extra: &[&str], succeed: bool| -> String {
        let mut a = vec![
            "train",
            "autoencoder",
            "--data",
            s(&periodic),
            "--out",
            s(run),
        ];
        a.extend(extra);
        a.extend(["--batch", "2", "--lr", "1e-2", "--backend", "cpu"]);
        if succeed { ok(&a) } else { fails(&a) }
    };
    // A base run padding with zeros (a file is taken as written), then its decoder fine-tuned
    // on the same periodic data.
    let base = dir.join("base");
    let file = preset("autoencoder-tiny");
    train(&base, &["--config", s(&file), "--steps", "2"], true);
    let frozen = dir.join("frozen");
    let out = train(
        &frozen,
        &["--init", s(&base), "--freeze-encoder", "--steps", "3"],
        true,
    );
    assert!(
        out.contains(
            "pads with zeros; with its encoder frozen the new run keeps that padding, though its \
             data's boundaries ask for circular"
        ),
        "{out}"
    );
    let (ckpt, meta) = latest_checkpoint(&frozen);
    assert_eq!(meta["options"]["freeze_encoder"], true);
    // Its latents are named by the step of the encoder it keeps.
    assert_eq!(meta["extra"]["encoder_step"], 2);
    assert_eq!(
        meta["model_config"],
        latest_checkpoint(&base).1["model_config"],
        "the configuration, padding included, is --init's"
    );
    let before = tensors(&latest_checkpoint(&base).0.join("model.safetensors"));
    let after = tensors(&ckpt.join("model.safetensors"));
    let (mut encoder, mut decoder) = (0, 0);
    for (name, (_, b)) in &before {
        let a = &after[name].1;
        if name.starts_with("encoder.") {
            assert_eq!(a, b, "{name} changed with the encoder frozen");
            encoder += 1;
        } else if name.starts_with("decoder.") && !name.ends_with("norm.eps") {
            let moved = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(moved > 1e-6, "{name} did not train ({moved})");
            decoder += 1;
        }
    }
    assert!(
        encoder > 10 && decoder > 10,
        "{encoder} encoder, {decoder} decoder tensors"
    );
    // The latents are the base run's: the emulators trained on them stay valid.
    let latents = |ae: &Path, name: &str| {
        let out = dir.join(name);
        ok(&[
            "encode",
            "--autoencoder",
            s(ae),
            "--data",
            s(&periodic),
            "--out",
            s(&out),
            "--backend",
            "cpu",
        ]);
        tensors(&out.join("train.safetensors"))
    };
    assert_eq!(latents(&frozen, "lat-frozen"), latents(&base, "lat-base"));
    // --resume keeps the encoder frozen, and refuses to change that either way.
    ok(&[
        "train",
        "autoencoder",
        "--resume",
        s(&frozen),
        "--steps",
        "4",
        "--backend",
        "cpu",
    ]);
    let (ckpt, meta) = latest_checkpoint(&frozen);
    assert_eq!(meta["step"], 4);
    for (name, (_, b)) in before.iter().filter(|(n, _)| n.starts_with("encoder.")) {
        assert_eq!(
            &tensors(&ckpt.join("model.safetensors"))[name].1,
            b,
            "{name}"
        );
    }
    assert_eq!(meta["extra"]["encoder_step"], 2);
    // An emulator trained on the frozen run's latents records the encoder's step, and is
    // scored through the run's latest decoder (a later step than the one it saw).
    let dif = dir.join("dif");
    ok(&[
        "train",
        "diffusion",
        "--latents",
        s(&dir.join("lat-frozen")),
        "--config",
        "tiny",
        "--out",
        s(&dif),
        "--steps",
        "1",
        "--batch",
        "2",
        "--window",
        "2",
        "--stride",
        "1",
        "--backend",
        "cpu",
    ]);
    assert_eq!(latest_checkpoint(&dif).1["extra"]["autoencoder_step"], 2);
    ok(&[
        "eval",
        "--run",
        s(&dif),
        "--data",
        s(&periodic),
        "--trajectories",
        "1",
        "--ensemble",
        "1",
        "--steps",
        "2",
        "--out",
        s(&dir.join("eval")),
        "--backend",
        "cpu",
    ]);
    let err = fails(&[
        "train",
        "autoencoder",
        "--resume",
        s(&base),
        "--freeze-encoder",
        "--steps",
        "3",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("--freeze-encoder true (the run has false)"),
        "{err}"
    );
    // A new run's encoder is random: there is nothing to keep.
    let fresh = dir.join("fresh");
    let err = train(
        &fresh,
        &["--config", "tiny", "--freeze-encoder", "--steps", "1"],
        false,
    );
    assert!(
        err.contains("--freeze-encoder") && err.contains("--init"),
        "{err}"
    );
    assert!(!fresh.exists(), "a refused run left {}", fresh.display());
}
