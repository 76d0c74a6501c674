//! Seeded mutations of safetensors checkpoints: no panic and no allocation sized by an
//! unchecked number, whatever the bytes (see `tests/support/mutate.rs` at the workspace root;
//! `LEMUR_MUTATIONS=1000000 cargo test -p lemur-tensor --test mutate_safetensors` for a long
//! run).

#[path = "../../../tests/support/mutate.rs"]
mod mutate;

use std::path::Path;

use lemur_tensor::params::read_safetensors;
use lemur_tensor::{CpuBackend, ParamStore};
use mutate::{Rng, campaign, mutate_bytes, mutate_json_once, seeds};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::Value;

#[global_allocator]
static ALLOC: mutate::Capped = mutate::Capped;

/// Checkpoints in every dtype the reader takes (and one it refuses), with metadata, a scalar
/// and an empty tensor, so that mutations reach every branch.
fn fixtures() -> Vec<Vec<u8>> {
    let f32s: Vec<u8> = (0..24)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let f16s: Vec<u8> = (0..6)
        .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
        .collect();
    let bf16s: Vec<u8> = (0..4)
        .flat_map(|i| half::bf16::from_f32(-(i as f32)).to_le_bytes())
        .collect();
    let scalar = 3.0f32.to_le_bytes();
    let i32s: Vec<u8> = (0..3i32).flat_map(|i| i.to_le_bytes()).collect();
    let view = |dtype, shape: &[usize], data| TensorView::new(dtype, shape.to_vec(), data).unwrap();
    let meta = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    vec![
        safetensors::serialize(
            [
                ("blocks.0.weight", view(Dtype::F32, &[2, 3, 4], &f32s)),
                ("blocks.0.bias", view(Dtype::F16, &[6], &f16s)),
                ("norm.scale", view(Dtype::BF16, &[2, 2], &bf16s)),
                ("scalar", view(Dtype::F32, &[], &scalar)),
                ("empty", view(Dtype::F32, &[0, 5], &[])),
            ],
            meta,
        )
        .unwrap(),
        safetensors::serialize([("w", view(Dtype::F32, &[4, 6], &f32s))], None).unwrap(),
        safetensors::serialize([("ids", view(Dtype::I32, &[3], &i32s))], None).unwrap(),
    ]
}

/// A header-aware edit: the JSON header is parsed, mutated (shapes, offsets, dtypes, keys)
/// and written back with a consistent length prefix, so the edit reaches the checks behind
/// the framing; or the length prefix itself is set to an interesting value.
fn mutate_header(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&base[8..8 + n]).unwrap();
    let data = &base[8 + n..];
    if rng.chance(0.1) {
        let mut out = base.to_vec();
        out[..8].copy_from_slice(&rng.pick(&mutate::INTERESTING).to_le_bytes());
        return out;
    }
    for _ in 0..1 + rng.below(3) {
        // Aim most edits at the fields that size things.
        let names: Vec<String> = header
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "__metadata__").cloned().collect())
            .unwrap_or_default();
        if !names.is_empty() && rng.chance(0.7) {
            let name = rng.pick(&names).clone();
            // Earlier edits may have made the entry something other than an object.
            let Some(t) = header.get_mut(&name).and_then(Value::as_object_mut) else {
                continue;
            };
            match rng.below(6) {
                0 => {
                    if let Some(s) = t.get_mut("shape").and_then(Value::as_array_mut)
                        && !s.is_empty()
                    {
                        let i = rng.below(s.len());
                        s[i] = Value::from(*rng.pick(&mutate::INTERESTING));
                    }
                }
                1 => {
                    // A shape whose product wraps a u64 to exactly the data's length.
                    t.insert(
                        "shape".into(),
                        serde_json::json!([1u64 << 32, 1u64 << 32, 1]),
                    );
                }
                2 => {
                    if let Some(o) = t.get_mut("data_offsets").and_then(Value::as_array_mut)
                        && !o.is_empty()
                    {
                        let i = rng.below(o.len());
                        o[i] = Value::from(*rng.pick(&mutate::INTERESTING));
                    }
                }
                3 => {
                    t.insert(
                        "dtype".into(),
                        Value::from(*rng.pick(&[
                            "F64", "F16", "BF16", "I8", "U8", "BOOL", "F8_E4M3", "C64", "XX",
                        ])),
                    );
                }
                4 => {
                    if let Some(s) = t.get_mut("shape").and_then(Value::as_array_mut) {
                        s.push(Value::from(rng.below(3)));
                    }
                }
                _ => {
                    let mut v = Value::Object(t.clone());
                    mutate_json_once(rng, &mut v);
                    header[&name] = v;
                }
            }
        } else {
            mutate_json_once(rng, &mut header);
        }
    }
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    if rng.chance(0.2) {
        mutate::mutate_bytes_once(rng, &mut out);
    }
    out
}

#[test]
fn safetensors_mutations_never_panic_or_overallocate() {
    let bases = fixtures();
    let path = Path::new("mutated.safetensors");
    // The first fixture's float tensors as a model, to drive `load_host` with what was read.
    let mut store = ParamStore::<CpuBackend>::new();
    store
        .add(&CpuBackend, "w", &[0.0; 24], &[4, 6])
        .expect("a parameter");
    let report = campaign("safetensors", &seeds(10_000), |seed| {
        let mut rng = Rng::new(seed);
        let base = rng.pick(&bases);
        let bytes = if rng.chance(0.5) {
            mutate_header(&mut rng, base)
        } else {
            mutate_bytes(&mut rng, base)
        };
        match read_safetensors(&bytes, path) {
            Ok(tensors) => {
                // What the reader returns is whole: every tensor has exactly its shape's
                // values, and loading it into a model checks names and shapes.
                let total: usize = tensors.values().map(|(_, d)| d.len()).sum();
                assert!(total * 2 <= bytes.len(), "more values than the file holds");
                for (name, (shape, data)) in &tensors {
                    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                    assert_eq!(numel, Some(data.len()), "{name}: shape {shape:?}");
                }
                let _ = store.load_host(&tensors, path);
                true
            }
            Err(e) => {
                // Every error names the file.
                assert!(e.to_string().contains("mutated.safetensors"), "{e}");
                false
            }
        }
    });
    report.assert_clean();
    // The campaign reaches past the framing: some mutations still read (a flipped value bit,
    // a renamed key), most are refused.
    if report.cases >= 1000 {
        assert!(report.accepted > report.cases / 100, "{report:?}");
        assert!(report.rejected > report.cases / 2, "{report:?}");
    }
}

/// The unmutated fixtures read back exactly (so the campaign starts from valid files).
#[test]
fn fixtures_read_back() {
    let bases = fixtures();
    let t = read_safetensors(&bases[0], Path::new("a")).unwrap();
    assert_eq!(t["blocks.0.weight"].0, [2, 3, 4]);
    assert_eq!(t["blocks.0.weight"].1[23], 11.5);
    assert_eq!(t["blocks.0.bias"].1, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(t["norm.scale"].1, [0.0, -1.0, -2.0, -3.0]);
    assert_eq!(t["scalar"], (vec![], vec![3.0]));
    assert_eq!(t["empty"], (vec![0, 5], vec![]));
    let err = read_safetensors(&bases[2], Path::new("ids.safetensors")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ids.safetensors: parameter `ids`: dtype I32, expected F32, F16 or BF16"
    );
}
