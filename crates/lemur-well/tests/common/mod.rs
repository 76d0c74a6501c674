//! Helpers shared by the tests that build and corrupt HDF5 files. Each test file uses only part
//! of them.
#![allow(dead_code)]

/// Bob Jenkins' lookup3 `hashlittle` (initval 0), HDF5's metadata checksum.
pub fn lookup3(data: &[u8]) -> u32 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    let word = |k: &[u8], i: usize| u32::from_le_bytes(k[i..i + 4].try_into().unwrap());
    let mut a = 0xdead_beefu32.wrapping_add(data.len() as u32);
    let (mut b, mut c) = (a, a);
    let mut k = data;
    while k.len() > 12 {
        a = a.wrapping_add(word(k, 0));
        b = b.wrapping_add(word(k, 4));
        c = c.wrapping_add(word(k, 8));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    let mut tail = [0u8; 12];
    tail[..k.len()].copy_from_slice(k);
    a = a.wrapping_add(word(&tail, 0));
    b = b.wrapping_add(word(&tail, 4));
    c = c.wrapping_add(word(&tail, 8));
    // final(): each step is v[x] ^= v[y]; v[x] -= rot(v[y], r).
    for (x, y, r) in [
        (2, 1, 14),
        (0, 2, 11),
        (1, 0, 25),
        (2, 1, 16),
        (0, 2, 4),
        (1, 0, 14),
        (2, 1, 24),
    ] {
        let mut v = [a, b, c];
        v[x] ^= v[y];
        v[x] = v[x].wrapping_sub(v[y].rotate_left(r));
        [a, b, c] = v;
    }
    c
}

/// A Well file built with hdf5-pure directly: one field `density` on a 4 x 3 grid at times
/// `[0, 1]`, holding `data` shaped `shape`, with the field attribute `attr` when given.
pub fn density_file(
    dataset_name: &str,
    n_trajectories: hdf5_pure::AttrValue,
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
    g.create_dataset("time").with_f32_data(&[0.0, 1.0]);
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
    b.finish().unwrap()
}
