//! Reading Well files one frame at a time.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hdf5_pure::{AttrValue, Datatype, DatatypeByteOrder, Layout};

use crate::error::{Result, WellError};
use crate::format::{BoundaryCondition, BoundaryType, Field, Scalar, WellMeta};

/// The most bytes a stored array may decode to per byte of the file. Deflate, the filter
/// Well files use, cannot expand past about 1032:1; a shape or chunk that would decode to more
/// than this many times the whole file is corruption, and reading it would allocate a buffer
/// sized by an unchecked number from the file.
const MAX_EXPANSION: u64 = 1032;

/// Checks that `elements` values of `elem_size` bytes (computed with checked arithmetic) could
/// come from a file of `len` bytes, before anything of that size is allocated.
fn check_decoded(
    file: &Path,
    path: &str,
    what: &str,
    elements: Option<u64>,
    elem_size: u64,
    len: u64,
) -> Result<()> {
    let bytes = elements.and_then(|n| n.checked_mul(elem_size));
    let most = len.saturating_mul(MAX_EXPANSION);
    match bytes {
        Some(b) if b <= most => Ok(()),
        _ => Err(WellError::invalid(
            file,
            path,
            format!(
                "{what} of {} bytes, more than a {len}-byte file can hold (at most {most})",
                bytes.map_or("more than 2^64".into(), |b| b.to_string())
            ),
        )),
    }
}

/// The product of `dims`, `None` past 2^64.
fn product(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

/// For a chunked dataset: every chunk's stored bytes lie inside the file and its decoded
/// size is bounded by it (hdf5-pure sizes its read and decode buffers from these numbers).
fn check_chunks(
    file: &Path,
    path: &str,
    ds: &hdf5_pure::Dataset,
    elem: u64,
    len: u64,
) -> Result<()> {
    let Some(shape) = ds
        .chunk_shape()
        .map_err(|e| WellError::hdf5(file, path, e))?
    else {
        return Ok(());
    };
    if shape.contains(&0) {
        return Err(WellError::invalid(
            file,
            path,
            format!("chunk shape {shape:?} has an empty axis"),
        ));
    }
    check_decoded(file, path, "a chunk", product(&shape), elem, len)?;
    // Chunks whose index cannot be enumerated (B-tree v2) are read through hdf5-pure's own
    // checks only.
    let Ok(chunks) = ds.chunks() else {
        return Ok(());
    };
    for c in chunks {
        match c.address.checked_add(c.storage_size) {
            Some(end) if end <= len => {}
            end => {
                return Err(WellError::Truncated {
                    file: file.to_path_buf(),
                    path: path.to_string(),
                    needed: end.unwrap_or(u64::MAX),
                    len,
                });
            }
        }
    }
    Ok(())
}

/// Where the raw bytes of a contiguous dataset come from.
enum Backing {
    /// A second handle beside hdf5-pure's streaming reader: frames are read with one seek
    /// and one read, without asking the HDF5 layer to materialise anything bigger.
    Disk {
        file: Mutex<std::fs::File>,
        len: u64,
    },
    /// The whole file is already in memory (the browser build hands us bytes).
    Memory,
}

#[derive(Clone, Copy)]
enum Elem {
    F32(bool),
    F64(bool),
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::F32(_) => 4,
            Elem::F64(_) => 8,
        }
    }

    fn decode(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            Elem::F32(big) => out.extend(bytes.chunks_exact(4).map(|b| {
                let a = [b[0], b[1], b[2], b[3]];
                if big {
                    f32::from_be_bytes(a)
                } else {
                    f32::from_le_bytes(a)
                }
            })),
            Elem::F64(big) => out.extend(bytes.chunks_exact(8).map(|b| {
                let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                (if big {
                    f64::from_be_bytes(a)
                } else {
                    f64::from_le_bytes(a)
                }) as f32
            })),
        }
    }
}

enum Storage {
    Contiguous(u64),
    /// Chunked or compact: hdf5-pure decodes the leading-dimension row holding the frame
    /// (one trajectory at most); the last row read is kept because windows read consecutive
    /// frames of the same trajectory.
    Rows(Mutex<Option<(u64, Vec<u8>)>>),
}

struct FieldStore {
    path: String,
    components: usize,
    sample_varying: bool,
    time_varying: bool,
    elem: Elem,
    storage: Storage,
}

/// An open Well-layout HDF5 file.
///
/// Opening reads only metadata; [`read_frame`](WellFile::read_frame) reads one
/// (trajectory, time) frame, so files far larger than memory (The Well's are hundreds of
/// gigabytes) are fine.
pub struct WellFile {
    path: PathBuf,
    h5: hdf5_pure::File,
    backing: Backing,
    meta: WellMeta,
    stores: Vec<FieldStore>,
}

impl std::fmt::Debug for WellFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WellFile")
            .field("path", &self.path)
            .finish()
    }
}

impl WellFile {
    /// Open a file on disk without reading its data.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let raw = std::fs::File::open(&path).map_err(|e| WellError::io(&path, e))?;
        let len = raw.metadata().map_err(|e| WellError::io(&path, e))?.len();
        let h5 =
            hdf5_pure::File::open_streaming(&path).map_err(|e| WellError::hdf5(&path, "/", e))?;
        let backing = Backing::Disk {
            file: Mutex::new(raw),
            len,
        };
        Self::parse(path, h5, backing)
    }

    /// Open a file held in memory; `name` is only used in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        let path = name.into();
        let h5 = hdf5_pure::File::from_bytes(bytes).map_err(|e| WellError::hdf5(&path, "/", e))?;
        Self::parse(path, h5, Backing::Memory)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta(&self) -> &WellMeta {
        &self.meta
    }

    fn file_len(&self) -> u64 {
        match &self.backing {
            Backing::Disk { len, .. } => *len,
            Backing::Memory => self.h5.as_bytes().len() as u64,
        }
    }

    fn parse(path: PathBuf, h5: hdf5_pure::File, backing: Backing) -> Result<Self> {
        let p = path.as_path();
        // hdf5-pure skips attributes it cannot decode, so a cut-off file would otherwise
        // surface as a confusing "missing attribute"; the superblock records the true length.
        let len = match &backing {
            Backing::Disk { len, .. } => *len,
            Backing::Memory => h5.as_bytes().len() as u64,
        };
        let eof = h5.superblock().eof_address;
        if len < eof {
            return Err(WellError::Truncated {
                file: path.clone(),
                path: "/".into(),
                needed: eof,
                len,
            });
        }
        let root = h5.root();
        let attrs = root.attrs().map_err(|e| WellError::hdf5(p, "/", e))?;
        let dataset_name = attr_string(p, &attrs, "/", "dataset_name")?;
        let grid_type = attr_string(p, &attrs, "/", "grid_type")?;
        let n_spatial_dims = attr_usize(p, &attrs, "/", "n_spatial_dims")?;
        let n_trajectories = attr_usize(p, &attrs, "/", "n_trajectories")?;
        let mut simulation_parameters = Vec::new();
        for name in attr_strings(p, &attrs, "/", "simulation_parameters")? {
            let v = attr_f64(p, &attrs, "/", &name)?;
            simulation_parameters.push((name, v));
        }

        let group = |name: &str| {
            h5.group(name).map_err(|e| match e {
                e if not_found(&e) => WellError::missing(p, &format!("/{name}")),
                e => WellError::hdf5(p, &format!("/{name}"), e),
            })
        };

        let dims = group("dimensions")?;
        let dims_attrs = dims
            .attrs()
            .map_err(|e| WellError::hdf5(p, "/dimensions", e))?;
        let spatial_dims = attr_strings(p, &dims_attrs, "/dimensions", "spatial_dims")?;
        if spatial_dims.len() != n_spatial_dims {
            return Err(WellError::invalid(
                p,
                "/dimensions@spatial_dims",
                format!(
                    "{} names for n_spatial_dims = {n_spatial_dims}",
                    spatial_dims.len()
                ),
            ));
        }
        let read_vec = |ds_path: &str| -> Result<Vec<f64>> {
            let ds = h5.dataset(ds_path).map_err(|e| match e {
                e if not_found(&e) => WellError::missing(p, ds_path),
                e => WellError::hdf5(p, ds_path, e),
            })?;
            let shape = ds.shape().map_err(|e| WellError::hdf5(p, ds_path, e))?;
            check_decoded(p, ds_path, "an array", product(&shape), 8, len)?;
            check_chunks(p, ds_path, &ds, 8, len)?;
            let v = ds.read_f64().map_err(|e| WellError::hdf5(p, ds_path, e))?;
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(WellError::NonFinite {
                    file: p.to_path_buf(),
                    path: ds_path.to_string(),
                    index: i,
                });
            }
            Ok(v)
        };
        let time = read_vec("/dimensions/time")?;
        let mut coords = Vec::new();
        for d in &spatial_dims {
            coords.push(read_vec(&format!("/dimensions/{d}"))?);
        }

        let bcs = group("boundary_conditions")?;
        let mut boundary_conditions = Vec::new();
        for name in bcs
            .groups()
            .map_err(|e| WellError::hdf5(p, "/boundary_conditions", e))?
        {
            let gpath = format!("/boundary_conditions/{name}");
            let g = h5
                .group(&gpath)
                .map_err(|e| WellError::hdf5(p, &gpath, e))?;
            let a = g.attrs().map_err(|e| WellError::hdf5(p, &gpath, e))?;
            let kind = attr_string(p, &a, &gpath, "bc_type")?;
            let bc_type = BoundaryType::parse(&kind).ok_or_else(|| {
                WellError::invalid(
                    p,
                    &format!("{gpath}@bc_type"),
                    format!("unknown bc_type {kind:?}"),
                )
            })?;
            let dims = match a.get("associated_dims") {
                Some(_) => attr_strings(p, &a, &gpath, "associated_dims")?,
                None => vec![name.split('_').next().unwrap_or_default().to_string()],
            };
            let mask_path = format!("{gpath}/mask");
            let mask = match h5.dataset(&mask_path) {
                Ok(ds) => {
                    let shape = ds.shape().map_err(|e| WellError::hdf5(p, &mask_path, e))?;
                    let size = ds
                        .element_size()
                        .map_err(|e| WellError::hdf5(p, &mask_path, e))?;
                    check_decoded(p, &mask_path, "a mask", product(&shape), size, len)?;
                    check_chunks(p, &mask_path, &ds, size, len)?;
                    ds.read_raw()
                        .map_err(|e| WellError::hdf5(p, &mask_path, e))?
                        .iter()
                        .map(|&b| b != 0)
                        .collect()
                }
                Err(e) if not_found(&e) => Vec::new(),
                Err(e) => return Err(WellError::hdf5(p, &mask_path, e)),
            };
            boundary_conditions.push(BoundaryCondition {
                name,
                dims,
                bc_type,
                mask,
            });
        }

        let sc = group("scalars")?;
        let sc_attrs = sc.attrs().map_err(|e| WellError::hdf5(p, "/scalars", e))?;
        let mut scalars = Vec::new();
        for name in attr_strings(p, &sc_attrs, "/scalars", "field_names")? {
            let spath = format!("/scalars/{name}");
            let values = read_vec(&spath)?;
            let ds = h5
                .dataset(&spath)
                .map_err(|e| WellError::hdf5(p, &spath, e))?;
            let a = ds.attrs().map_err(|e| WellError::hdf5(p, &spath, e))?;
            scalars.push(Scalar {
                name,
                values,
                time_varying: attr_bool(&a, "time_varying").unwrap_or(false),
                sample_varying: attr_bool(&a, "sample_varying").unwrap_or(false),
            });
        }

        let spatial: Vec<u64> = coords.iter().map(|c| c.len() as u64).collect();
        let mut fields = Vec::new();
        let mut stores = Vec::new();
        for order in 0..3usize {
            let gname = format!("t{order}_fields");
            let g = group(&gname)?;
            let gpath = format!("/{gname}");
            let ga = g.attrs().map_err(|e| WellError::hdf5(p, &gpath, e))?;
            for name in attr_strings(p, &ga, &gpath, "field_names")? {
                let fpath = format!("{gpath}/{name}");
                let ds = h5.dataset(&fpath).map_err(|e| match e {
                    e if not_found(&e) => WellError::missing(p, &fpath),
                    e => WellError::hdf5(p, &fpath, e),
                })?;
                let a = ds.attrs().map_err(|e| WellError::hdf5(p, &fpath, e))?;
                let sample_varying = attr_bool(&a, "sample_varying").unwrap_or(true);
                let time_varying = attr_bool(&a, "time_varying").unwrap_or(true);
                if a.get("dim_varying")
                    .and_then(as_f64_array)
                    .is_some_and(|v| v.contains(&0.0))
                {
                    return Err(WellError::invalid(
                        p,
                        &fpath,
                        "fields constant along a spatial axis (dim_varying false) are not supported",
                    ));
                }
                let mut expected = Vec::new();
                if sample_varying {
                    expected.push(n_trajectories as u64);
                }
                if time_varying {
                    expected.push(time.len() as u64);
                }
                expected.extend(&spatial);
                expected.extend(std::iter::repeat_n(n_spatial_dims as u64, order));
                let found = ds.shape().map_err(|e| WellError::hdf5(p, &fpath, e))?;
                if found != expected {
                    return Err(WellError::Shape {
                        file: p.to_path_buf(),
                        path: fpath,
                        expected,
                        found,
                    });
                }
                let elem = match ds.datatype().map_err(|e| WellError::hdf5(p, &fpath, e))? {
                    Datatype::FloatingPoint {
                        size, byte_order, ..
                    } => {
                        let big = byte_order == DatatypeByteOrder::BigEndian;
                        match size {
                            4 => Elem::F32(big),
                            8 => Elem::F64(big),
                            _ => {
                                return Err(WellError::invalid(
                                    p,
                                    &fpath,
                                    format!("{size}-byte floats"),
                                ));
                            }
                        }
                    }
                    other => {
                        return Err(WellError::invalid(
                            p,
                            &fpath,
                            format!("expected floats, found {other:?}"),
                        ));
                    }
                };
                let storage = match ds.layout().map_err(|e| WellError::hdf5(p, &fpath, e))? {
                    Layout::Contiguous {
                        address: Some(address),
                        size,
                    } => {
                        // The declared extent must be exactly the shape's bytes, or frames
                        // would be read from whatever neighbours the array.
                        let want = found
                            .iter()
                            .try_fold(elem.size() as u64, |acc, &d| acc.checked_mul(d));
                        if want != Some(size) {
                            return Err(WellError::invalid(
                                p,
                                &fpath,
                                format!(
                                    "contiguous storage of {size} bytes, but shape {found:?} of \
                                     {}-byte floats needs {}",
                                    elem.size(),
                                    want.map_or("more than 2^64".into(), |w| w.to_string())
                                ),
                            ));
                        }
                        let Some(needed) = address.checked_add(size) else {
                            return Err(WellError::invalid(
                                p,
                                &fpath,
                                format!(
                                    "contiguous storage at byte {address} of {size} bytes \
                                     ends past 2^64"
                                ),
                            ));
                        };
                        if needed > len {
                            return Err(WellError::Truncated {
                                file: p.to_path_buf(),
                                path: fpath,
                                needed,
                                len,
                            });
                        }
                        Storage::Contiguous(address)
                    }
                    Layout::Contiguous { address: None, .. } => {
                        return Err(WellError::invalid(p, &fpath, "storage never written"));
                    }
                    _ => {
                        // What one read decodes: a leading-dimension row, or the whole
                        // array when it varies neither between samples nor in time.
                        let row = if sample_varying || time_varying {
                            product(&found[1..])
                        } else {
                            product(&found)
                        };
                        check_decoded(p, &fpath, "a row", row, elem.size() as u64, len)?;
                        check_chunks(p, &fpath, &ds, elem.size() as u64, len)?;
                        Storage::Rows(Mutex::new(None))
                    }
                };
                stores.push(FieldStore {
                    path: fpath,
                    components: n_spatial_dims.pow(order as u32),
                    sample_varying,
                    time_varying,
                    elem,
                    storage,
                });
                fields.push(Field { name, order });
            }
        }

        // A field that varies between samples ties n_trajectories to its shape (and so to
        // the bytes the file holds); without one, every trajectory is the same data and the
        // attribute alone would set how much work a reader does. Bound it by what the file
        // could hold were each trajectory stored: one trajectory's bytes each.
        if !stores.iter().any(|s| s.sample_varying) {
            let frames = |s: &FieldStore| if s.time_varying { time.len() } else { 1 };
            let frame_points = spatial.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let per_traj = stores.iter().try_fold(0u64, |acc, s| {
                let bytes = frame_points?
                    .checked_mul(s.components as u64)?
                    .checked_mul(s.elem.size() as u64)?
                    .checked_mul(frames(s) as u64)?;
                acc.checked_add(bytes)
            });
            let most = per_traj.map_or(0, |b| len / b.max(1));
            if n_trajectories as u64 > most {
                return Err(WellError::invalid(
                    p,
                    "/@n_trajectories",
                    format!(
                        "{n_trajectories} trajectories, but no field varies between samples \
                         and the file ({len} bytes) could hold at most {most}"
                    ),
                ));
            }
        }

        let meta = WellMeta {
            dataset_name,
            grid_type,
            n_spatial_dims,
            n_trajectories,
            spatial_dims,
            time,
            coords,
            fields,
            scalars,
            simulation_parameters,
            boundary_conditions,
        };
        Ok(WellFile {
            path,
            h5,
            backing,
            meta,
            stores,
        })
    }

    /// Read frame `t` of trajectory `traj`, every channel, as `[C, X, Y]` (channels first,
    /// then the spatial axes in `spatial_dims` order, row-major). Channel order is
    /// [`WellMeta::channel_names`].
    pub fn read_frame(&self, traj: usize, t: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.meta.n_channels() * self.meta.frame_points());
        self.read_frame_into(traj, t, &mut out)?;
        Ok(out)
    }

    /// [`read_frame`](Self::read_frame), appending to `out`.
    pub fn read_frame_into(&self, traj: usize, t: usize, out: &mut Vec<f32>) -> Result<()> {
        let (nb, nt) = (self.meta.n_trajectories, self.meta.n_steps());
        if traj >= nb || t >= nt {
            return Err(WellError::invalid(
                &self.path,
                "/",
                format!("frame (trajectory {traj}, time {t}) outside {nb} x {nt}"),
            ));
        }
        let points = self.meta.frame_points();
        let mut block = Vec::new();
        for store in &self.stores {
            let elems = points * store.components;
            let b = if store.sample_varying { traj } else { 0 };
            let tt = if store.time_varying { t } else { 0 };
            let per_traj = if store.time_varying { nt } else { 1 };
            let block_index = b * per_traj + tt;
            let bytes = self.block_bytes(store, block_index, per_traj, elems)?;
            block.clear();
            store.elem.decode(&bytes, &mut block);
            if let Some(i) = block.iter().position(|v| !v.is_finite()) {
                return Err(WellError::NonFinite {
                    file: self.path.clone(),
                    path: store.path.clone(),
                    index: block_index * elems + i,
                });
            }
            // Storage interleaves components last; consumers want one plane per channel.
            for c in 0..store.components {
                out.extend(block.iter().skip(c).step_by(store.components));
            }
        }
        Ok(())
    }

    fn block_bytes(
        &self,
        store: &FieldStore,
        block_index: usize,
        per_traj: usize,
        elems: usize,
    ) -> Result<Vec<u8>> {
        let esize = store.elem.size();
        let nbytes = elems * esize;
        match &store.storage {
            Storage::Contiguous(address) => {
                let offset = address + (block_index * nbytes) as u64;
                let mut buf = vec![0u8; nbytes];
                match &self.backing {
                    Backing::Disk { file, .. } => {
                        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                        f.seek(SeekFrom::Start(offset))
                            .and_then(|_| f.read_exact(&mut buf))
                            .map_err(|_| WellError::Truncated {
                                file: self.path.clone(),
                                path: store.path.clone(),
                                needed: offset + nbytes as u64,
                                len: self.file_len(),
                            })?;
                    }
                    Backing::Memory => {
                        let bytes = self.h5.as_bytes();
                        let src = bytes
                            .get(offset as usize..offset as usize + nbytes)
                            .ok_or_else(|| WellError::Truncated {
                                file: self.path.clone(),
                                path: store.path.clone(),
                                needed: offset + nbytes as u64,
                                len: bytes.len() as u64,
                            })?;
                        buf.copy_from_slice(src);
                    }
                }
                Ok(buf)
            }
            Storage::Rows(cache) => {
                // The leading dimension is the trajectory when the field varies between
                // samples, else time, else the field is a single frame.
                let (row, within) = if store.sample_varying {
                    (block_index / per_traj, block_index % per_traj)
                } else {
                    (block_index, 0)
                };
                let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
                let hit = matches!(&*guard, Some((r, _)) if *r == row as u64);
                if !hit {
                    let ds = self
                        .h5
                        .dataset(&store.path)
                        .map_err(|e| WellError::hdf5(&self.path, &store.path, e))?;
                    let rows = if store.sample_varying || store.time_varying {
                        ds.read_raw_rows(row as u64, 1)
                    } else {
                        ds.read_raw()
                    }
                    .map_err(|e| WellError::hdf5(&self.path, &store.path, e))?;
                    *guard = Some((row as u64, rows));
                }
                let rows = &guard.as_ref().map(|(_, r)| r).expect("filled above");
                rows.get(within * nbytes..(within + 1) * nbytes)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| WellError::Truncated {
                        file: self.path.clone(),
                        path: store.path.clone(),
                        needed: ((within + 1) * nbytes) as u64,
                        len: rows.len() as u64,
                    })
            }
        }
    }
}

fn not_found(e: &hdf5_pure::Error) -> bool {
    matches!(
        e,
        hdf5_pure::Error::Format(hdf5_pure::FormatError::PathNotFound(..))
    )
}

/// h5py writes numpy bools as an 8-bit enum, which hdf5-pure decodes through its base type,
/// so any integer array is accepted.
fn as_f64_array(v: &AttrValue) -> Option<Vec<f64>> {
    Some(match v {
        AttrValue::I8Array(a) => a.iter().map(|&x| f64::from(x)).collect(),
        AttrValue::U8Array(a) => a.iter().map(|&x| f64::from(x)).collect(),
        AttrValue::I32Array(a) => a.iter().map(|&x| f64::from(x)).collect(),
        AttrValue::I64Array(a) => a.iter().map(|&x| x as f64).collect(),
        _ => return None,
    })
}

fn attr_missing(file: &Path, group: &str, name: &str) -> WellError {
    WellError::missing(file, &format!("{}@{name}", group.trim_end_matches('/')))
}

pub(crate) fn attr_strings(
    file: &Path,
    attrs: &HashMap<String, AttrValue>,
    group: &str,
    name: &str,
) -> Result<Vec<String>> {
    let v = attrs
        .get(name)
        .ok_or_else(|| attr_missing(file, group, name))?;
    match v {
        AttrValue::StringArray(s)
        | AttrValue::AsciiStringArray(s)
        | AttrValue::VarLenAsciiCharArray(s)
        | AttrValue::VarLenStringArray(s)
        | AttrValue::VarLenAsciiStringArray(s)
        | AttrValue::StringArraySized { values: s, .. }
        | AttrValue::AsciiStringArraySized { values: s, .. } => Ok(s.clone()),
        // An empty list written by h5py has no string type to carry.
        AttrValue::F64Array(a) if a.is_empty() => Ok(Vec::new()),
        AttrValue::F32Array(a) if a.is_empty() => Ok(Vec::new()),
        other => match as_string(other) {
            Some(s) => Ok(vec![s]),
            None => Err(WellError::invalid(
                file,
                &format!("{group}@{name}"),
                format!("expected a list of strings, found {other:?}"),
            )),
        },
    }
}

fn as_string(v: &AttrValue) -> Option<String> {
    match v {
        AttrValue::String(s)
        | AttrValue::AsciiString(s)
        | AttrValue::VarLenString(s)
        | AttrValue::VarLenAsciiString(s)
        | AttrValue::StringSized { value: s, .. }
        | AttrValue::AsciiStringSized { value: s, .. } => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn attr_string(
    file: &Path,
    attrs: &HashMap<String, AttrValue>,
    group: &str,
    name: &str,
) -> Result<String> {
    let v = attrs
        .get(name)
        .ok_or_else(|| attr_missing(file, group, name))?;
    as_string(v).ok_or_else(|| {
        WellError::invalid(
            file,
            &format!("{group}@{name}"),
            format!("expected a string, found {v:?}"),
        )
    })
}

fn as_f64(v: &AttrValue) -> Option<f64> {
    Some(match v {
        AttrValue::F32(x) => f64::from(*x),
        AttrValue::F64(x) => *x,
        AttrValue::I8(x) => f64::from(*x),
        AttrValue::I16(x) => f64::from(*x),
        AttrValue::I32(x) => f64::from(*x),
        AttrValue::I64(x) => *x as f64,
        AttrValue::U8(x) => f64::from(*x),
        AttrValue::U16(x) => f64::from(*x),
        AttrValue::U32(x) => f64::from(*x),
        AttrValue::U64(x) => *x as f64,
        AttrValue::F64Array(a) if a.len() == 1 => a[0],
        AttrValue::F32Array(a) if a.len() == 1 => f64::from(a[0]),
        AttrValue::I64Array(a) if a.len() == 1 => a[0] as f64,
        AttrValue::I32Array(a) if a.len() == 1 => f64::from(a[0]),
        _ => return None,
    })
}

pub(crate) fn attr_f64(
    file: &Path,
    attrs: &HashMap<String, AttrValue>,
    group: &str,
    name: &str,
) -> Result<f64> {
    let v = attrs
        .get(name)
        .ok_or_else(|| attr_missing(file, group, name))?;
    let x = as_f64(v).ok_or_else(|| {
        WellError::invalid(
            file,
            &format!("{group}@{name}"),
            format!("expected a number, found {v:?}"),
        )
    })?;
    if !x.is_finite() {
        return Err(WellError::NonFinite {
            file: file.to_path_buf(),
            path: format!("{group}@{name}"),
            index: 0,
        });
    }
    Ok(x)
}

fn attr_usize(
    file: &Path,
    attrs: &HashMap<String, AttrValue>,
    group: &str,
    name: &str,
) -> Result<usize> {
    let x = attr_f64(file, attrs, group, name)?;
    // Past 2^53 a float no longer counts exactly (and past usize::MAX `as` would clamp): no
    // real count is that large, so such a value is corruption, not a size to trust.
    const MAX_COUNT: f64 = (1u64 << 53) as f64;
    if x > MAX_COUNT {
        return Err(WellError::invalid(
            file,
            &format!("{group}@{name}"),
            format!("expected a count, found {x:e} (more than 2^53)"),
        ));
    }
    if x < 0.0 || x.fract() != 0.0 {
        return Err(WellError::invalid(
            file,
            &format!("{group}@{name}"),
            format!("expected a count, found {x}"),
        ));
    }
    Ok(x as usize)
}

fn attr_bool(attrs: &HashMap<String, AttrValue>, name: &str) -> Option<bool> {
    attrs.get(name).and_then(as_f64).map(|x| x != 0.0)
}
