//! `scripts/pretrain.sh`, the pipeline that trains the embedded sets across sittings, run end to
//! end on the CPU with this build's `lemur` and tiny step counts: the first sitting starts from
//! the embedded runs, a repeated sitting skips what is done, a larger step count resumes its
//! stage only, and the latents are encoded again (the emulators then start from their previous
//! runs) when the autoencoder moves on and when the dataset grows. `scripts/device-train.sh`,
//! which runs one sitting of it on a GPU machine without a toolchain, is run here the same way
//! (`BACKEND=cpu`): from a compressed binary, its runs come back as tarballs that pack.

use std::path::Path;
use std::process::Command;

#[path = "support/cli.rs"]
mod support;

use support::{LEMUR, s, scratch_in, text, walk};

/// `bash SCRIPT ARGS` for a tiny sitting of the Euler set on the CPU: 10 trajectories, batches of
/// 2, lemur's cache in `cache`.
fn tiny_sitting(script: &str, args: [&str; 2], cache: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new("bash");
    c.arg(root.join("scripts").join(script))
        .args(args)
        .envs([
            ("BACKEND", "cpu"),
            ("TRAJECTORIES", "10"),
            ("AE_BATCH", "2"),
            ("EMU_BATCH", "2"),
        ])
        .env("XDG_CACHE_HOME", cache)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

/// One sitting: `scripts/pretrain.sh euler64 WORK` with this build's `lemur` and the stages'
/// steps (AE, DIF, SUR), plus `env`; its output.
fn sitting(work: &Path, steps: [u32; 3], env: &[(&str, &str)]) -> String {
    let [ae, dif, sur] = steps.map(|n| n.to_string());
    let out = tiny_sitting(
        "pretrain.sh",
        ["euler64", s(work)],
        &work.parent().unwrap().join("cache"),
    )
    .envs([
        ("LEMUR", LEMUR),
        ("AE_STEPS", &ae),
        ("DIF_STEPS", &dif),
        ("SUR_STEPS", &sur),
    ])
    .envs(env.iter().copied())
    .output()
    .expect("bash runs scripts/pretrain.sh");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "pretrain.sh {steps:?} {env:?} failed:\n{stdout}\n{stderr}"
    );
    format!("{stdout}{stderr}")
}

fn meta(run: &Path) -> serde_json::Value {
    let path = run.join("checkpoint.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn step(run: &Path) -> u64 {
    meta(run)["step"].as_u64().unwrap()
}

/// The checkpoint a run was initialised from (`--init`).
fn init(run: &Path) -> String {
    meta(run)["extra"]["init"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no extra.init.path", run.display()))
        .to_owned()
}

fn trajectories(work: &Path) -> usize {
    walk(&work.join("data"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .count()
}

fn lat_key(work: &Path) -> String {
    std::fs::read_to_string(work.join("lat.step"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn pretrain_sh_resumes_across_sittings() {
    let work = scratch_in("pretrain", "sittings").join("work");
    let (ae, dif, sur) = (work.join("ae"), work.join("dif"), work.join("sur"));

    // First sitting: data, then every stage from the embedded runs.
    sitting(&work, [2, 2, 2], &[]);
    assert_eq!(trajectories(&work), 10);
    assert_eq!([step(&ae), step(&dif), step(&sur)], [2, 2, 2]);
    for run in [&ae, &dif, &sur] {
        assert!(
            init(run).contains("pretrained-euler64"),
            "{}: initialised from {}, not the embedded set",
            run.display(),
            init(run)
        );
    }
    assert_eq!(lat_key(&work), "2 10");

    // The same sitting again does nothing; more diffusion steps resume that stage alone, on the
    // same latents.
    let before = |run: &Path| std::fs::read(run.join("checkpoint.json")).unwrap();
    let (ae_meta, sur_meta) = (before(&ae), before(&sur));
    let marker = work.join("lat/kept");
    std::fs::write(&marker, b"").unwrap();
    let out = sitting(&work, [2, 2, 2], &[]);
    assert!(
        !out.contains(" step "),
        "a finished sitting trained again:\n{out}"
    );
    sitting(&work, [2, 4, 2], &[]);
    assert_eq!(step(&dif), 4);
    assert!(marker.exists(), "the latents were encoded again");
    assert_eq!(before(&ae), ae_meta, "the autoencoder run changed");
    assert_eq!(before(&sur), sur_meta, "the surrogate run changed");
    assert!(!work.join("dif.prev").exists());

    // The autoencoder moves on: new latents, and each emulator starts a new run from its
    // previous one.
    sitting(&work, [3, 4, 2], &[]);
    assert_eq!(step(&ae), 3);
    assert!(
        !marker.exists(),
        "the latents of the old autoencoder were kept"
    );
    assert_eq!(lat_key(&work), "3 10");
    assert_eq!(meta(&dif)["extra"]["autoencoder_step"], 3);
    assert_eq!([step(&dif), step(&sur)], [4, 2]);
    assert_eq!(step(&work.join("dif.prev")), 4);
    assert!(
        init(&dif).ends_with("dif.prev/step-00000004"),
        "{}",
        init(&dif)
    );
    assert!(
        init(&sur).ends_with("sur.prev/step-00000002"),
        "{}",
        init(&sur)
    );

    // More training trajectories: the dataset grows, and the latents follow it.
    let out = sitting(&work, [3, 4, 2], &[("EXTRA_TRAJECTORIES", "2")]);
    assert_eq!(trajectories(&work), 12);
    assert_eq!(lat_key(&work), "3 12");
    // 10 training trajectories, each with one augmented copy (`--augment 1`).
    assert!(
        out.contains("encoded trajectories (test 1, train 20, valid 1)"),
        "{out}"
    );
    assert!(
        init(&dif).ends_with("dif.prev/step-00000004"),
        "{}",
        init(&dif)
    );
    assert_eq!(step(&ae), 3);
}

/// `scripts/device-train.sh`, as on a GPU machine without a toolchain but on the CPU: the binary
/// travels xz-compressed, every stage trains from the embedded set within its time limit, and
/// each run comes back as a tarball of its latest checkpoint (metadata, weights and log, no
/// optimizer state) that `scripts/pack-pretrained.py` packs as a set.
#[test]
fn device_train_sh_returns_runs_that_pack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch_in("pretrain", "device");
    let (device, out, tmp) = (dir.join("device"), dir.join("out"), dir.join("tmp"));
    std::fs::create_dir_all(device.join("bin")).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let xz = Command::new("python3")
        .args([
            "-c",
            "import lzma, sys; data = open(sys.argv[1], 'rb').read(); \
             f = lzma.open(sys.argv[2], 'wb', preset=0); f.write(data); f.close()",
            LEMUR,
            s(&device.join("bin/lemur.xz")),
        ])
        .status()
        .expect("python3 compresses the binary: install it (apt-get install python3)");
    assert!(xz.success());

    let run = tiny_sitting(
        "device-train.sh",
        ["euler64", s(&device)],
        &dir.join("cache"),
    )
    .envs([
        ("OUT", s(&out)),
        ("TMPDIR", s(&tmp)),
        ("EXTRA_TRAJECTORIES", "2"),
        ("AE_TIME", "4"),
        ("DIF_TIME", "3"),
        ("SUR_TIME", "3"),
    ])
    .output()
    .expect("bash runs scripts/device-train.sh");
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let log = std::fs::read_to_string(out.join("device-train.log")).unwrap();
    assert!(log.contains("=== pretrain.sh: rc 0 "), "{log}");
    // The sitting's working directory is a fresh one under TMPDIR.
    assert!(
        log.contains(&format!("in {}/lemur-device-train.", s(&tmp))),
        "{log}"
    );
    // 10 trajectories and 2 more for training, each training one with an augmented copy.
    assert!(
        log.contains("encoded trajectories (test 1, train 20, valid 1)"),
        "{log}"
    );

    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    for run in ["ae", "dif", "sur"] {
        let tar = out.join(format!("{run}.tar"));
        let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
        assert!(
            list.status.success(),
            "{}: {:?}",
            tar.display(),
            text(&list)
        );
        let mut names: Vec<String> = text(&list).0.lines().map(str::to_owned).collect();
        names.sort();
        let untar = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&runs)
            .status()
            .unwrap();
        assert!(untar.success());
        let step = step(&runs.join(run));
        assert!(step > 0, "{run}: no step trained in its time limit\n{log}");
        assert!(
            log.contains(&format!("=== {run}: step {step} -> ")),
            "{log}"
        );
        let ck = format!("{run}/step-{step:08}");
        assert_eq!(
            names,
            [
                format!("{run}/checkpoint.json"),
                format!("{run}/log.jsonl"),
                format!("{ck}/checkpoint.json"),
                format!("{ck}/model.safetensors"),
            ],
            "{run}.tar"
        );
        assert!(
            init(&runs.join(run)).contains("pretrained-euler64"),
            "{run}: initialised from {}, not the embedded set",
            init(&runs.join(run))
        );
    }

    // Packed as the README says: the three runs as one set in F16, each at its step.
    let packed = dir.join("packed");
    let pack = Command::new("python3")
        .arg(root.join("scripts/pack-pretrained.py"))
        .args(["ae", "dif", "sur"].map(|r| runs.join(r)))
        .args(["--name", "euler64", "--out", s(&packed)])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&pack);
    assert!(pack.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("limit 12 MB"), "{stdout}");
    for (run, kind) in [
        ("ae", "autoencoder"),
        ("dif", "diffusion"),
        ("sur", "surrogate"),
    ] {
        let set = packed.join("euler64").join(kind);
        assert!(set.join("model.safetensors").is_file(), "{}", set.display());
        assert_eq!(step(&set), step(&runs.join(run)), "{kind}");
    }
}
