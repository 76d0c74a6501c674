//! A table of bad inputs to the `lemur` binary. Each one must exit with status 1 within a few
//! seconds (sizes are checked before any work), print no panic and no backtrace even with
//! `RUST_BACKTRACE=1`, and name the offending argument or file on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LEMUR: &str = env!("CARGO_BIN_EXE_lemur");

/// The most one bad input may take. Every check happens before any work; the few cases that
/// open a run build a tiny model first, well within this.
const LIMIT: Duration = Duration::from_secs(10);

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bad-input")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs `lemur args` with `env` and the fixture's environment; returns (exit code, stderr,
/// seconds). A run past [`LIMIT`] is killed.
fn run(args: &[String], env: &[(&str, &str)], home: &Path) -> (Option<i32>, String, f64) {
    let mut cmd = Command::new(LEMUR);
    cmd.args(args)
        .current_dir(home)
        .env("RUST_BACKTRACE", "1")
        .env("LEMUR_BACKEND", "cpu")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let begun = Instant::now();
    let mut child = cmd.spawn().expect("run lemur");
    // Drain stderr on a thread so a chatty command cannot block on a full pipe.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if begun.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let secs = begun.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap();
    match status {
        Some(st) => (st.code(), stderr, secs),
        None => (None, format!("(killed after {LIMIT:?})\n{stderr}"), secs),
    }
}

/// A safetensors file of `frames` [k, c, 16, 16] (physical values) and 3 `labels`.
fn write_init(path: &Path, k: usize, c: usize) {
    let data: Vec<u8> = (0..k * c * 256)
        .flat_map(|i| (1.0f32 + 0.01 * (i % 17) as f32).to_le_bytes())
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
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.into_bytes());
    bytes.extend(data);
    bytes.extend(labels);
    std::fs::write(path, bytes).unwrap();
}

fn wrong_after(failures: &mut Vec<String>, name: &str, what: &str) {
    failures.push(format!("{name}: {what}"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// One bad input: the arguments, extra environment, and what stderr must contain (every
/// string: the flag, variable or file at fault).
struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    names: Vec<String>,
}

fn case(name: &'static str, args: &[&str], names: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        names: names.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn bad_inputs_fail_fast_and_clearly() {
    let home = scratch("home");
    // Fixtures: a tiny dataset and an autoencoder run trained on it for two steps.
    let data = home.join("euler");
    let generate = |out: &Path| {
        let st = Command::new(LEMUR)
            .args(["generate", "euler", "--trajectories", "3", "--frames", "6"])
            .args(["--size", "16x16", "--seed", "1", "--out", &s(out)])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    };
    generate(&data);
    let ae = home.join("ae");
    let st = Command::new(LEMUR)
        .args([
            "train",
            "autoencoder",
            "--data",
            &s(&data),
            "--config",
            "tiny",
        ])
        .args(["--out", &s(&ae), "--steps", "2", "--batch", "2"])
        .args([
            "--checkpoint-every",
            "2",
            "--log-every",
            "1",
            "--val-batches",
            "1",
        ])
        .args(["--backend", "cpu"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let latents = home.join("latents");
    let st = Command::new(LEMUR)
        .args(["encode", "--autoencoder", &s(&ae), "--data", &s(&data)])
        .args(["--out", &s(&latents), "--backend", "cpu"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    // Broken copies of the fixtures.
    let corrupt_weights = home.join("corrupt-weights");
    copy_dir(&ae, &corrupt_weights);
    let weights = corrupt_weights.join("step-00000002/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&weights, bytes).unwrap();
    let corrupt_meta = home.join("corrupt-meta");
    copy_dir(&ae, &corrupt_meta);
    std::fs::write(corrupt_meta.join("checkpoint.json"), b"{\"format\": 3,").unwrap();
    let no_stats = home.join("no-stats");
    copy_dir(&data, &no_stats);
    std::fs::remove_file(no_stats.join("stats.json")).unwrap();
    let bad_stats = home.join("bad-stats");
    copy_dir(&data, &bad_stats);
    std::fs::write(
        bad_stats.join("stats.json"),
        br#"{"dataset_name":"x","channels":["a"],"transforms":["identity"],"mean":[0.0],"std":[-1.0],"frames":1}"#,
    )
    .unwrap();
    let first_hdf5 = std::fs::read_dir(data.join("data/test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .unwrap();
    let truncated_dir = home.join("truncated");
    copy_dir(&data, &truncated_dir);
    let truncated = truncated_dir
        .join("data/test")
        .join(first_hdf5.file_name().unwrap());
    let mut bytes = std::fs::read(&truncated).unwrap();
    bytes.truncate(bytes.len() * 2 / 3);
    std::fs::write(&truncated, bytes).unwrap();
    let empty = home.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let not_a_run = home.join("not-a-run");
    std::fs::create_dir_all(&not_a_run).unwrap();
    std::fs::write(not_a_run.join("notes.txt"), b"hello").unwrap();
    let file = home.join("a-file.txt");
    std::fs::write(&file, b"in the way").unwrap();
    let nonempty = home.join("nonempty");
    std::fs::create_dir_all(&nonempty).unwrap();
    std::fs::write(nonempty.join("keep.txt"), b"mine").unwrap();
    let init0 = home.join("init0.safetensors");
    write_init(&init0, 0, 5);
    let init1 = home.join("init1.safetensors");
    write_init(&init1, 1, 5);
    let garbage_init = home.join("garbage.safetensors");
    std::fs::write(
        &garbage_init,
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot safetensors",
    )
    .unwrap();
    let missing = home.join("does-not-exist");
    let bad_json = home.join("bad.json");
    std::fs::write(&bad_json, b"{\"pix_channels\": 5,").unwrap();
    let huge_config = home.join("huge.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(include_str!("../assets/presets/autoencoder-tiny.json")).unwrap();
    cfg["hid_channels"] = serde_json::json!([1u64 << 40, 16]);
    std::fs::write(&huge_config, cfg.to_string()).unwrap();
    // Valid sizes (under the configuration's bounds), but 3.2e10 parameters: more than any
    // machine's memory trains, refused before anything is allocated for it.
    let large_config = home.join("large.json");
    cfg["hid_channels"] = serde_json::json!([60000, 60000]);
    std::fs::write(&large_config, cfg.to_string()).unwrap();

    let (d, r, out) = (s(&data), s(&ae), s(&home.join("out")));
    let mut cases = vec![
        // Sizes a user types, checked before any work.
        case(
            "rollout --horizon 100000",
            &[
                "rollout",
                "--run",
                &r,
                "--simulate",
                "--horizon",
                "100000",
                "--out",
                &out,
            ],
            &["--horizon"],
        ),
        case(
            "rollout --horizon past the truth",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &d,
                "--horizon",
                "40",
                "--out",
                &out,
            ],
            &["--horizon"],
        ),
        case(
            "rollout --ensemble 0",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &d,
                "--ensemble",
                "0",
                "--out",
                &out,
            ],
            &["--ensemble"],
        ),
        case(
            "rollout --ensemble 100000",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &d,
                "--ensemble",
                "100000",
                "--out",
                &out,
            ],
            &["--ensemble"],
        ),
        case(
            "rollout --steps huge",
            &[
                "rollout",
                "--run",
                "pretrained",
                "--simulate",
                "--steps",
                "1000000000",
                "--out",
                &out,
            ],
            &["--steps"],
        ),
        case(
            "rollout --pixel-scale huge",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &d,
                "--pixel-scale",
                "100000",
                "--out",
                &out,
            ],
            &["--pixel-scale"],
        ),
        case(
            "rollout --init with no frames",
            &[
                "rollout",
                "--run",
                &r,
                "--init",
                &s(&init0),
                "--context",
                "1",
                "--horizon",
                "2",
                "--out",
                &out,
            ],
            &["init0.safetensors"],
        ),
        case(
            "rollout --context 0 with --init of one frame",
            &[
                "rollout",
                "--run",
                "pretrained",
                "--init",
                &s(&init1),
                "--context",
                "0",
                "--horizon",
                "2",
                "--out",
                &out,
            ],
            &["--context"],
        ),
        case(
            "generate --trajectories huge",
            &[
                "generate",
                "euler",
                "--trajectories",
                "1000000000",
                "--out",
                &out,
            ],
            &["--trajectories"],
        ),
        case(
            "generate --frames huge",
            &["generate", "euler", "--frames", "1000000000", "--out", &out],
            &["--frames"],
        ),
        case(
            "generate --size huge",
            &[
                "generate",
                "euler",
                "--size",
                "100000x100000",
                "--out",
                &out,
            ],
            &["--size"],
        ),
        case(
            "generate --size zero",
            &["generate", "euler", "--size", "0x16", "--out", &out],
            &["--size"],
        ),
        case(
            "generate --size not a size",
            &["generate", "euler", "--size", "big", "--out", &out],
            &["--size"],
        ),
        case(
            "generate --frames 0",
            &["generate", "euler", "--frames", "0", "--out", &out],
            &["--frames"],
        ),
        case(
            "train --batch huge",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                "tiny",
                "--batch",
                "1000000000",
                "--out",
                &out,
            ],
            &["--batch"],
        ),
        case(
            "train surrogate --batch huge",
            &[
                "train",
                "surrogate",
                "--latents",
                &s(&latents),
                "--config",
                "tiny",
                "--batch",
                "1000000000",
                "--out",
                &out,
            ],
            &["--batch"],
        ),
        case(
            "train --steps 0",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                "tiny",
                "--steps",
                "0",
                "--out",
                &out,
            ],
            &["--steps"],
        ),
        case(
            "train --lr negative",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                "tiny",
                "--lr=-1",
                "--out",
                &out,
            ],
            &["--lr"],
        ),
        case(
            "train --lr NaN",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                "tiny",
                "--lr",
                "NaN",
                "--out",
                &out,
            ],
            &["--lr"],
        ),
        case(
            "train --dropout 2",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                "tiny",
                "--dropout",
                "2",
                "--out",
                &out,
            ],
            &["dropout"],
        ),
        case(
            "eval --horizon huge",
            &[
                "eval",
                "--run",
                &r,
                "--data",
                &d,
                "--horizon",
                "100000",
                "--out",
                &out,
            ],
            &["--horizon"],
        ),
        case(
            "eval --trajectories huge",
            &[
                "eval",
                "--run",
                &r,
                "--data",
                &d,
                "--trajectories",
                "100000",
                "--out",
                &out,
            ],
            &["--trajectories"],
        ),
        case(
            "eval without the run's data",
            &["eval", "--run", "pretrained-rb", "--out", &out],
            &["lemur generate rayleigh-benard --out DIR", "--data"],
        ),
        // Outputs.
        case(
            "rollout --out an existing file",
            &["rollout", "--run", &r, "--data", &d, "--out", &s(&file)],
            &["--out", "a-file.txt"],
        ),
        case(
            "generate into a non-empty directory",
            &["generate", "euler", "--out", &s(&nonempty)],
            &["nonempty"],
        ),
        case(
            "encode --out an existing file",
            &[
                "encode",
                "--autoencoder",
                &r,
                "--data",
                &d,
                "--out",
                &s(&file),
            ],
            &["a-file.txt"],
        ),
        // Data.
        case(
            "rollout --data an empty directory",
            &["rollout", "--run", &r, "--data", &s(&empty), "--out", &out],
            &["empty"],
        ),
        case(
            "rollout --data a missing path",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &s(&missing),
                "--out",
                &out,
            ],
            &["does-not-exist"],
        ),
        case(
            "rollout --data with a truncated file",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &s(&truncated_dir),
                "--out",
                &out,
            ],
            &[&s(&truncated)],
        ),
        case(
            "data info of a truncated file",
            &["data", "info", &s(&truncated)],
            &[&s(&truncated)],
        ),
        case(
            "train --data without stats.json",
            &[
                "train",
                "autoencoder",
                "--data",
                &s(&no_stats),
                "--config",
                "tiny",
                "--out",
                &out,
            ],
            &["stats.json"],
        ),
        case(
            "train --data with a corrupt stats.json",
            &[
                "train",
                "autoencoder",
                "--data",
                &s(&bad_stats),
                "--config",
                "tiny",
                "--out",
                &out,
            ],
            &["stats.json", "std"],
        ),
        // Configurations and runs.
        case(
            "train autoencoder with a denoiser configuration",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                "denoiser-tiny",
                "--out",
                &out,
            ],
            &["--config", "denoiser"],
        ),
        case(
            "train --config a missing file",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                &s(&missing),
                "--out",
                &out,
            ],
            &["--config", "does-not-exist"],
        ),
        case(
            "train --config broken JSON",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                &s(&bad_json),
                "--out",
                &out,
            ],
            &["bad.json"],
        ),
        case(
            "train --config with huge channels",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                &s(&huge_config),
                "--out",
                &out,
            ],
            &["huge.json", "channels"],
        ),
        case(
            "train --config a model larger than memory",
            &[
                "train",
                "autoencoder",
                "--data",
                &d,
                "--config",
                &s(&large_config),
                "--out",
                &out,
            ],
            &["large.json", "free memory can train"],
        ),
        case(
            "train --resume of a directory that is not a run",
            &["train", "autoencoder", "--resume", &s(&not_a_run)],
            &["not-a-run"],
        ),
        case(
            "rollout --run with a corrupt model.safetensors",
            &[
                "rollout",
                "--run",
                &s(&corrupt_weights),
                "--data",
                &d,
                "--out",
                &out,
            ],
            &["model.safetensors"],
        ),
        case(
            "rollout --run with a corrupt checkpoint.json",
            &[
                "rollout",
                "--run",
                &s(&corrupt_meta),
                "--data",
                &d,
                "--out",
                &out,
            ],
            &["checkpoint.json"],
        ),
        case(
            "rollout --run a missing path",
            &["rollout", "--run", &s(&missing), "--out", &out],
            &["does-not-exist"],
        ),
        case(
            "rollout --init not safetensors",
            &[
                "rollout",
                "--run",
                &r,
                "--init",
                &s(&garbage_init),
                "--horizon",
                "2",
                "--out",
                &out,
            ],
            &["garbage.safetensors"],
        ),
        case(
            "rollout --init a missing file",
            &[
                "rollout",
                "--run",
                &r,
                "--init",
                &s(&missing),
                "--horizon",
                "2",
                "--out",
                &out,
            ],
            &["does-not-exist"],
        ),
        case(
            "rollout --sampler unknown",
            &[
                "rollout",
                "--run",
                "pretrained",
                "--simulate",
                "--sampler",
                "magic",
                "--out",
                &out,
            ],
            &["--sampler", "magic"],
        ),
        // Backends.
        case(
            "rollout --backend unknown",
            &[
                "rollout",
                "--run",
                &r,
                "--data",
                &d,
                "--backend",
                "quantum",
                "--out",
                &out,
            ],
            &["--backend", "quantum"],
        ),
    ];
    let mut env_case = |name, args: &[&str], env, names: &[&str]| {
        let mut c = case(name, args, names);
        c.env = vec![env];
        cases.push(c);
    };
    env_case(
        "LEMUR_BACKEND unknown",
        &["rollout", "--run", &r, "--data", &d, "--out", &out],
        ("LEMUR_BACKEND", "quantum"),
        &["LEMUR_BACKEND", "quantum"],
    );
    env_case(
        "LEMUR_GPU_BACKEND unknown",
        &[
            "rollout",
            "--run",
            &r,
            "--data",
            &d,
            "--backend",
            "gpu",
            "--out",
            &out,
        ],
        ("LEMUR_GPU_BACKEND", "gl"),
        &["LEMUR_GPU_BACKEND", "gl"],
    );

    let mut failures = Vec::new();
    let mut slowest = (0.0, "");
    for c in &cases {
        let (code, stderr, secs) = run(&c.args, &c.env, &home);
        if secs > slowest.0 {
            slowest = (secs, c.name);
        }
        let mut wrong = Vec::new();
        // 1 for an error, 2 for a usage error found by the argument parser; never 101 (a
        // panic) or a signal (no code).
        if !matches!(code, Some(1 | 2)) {
            wrong.push(format!("exit code {code:?}, expected 1 (or 2 from clap)"));
        }
        if stderr.contains("panicked") {
            wrong.push("a panic".into());
        }
        if stderr.to_lowercase().contains("stack backtrace") {
            wrong.push("a backtrace".into());
        }
        for n in &c.names {
            if !stderr.contains(n.as_str()) {
                wrong.push(format!("stderr does not name {n:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} ({:.1} s): {}\n  lemur {}\n  stderr: {}",
                c.name,
                secs,
                wrong.join("; "),
                c.args.join(" "),
                stderr.trim().replace('\n', "\n          ")
            ));
        }
        // A refused command leaves no output at all: `train` removes the run directory it
        // created when it fails before its first checkpoint.
        let out_dir = home.join("out");
        if out_dir.exists() {
            let listing: Vec<String> = std::fs::read_dir(&out_dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            wrong_after(
                &mut failures,
                c.name,
                &format!("left --out behind with {listing:?}"),
            );
            let _ = std::fs::remove_dir_all(&out_dir);
        }
    }
    eprintln!(
        "{} bad inputs, {} wrong; slowest {:.1} s ({})",
        cases.len(),
        failures.len(),
        slowest.0,
        slowest.1
    );
    assert!(cases.len() >= 30);
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Untouched by the refusals: the file in the way and the non-empty directory.
    assert_eq!(std::fs::read(&file).unwrap(), b"in the way");
    assert_eq!(std::fs::read(nonempty.join("keep.txt")).unwrap(), b"mine");
}
