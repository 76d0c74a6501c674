//! What every command prints besides its own output: no graphics-stack noise without a login
//! session, and nothing about the machine that trained the embedded runs.

use std::process::Command;

const LEMUR: &str = env!("CARGO_BIN_EXE_lemur");

#[test]
fn rollout_of_the_pretrained_run_prints_no_noise_without_a_session() {
    // Recorded as a skipped GPU part (stderr and scripts/test.sh's count).
    let cpu_only = lemur_tensor::testing::skip_gpu("the GPU backend (the CPU one runs instead)");
    // Mesa's device-select layer prints its XDG_RUNTIME_DIR error only on a Vulkan instance.
    let backend = if cpu_only { "cpu" } else { "gpu" };
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("quiet-rollout");
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(LEMUR)
        .args([
            "rollout",
            "--backend",
            backend,
            "--horizon",
            "1",
            "--ensemble",
            "1",
        ])
        .args(["--steps", "1", "--out"])
        .arg(&out_dir)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("LEMUR_BACKEND")
        .output()
        .expect("run lemur");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("lemur: backend {backend}")),
        "the backend line is missing:\n{stderr}"
    );
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    // The embedded runs' data directory is the training machine's; it must not be named.
    assert!(!stderr.contains("is not here"), "{stderr}");
    assert!(stderr.contains("simulating Euler trajectory 0"), "{stderr}");
    assert!(out_dir.join("truth.hdf5").is_file());
}
