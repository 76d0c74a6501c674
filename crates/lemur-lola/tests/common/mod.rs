//! Shared test harness: the backends under test, the fixture runs and comparisons against the
//! output's scale (as `lemur-models`' parity tests). Each test file uses only part of it.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

use lemur_tensor::Backend;
pub use lemur_tensor::testing::{assert_rel, gpu, scale};

/// The reference runs: `$LEMUR_LOLA_RUNS_DIR` when set, else `$LEMUR_FIXTURES_DIR/lola-runs`,
/// else the shared folder beside the workspace.
pub fn runs_dir() -> PathBuf {
    match (
        std::env::var_os("LEMUR_LOLA_RUNS_DIR"),
        std::env::var_os("LEMUR_FIXTURES_DIR"),
    ) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(root)) => PathBuf::from(root).join("lola-runs"),
        (None, None) => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/lola-runs"
        )),
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lola")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of a fixture run (files only) that a test may modify.
pub fn copy_run(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    // Fixture files are read-only; the copies must be writable.
    for e in std::fs::read_dir(dst).unwrap() {
        let p = e.unwrap().path();
        if !p.is_file() {
            continue;
        }
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&p, perm).unwrap();
    }
}

pub fn host<B: Backend>(t: &lemur_tensor::Tensor<B>) -> Vec<f32> {
    t.to_vec().expect("readback")
}

/// The entries of a zip archive, in order, as `(name, bytes)`.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            (f.name().unwrap().to_string(), v)
        })
        .collect()
}

/// A zip archive of stored entries (as torch.save writes them), with correct checksums.
pub fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// `entries` with the pickle (`*/data.pkl`) replaced.
pub fn with_pickle(entries: &[(String, Vec<u8>)], pickle: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    entries
        .iter()
        .map(|(n, d)| {
            if n.ends_with("data.pkl") {
                (n.clone(), pickle.clone())
            } else {
                (n.clone(), d.clone())
            }
        })
        .collect()
}

/// The pickle of an archive's entries.
pub fn pickle_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    entries
        .iter()
        .find(|(n, _)| n.ends_with("data.pkl"))
        .unwrap()
        .1
        .clone()
}
