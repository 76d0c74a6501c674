//! Write trajectories, read them back frame by frame, and check that bad files are refused
//! with errors naming the file and the dataset.

use lemur_well::testing::density_file;
use lemur_well::{BoundaryType, TrajectoryData, WellError, WellFile, to_bytes, write_file};

fn trajectory(seed: u32, nx: usize, ny: usize, nt: usize) -> TrajectoryData {
    let nc = 5;
    let data = (0..nt * nx * ny * nc)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 7.0)
        .collect();
    TrajectoryData {
        dataset_name: "euler_multi_quadrants_periodicBC".into(),
        x: (0..nx).map(|i| (i as f64 + 0.5) / nx as f64).collect(),
        y: (0..ny).map(|i| (i as f64 + 0.5) / ny as f64).collect(),
        times: (0..nt).map(|i| i as f64 * 0.015).collect(),
        t0_fields: vec!["energy".into(), "density".into(), "pressure".into()],
        t1_fields: vec!["momentum".into()],
        data,
        scalars: vec![("gamma".into(), 1.4)],
        boundaries: [BoundaryType::Periodic, BoundaryType::Open],
    }
}

#[test]
fn written_files_read_back_exactly_channels_first() {
    let dir = std::env::temp_dir().join(format!("lemur-well-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("two.hdf5");
    let (a, b) = (trajectory(1, 6, 4, 3), trajectory(2, 6, 4, 3));
    write_file(&path, &[&a, &b]).unwrap();
    let f = WellFile::open(&path).unwrap();
    let m = f.meta();
    assert_eq!(m.dataset_name, "euler_multi_quadrants_periodicBC");
    assert_eq!(
        (m.n_trajectories, m.n_steps(), m.spatial_shape()),
        (2, 3, vec![6, 4])
    );
    assert_eq!(
        m.channel_names(),
        ["energy", "density", "pressure", "momentum_x", "momentum_y"]
    );
    assert_eq!(m.constant_scalars(), [("gamma".to_string(), 1.4)]);
    assert_eq!(m.simulation_parameters, [("gamma".to_string(), 1.4)]);
    assert_eq!(m.axis_boundary(0), Some(BoundaryType::Periodic));
    assert_eq!(m.axis_boundary(1), Some(BoundaryType::Open));
    assert_eq!(m.coords[0][5], f64::from((5.5f64 / 6.0) as f32));
    for (traj, src) in [&a, &b].into_iter().enumerate() {
        for t in 0..3 {
            let frame = f.read_frame(traj, t).unwrap();
            for c in 0..5 {
                for x in 0..6 {
                    for y in 0..4 {
                        assert_eq!(
                            frame[(c * 6 + x) * 4 + y],
                            src.data[((t * 6 + x) * 4 + y) * 5 + c]
                        );
                    }
                }
            }
        }
    }
    // No temporary file is left beside the output.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["two.hdf5"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mismatched_or_non_finite_trajectories_are_refused() {
    let p = std::path::Path::new("out.hdf5");
    let a = trajectory(1, 4, 4, 2);
    let mut other_grid = trajectory(2, 4, 4, 2);
    other_grid.scalars[0].1 = 1.3;
    assert!(matches!(
        to_bytes(p, &[&a, &other_grid]),
        Err(WellError::Invalid { .. })
    ));
    let mut nan = trajectory(3, 4, 4, 2);
    nan.data[17] = f32::NAN;
    assert!(matches!(
        to_bytes(p, &[&nan]),
        Err(WellError::NonFinite { index: 17, .. })
    ));
    let mut short = trajectory(3, 4, 4, 2);
    short.data.pop();
    assert!(matches!(
        to_bytes(p, &[&short]),
        Err(WellError::Shape { .. })
    ));
}

/// Replace the first occurrence of `from` in `bytes` (same length) to corrupt one thing.
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
}

#[test]
fn bad_files_are_errors_naming_file_and_dataset() {
    let a = trajectory(1, 4, 4, 2);
    let good = to_bytes(std::path::Path::new("x"), &[&a]).unwrap();

    // A field listed in field_names but absent: the first "pressure" in the file is the
    // field_names entry, so this lists a field no dataset holds.
    let mut bytes = good.clone();
    patch(&mut bytes, b"pressure\0", b"pressurX\0");
    let err = WellFile::from_bytes("renamed.hdf5", bytes).unwrap_err();
    assert!(matches!(err, WellError::Missing { .. }));
    assert_eq!(
        err.to_string(),
        "renamed.hdf5: /t0_fields/pressurX: missing"
    );

    // Truncation: the contiguous momentum array runs past the end of the file.
    let f = WellFile::from_bytes("whole.hdf5", good.clone()).unwrap();
    assert_eq!(f.read_frame(0, 1).unwrap().len(), 5 * 16);
    let mut cut = good.clone();
    cut.truncate(good.len() - 40);
    let err = WellFile::from_bytes("cut.hdf5", cut).unwrap_err();
    assert!(
        matches!(err, WellError::Truncated { needed, len, .. } if needed == good.len() as u64 && len + 40 == needed),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("cut.hdf5: /: truncated file"),
        "{err}"
    );

    // A file cut after opening (still being copied, say) fails on the frame it cannot read.
    let dir = std::env::temp_dir().join(format!("lemur-well-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("growing.hdf5");
    std::fs::write(&path, &good).unwrap();
    let f = WellFile::open(&path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let err = f.read_frame(0, 1).unwrap_err();
    assert!(matches!(err, WellError::Truncated { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("growing.hdf5: /t0_fields/energy: truncated"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A non-finite value stored in the file is caught when its frame is read.
    let mut nan_bytes = good.clone();
    let marker = a.data[5 * 16 + 3]; // frame 1, cell 0, channel 3 (momentum_x)
    patch(
        &mut nan_bytes,
        &marker.to_le_bytes(),
        &f32::NAN.to_le_bytes(),
    );
    let f = WellFile::from_bytes("nan.hdf5", nan_bytes).unwrap();
    let msg = f.read_frame(0, 1).unwrap_err().to_string();
    assert!(
        msg.contains("nan.hdf5") && msg.contains("non-finite"),
        "{msg}"
    );
}

/// A minimal Well file whose single field has shape `field_shape` on a 4 x 3 grid, 2 steps.
fn minimal(field_shape: &[u64]) -> Vec<u8> {
    let n: u64 = field_shape.iter().product();
    density_file(
        "minimal",
        hdf5_pure::AttrValue::I64(1),
        &[0.0, 1.0],
        &vec![1.0; n as usize],
        field_shape,
        None,
    )
}

#[test]
fn wrong_shape_is_an_error() {
    let ok = WellFile::from_bytes("ok.hdf5", minimal(&[1, 2, 4, 3])).unwrap();
    assert_eq!(ok.read_frame(0, 1).unwrap(), vec![1.0; 12]);
    for bad in [&[1, 2, 3, 4][..], &[1, 2, 4, 3, 1], &[2, 4, 3]] {
        let err = WellFile::from_bytes("shape.hdf5", minimal(bad)).unwrap_err();
        match &err {
            WellError::Shape {
                path,
                expected,
                found,
                ..
            } => {
                assert_eq!(path, "/t0_fields/density");
                assert_eq!(expected, &[1, 2, 4, 3]);
                assert_eq!(found, bad);
            }
            other => panic!("{other}"),
        }
        assert!(
            err.to_string()
                .starts_with("shape.hdf5: /t0_fields/density: expected shape")
        );
    }
}

#[test]
fn missing_group_is_an_error() {
    use hdf5_pure::{AttrValue, FileBuilder};
    let mut b = FileBuilder::new();
    b.set_attr("dataset_name", AttrValue::String("minimal".into()));
    b.set_attr("grid_type", AttrValue::String("cartesian".into()));
    b.set_attr("n_spatial_dims", AttrValue::I64(2));
    b.set_attr("n_trajectories", AttrValue::I64(1));
    b.set_attr("simulation_parameters", AttrValue::StringArray(vec![]));
    let err = WellFile::from_bytes("nodims.hdf5", b.finish().unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "nodims.hdf5: /dimensions: missing");
}

/// When `LEMUR_WELL_KEEP` names a directory, leave a written file there so it can be checked
/// by hand with h5py (see the README); otherwise this is the ordinary small write/read check.
#[test]
fn keep_a_written_file_for_external_readers() {
    let dir = std::env::var_os("LEMUR_WELL_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("lemur-well-keep-{}", std::process::id()))
        });
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lemur_written.hdf5");
    let a = trajectory(7, 5, 3, 2);
    write_file(&path, &[&a]).unwrap();
    let f = WellFile::open(&path).unwrap();
    assert_eq!(f.read_frame(0, 1).unwrap()[0], a.data[5 * 3 * 5]);
    if std::env::var_os("LEMUR_WELL_KEEP").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
