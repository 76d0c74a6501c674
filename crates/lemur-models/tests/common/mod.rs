//! Shared test harness for the model tests (DCAE, ViT, ...): the backends under test, the
//! reference fixtures and comparisons that report the worst error against the output's scale.
//! Each test file uses only part of it.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use lemur_tensor::testing::{assert_rel, gpu, max_abs_diff, scale};
use lemur_tensor::{Backend, Tensor};

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
