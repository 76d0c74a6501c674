//! Shared test harness: the backends under test, seeded inputs and comparisons that print the
//! failing index with both values.
#![allow(dead_code)]

use lemur_tensor::{Backend, CpuBackend, GpuBackend, rng};

/// The GPU backend for tests. Set `LEMUR_TEST_CPU_ONLY=1` to skip GPU tests explicitly;
/// otherwise a missing adapter fails the test with the message that says how to get one.
pub fn gpu() -> Option<GpuBackend> {
    if std::env::var("LEMUR_TEST_CPU_ONLY").is_ok_and(|v| v == "1") {
        eprintln!("LEMUR_TEST_CPU_ONLY=1: skipping the GPU backend");
        return None;
    }
    Some(GpuBackend::new_blocking().unwrap_or_else(|e| panic!("{e}")))
}

/// One test body, run on the CPU backend and on the GPU backend:
/// `test_device!(name, body)` defines `name_cpu` and `name_gpu` calling `body(&backend)`.
#[macro_export]
macro_rules! test_device {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(&lemur_tensor::CpuBackend);
            }
            #[test]
            fn gpu() {
                if let Some(g) = $crate::common::gpu() {
                    super::$body(&g);
                }
            }
        }
    };
}

/// `n` standard-normal values from stream `seed`.
pub fn randn(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64).map(|i| rng::normal(seed, i)).collect()
}

/// `n` values uniform on (lo, hi].
pub fn randu(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| lo + (hi - lo) * rng::uniform(seed, i))
        .collect()
}

pub fn upload<B: Backend>(b: &B, x: &[f32]) -> B::Storage {
    b.upload(x).expect("upload")
}

pub fn read<B: Backend>(b: &B, s: &B::Storage) -> Vec<f32> {
    pollster::block_on(b.read(s)).expect("read")
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere; on failure names the first bad
/// index with both values and the worst error.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} != expected {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0f32);
    let mut first_bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = err <= atol + rtol * w.abs() && g.is_finite() == w.is_finite();
        if !ok && first_bad.is_none() {
            first_bad = Some(i);
        }
        if err > worst.1 || err.is_nan() {
            worst = (i, err);
        }
    }
    if let Some(i) = first_bad {
        panic!(
            "{what}: mismatch at index {i}: got {} expected {} (atol {atol}, rtol {rtol}); worst |err| {} at index {}",
            got[i], want[i], worst.1, worst.0
        );
    }
}

/// The CPU backend's result for the same op, the oracle for GPU kernels.
pub fn cpu() -> CpuBackend {
    CpuBackend
}
