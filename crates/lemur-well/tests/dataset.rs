//! Splits, statistics, windows, labels and augmentations.

use lemur_well::dataset::{
    Augment, SplitMix64, Stats, Symmetries, Transform, WellDataset, WindowSpec, labels,
    split_counts, write_stats,
};
use lemur_well::{BoundaryType, TrajectoryData, WellFile, write_file};

fn euler(seed: u32, n: usize, nt: usize, gamma: f64, bc: BoundaryType) -> TrajectoryData {
    let nc = 5;
    let data = (0..nt * n * n * nc)
        .map(|i| {
            let c = i % nc;
            let r = ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 1000.0;
            if c < 3 { 0.5 + r } else { r - 0.3 }
        })
        .collect();
    TrajectoryData {
        dataset_name: "euler_multi_quadrants_periodicBC".into(),
        x: (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect(),
        y: (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect(),
        times: (0..nt).map(|i| i as f64 * 0.015).collect(),
        t0_fields: vec!["energy".into(), "density".into(), "pressure".into()],
        t1_fields: vec!["momentum".into()],
        data,
        scalars: vec![("gamma".into(), gamma)],
        boundaries: [bc, bc],
    }
}

fn temp_root(tag: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("lemur-well-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for s in ["train", "valid", "test"] {
        std::fs::create_dir_all(root.join("data").join(s)).unwrap();
    }
    root
}

#[test]
fn splits_are_80_10_10_with_every_split_present() {
    assert_eq!(split_counts(10), [8, 1, 1]);
    assert_eq!(split_counts(100), [80, 10, 10]);
    assert_eq!(split_counts(3), [1, 1, 1]);
    assert_eq!(split_counts(16), [12, 2, 2]);
    assert_eq!(split_counts(2), [2, 0, 0]);
}

#[test]
fn statistics_windows_and_labels() {
    let root = temp_root("stats");
    let (a, b) = (
        euler(1, 4, 11, 1.4, BoundaryType::Periodic),
        euler(2, 4, 11, 1.4, BoundaryType::Periodic),
    );
    let c = euler(3, 4, 11, 1.13, BoundaryType::Periodic);
    write_file(root.join("data/train/g1.4.hdf5"), &[&a, &b]).unwrap();
    write_file(root.join("data/train/g1.13.hdf5"), &[&c]).unwrap();
    write_file(root.join("data/valid/v.hdf5"), &[&c]).unwrap();
    let stats = write_stats(&root).unwrap();
    let loaded = Stats::load(&root).unwrap();
    assert_eq!(
        (&loaded.channels, &loaded.transforms, loaded.frames),
        (&stats.channels, &stats.transforms, 33)
    );
    // JSON keeps about 16 significant digits.
    for (x, y) in loaded
        .mean
        .iter()
        .chain(&loaded.std)
        .zip(stats.mean.iter().chain(&stats.std))
    {
        assert!((x - y).abs() <= 1e-14 * y.abs().max(1.0));
    }
    assert_eq!(
        stats.transforms,
        [
            Transform::Log1p,
            Transform::Log1p,
            Transform::Log1p,
            Transform::Identity,
            Transform::Identity
        ]
    );

    // Direct computation over the three trajectories.
    let all: Vec<&TrajectoryData> = vec![&a, &b, &c];
    let values = |ch: usize| -> Vec<f64> {
        all.iter()
            .flat_map(|t| t.data.iter().skip(ch).step_by(5).map(|&v| f64::from(v)))
            .collect()
    };
    let density: Vec<f64> = values(1)
        .iter()
        .map(|v| (*v as f32).ln_1p() as f64)
        .collect();
    let mean = density.iter().sum::<f64>() / density.len() as f64;
    let std =
        (density.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / density.len() as f64).sqrt();
    assert!((stats.mean[1] - mean).abs() < 1e-9 && (stats.std[1] - std).abs() < 1e-9);
    let (mx, my) = (values(3), values(4));
    let rms = ((mx.iter().chain(&my).map(|v| v * v).sum::<f64>()) / (2 * mx.len()) as f64).sqrt();
    assert_eq!((stats.mean[3], stats.mean[4]), (0.0, 0.0));
    assert!((stats.std[3] - rms).abs() < 1e-9 && stats.std[4] == stats.std[3]);

    // 11 frames, L = 3 frames 4 apart: starts 0, 1, 2 per trajectory.
    let ds = WellDataset::open(
        &root,
        "train",
        WindowSpec {
            length: 3,
            stride: 4,
        },
    )
    .unwrap();
    assert_eq!(ds.len(), 9);
    assert_eq!(ds.window_shape(), [3, 5, 4, 4]);
    // Files sort by name: g1.13 (trajectory c) first, then g1.4 (a, b).
    let w = ds.window(7).unwrap(); // second file, trajectory b, start 1
    assert_eq!(w.labels, [1.4, 2.0, 2.0]);
    assert_eq!(ds.window(0).unwrap().labels, [1.13, 2.0, 2.0]);
    // Skipping the first frame leaves starts 1 and 2; window 4 is then trajectory b's start 1.
    let later = WellDataset::open(
        &root,
        "train",
        WindowSpec {
            length: 3,
            stride: 4,
        },
    )
    .unwrap()
    .starting_at(1);
    assert_eq!(later.len(), 6);
    assert_eq!(later.window(4).unwrap(), ds.window(7).unwrap());
    assert_eq!(later.window(5).unwrap(), ds.window(8).unwrap());
    assert!(
        WellDataset::open(
            &root,
            "train",
            WindowSpec {
                length: 3,
                stride: 4
            }
        )
        .unwrap()
        .starting_at(3)
        .is_empty()
    );
    for (l, t) in [1usize, 5, 9].into_iter().enumerate() {
        for ch in 0..5 {
            for x in 0..4 {
                for y in 0..4 {
                    let raw = b.data[((t * 4 + x) * 4 + y) * 5 + ch];
                    let expected = ((f64::from(stats.transforms[ch].apply(raw)) - stats.mean[ch])
                        / stats.std[ch]) as f32;
                    assert_eq!(w.data[((l * 5 + ch) * 4 + x) * 4 + y], expected);
                }
            }
        }
    }
    // Denormalising recovers the stored values.
    let mut back = w.data.clone();
    stats.denormalise(&mut back, 16);
    assert!((back[(5 + 3) * 16 + 6] - b.data[((5 * 4 + 1) * 4 + 2) * 5 + 3]).abs() < 1e-5);
    assert!((back[(5 + 1) * 16 + 6] - b.data[((5 * 4 + 1) * 4 + 2) * 5 + 1]).abs() < 1e-5);

    // Sampling is reproducible and is the plain window under some symmetry.
    assert_eq!(ds.sample(4, 11).unwrap(), ds.sample(4, 11).unwrap());
    assert_ne!(
        ds.sample(4, 11).unwrap().data,
        ds.sample(4, 12).unwrap().data
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn rayleigh_benard_labels_and_symmetries() {
    let meta = WellFile::from_bytes(
        "rb",
        lemur_well::to_bytes(
            std::path::Path::new("rb"),
            &[&TrajectoryData {
                dataset_name: "rayleigh_benard".into(),
                x: vec![0.5, 1.5, 2.5, 3.5],
                y: vec![0.25, 0.75],
                times: vec![0.0],
                t0_fields: vec!["buoyancy".into(), "pressure".into()],
                t1_fields: vec!["velocity".into()],
                data: vec![0.5; 4 * 2 * 4],
                scalars: vec![("rayleigh".into(), 1e6), ("prandtl".into(), 10.0)],
                boundaries: [BoundaryType::Periodic, BoundaryType::Wall],
            }],
        )
        .unwrap(),
    )
    .unwrap()
    .meta()
    .clone();
    let l = labels(&meta);
    assert_eq!(l.len(), 4);
    assert!((l[0] - 1e6f64.ln() as f32).abs() < 1e-6 && (l[1] - 10f64.ln() as f32).abs() < 1e-6);
    assert_eq!(&l[2..], [2.0, 0.0]);
    let sym = Symmetries::of(&meta);
    assert_eq!(
        sym,
        Symmetries {
            flip: [true, false],
            transpose: false,
            roll: [true, false]
        }
    );
    let mut rng = SplitMix64::new(5);
    for _ in 0..50 {
        let a = Augment::random(sym, [4, 2], &mut rng);
        assert!(!a.transpose && !a.flip[1] && a.roll[1] == 0 && a.roll[0] < 4);
    }
}

/// A 1-frame window on a 3 x 3 grid with channels (energy, density, pressure, mx, my) whose
/// values encode (channel, x, y).
fn coded(meta_src: &TrajectoryData) -> (lemur_well::WellMeta, Vec<f32>) {
    let f = WellFile::from_bytes(
        "m",
        lemur_well::to_bytes(std::path::Path::new("m"), &[meta_src]).unwrap(),
    )
    .unwrap();
    let data = (0..5 * 9)
        .map(|i| ((i / 9) * 100 + (i % 9 / 3) * 10 + i % 3) as f32)
        .collect();
    (f.meta().clone(), data)
}

#[test]
fn augmentations_move_points_and_components() {
    let (meta, data) = coded(&euler(1, 3, 1, 1.4, BoundaryType::Periodic));
    let v = |d: &[f32], c: usize, x: usize, y: usize| d[(c * 3 + x) * 3 + y];
    let code = |c: usize, x: usize, y: usize| (c * 100 + x * 10 + y) as f32;

    // Flip x: point (x, y) comes from (2 - x, y); momentum_x negated, momentum_y kept.
    let mut d = data.clone();
    Augment {
        flip: [true, false],
        ..Default::default()
    }
    .apply(&meta, &mut d, [3, 3]);
    assert_eq!(v(&d, 1, 0, 2), code(1, 2, 2));
    assert_eq!(v(&d, 3, 0, 1), -code(3, 2, 1));
    assert_eq!(v(&d, 4, 0, 1), code(4, 2, 1));

    // Transpose: (x, y) from (y, x), and the momentum components swap.
    let mut d = data.clone();
    Augment {
        transpose: true,
        ..Default::default()
    }
    .apply(&meta, &mut d, [3, 3]);
    assert_eq!(v(&d, 0, 0, 2), code(0, 2, 0));
    assert_eq!(v(&d, 3, 1, 2), code(4, 2, 1));
    assert_eq!(v(&d, 4, 1, 2), code(3, 2, 1));

    // Roll y by 1: (x, y) from (x, y - 1 mod 3).
    let mut d = data.clone();
    Augment {
        roll: [0, 1],
        ..Default::default()
    }
    .apply(&meta, &mut d, [3, 3]);
    assert_eq!(v(&d, 2, 1, 0), code(2, 1, 2));
    assert_eq!(v(&d, 2, 1, 1), code(2, 1, 0));

    // Composition: transpose, then flip y, then roll x by 2.
    let mut d = data.clone();
    let a = Augment {
        transpose: true,
        flip: [false, true],
        roll: [2, 0],
    };
    a.apply(&meta, &mut d, [3, 3]);
    // Output (0, 0): un-roll x -> (1, 0); un-flip y -> (1, 2); un-transpose -> (2, 1).
    assert_eq!(v(&d, 0, 0, 0), code(0, 2, 1));
    // momentum_y out = -(momentum_x in) since y is flipped after the swap.
    assert_eq!(v(&d, 4, 0, 0), -code(3, 2, 1));
    assert_eq!(v(&d, 3, 0, 0), code(4, 2, 1));

    // A flip applied twice is the identity.
    let mut d = data.clone();
    let f = Augment {
        flip: [true, true],
        ..Default::default()
    };
    f.apply(&meta, &mut d, [3, 3]);
    f.apply(&meta, &mut d, [3, 3]);
    assert_eq!(d, data);

    // Open boundaries: flips and swaps, no rolls.
    let (open, _) = coded(&euler(1, 3, 1, 1.4, BoundaryType::Open));
    assert_eq!(
        Symmetries::of(&open),
        Symmetries {
            flip: [true, true],
            transpose: true,
            roll: [false, false]
        }
    );
}
