//! Support for the workspace's tests (not part of the runtime's API): a visible record of GPU
//! tests skipped with `LEMUR_TEST_CPU_ONLY=1`, the GPU backend under test, `test_device!` (one
//! test body on both backends) and comparisons against the output's scale.
//!
//! libtest captures a passing test's output, so a GPU test that returns early under
//! `LEMUR_TEST_CPU_ONLY=1` used to read "ok" like one that ran. [`skip_gpu`] says so on stderr
//! (shown with `--nocapture`) and appends one line per skip to the file named by
//! `LEMUR_TEST_SKIP_LOG`, which `scripts/test.sh` sets, counts and reports.

use std::io::Write;

/// True when `LEMUR_TEST_CPU_ONLY=1` asks to skip the GPU backend; each such call records the
/// skip of `what` (e.g. "the GPU backend") in the current test, named by its thread.
pub fn skip_gpu(what: &str) -> bool {
    if !std::env::var("LEMUR_TEST_CPU_ONLY").is_ok_and(|v| v == "1") {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("(unnamed test)");
    // The test binary, without cargo's hash suffix (`vit_parity-0123abcd` -> `vit_parity`).
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, _)) => name.to_string(),
            None => s,
        })
        .unwrap_or_default();
    let line = format!("skipped: {binary} {test}: {what} (LEMUR_TEST_CPU_ONLY=1)\n");
    eprint!("{line}");
    if let Some(path) = std::env::var_os("LEMUR_TEST_SKIP_LOG") {
        // One short write to a file opened for appending: lines from concurrent tests and
        // test binaries do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("LEMUR_TEST_SKIP_LOG={}: {e}", path.to_string_lossy());
        }
    }
    true
}

/// The GPU backend for tests: `None` when `LEMUR_TEST_CPU_ONLY=1` skips it (recorded by
/// [`skip_gpu`]); otherwise a missing adapter fails the test with the error that says how to
/// get one (Mesa's lavapipe).
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> Option<crate::GpuBackend> {
    if skip_gpu("the GPU backend") {
        return None;
    }
    Some(crate::GpuBackend::new_blocking().unwrap_or_else(|e| panic!("{e}")))
}

/// One generic test body run on both backends: `test_device!(name, body)` defines
/// `name::cpu` and `name::gpu`, each calling `body(&backend)` where `body<B: Backend>(b: &B)`.
#[cfg(not(target_arch = "wasm32"))]
#[macro_export]
macro_rules! test_device {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(&$crate::CpuBackend);
            }
            #[test]
            fn gpu() {
                if let Some(g) = $crate::testing::gpu() {
                    super::$body(&g);
                }
            }
        }
    };
}

/// The largest absolute value (the output's scale), at least `f32::MIN_POSITIVE`.
pub fn scale(x: &[f32]) -> f32 {
    x.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()))
}

/// The largest absolute difference (NaN if any value is not finite where the other is).
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "length {} != expected {}",
        got.len(),
        want.len()
    );
    got.iter().zip(want).fold(0.0f32, |m, (g, w)| {
        if g.is_finite() != w.is_finite() {
            f32::NAN
        } else {
            m.max((g - w).abs())
        }
    })
}

/// Asserts `max |got - want| <= tol * max |want|` and returns that relative error; the failure
/// names the quantity, the first bad index and both values there.
#[track_caller]
pub fn assert_rel(what: &str, got: &[f32], want: &[f32], tol: f32) -> f32 {
    let (d, s) = (max_abs_diff(got, want), scale(want));
    let rel = d / s;
    if rel.is_nan() || rel > tol {
        let i = got
            .iter()
            .zip(want)
            .position(|(g, w)| (g - w).is_nan() || (g - w).abs() > tol * s)
            .unwrap_or(0);
        panic!(
            "{what}: max |diff| {d:e} = {rel:e} x scale {s:e} > {tol:e}; first bad index {i}: got {} expected {}",
            got[i], want[i]
        );
    }
    rel
}
