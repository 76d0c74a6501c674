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

/// Safetensors bytes holding `(name, dtype, shape, little-endian data)` tensors.
fn serialize(tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn halves(bits: &[u16]) -> Vec<u8> {
    bits.iter().flat_map(|b| b.to_le_bytes()).collect()
}

/// Exact bitwise comparison (NaN equals NaN, -0 differs from 0).
#[track_caller]
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    let g: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
    let w: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
    assert_eq!(g, w, "{what}: got {got:?}, want {want:?}");
}

#[test]
fn f16_and_bf16_tensors_load_as_exact_f32() {
    use safetensors::Dtype;
    let path = std::path::Path::new("half.safetensors");
    // f16: 1, -2.5, the largest finite, the smallest normal 2^-14, the smallest subnormal
    // 2^-24, the largest subnormal (1023 * 2^-24), -0, inf, -inf.
    let f16_bits = [
        0x3c00, 0xc100, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00,
    ];
    let f16_want = [
        1.0,
        -2.5,
        65504.0,
        2f32.powi(-14),
        2f32.powi(-24),
        1023.0 * 2f32.powi(-24),
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    // bf16 is f32's top half: 1, -3.140625, the largest finite, the smallest subnormal 2^-133,
    // inf, -inf.
    let bf16_bits = [0x3f80, 0xc049, 0x7f7f, 0x0001, 0x7f80, 0xff80];
    let bf16_want = [
        1.0,
        -3.140625,
        f32::from_bits(0x7f7f_0000),
        f32::from_bits(0x0000_0001 << 16),
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    assert_eq!(f32::from_bits(1 << 16), 2f32.powi(-133));
    let f32_vals = [0.1f32, -7.0];
    let bytes = serialize(&[
        ("a.half", Dtype::F16, vec![3, 3], halves(&f16_bits)),
        ("b.brain", Dtype::BF16, vec![2, 3], halves(&bf16_bits)),
        (
            "c.single",
            Dtype::F32,
            vec![2],
            f32_vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        ("d.nan", Dtype::F16, vec![1], halves(&[0x7e00])),
        ("e.nan", Dtype::BF16, vec![1], halves(&[0x7fc0])),
    ]);
    let t = read_safetensors(&bytes, path).unwrap();
    assert_eq!(t["a.half"].0, vec![3, 3]);
    assert_bits("f16", &t["a.half"].1, &f16_want);
    assert_eq!(t["b.brain"].0, vec![2, 3]);
    assert_bits("bf16", &t["b.brain"].1, &bf16_want);
    assert_bits("f32", &t["c.single"].1, &f32_vals);
    assert!(t["d.nan"].1[0].is_nan() && t["e.nan"].1[0].is_nan());

    // A half-precision checkpoint loads into an f32 model.
    let dir = tmpdir("half");
    let file = dir.join("w.safetensors");
    // 1, 2, 3, 4, 5, 6 and 0.5, -0.5 are exact in f16.
    let w16 = [0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600];
    std::fs::write(
        &file,
        serialize(&[
            ("a.weight", Dtype::F16, vec![2, 3], halves(&w16)),
            ("a.bias", Dtype::BF16, vec![2], halves(&[0x3f00, 0xbf00])),
        ]),
    )
    .unwrap();
    let ps = store();
    ps.get("a.weight")
        .unwrap()
        .set_storage(std::sync::Arc::new(vec![0.0; 6]))
        .unwrap();
    ps.load(&file).unwrap();
    assert_eq!(
        ps.get("a.weight").unwrap().to_vec().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(ps.get("a.bias").unwrap().to_vec().unwrap(), vec![0.5, -0.5]);
}

#[test]
fn wrong_byte_lengths_and_other_dtypes_name_the_key() {
    let path = std::path::Path::new("bad.safetensors");
    // Hand-built: `x.ok` is right, `y.short` declares 3 f16 values (6 bytes) over 4 bytes.
    let header = br#"{"x.ok":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y.short":{"dtype":"F16","shape":[3],"data_offsets":[4,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 8]);
    let e = read_safetensors(&bytes, path).unwrap_err();
    assert!(
        matches!(&e, Error::Param { key, .. } if key == "y.short"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("bad.safetensors") && msg.contains("4 bytes") && msg.contains("needs 6"),
        "{msg}"
    );

    let bytes = serialize(&[(
        "z.double",
        safetensors::Dtype::F64,
        vec![1],
        1.0f64.to_le_bytes().to_vec(),
    )]);
    let e = read_safetensors(&bytes, path).unwrap_err().to_string();
    assert!(
        e.contains("z.double") && e.contains("F64") && e.contains("expected F32, F16 or BF16"),
        "{e}"
    );
}
