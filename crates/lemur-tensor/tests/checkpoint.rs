//! Parameters round-trip through safetensors; bad files give errors naming the file and key.

use std::collections::BTreeMap;

use lemur_tensor::params::{read_safetensors, write_safetensors};
use lemur_tensor::{CpuBackend, Error, ParamStore};

fn store() -> ParamStore<CpuBackend> {
    let mut ps = ParamStore::new();
    ps.add(
        &CpuBackend,
        "a.weight",
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &[2, 3],
    )
    .unwrap();
    ps.add(&CpuBackend, "a.bias", &[0.5, -0.5], &[2]).unwrap();
    ps
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lemur-ckpt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn roundtrip() {
    let dir = tmpdir("rt");
    let path = dir.join("w.safetensors");
    let ps = store();
    ps.save(&path, None).unwrap();
    let other = store();
    other
        .get("a.weight")
        .unwrap()
        .set_storage(std::sync::Arc::new(vec![0.0; 6]))
        .unwrap();
    other.load(&path).unwrap();
    assert_eq!(
        other.get("a.weight").unwrap().to_vec().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(
        other.get("a.bias").unwrap().to_vec().unwrap(),
        vec![0.5, -0.5]
    );
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn missing_unexpected_and_misshapen_keys_are_named() {
    let dir = tmpdir("keys");
    let path = dir.join("w.safetensors");
    let mut t = BTreeMap::new();
    t.insert("a.weight".to_string(), (vec![2, 3], vec![0.0; 6]));
    write_safetensors(&path, &t, None).unwrap();
    let e = store().load(&path).unwrap_err().to_string();
    assert!(
        e.contains("a.bias") && e.contains("missing") && e.contains("w.safetensors"),
        "{e}"
    );

    t.insert("a.bias".to_string(), (vec![2], vec![0.0; 2]));
    t.insert("b.extra".to_string(), (vec![1], vec![0.0]));
    write_safetensors(&path, &t, None).unwrap();
    let e = store().load(&path).unwrap_err().to_string();
    assert!(e.contains("b.extra") && e.contains("unexpected"), "{e}");

    t.remove("b.extra");
    t.insert("a.weight".to_string(), (vec![3, 2], vec![0.0; 6]));
    write_safetensors(&path, &t, None).unwrap();
    let e = store().load(&path).unwrap_err().to_string();
    assert!(
        e.contains("a.weight") && e.contains("[3, 2]") && e.contains("[2, 3]"),
        "{e}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let dir = tmpdir("corrupt");
    let path = dir.join("w.safetensors");
    store().save(&path, None).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 4, 8, 20, bytes.len() - 1] {
        let e = read_safetensors(&bytes[..cut], &path).unwrap_err();
        assert!(matches!(e, Error::Safetensors { .. }), "cut {cut}: {e}");
        assert!(e.to_string().contains("w.safetensors"));
    }
    let mut garbage = bytes.clone();
    garbage[8..16].copy_from_slice(b"!!!!!!!!");
    assert!(read_safetensors(&garbage, &path).is_err());
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = store().load(&path).unwrap_err().to_string();
    assert!(e.contains("w.safetensors"), "{e}");
}
