//! Seeded mutations of Well HDF5 files and of `stats.json`: no panic and no allocation sized
//! by an unchecked number, whatever the bytes (see `tests/support/mutate.rs` at the workspace
//! root; `LEMUR_MUTATIONS=1000000 cargo test -p lemur-well --test mutate` for a long run).

mod common;
use common::lookup3;

#[path = "../../../tests/support/mutate.rs"]
mod mutate;

use std::path::Path;

use hdf5_pure::AttrValue;
use lemur_well::dataset::{Stats, Transform, labels};
use lemur_well::testing::density_file;
use lemur_well::{BoundaryType, TrajectoryData, WellFile, to_bytes};
use mutate::{Rng, campaign, mutate_bytes, mutate_json, seeds};

#[global_allocator]
static ALLOC: mutate::Capped = mutate::Capped;

/// Two trajectories of 3 steps on a 4 x 3 grid with a vector field and scalars: contiguous
/// arrays, as `lemur generate` writes them.
fn ours() -> Vec<u8> {
    let (nx, ny, nt) = (4, 3, 3);
    let tr = |k: usize| TrajectoryData {
        dataset_name: "euler_mutate".into(),
        x: (0..nx).map(|i| i as f64).collect(),
        y: (0..ny).map(|i| i as f64 * 0.5).collect(),
        times: (0..nt).map(|i| i as f64 * 0.1).collect(),
        t0_fields: vec!["density".into(), "energy".into()],
        t1_fields: vec!["momentum".into()],
        data: (0..nt * nx * ny * 4)
            .map(|i| 1.0 + (i + k) as f32 * 0.01)
            .collect(),
        scalars: vec![("gamma".into(), 1.4)],
        boundaries: [BoundaryType::Periodic, BoundaryType::Wall],
    };
    to_bytes(Path::new("ours.hdf5"), &[&tr(0), &tr(1)]).unwrap()
}

/// One field shared by every trajectory (not sample-varying), built with hdf5-pure directly.
fn shared() -> Vec<u8> {
    let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
    density_file(
        "shared",
        AttrValue::I64(2),
        &[0.0, 1.0],
        &data,
        &[2, 4, 3],
        Some(("sample_varying", AttrValue::I8(0))),
    )
}

/// The file h5py wrote (chunked and compact layouts, string attributes of h5py's kinds).
fn h5py() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/well/h5py_fixture.hdf5"),
    )
    .unwrap()
}

/// Re-stamps the checksum of every version-2 object header's first chunk, so that a mutation
/// inside one reaches the message parsers instead of stopping at the checksum.
fn restamp(bytes: &mut [u8]) {
    let mut from = 0;
    while let Some(i) = bytes[from..].windows(4).position(|w| w == b"OHDR") {
        let start = from + i;
        from = start + 4;
        let Some(&flags) = bytes.get(start + 5) else {
            return;
        };
        let mut pos = start + 6;
        if flags & 0x20 != 0 {
            pos += 16;
        }
        if flags & 0x10 != 0 {
            pos += 4;
        }
        let width = 1usize << (flags & 3);
        let Some(raw) = bytes.get(pos..pos + width) else {
            return;
        };
        let mut size = [0u8; 8];
        size[..width].copy_from_slice(raw);
        let Some(end) = usize::try_from(u64::from_le_bytes(size))
            .ok()
            .and_then(|s| (pos + width).checked_add(s))
        else {
            continue;
        };
        if end.checked_add(4).is_none_or(|e| e > bytes.len()) {
            continue;
        }
        let sum = lookup3(&bytes[start..end]);
        bytes[end..end + 4].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Everything a consumer does with an open file, on the frames at its corners: metadata
/// accessors, labels and frames, each frame exactly one `[C, X, Y]` block.
fn exercise(f: &WellFile) {
    let m = f.meta();
    let names = m.channel_names();
    assert_eq!(names.len(), m.n_channels());
    let _ = labels(m);
    let _ = m.constant_scalars();
    for axis in 0..m.n_spatial_dims.min(4) {
        let _ = m.axis_boundary(axis);
    }
    let (nb, nt) = (m.n_trajectories, m.n_steps());
    for traj in [0, nb.saturating_sub(1), nb] {
        for t in [0, nt.saturating_sub(1), nt] {
            match f.read_frame(traj, t) {
                Ok(frame) => {
                    assert!(traj < nb && t < nt, "frame ({traj}, {t}) of {nb} x {nt}");
                    assert_eq!(frame.len(), m.n_channels() * m.frame_points());
                    assert!(frame.iter().all(|v| v.is_finite()));
                }
                Err(e) => assert!(e.to_string().contains(".hdf5"), "{e}"),
            }
        }
    }
    // Statistics read every frame: only where that is a handful.
    if nb.saturating_mul(nt) <= 16 {
        let _ = Stats::compute(std::slice::from_ref(f));
    }
}

#[test]
fn well_hdf5_mutations_never_panic_or_overallocate() {
    let bases = [ours(), shared(), h5py()];
    for (i, b) in bases.iter().enumerate() {
        exercise(&WellFile::from_bytes(format!("base{i}.hdf5"), b.clone()).unwrap());
    }
    let scratch = mutate::Scratch::new(env!("CARGO_TARGET_TMPDIR"), "well");
    let dir = &scratch.0;
    let report = campaign("well-hdf5", &seeds(10_000), |seed| {
        let mut rng = Rng::new(seed);
        let base = rng.pick(&bases);
        let mut bytes = mutate_bytes(&mut rng, base);
        if rng.chance(0.6) {
            restamp(&mut bytes);
        }
        // Mostly in memory (the browser's path); one in eight through a file on disk, whose
        // frames are read with their own seeks.
        let opened = if rng.chance(0.125) {
            let path = dir.join(format!("{seed}.hdf5"));
            std::fs::write(&path, &bytes).unwrap();
            let f = WellFile::open(&path);
            let _ = std::fs::remove_file(&path);
            f
        } else {
            WellFile::from_bytes(format!("{seed}.hdf5"), bytes)
        };
        match opened {
            Ok(f) => {
                exercise(&f);
                true
            }
            Err(e) => {
                assert!(e.to_string().contains(&format!("{seed}.hdf5")), "{e}");
                false
            }
        }
    });
    report.assert_clean();
    if report.cases >= 1000 {
        assert!(report.accepted > report.cases / 100, "{report:?}");
        assert!(report.rejected > report.cases / 10, "{report:?}");
    }
}

fn stats() -> Stats {
    Stats {
        dataset_name: "euler_mutate".into(),
        channels: vec!["density".into(), "momentum_x".into(), "momentum_y".into()],
        transforms: vec![Transform::Log1p, Transform::Identity, Transform::Identity],
        mean: vec![0.5, 0.0, 0.0],
        std: vec![2.0, 1.5, 1.5],
        frames: 12,
    }
}

#[test]
fn stats_json_mutations_never_panic_or_overallocate() {
    let scratch = mutate::Scratch::new(env!("CARGO_TARGET_TMPDIR"), "stats");
    let dir = &scratch.0;
    let good = stats();
    good.save(dir).unwrap();
    assert_eq!(Stats::load(dir).unwrap(), good);
    let base: serde_json::Value = serde_json::to_value(&good).unwrap();
    let report = campaign("stats-json", &seeds(10_000), |seed| {
        let mut rng = Rng::new(seed);
        let bytes = mutate_json(&mut rng, &base);
        // One in sixteen through the file (the loader's path); the rest parse the bytes
        // directly, which is the same code without the disk's latency.
        let loaded = if seed % 16 == 0 {
            std::fs::write(Stats::path(dir), &bytes).unwrap();
            Stats::load(dir)
        } else {
            Stats::from_json(&bytes, &Stats::path(dir))
        };
        match loaded {
            Ok(s) => {
                // Loaded statistics are usable as they are: one mean, std and transform per
                // channel, finite, stds positive; normalising a frame and back keeps its size
                // (values may overflow f32 for extreme but finite statistics).
                let nc = s.channels.len();
                assert!(nc > 0);
                assert_eq!(
                    (s.mean.len(), s.std.len(), s.transforms.len()),
                    (nc, nc, nc)
                );
                assert!(s.mean.iter().all(|m| m.is_finite()), "{s:?}");
                assert!(s.std.iter().all(|&d| d.is_finite() && d > 0.0), "{s:?}");
                let mut frame: Vec<f32> = (0..nc * 4).map(|i| i as f32 * 0.25).collect();
                s.normalise(&mut frame, 4);
                s.denormalise(&mut frame, 4);
                assert_eq!(frame.len(), nc * 4);
                true
            }
            Err(e) => {
                assert!(e.to_string().contains("stats.json"), "{e}");
                false
            }
        }
    });
    report.assert_clean();
    if report.cases >= 1000 {
        assert!(report.accepted > report.cases / 100, "{report:?}");
        assert!(report.rejected > report.cases / 2, "{report:?}");
    }
}
