//! Support for the workspace's tests (not part of the library's API): hand-built Well files.

/// A Well file built with hdf5-pure directly, not by [`crate::to_bytes`]: one field `density`
/// on a 4 x 3 grid at `times`, holding `data` shaped `shape`, with the field attribute `attr`
/// when given. Tests shape it into what lemur's writer never writes.
pub fn density_file(
    dataset_name: &str,
    n_trajectories: hdf5_pure::AttrValue,
    times: &[f32],
    data: &[f32],
    shape: &[u64],
    attr: Option<(&str, hdf5_pure::AttrValue)>,
) -> Vec<u8> {
    use hdf5_pure::{AttrValue, FileBuilder};
    let mut b = FileBuilder::new();
    b.set_attr("dataset_name", AttrValue::String(dataset_name.into()));
    b.set_attr("grid_type", AttrValue::String("cartesian".into()));
    b.set_attr("n_spatial_dims", AttrValue::I64(2));
    b.set_attr("n_trajectories", n_trajectories);
    b.set_attr("simulation_parameters", AttrValue::StringArray(vec![]));
    let mut g = b.create_group("dimensions");
    g.set_attr(
        "spatial_dims",
        AttrValue::StringArray(vec!["x".into(), "y".into()]),
    );
    g.create_dataset("time")
        .with_f32_data(times)
        .with_shape(&[times.len() as u64]);
    g.create_dataset("x").with_f32_data(&[0.0, 1.0, 2.0, 3.0]);
    g.create_dataset("y").with_f32_data(&[0.0, 1.0, 2.0]);
    b.add_group(g.finish());
    for name in ["boundary_conditions", "scalars", "t1_fields", "t2_fields"] {
        let mut g = b.create_group(name);
        g.set_attr("field_names", AttrValue::StringArray(vec![]));
        b.add_group(g.finish());
    }
    let mut g = b.create_group("t0_fields");
    g.set_attr(
        "field_names",
        AttrValue::StringArray(vec!["density".into()]),
    );
    let ds = g
        .create_dataset("density")
        .with_f32_data(data)
        .with_shape(shape);
    if let Some((name, value)) = attr {
        ds.set_attr(name, value);
    }
    b.add_group(g.finish());
    b.finish().expect("hdf5-pure builds the file")
}
