//! Shared test harness for the model tests (DCAE, ViT, ...): the backends under test, the
//! reference fixtures and comparisons that report the worst error against the output's scale.
//! Each test file uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lemur_tensor::{Backend, GpuBackend, Tensor};

/// The GPU backend for tests. Set `LEMUR_TEST_CPU_ONLY=1` to skip GPU tests explicitly;
/// otherwise a missing adapter fails the test with the message that says how to get one
/// (install Mesa's lavapipe).
pub fn gpu() -> Option<GpuBackend> {
    if lemur_tensor::testing::skip_gpu("the GPU backend") {
        return None;
    }
    Some(GpuBackend::new_blocking().unwrap_or_else(|e| panic!("{e}")))
}

/// One generic test body run on both backends: `test_device!(name, body)` defines
/// `name::cpu` and `name::gpu`, each calling `body(&backend)` where `body<B: Backend>(b: &B)`.
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

/// The reference fixtures: `$LEMUR_REFERENCE_DIR` when set, so that the same tests can check
/// further reference files, else `$LEMUR_FIXTURES_DIR/reference` (every fixture set in one
/// folder, as for test binaries run away from the source tree), else the shared folder beside
/// the workspace.
pub fn reference_dir() -> PathBuf {
    match (
        std::env::var_os("LEMUR_REFERENCE_DIR"),
        std::env::var_os("LEMUR_FIXTURES_DIR"),
    ) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(root)) => PathBuf::from(root).join("reference"),
        (None, None) => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/reference"
        )),
    }
}

/// A fixture file: its f32 tensors by name and its `__metadata__` strings.
pub struct Fixture {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl Fixture {
    /// Reads `<reference_dir>/<name>`; panics with the path on any problem.
    pub fn load(name: &str) -> Self {
        let path = reference_dir().join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (set LEMUR_REFERENCE_DIR or LEMUR_FIXTURES_DIR)",
                path.display()
            )
        });
        let tensors =
            lemur_tensor::params::read_safetensors(&bytes, &path).unwrap_or_else(|e| panic!("{e}"));
        let metadata = safetensors_metadata(&bytes, &path);
        Self {
            path,
            tensors,
            metadata,
        }
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{}: no tensor `{name}`", self.path.display()))
    }

    /// The tensors under `prefix` (e.g. `param.`), with the prefix removed.
    pub fn with_prefix(&self, prefix: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    }

    /// A tensor uploaded to `b` as a constant.
    pub fn tensor<B: Backend>(&self, b: &B, name: &str) -> Tensor<B> {
        let (shape, data) = self.get(name);
        Tensor::from_slice(b, data, shape).expect("upload")
    }

    /// The model configuration stored in the metadata under `config` (a JSON string).
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> T {
        let s = self
            .metadata
            .get("config")
            .unwrap_or_else(|| panic!("{}: no `config` in the metadata", self.path.display()));
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{}: config: {e}", self.path.display()))
    }
}

/// The `__metadata__` map of a safetensors file: an 8-byte little-endian header length, then
/// the JSON header (`lemur_tensor::params::read_safetensors` returns only the tensors).
pub fn safetensors_metadata(bytes: &[u8], path: &Path) -> BTreeMap<String, String> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("header length")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])
        .unwrap_or_else(|e| panic!("{}: header: {e}", path.display()));
    match header.get("__metadata__") {
        Some(m) => serde_json::from_value(m.clone())
            .unwrap_or_else(|e| panic!("{}: metadata: {e}", path.display())),
        None => BTreeMap::new(),
    }
}

/// Host copy of a tensor.
pub fn host<B: Backend>(t: &Tensor<B>) -> Vec<f32> {
    t.to_vec().expect("readback")
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
