//! Interrupts, kills, locks and full disks, through the `lemur` binary (CPU backend, tiny
//! preset, tiny data): `train` killed with SIGKILL at 20 seeded random moments and resumed
//! each time ends bit-identical to an uninterrupted run, with every checkpoint directory
//! present loadable at every point; Ctrl-C (SIGINT) saves a checkpoint and says how to
//! resume, a second one quits at once; `generate` interrupted or out of space leaves no
//! dataset at `--out`; a run being trained is locked; a failed checkpoint write (under
//! `RLIMIT_FSIZE`, the stand-in for a full disk) names the file and keeps the previous
//! checkpoint resumable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lemur_tensor::params::read_safetensors;
use lemur_train::run::read_meta;

#[path = "support/cli.rs"]
mod support;

use support::{LEMUR, command, ok, preset, s, text};

/// The optimizer steps of every run compared with the reference.
const STEPS: u32 = 40;

fn scratch(name: &str) -> PathBuf {
    support::scratch_in("interrupt", name)
}

/// One tiny dataset shared by every test (3 trajectories, 9 frames, 16x16).
fn dataset() -> PathBuf {
    support::tiny_dataset("interrupt")
}

/// Runs `lemur args` with files limited to `kib` KiB (`RLIMIT_FSIZE`) and SIGXFSZ ignored, so
/// that a write past the limit fails with EFBIG ("File too large") as a full disk fails with
/// ENOSPC. Both are inherited through `exec`.
fn with_file_limit(kib: u64, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f \"$1\"; shift; exec \"$@\"")
        .arg("bash")
        .arg(kib.to_string())
        .arg(LEMUR)
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run lemur under bash")
}

/// Sends `signal` (e.g. "INT") to our own child, by its PID only.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {}", child.id());
}

/// Polls `cond` every 5 ms, for at most 60 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Settings of every compared run: dropout on, so the model's randomness must resume exactly
/// too, and a checkpoint every 2 steps, so a kill between checkpoints redoes steps.
const COMMON: [&str; 16] = [
    "--steps",
    "40",
    "--batch",
    "2",
    "--lr",
    "3e-3",
    "--dropout",
    "0.1",
    "--seed",
    "5",
    "--checkpoint-every",
    "2",
    "--val-batches",
    "1",
    "--backend",
    "cpu",
];

fn new_run(run: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "autoencoder",
        "--data",
        s(&dataset()),
        "--config",
        s(&preset("autoencoder-tiny")),
        "--out",
        s(run),
    ]
    .map(String::from)
    .to_vec();
    a.extend(COMMON.map(String::from));
    a
}

fn resume(run: &Path) -> Vec<String> {
    [
        "train",
        "autoencoder",
        "--resume",
        s(run),
        "--backend",
        "cpu",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// The uninterrupted run every interrupted one must equal, with its wall time and the part
/// of it spent in training steps (the rest is start-up).
struct Reference {
    run: PathBuf,
    wall: Duration,
    training: Duration,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let run = scratch("reference").join("run");
        let start = Instant::now();
        ok(&strs(&new_run(&run)));
        let wall = start.elapsed();
        let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["step"], STEPS);
        let training = Duration::from_secs_f64(last["elapsed_s"].as_f64().unwrap());
        Reference {
            run,
            wall,
            training,
        }
    })
}

/// The step of the run's pointer, if it has one.
fn pointer_step(run: &Path) -> Option<u32> {
    let p = run.join("checkpoint.json");
    p.exists().then(|| read_meta(&p).unwrap().step)
}

/// Every `step-N` directory in `run` is a complete checkpoint (its metadata names it, its
/// weights and optimizer moments parse, with the same tensors), and the pointer names one
/// of them. Returns the steps found.
fn assert_checkpoints_load(run: &Path) -> Vec<u32> {
    let mut steps = Vec::new();
    if !run.exists() {
        // Killed before it created the run directory.
        return steps;
    }
    for entry in std::fs::read_dir(run).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = name
            .strip_prefix("step-")
            .map(|n| n.parse::<u32>().unwrap())
        else {
            continue;
        };
        let dir = entry.path();
        let meta = read_meta(&dir.join("checkpoint.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!((meta.step, meta.dir.as_str()), (step, name.as_str()));
        let load = |f: &str| {
            let path = dir.join(f);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            read_safetensors(&bytes, &path).unwrap_or_else(|e| panic!("{e}"))
        };
        let (weights, moments) = (load("model.safetensors"), load("optimizer.safetensors"));
        assert!(!weights.is_empty(), "{}: no weights", dir.display());
        // Two moments per trainable parameter (some parameters, e.g. frozen ones, have none).
        assert!(
            moments.len() >= 2,
            "{}: no optimizer moments",
            dir.display()
        );
        for name in moments.keys() {
            let param = name
                .strip_suffix(".exp_avg_sq")
                .or_else(|| name.strip_suffix(".exp_avg"))
                .unwrap_or_else(|| panic!("{}: moment {name}", dir.display()));
            assert_eq!(
                moments[name].0,
                weights[param].0,
                "{}: {name}",
                dir.display()
            );
        }
        steps.push(step);
    }
    steps.sort();
    if let Some(step) = pointer_step(run) {
        assert!(
            steps.contains(&step),
            "{}: the pointer names step {step}, present: {steps:?}",
            run.display()
        );
    }
    steps
}

/// The final weights and optimizer moments of `run` are bit-identical to the reference's.
fn assert_equals_reference(run: &Path) {
    let last = format!("step-{STEPS:08}");
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let a = std::fs::read(run.join(&last).join(f)).unwrap();
        let b = std::fs::read(reference().run.join(&last).join(f)).unwrap();
        assert!(
            a == b,
            "{}: {f} differs from the uninterrupted run's",
            run.display()
        );
    }
}

/// SplitMix64: seeded kill moments without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn sigkill_at_20_random_moments_then_resume_is_bit_identical() {
    let r = reference();
    // The start-up (process, data, model) before the first step: estimated from the
    // reference, then adapted below, since the machine's load (other tests) changes it.
    let mut startup = r
        .wall
        .saturating_sub(r.training)
        .max(Duration::from_millis(20));
    let step = r.training / STEPS;
    let dir = scratch("kill");
    let run = dir.join("run");
    let mut rng = Rng(20_261_130);
    let (mut kills, mut advanced, mut completed) = (0, 0, 0);
    let mut moments = Vec::new();
    while kills < 20 {
        if pointer_step(&run) == Some(STEPS) {
            // Finished between kills: check it and start over, so that all 20 kills hit a
            // running process.
            assert_equals_reference(&run);
            completed += 1;
            std::fs::remove_dir_all(&run).unwrap();
        }
        let before = pointer_step(&run);
        let args = if before.is_some() {
            resume(&run)
        } else {
            new_run(&run)
        };
        let mut child = command(&strs(&args))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From late in the start-up to 6 steps (3 checkpoints) later: kills land in data
        // loading, in steps and in checkpoint writes, and attempts make some progress.
        let delay = startup.mul_f64(0.8 + 0.4 * rng.unit()) + step.mul_f64(6.0 * rng.unit());
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{args:?} ended with {status}");
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        let steps = assert_checkpoints_load(&run);
        let after = pointer_step(&run);
        if after > before {
            advanced += 1;
            startup = startup.mul_f64(0.9);
        } else {
            startup = startup.mul_f64(1.25);
        }
        moments.push(format!("{}ms:{after:?}", delay.as_millis()));
        assert!(
            steps.len() <= 3,
            "old checkpoints are pruned (2 kept, 1 more until the pointer moves): {steps:?}"
        );
    }
    // The last attempt runs to the end.
    if pointer_step(&run) != Some(STEPS) {
        let args = if pointer_step(&run).is_some() {
            resume(&run)
        } else {
            new_run(&run)
        };
        ok(&strs(&args));
    }
    assert_checkpoints_load(&run);
    assert_equals_reference(&run);
    eprintln!(
        "20 kills (delay:pointer step) {moments:?}; {advanced} advanced the run, {completed} \
         earlier runs completed; reference: {:?} in all, {:?} training",
        r.wall, r.training
    );
    assert!(
        advanced >= 5,
        "too few kills landed after a checkpoint: {moments:?}"
    );
}

#[test]
fn ctrl_c_in_train_saves_a_checkpoint_and_resumes_exactly() {
    let dir = scratch("sigint");
    // A space in the path: the printed command quotes it.
    let run = dir.join("my run");
    let child = command(&strs(&new_run(&run)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first checkpoint", || pointer_step(&run).is_some());
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("lemur: interrupted; finishing the current step, then saving a checkpoint"),
        "{stderr}"
    );
    // "saved a checkpoint at step N in RUN/step-0000000N", then the command to resume.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("lemur: interrupted: saved a checkpoint at step "))
        .unwrap_or_else(|| panic!("no checkpoint line in:\n{stderr}"));
    let step: u32 = line
        .trim_start_matches("lemur: interrupted: saved a checkpoint at step ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(step > 0 && step < STEPS, "{line}");
    assert!(
        line.ends_with(&format!(" in {}", s(&run.join(format!("step-{step:08}"))))),
        "{line}"
    );
    assert!(
        stderr.contains(&format!(
            "resume with: lemur train autoencoder --resume '{}' --backend cpu\n",
            s(&run)
        )),
        "{stderr}"
    );
    assert_eq!(pointer_step(&run), Some(step));
    assert!(assert_checkpoints_load(&run).contains(&step));
    // The printed command (with the test's backend) finishes the run as if uninterrupted.
    ok(&strs(&resume(&run)));
    assert_equals_reference(&run);
}

#[test]
fn second_ctrl_c_quits_at_once_and_the_run_still_resumes() {
    let dir = scratch("sigint-twice");
    let run = dir.join("run");
    let (data, config) = (dataset(), preset("autoencoder-tiny"));
    // Big batches make a step long (~0.4 s) so that the second interrupt lands inside one.
    let args = [
        "train",
        "autoencoder",
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--out",
        s(&run),
        "--steps",
        "4",
        "--batch",
        "256",
        "--checkpoint-every",
        "1",
        "--val-batches",
        "0",
        "--backend",
        "cpu",
    ];
    let child = command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first checkpoint", || pointer_step(&run).is_some());
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(30));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("lemur: interrupted again; quitting at once"),
        "{stderr}"
    );
    assert!(!stderr.contains("saved a checkpoint"), "{stderr}");
    let at = pointer_step(&run).unwrap();
    assert!(at < 4, "stopped at step {at}");
    assert!(assert_checkpoints_load(&run).contains(&at));
    ok(&strs(&resume(&run)));
    assert_eq!(pointer_step(&run), Some(4));
    assert_checkpoints_load(&run);
}

/// A dataset directory's files, relative, with their sizes.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// No hidden staging directory of `out` is left beside it.
fn assert_no_staging(out: &Path) {
    let name = format!(".{}.tmp-", out.file_name().unwrap().to_string_lossy());
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn ctrl_c_in_generate_leaves_no_dataset() {
    let dir = scratch("generate-sigint");
    let tiny = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "generate",
            "euler",
            "--trajectories",
            "3",
            "--frames",
            "5",
            "--size",
            "8x8",
            "--out",
            s(out),
        ];
        a.extend(extra);
        ok(&a);
    };
    // A fresh --out, and an existing dataset being replaced with --overwrite.
    let (fresh, old) = (dir.join("fresh"), dir.join("old"));
    tiny(&old, &[]);
    let before = listing(&old);
    let stats = std::fs::read(old.join("stats.json")).unwrap();
    for (out, extra) in [(&fresh, None), (&old, Some("--overwrite"))] {
        // 40 trajectories of 64x64 take tens of seconds: the interrupt lands mid-way.
        let mut args = vec!["generate", "euler", "--trajectories", "40", "--out", s(out)];
        args.extend(extra);
        let child = command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let staging = format!(
            ".{}.tmp-{}",
            out.file_name().unwrap().to_string_lossy(),
            child.id()
        );
        let staging = dir.join(staging);
        wait_for("the staging directory", || {
            staging.join("data/train").is_dir()
        });
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, "INT");
        let out_ = child.wait_with_output().unwrap();
        let (_, stderr) = text(&out_);
        assert_eq!(out_.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains(
                "lemur: interrupted; finishing the trajectories in progress, then removing the partial dataset"
            ),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "lemur: interrupted: the partial dataset {} was removed",
                s(&staging)
            )),
            "{stderr}"
        );
        assert!(!staging.exists());
        assert_no_staging(out);
        if extra.is_none() {
            assert!(stderr.contains("was not created"), "{stderr}");
            assert!(!out.exists(), "{} was created", out.display());
        } else {
            assert!(stderr.contains("was left as it was"), "{stderr}");
            assert_eq!(listing(out), before, "the old dataset changed");
            assert_eq!(std::fs::read(out.join("stats.json")).unwrap(), stats);
        }
    }
    // `--extend`, interrupted, adds nothing to the dataset it was growing.
    let grown = dir.join("grown");
    ok(&[
        "generate",
        "euler",
        "--trajectories",
        "1",
        "--out",
        s(&grown),
    ]);
    let before_grown = listing(&grown);
    let child = command(&[
        "generate",
        "euler",
        "--trajectories",
        "40",
        "--out",
        s(&grown),
        "--extend",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let staging = dir.join(format!(".grown.tmp-{}", child.id()));
    wait_for("the staging directory", || {
        staging.join("data/train").is_dir()
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "lemur: interrupted; finishing the trajectories in progress, then removing the new ones not yet added"
        ) && stderr.contains(&format!(
            "lemur: interrupted: the new trajectories not yet moved into {} were removed",
            s(&grown.join("data/train"))
        )),
        "{stderr}"
    );
    assert!(!staging.exists());
    assert_eq!(
        listing(&grown),
        before_grown,
        "an interrupted --extend added files"
    );
    // A staging directory of a killed generate (its PID gone) is removed by the next one;
    // one of a live process (PID 1) is not touched.
    let (dead, live) = (dir.join(".old.tmp-999999999"), dir.join(".old.tmp-1"));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d.join("data/train")).unwrap();
        std::fs::write(d.join("data/train/x.hdf5"), b"partial").unwrap();
    }
    // Uninterrupted, --overwrite replaces it (a new seed: other trajectories, other stats).
    tiny(&old, &["--overwrite", "--seed", "9"]);
    assert_ne!(std::fs::read(old.join("stats.json")).unwrap(), stats);
    assert_eq!(listing(&old).len(), before.len());
    assert!(!dead.exists(), "{} was left", dead.display());
    assert!(live.join("data/train/x.hdf5").is_file());
    std::fs::remove_dir_all(&live).unwrap();
    assert_no_staging(&old);
}

/// Waits until `run/train.lock` names `child` (it holds the lock: the PID is written after
/// locking).
fn wait_for_lock(run: &Path, child: &Child) {
    let pid = child.id().to_string();
    wait_for("the child to lock the run", || {
        std::fs::read_to_string(run.join("train.lock")).is_ok_and(|t| t.trim() == pid)
    });
}

#[test]
fn a_run_being_trained_is_locked() {
    let dir = scratch("lock");
    let run = dir.join("run");
    let long = |args: Vec<String>| {
        let mut a = args;
        a.extend(["--steps", "100000"].map(String::from));
        command(&strs(&a))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let fresh = |run: &Path| {
        [
            "train",
            "autoencoder",
            "--data",
            s(&dataset()),
            "--config",
            s(&preset("autoencoder-tiny")),
            "--out",
            s(run),
            "--backend",
            "cpu",
            "--val-batches",
            "0",
        ]
        .map(String::from)
        .to_vec()
    };
    // A new run that has no checkpoint yet (the first comes at step 100000).
    let mut a = fresh(&run);
    a.extend(["--checkpoint-every", "100000"].map(String::from));
    let mut first = long(a);
    wait_for_lock(&run, &first);
    let out = command(&strs(&fresh(&run))).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: run {} is in use: another lemur process (PID {}) is training it",
            s(&run),
            first.id()
        )),
        "{stderr}"
    );
    // A SIGKILLed holder leaves no stale lock: its file remains, with its PID, unlocked.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut short = fresh(&run);
    short.extend(["--steps", "2"].map(String::from));
    ok(&strs(&short));
    assert_eq!(pointer_step(&run), Some(2));

    // Two resumes at once: the second refuses, naming the run and the holder.
    let mut a = resume(&run);
    a.extend(["--checkpoint-every", "1"].map(String::from));
    let holder = long(a);
    wait_for_lock(&run, &holder);
    let out = command(&strs(&resume(&run)))
        .args(["--steps", "100000"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: run {} is in use: another lemur process (PID {}) is training it",
            s(&run),
            holder.id()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The holder was not disturbed: it keeps checkpointing, and stops cleanly on SIGTERM
    // (handled as Ctrl-C is: the step in progress is checkpointed).
    wait_for("the holder's progress", || {
        pointer_step(&run).is_some_and(|s| s >= 4)
    });
    signal(&holder, "TERM");
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let steps = assert_checkpoints_load(&run);
    assert!(pointer_step(&run).is_some_and(|s| s >= 4 && steps.contains(&s)));
}

#[test]
fn full_disk_during_a_checkpoint_keeps_the_previous_one() {
    let dir = scratch("full-disk-train");
    let run = dir.join("run");
    let mut a = new_run(&run);
    a.extend(["--stop-after", "4"].map(String::from));
    ok(&strs(&a));
    assert_eq!(pointer_step(&run), Some(4));
    // 64 KiB: less than model.safetensors (about 92 KiB), more than the log.
    let out = with_file_limit(64, &strs(&resume(&run)));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: could not write the checkpoint of step 6: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("model.safetensors: File too large"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the previous checkpoint {} (step 4) is intact",
            s(&run.join("step-00000004"))
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing half-written is left: no temporary directory, the pointer unchanged.
    let hidden: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    assert_eq!(pointer_step(&run), Some(4));
    assert_eq!(assert_checkpoints_load(&run), [2, 4]);
    // With space again, the run resumes from step 4 and ends as if never stopped.
    ok(&strs(&resume(&run)));
    assert_equals_reference(&run);
}

#[test]
fn full_disk_during_generate_leaves_no_dataset() {
    let dir = scratch("full-disk-generate");
    let args = |out: &Path, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "generate",
            "euler",
            "--trajectories",
            "3",
            "--frames",
            "9",
            "--size",
            "16x16",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|e| e.to_string()));
        a
    };
    // Each trajectory file is about 93 KiB; 32 KiB fails the first.
    let fresh = dir.join("fresh");
    let out = with_file_limit(32, &strs(&args(&fresh, &[])));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(".hdf5: File too large"), "{stderr}");
    assert!(stderr.contains("was removed"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} was not created", s(&fresh))),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!fresh.exists());
    assert_no_staging(&fresh);
    // Replacing a complete dataset under the same limit leaves the old one as it was.
    let old = dir.join("old");
    ok(&strs(&args(&old, &[])));
    let before = listing(&old);
    let out = with_file_limit(32, &strs(&args(&old, &["--overwrite", "--seed", "4"])));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(".hdf5: File too large"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} was left as it was", s(&old))),
        "{stderr}"
    );
    assert_eq!(listing(&old), before);
    assert_no_staging(&old);
}

#[test]
fn ctrl_c_in_emulator_training_saves_a_checkpoint_too() {
    let dir = scratch("sigint-diffusion");
    let latents = dir.join("latents");
    ok(&[
        "encode",
        "--autoencoder",
        s(&reference().run),
        "--data",
        s(&dataset()),
        "--out",
        s(&latents),
        "--backend",
        "cpu",
    ]);
    let run = dir.join("run");
    let config = preset("denoiser-tiny");
    let child = command(&[
        "train",
        "diffusion",
        "--latents",
        s(&latents),
        "--config",
        s(&config),
        "--out",
        s(&run),
        "--window",
        "3",
        "--stride",
        "2",
        "--batch",
        "2",
        "--steps",
        "100000",
        "--checkpoint-every",
        "1",
        "--val-batches",
        "0",
        "--backend",
        "cpu",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for("the first checkpoint", || pointer_step(&run).is_some());
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let step = pointer_step(&run).unwrap();
    assert!(
        stderr.contains(&format!(
            "lemur: interrupted: saved a checkpoint at step {step} in {}\nresume with: lemur train diffusion --resume {} --backend cpu\n",
            s(&run.join(format!("step-{step:08}"))),
            s(&run)
        )),
        "{stderr}"
    );
    assert_checkpoints_load(&run);
    // The stored options carry on (here until 2 more steps).
    let more = (step + 2).to_string();
    ok(&[
        "train",
        "diffusion",
        "--resume",
        s(&run),
        "--steps",
        &more,
        "--backend",
        "cpu",
    ]);
    assert_eq!(pointer_step(&run), Some(step + 2));
}
