//! Writing Well files.

use std::path::{Path, PathBuf};

use hdf5_pure::{AttrValue, EnumTypeBuilder, FileBuilder, make_i8_type};

use crate::error::{Result, WellError};
use crate::format::BoundaryType;

/// One simulated trajectory, in the shape lemur's solvers produce it.
///
/// Field-for-field the same as `lemur_solvers::Trajectory` (with [`BoundaryType`] for its
/// `Boundary`), so converting is a move of each field.
#[derive(Clone, Debug, PartialEq)]
pub struct TrajectoryData {
    pub dataset_name: String,
    /// Cell-centre coordinates along x and y.
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub times: Vec<f64>,
    pub t0_fields: Vec<String>,
    pub t1_fields: Vec<String>,
    /// `[T, nx, ny, C]`, C = t0 count + 2 * t1 count, t0 first then each t1 field's (x, y).
    pub data: Vec<f32>,
    pub scalars: Vec<(String, f64)>,
    /// Along x, along y.
    pub boundaries: [BoundaryType; 2],
}

impl TrajectoryData {
    pub fn n_channels(&self) -> usize {
        self.t0_fields.len() + 2 * self.t1_fields.len()
    }

    fn check(&self, file: &Path) -> Result<()> {
        let expected = self.times.len() * self.x.len() * self.y.len() * self.n_channels();
        if self.data.len() != expected {
            return Err(WellError::Shape {
                file: file.to_path_buf(),
                path: "/".into(),
                expected: vec![
                    self.times.len() as u64,
                    self.x.len() as u64,
                    self.y.len() as u64,
                    self.n_channels() as u64,
                ],
                found: vec![self.data.len() as u64],
            });
        }
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(WellError::NonFinite {
                file: file.to_path_buf(),
                path: "/".into(),
                index: i,
            });
        }
        Ok(())
    }

    /// Everything except the data, which must agree between trajectories sharing a file:
    /// The Well stores coordinates, scalars and boundaries once per file.
    fn same_file_as(&self, other: &TrajectoryData) -> bool {
        self.dataset_name == other.dataset_name
            && self.x == other.x
            && self.y == other.y
            && self.times == other.times
            && self.t0_fields == other.t0_fields
            && self.t1_fields == other.t1_fields
            && self.scalars == other.scalars
            && self.boundaries == other.boundaries
    }
}

/// Serialise trajectories into one Well-layout file held in memory.
///
/// All trajectories must share coordinates, times, fields, scalars and boundaries; `file`
/// names the destination in errors. Arrays are contiguous float32 (h5py's default, and what
/// lets [`crate::WellFile`] read a frame with one seek).
pub fn to_bytes(file: &Path, trajectories: &[&TrajectoryData]) -> Result<Vec<u8>> {
    let first = *trajectories
        .first()
        .ok_or_else(|| WellError::invalid(file, "/", "no trajectories to write"))?;
    for tr in trajectories {
        tr.check(file)?;
        if !tr.same_file_as(first) {
            return Err(WellError::invalid(
                file,
                "/",
                "trajectories in one file must share grid, times, fields, scalars and boundaries",
            ));
        }
    }
    let (nb, nt, nx, ny) = (
        trajectories.len(),
        first.times.len(),
        first.x.len(),
        first.y.len(),
    );
    let nc = first.n_channels();
    let dims = ["x", "y"];
    let strings =
        |v: &[&str]| AttrValue::VarLenStringArray(v.iter().map(|s| s.to_string()).collect());
    let flag = |b: bool| AttrValue::I8(i8::from(b));

    let mut b = FileBuilder::new();
    b.set_attr(
        "dataset_name",
        AttrValue::VarLenString(first.dataset_name.clone()),
    );
    b.set_attr("grid_type", AttrValue::VarLenString("cartesian".into()));
    b.set_attr("n_spatial_dims", AttrValue::I64(2));
    b.set_attr("n_trajectories", AttrValue::I64(nb as i64));
    let names: Vec<&str> = first.scalars.iter().map(|(n, _)| n.as_str()).collect();
    b.set_attr("simulation_parameters", strings(&names));
    for (name, v) in &first.scalars {
        b.set_attr(name, AttrValue::F64(*v));
    }

    let mut g = b.create_group("dimensions");
    g.set_attr("spatial_dims", strings(&dims));
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let ds = g.create_dataset("time").with_f32_data(&to32(&first.times));
    ds.set_attr("sample_varying", flag(false));
    ds.set_attr("time_varying", flag(true));
    for (name, c) in [("x", &first.x), ("y", &first.y)] {
        let ds = g.create_dataset(name).with_f32_data(&to32(c));
        ds.set_attr("sample_varying", flag(false));
        ds.set_attr("time_varying", flag(false));
    }
    b.add_group(g.finish());

    let bool_type = EnumTypeBuilder::with_base(make_i8_type())
        .value("FALSE", 0)
        .value("TRUE", 1)
        .build()
        .map_err(|e| WellError::hdf5(file, "/boundary_conditions", e.into()))?;
    let mut g = b.create_group("boundary_conditions");
    for (axis, (dim, n)) in [("x", nx), ("y", ny)].into_iter().enumerate() {
        let bc = first.boundaries[axis];
        let mut sub = g.create_group(&format!("{dim}_{}", bc.as_str().to_ascii_lowercase()));
        sub.set_attr("associated_dims", strings(&[dim]));
        sub.set_attr(
            "associated_fields",
            AttrValue::VarLenStringArray(Vec::new()),
        );
        sub.set_attr("bc_type", AttrValue::VarLenString(bc.as_str().into()));
        sub.set_attr("sample_varying", flag(false));
        sub.set_attr("time_varying", flag(false));
        // The condition acts on the first and last cells along its axis.
        let mask: Vec<u8> = (0..n).map(|i| u8::from(i == 0 || i + 1 == n)).collect();
        sub.create_dataset("mask")
            .with_enum_u8_data(bool_type.clone(), &mask);
        g.add_group(sub.finish());
    }
    b.add_group(g.finish());

    let mut g = b.create_group("scalars");
    g.set_attr("field_names", strings(&names));
    for (name, v) in &first.scalars {
        let ds = g.create_dataset(name).with_f64_data(&[*v]).with_shape(&[]);
        ds.set_attr("sample_varying", flag(false));
        ds.set_attr("time_varying", flag(false));
    }
    b.add_group(g.finish());

    let frame = nx * ny;
    let mut channel = 0;
    for (order, fields) in [
        (0usize, &first.t0_fields),
        (1, &first.t1_fields),
        (2, &Vec::new()),
    ] {
        let comps = 2usize.pow(order as u32);
        let mut g = b.create_group(&format!("t{order}_fields"));
        let names: Vec<&str> = fields.iter().map(String::as_str).collect();
        g.set_attr("field_names", strings(&names));
        for name in fields {
            let mut arr = Vec::with_capacity(nb * nt * frame * comps);
            for tr in trajectories {
                for cell in tr.data.chunks_exact(nc) {
                    arr.extend_from_slice(&cell[channel..channel + comps]);
                }
            }
            let mut shape = vec![nb as u64, nt as u64, nx as u64, ny as u64];
            shape.extend(std::iter::repeat_n(2u64, order));
            let ds = g
                .create_dataset(name)
                .with_f32_data(&arr)
                .with_shape(&shape);
            ds.set_attr("dim_varying", AttrValue::I8Array(vec![1, 1]));
            ds.set_attr("sample_varying", flag(true));
            ds.set_attr("time_varying", flag(true));
            channel += comps;
        }
        b.add_group(g.finish());
    }
    b.finish().map_err(|e| WellError::hdf5(file, "/", e))
}

/// Write trajectories to `path` as one Well-layout file.
///
/// The bytes go to a temporary file beside `path` that is renamed over it only once complete,
/// so an interrupted run never leaves a truncated `.hdf5` for a later reader to trip on.
pub fn write_file(path: impl AsRef<Path>, trajectories: &[&TrajectoryData]) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(path, trajectories)?;
    write_atomic(path, &bytes)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = PathBuf::from(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tmp.set_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(bytes)?;
        // Synced before the rename, so that a crash never leaves the final name pointing at
        // unwritten blocks.
        f.sync_all()
    });
    // The error names the file being written, not its hidden temporary; a partial temporary
    // (a full disk) is removed so it takes no space.
    written
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            WellError::io(path, e)
        })
}
