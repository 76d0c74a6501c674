//! Trajectories with no frames: a Well file whose time axis is empty is an error naming the
//! file and the axis (it used to divide by zero in `Trajectory::strided`), and `strided` of
//! an empty trajectory is empty.

use hdf5_pure::AttrValue;
use lemur_train::emulate::{Trajectory, read_trajectory_file};
use lemur_well::testing::density_file;
use lemur_well::{BoundaryType, TrajectoryData, write_file};

fn trajectory(nt: usize) -> TrajectoryData {
    let (nx, ny) = (4, 3);
    TrajectoryData {
        dataset_name: "euler_multi_quadrants_periodicBC".into(),
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

/// A Well file with an empty time axis whose one field, `density` on a 4 x 3 grid, is
/// constant in time.
fn timeless() -> Vec<u8> {
    density_file(
        "timeless",
        AttrValue::I64(1),
        &[],
        &[1.0; 12],
        &[1, 4, 3],
        Some(("time_varying", AttrValue::I8(0))),
    )
}

#[test]
fn an_empty_time_axis_is_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("lemur-train-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let full = dir.join("full.hdf5");
    write_file(&full, &[&trajectory(3)]).unwrap();
    let t = read_trajectory_file(&full, 0).unwrap();
    assert_eq!(t.steps, 3);
    let want: Vec<f32> = (0..12).chain(24..36).map(|i| i as f32).collect();
    assert_eq!(t.strided(0, 2, None), want);

    // lemur's writer refuses to store an empty array, but a field that does not vary in
    // time needs no time axis at all: such a file opens, with zero steps.
    let empty = dir.join("empty.hdf5");
    std::fs::write(&empty, timeless()).unwrap();
    let err = read_trajectory_file(&empty, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: /dimensions/time: the time axis is empty: the file holds no frames",
            empty.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn strided_of_a_trajectory_without_frames_is_empty() {
    let t = Trajectory {
        file: "none.hdf5".into(),
        index: 0,
        frames: Vec::new(),
        steps: 0,
        grid: [4, 3],
        channels: vec!["density".into()],
        labels: Vec::new(),
    };
    assert_eq!(t.strided(0, 1, None), Vec::<f32>::new());
    assert_eq!(t.strided(5, 0, Some(3)), Vec::<f32>::new());
}
