//! Corrupt files built in memory: a contiguous array whose declared extent disagrees with its
//! shape or wraps past 2^64, an `n_trajectories` no data backs, and counts too large for a
//! float to hold. Each is an error naming the file and the object, never a panic, a wrapped
//! offset or a huge allocation.

mod common;
use common::lookup3;

use hdf5_pure::AttrValue;
use lemur_well::testing::density_file;
use lemur_well::{BoundaryType, TrajectoryData, WellError, WellFile, to_bytes};

/// One trajectory of 2 steps on a 4 x 4 grid: every t0 field is 2*4*4 f32 = 128 bytes.
fn trajectory() -> TrajectoryData {
    let (nx, ny, nt) = (4, 4, 2);
    TrajectoryData {
        dataset_name: "corrupt".into(),
        x: (0..nx).map(|i| i as f64).collect(),
        y: (0..ny).map(|i| i as f64).collect(),
        times: (0..nt).map(|i| i as f64).collect(),
        t0_fields: vec!["density".into()],
        t1_fields: vec![],
        data: (0..nt * nx * ny).map(|i| i as f32).collect(),
        scalars: vec![],
        boundaries: [BoundaryType::Periodic, BoundaryType::Periodic],
    }
}

/// The offset of the density array's contiguous layout message (version 3 or 4, class 1, then
/// the 8-byte address and the 8-byte size) in `bytes`.
fn layout_message(bytes: &[u8]) -> usize {
    let hits: Vec<usize> = bytes
        .windows(18)
        .enumerate()
        .filter(|(_, w)| (w[0] == 3 || w[0] == 4) && w[1] == 1 && w[10..18] == 128u64.to_le_bytes())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "one 128-byte contiguous layout message");
    hits[0]
}

/// Rewrites `patch` at `at` inside a version-2 object header and re-stamps the header's
/// checksum, so that the reader sees a well-formed header with a corrupt value in it.
fn patch_header(bytes: &mut [u8], at: usize, patch: &[u8]) {
    let start = bytes[..at].windows(4).rposition(|w| w == b"OHDR").unwrap();
    let flags = bytes[start + 5];
    let mut pos = start + 6;
    if flags & 0x20 != 0 {
        pos += 16;
    }
    if flags & 0x10 != 0 {
        pos += 4;
    }
    let width = 1usize << (flags & 3);
    let mut size = [0u8; 8];
    size[..width].copy_from_slice(&bytes[pos..pos + width]);
    let end = pos + width + u64::from_le_bytes(size) as usize;
    assert!(at + patch.len() <= end, "the patch lies in the first chunk");
    let stored = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap());
    assert_eq!(lookup3(&bytes[start..end]), stored, "checksum recomputed");
    bytes[at..at + patch.len()].copy_from_slice(patch);
    let sum = lookup3(&bytes[start..end]);
    bytes[end..end + 4].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn contiguous_extent_must_match_the_shape_and_fit() {
    let good = to_bytes(std::path::Path::new("good.hdf5"), &[&trajectory()]).unwrap();
    let at = layout_message(&good);
    let address = u64::from_le_bytes(good[at + 2..at + 10].try_into().unwrap());
    let f = WellFile::from_bytes("good.hdf5", good.clone()).unwrap();
    let want: Vec<f32> = (16..32).map(|i| i as f32).collect();
    assert_eq!(f.read_frame(0, 1).unwrap(), want);
    assert!(address > 0 && address + 128 <= good.len() as u64);

    // A declared extent shorter (or longer) than the shape: frames would come from the bytes
    // after the array, which belong to other objects.
    for size in [64u64, 256, u64::MAX - 7] {
        let mut bytes = good.clone();
        patch_header(&mut bytes, at + 10, &size.to_le_bytes());
        let err = WellFile::from_bytes("short.hdf5", bytes).expect_err(&size.to_string());
        assert!(matches!(err, WellError::Invalid { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "short.hdf5: /t0_fields/density: contiguous storage of {size} bytes, but \
                 shape [1, 2, 4, 4] of 4-byte floats needs 128"
            )
        );
    }

    // An address whose end wraps past 2^64 (unchecked, it wrapped to a small number that
    // passed the file-length check).
    let mut bytes = good.clone();
    let wrap = u64::MAX - 100;
    patch_header(&mut bytes, at + 2, &wrap.to_le_bytes());
    let err = WellFile::from_bytes("wrap.hdf5", bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "wrap.hdf5: /t0_fields/density: contiguous storage at byte {wrap} of 128 bytes \
             ends past 2^64"
        )
    );

    // An address past the end of the file, without wrapping.
    let mut bytes = good.clone();
    let far = good.len() as u64;
    patch_header(&mut bytes, at + 2, &far.to_le_bytes());
    let err = WellFile::from_bytes("far.hdf5", bytes).unwrap_err();
    assert!(
        matches!(err, WellError::Truncated { needed, len, .. } if needed == far + 128 && len == far),
        "{err}"
    );
}

/// A minimal Well file: one field `density` on a 4 x 3 grid, 2 steps, shaped
/// `[n_trajectories, 2, 4, 3]` when sample-varying, else `[2, 4, 3]`.
fn minimal(n_trajectories: AttrValue, sample_varying: Option<u64>) -> Vec<u8> {
    let mut shape = vec![2u64, 4, 3];
    if let Some(nb) = sample_varying {
        shape.insert(0, nb);
    }
    let n: u64 = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let varying = AttrValue::I8(i8::from(sample_varying.is_some()));
    density_file(
        "minimal",
        n_trajectories,
        &[0.0, 1.0],
        &data,
        &shape,
        Some(("sample_varying", varying)),
    )
}

#[test]
fn n_trajectories_without_sample_varying_fields_is_bounded_by_the_file() {
    // A few trajectories sharing the one stored field: fine, each reads the same frames.
    let f = WellFile::from_bytes("shared.hdf5", minimal(AttrValue::I64(3), None)).unwrap();
    assert_eq!(f.meta().n_trajectories, 3);
    let want: Vec<f32> = (12..24).map(|i| i as f32).collect();
    assert_eq!(f.read_frame(2, 1).unwrap(), want);

    // A tiny file claiming 2^40 trajectories: every reader would loop (or allocate) 2^40
    // times over the same 96 bytes.
    let bytes = minimal(AttrValue::I64(1 << 40), None);
    let len = bytes.len();
    let err = WellFile::from_bytes("endless.hdf5", bytes).unwrap_err();
    assert!(
        matches!(&err, WellError::Invalid { path, .. } if path == "/@n_trajectories"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "endless.hdf5: /@n_trajectories: {} trajectories, but no field varies between \
             samples and the file ({len} bytes) could hold at most {}",
            1u64 << 40,
            len / 96
        )
    );
}

#[test]
fn huge_float_counts_are_rejected_not_clamped() {
    for (value, shown) in [
        (AttrValue::F64(1e300), "1e300"),
        (AttrValue::F64(2f64.powi(60)), "1.152921504606847e18"),
        (AttrValue::F64(f64::INFINITY), ""),
    ] {
        let bytes = minimal(value, Some(1));
        let err = WellFile::from_bytes("huge.hdf5", bytes).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("huge.hdf5: /@n_trajectories: "), "{msg}");
        if shown.is_empty() {
            assert!(matches!(err, WellError::NonFinite { .. }), "{msg}");
        } else {
            assert_eq!(
                msg,
                format!(
                    "huge.hdf5: /@n_trajectories: expected a count, found {shown} \
                     (more than 2^53)"
                )
            );
        }
    }
    // The largest exact float count still reads as a count (then fails the shape check).
    let err = WellFile::from_bytes("big.hdf5", minimal(AttrValue::F64(9e15), Some(1))).unwrap_err();
    assert!(matches!(err, WellError::Shape { .. }), "{err}");
}
