//! Reads `tests/data/well/h5py_fixture.hdf5`, written by h5py with
//! `tests/data/well/make_h5py_fixture.py`, and checks every value against the closed form the
//! script used.

use lemur_well::{BoundaryType, WellFile};

const B: usize = 3;
const T: usize = 4;
const X: usize = 6;
const Y: usize = 5;

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/well/h5py_fixture.hdf5")
}

/// The script's `value(field, b, t, x, y, comp)`.
fn value(field: usize, b: usize, t: usize, x: usize, y: usize, comp: usize) -> f32 {
    (field * 10000 + b * 1000 + t * 100 + x * 10 + y) as f32 + comp as f32 * 0.25
}

#[test]
fn metadata_matches_the_h5py_script() {
    let f = WellFile::open(fixture()).unwrap();
    let m = f.meta();
    assert_eq!(m.dataset_name, "h5py_fixture");
    assert_eq!(m.grid_type, "cartesian");
    assert_eq!((m.n_spatial_dims, m.n_trajectories, m.n_steps()), (2, B, T));
    assert_eq!(m.spatial_dims, ["x", "y"]);
    assert_eq!(m.spatial_shape(), [X, Y]);
    assert_eq!(m.time[3], f64::from(3.0f32 * 0.015f32));
    assert_eq!(m.coords[1][0], f64::from(0.1f32));
    assert_eq!(m.simulation_parameters, [("gamma".to_string(), 1.4)]);
    assert_eq!(m.constant_scalars(), [("gamma".to_string(), 1.4)]);
    assert_eq!(m.axis_boundary(0), Some(BoundaryType::Periodic));
    assert_eq!(m.axis_boundary(1), Some(BoundaryType::Wall));
    let wall = m
        .boundary_conditions
        .iter()
        .find(|b| b.name == "y_wall")
        .unwrap();
    assert_eq!(wall.mask, [true, false, false, false, true]);
    assert_eq!(
        m.channel_names(),
        [
            "energy",
            "density",
            "bathymetry",
            "momentum_x",
            "momentum_y",
            "stress_xx",
            "stress_xy",
            "stress_yx",
            "stress_yy"
        ]
    );
}

#[test]
fn every_frame_reads_exactly() {
    let f = WellFile::open(fixture()).unwrap();
    // (field index in the script, components, varies in time)
    let layout = [
        (0, 1, true),
        (1, 1, true),
        (2, 1, false),
        (3, 2, true),
        (4, 4, true),
    ];
    for b in 0..B {
        for t in 0..T {
            let frame = f.read_frame(b, t).unwrap();
            assert_eq!(frame.len(), 9 * X * Y);
            let mut ch = 0;
            for (field, comps, time_varying) in layout {
                for comp in 0..comps {
                    for x in 0..X {
                        for y in 0..Y {
                            let tt = if time_varying { t } else { 0 };
                            assert_eq!(
                                frame[(ch * X + x) * Y + y],
                                value(field, b, tt, x, y, comp),
                                "channel {ch} b {b} t {t} x {x} y {y}"
                            );
                        }
                    }
                    ch += 1;
                }
            }
        }
    }
}

#[test]
fn in_memory_reads_agree_with_disk_reads() {
    let bytes = std::fs::read(fixture()).unwrap();
    let mem = WellFile::from_bytes("fixture", bytes).unwrap();
    let disk = WellFile::open(fixture()).unwrap();
    assert_eq!(
        mem.read_frame(2, 3).unwrap(),
        disk.read_frame(2, 3).unwrap()
    );
}
