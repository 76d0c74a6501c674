//! Training datasets over a Well-layout directory.
//!
//! # Conventions
//!
//! - Directory: `<root>/data/{train,valid,test}/*.hdf5` (a `root` that is itself the `data`
//!   directory is accepted too), statistics in `<root>/stats.json`.
//! - A window is `L` frames `t0, t0 + s, ..., t0 + (L-1) s` of one trajectory (`s` the
//!   stride, frames apart in time); every start `t0` with the last frame inside the
//!   trajectory is a window, so windows overlap.
//! - Window data is `[L, C, H, W]` `f32`, channels first per frame: **H is the x axis** (the
//!   first spatial dimension of the file) and **W the y axis**, so `data[((l*C + c)*H + x)*W + y]`.
//!   Channels follow [`WellMeta::channel_names`]: t0 fields, then vector components in
//!   `spatial_dims` order.
//! - Each channel is transformed ([`Transform`]) then standardised with the training split's
//!   statistics. Components of a vector or tensor field share one scale and have mean zero, so
//!   that flips (which negate a component) and axis swaps (which exchange components) commute
//!   with normalisation.
//! - Labels: the file's constant scalars in `scalars@field_names` order (natural log for
//!   Rayleigh and Prandtl numbers, which span decades), then one boundary code per axis
//!   (WALL = 0, OPEN = 1, PERIODIC = 2).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, WellError};
use crate::format::{BoundaryType, WellMeta};
use crate::read::WellFile;
use crate::write::write_atomic;

/// Split names, in the order counts are given by [`split_counts`].
pub const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// 80/10/10 by trajectory: validation and test each get a tenth (rounded, and at least one
/// once there are three trajectories, so every split exists), training the rest.
pub fn split_counts(n: usize) -> [usize; 3] {
    if n < 3 {
        return [n, 0, 0];
    }
    let tenth = ((n as f64 / 10.0).round() as usize).max(1);
    [n - 2 * tenth, tenth, tenth]
}

/// The directory holding the split directories.
pub fn data_dir(root: &Path) -> PathBuf {
    let data = root.join("data");
    if data.is_dir() {
        data
    } else {
        root.to_path_buf()
    }
}

/// The `.hdf5` files of one split, sorted by name; none when the split directory is absent.
pub fn split_files(root: &Path, split: &str) -> Result<Vec<PathBuf>> {
    let dir = data_dir(root).join(split);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| WellError::io(&dir, e))? {
        let path = entry.map_err(|e| WellError::io(&dir, e))?.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if matches!(ext, Some("hdf5" | "h5")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A pointwise transform applied before standardisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    Identity,
    /// `ln(1 + v)`: for positive fields spanning orders of magnitude.
    Log1p,
}

impl Transform {
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Transform::Identity => v,
            Transform::Log1p => v.ln_1p(),
        }
    }

    pub fn invert(self, v: f32) -> f32 {
        match self {
            Transform::Identity => v,
            Transform::Log1p => v.exp_m1(),
        }
    }
}

/// The transform of every channel: `log1p` on energy, density and pressure for the Euler
/// datasets (positive, heavy-tailed), identity elsewhere.
pub fn default_transforms(meta: &WellMeta) -> Vec<Transform> {
    let euler = meta.dataset_name.starts_with("euler");
    let fields = meta.channel_fields();
    fields
        .iter()
        .map(|&(f, _)| {
            let field = &meta.fields[f];
            if euler
                && field.order == 0
                && matches!(field.name.as_str(), "energy" | "density" | "pressure")
            {
                Transform::Log1p
            } else {
                Transform::Identity
            }
        })
        .collect()
}

/// Normalisation statistics, computed from the training split and stored in `stats.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub dataset_name: String,
    pub channels: Vec<String>,
    pub transforms: Vec<Transform>,
    /// Per channel, after the transform.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Frames the statistics were computed from.
    pub frames: u64,
}

impl Stats {
    /// Statistics over every frame of every trajectory of `files` (the training split).
    pub fn compute(files: &[WellFile]) -> Result<Stats> {
        let first = files.first().ok_or_else(|| {
            WellError::invalid(
                Path::new("train"),
                "/",
                "no training files to compute statistics from",
            )
        })?;
        let meta = first.meta();
        let transforms = default_transforms(meta);
        let nc = meta.n_channels();
        let (mut sum, mut sq) = (vec![0.0f64; nc], vec![0.0f64; nc]);
        let mut points = 0u64;
        let mut frames = 0u64;
        let mut buf = Vec::new();
        for f in files {
            if f.meta().channel_names() != meta.channel_names()
                || f.meta().spatial_shape() != meta.spatial_shape()
            {
                return Err(WellError::invalid(
                    f.path(),
                    "/",
                    "fields or grid differ from the rest of the split",
                ));
            }
            let m = f.meta();
            let plane = m.frame_points();
            for traj in 0..m.n_trajectories {
                for t in 0..m.n_steps() {
                    buf.clear();
                    f.read_frame_into(traj, t, &mut buf)?;
                    for c in 0..nc {
                        for &v in &buf[c * plane..(c + 1) * plane] {
                            let v = f64::from(transforms[c].apply(v));
                            sum[c] += v;
                            sq[c] += v * v;
                        }
                    }
                    points += plane as u64;
                    frames += 1;
                }
            }
        }
        let n = points.max(1) as f64;
        let mut mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut std: Vec<f64> = (0..nc)
            .map(|c| (sq[c] / n - mean[c] * mean[c]).max(0.0).sqrt())
            .collect();
        // Components of one vector/tensor field: zero mean, one shared root-mean-square scale.
        let fields = meta.channel_fields();
        for (fi, field) in meta.fields.iter().enumerate() {
            if field.order == 0 {
                continue;
            }
            let chans: Vec<usize> = (0..nc).filter(|&c| fields[c].0 == fi).collect();
            let rms = (chans.iter().map(|&c| sq[c] / n).sum::<f64>() / chans.len() as f64).sqrt();
            for &c in &chans {
                mean[c] = 0.0;
                std[c] = rms;
            }
        }
        // A constant channel would divide by zero; leave it centred but unscaled.
        for s in &mut std {
            if *s < 1e-12 {
                *s = 1.0;
            }
        }
        Ok(Stats {
            dataset_name: meta.dataset_name.clone(),
            channels: meta.channel_names(),
            transforms,
            mean,
            std,
            frames,
        })
    }

    pub fn path(root: &Path) -> PathBuf {
        root.join("stats.json")
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        let path = Self::path(root);
        let json = serde_json::to_vec_pretty(self).map_err(|e| WellError::Json {
            file: path.clone(),
            source: e,
        })?;
        write_atomic(&path, &json)
    }

    pub fn load(root: &Path) -> Result<Stats> {
        let path = Self::path(root);
        let bytes = std::fs::read(&path).map_err(|e| WellError::io(&path, e))?;
        Self::from_json(&bytes, &path)
    }

    /// Parses and validates the contents of a `stats.json`; `file` names it in errors.
    pub fn from_json(bytes: &[u8], file: &Path) -> Result<Stats> {
        let stats: Stats = serde_json::from_slice(bytes).map_err(|e| WellError::Json {
            file: file.to_path_buf(),
            source: e,
        })?;
        stats.validate(file)?;
        Ok(stats)
    }

    /// Checks what [`normalise`](Self::normalise) relies on: at least one channel, one
    /// transform, mean and std per channel, finite means and finite positive stds (as
    /// [`compute`](Self::compute) writes them). `file` names the source in the error.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let nc = self.channels.len();
        let bad = |reason: String| Err(WellError::invalid(file, "stats", reason));
        if nc == 0 {
            return bad("no channels".into());
        }
        if (self.transforms.len(), self.mean.len(), self.std.len()) != (nc, nc, nc) {
            return bad(format!(
                "{nc} channels but {} transforms, {} means and {} stds",
                self.transforms.len(),
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(c) = (0..nc).find(|&c| !self.mean[c].is_finite()) {
            return bad(format!(
                "channel {:?}: mean {} is not finite",
                self.channels[c], self.mean[c]
            ));
        }
        if let Some(c) = (0..nc).find(|&c| !(self.std[c].is_finite() && self.std[c] > 0.0)) {
            return bad(format!(
                "channel {:?}: std {} is not a finite positive number",
                self.channels[c], self.std[c]
            ));
        }
        Ok(())
    }

    /// Transform and standardise a `[.., C, points]` buffer in place.
    pub fn normalise(&self, data: &mut [f32], points: usize) {
        let nc = self.mean.len();
        for (i, plane) in data.chunks_exact_mut(points).enumerate() {
            let c = i % nc;
            let (t, m, s) = (self.transforms[c], self.mean[c], self.std[c]);
            for v in plane {
                *v = ((f64::from(t.apply(*v)) - m) / s) as f32;
            }
        }
    }

    /// The inverse of [`normalise`](Self::normalise).
    pub fn denormalise(&self, data: &mut [f32], points: usize) {
        let nc = self.mean.len();
        for (i, plane) in data.chunks_exact_mut(points).enumerate() {
            let c = i % nc;
            let (t, m, s) = (self.transforms[c], self.mean[c], self.std[c]);
            for v in plane {
                *v = t.invert((f64::from(*v) * s + m) as f32);
            }
        }
    }
}

/// Compute the training split's statistics and store them beside the splits.
pub fn write_stats(root: &Path) -> Result<Stats> {
    let files = split_files(root, "train")?
        .into_iter()
        .map(WellFile::open)
        .collect::<Result<Vec<_>>>()?;
    let stats = Stats::compute(&files)?;
    stats.save(root)?;
    Ok(stats)
}

/// Conditioning labels of a file, see the module docs.
pub fn labels(meta: &WellMeta) -> Vec<f32> {
    let mut out: Vec<f32> = meta
        .constant_scalars()
        .iter()
        .map(|(name, v)| {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("rayleigh") || lower.starts_with("prandtl") {
                v.ln() as f32
            } else {
                *v as f32
            }
        })
        .collect();
    for axis in 0..meta.n_spatial_dims {
        out.push(
            meta.axis_boundary(axis)
                .map_or(BoundaryType::Open.code(), BoundaryType::code),
        );
    }
    out
}

/// Window length and stride between its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub length: usize,
    pub stride: usize,
}

impl Default for WindowSpec {
    /// L = 5 frames, 4 steps apart (the paper's setting).
    fn default() -> Self {
        WindowSpec {
            length: 5,
            stride: 4,
        }
    }
}

/// The symmetries of a dataset that augmentation may use.
///
/// - Flip along an axis unless its boundary is a wall: The Well's walls carry imposed,
///   generally different values at the two ends (Rayleigh-Bénard is heated from below), so
///   mirroring would produce unphysical data.
/// - Swap the two axes only on a square grid whose axes have the same boundary type.
/// - Roll (circular shift) only along periodic axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symmetries {
    pub flip: [bool; 2],
    pub transpose: bool,
    pub roll: [bool; 2],
}

impl Symmetries {
    pub fn of(meta: &WellMeta) -> Self {
        let bc = [meta.axis_boundary(0), meta.axis_boundary(1)];
        let shape = meta.spatial_shape();
        Symmetries {
            flip: bc.map(|b| b != Some(BoundaryType::Wall)),
            transpose: shape.len() == 2 && shape[0] == shape[1] && bc[0] == bc[1],
            roll: bc.map(|b| b == Some(BoundaryType::Periodic)),
        }
    }
}

/// One concrete augmentation: swap axes, then flip, then roll by `roll` cells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    pub transpose: bool,
    pub flip: [bool; 2],
    pub roll: [usize; 2],
}

impl Augment {
    /// Draw uniformly among the allowed symmetries.
    pub fn random(sym: Symmetries, shape: [usize; 2], rng: &mut SplitMix64) -> Self {
        Augment {
            transpose: sym.transpose && rng.next_u64() & 1 == 1,
            flip: [0, 1].map(|a| sym.flip[a] && rng.next_u64() & 1 == 1),
            roll: [0, 1].map(|a| {
                if sym.roll[a] {
                    (rng.next_u64() % shape[a] as u64) as usize
                } else {
                    0
                }
            }),
        }
    }

    /// Apply to a `[L, C, H, W]` window in place. `meta` gives which channels are vector or
    /// tensor components, which flips negate and swaps exchange.
    pub fn apply(&self, meta: &WellMeta, data: &mut [f32], shape: [usize; 2]) {
        let [h, w] = shape;
        let plane = h * w;
        let fields = meta.channel_fields();
        let nc = fields.len();
        // For each output channel: the input channel it comes from and its sign.
        let mut chan_map = Vec::with_capacity(nc);
        for (c, &(f, comp)) in fields.iter().enumerate() {
            let order = meta.fields[f].order;
            let idx: Vec<usize> = (0..order).map(|k| (comp >> (order - 1 - k)) & 1).collect();
            let src_idx: Vec<usize> = idx
                .iter()
                .map(|&i| if self.transpose { 1 - i } else { i })
                .collect();
            let src_comp = src_idx.iter().fold(0, |acc, &i| acc * 2 + i);
            let negations = idx.iter().filter(|&&i| self.flip[i]).count();
            chan_map.push((
                c - comp + src_comp,
                if negations % 2 == 1 { -1.0f32 } else { 1.0 },
            ));
        }
        // For each output point: the input point it comes from.
        let point_map: Vec<usize> = (0..plane)
            .map(|p| {
                let (x, y) = (p / w, p % w);
                let (x, y) = (
                    (x + h - self.roll[0] % h) % h,
                    (y + w - self.roll[1] % w) % w,
                );
                let x = if self.flip[0] { h - 1 - x } else { x };
                let y = if self.flip[1] { w - 1 - y } else { y };
                if self.transpose { y * w + x } else { x * w + y }
            })
            .collect();
        let mut frame = vec![0.0f32; nc * plane];
        for chunk in data.chunks_exact_mut(nc * plane) {
            frame.copy_from_slice(chunk);
            for (c, &(src, sign)) in chan_map.iter().enumerate() {
                let (out, inp) = (
                    &mut chunk[c * plane..(c + 1) * plane],
                    &frame[src * plane..(src + 1) * plane],
                );
                for (o, &p) in out.iter_mut().zip(&point_map) {
                    *o = sign * inp[p];
                }
            }
        }
    }
}

/// A small, fast, seedable generator (SplitMix64), so that sampling is reproducible on every
/// platform without a dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A training window: normalised data `[L, C, H, W]` and its file's labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub data: Vec<f32>,
    /// `[L, C, H, W]`.
    pub shape: [usize; 4],
    pub labels: Vec<f32>,
}

/// The windows of one split, normalised with the dataset's stored statistics.
#[derive(Debug)]
pub struct WellDataset {
    files: Vec<WellFile>,
    /// (file, trajectory, first frame) of each window.
    index: Vec<(usize, usize, usize)>,
    stats: Stats,
    spec: WindowSpec,
    shape: [usize; 2],
}

impl WellDataset {
    /// Open `split` of the dataset at `root`, reading `stats.json` (see [`write_stats`]).
    pub fn open(root: &Path, split: &str, spec: WindowSpec) -> Result<Self> {
        let stats = Stats::load(root)?;
        let files = split_files(root, split)?
            .into_iter()
            .map(WellFile::open)
            .collect::<Result<Vec<_>>>()?;
        Self::from_files(files, stats, spec)
    }

    pub fn from_files(files: Vec<WellFile>, stats: Stats, spec: WindowSpec) -> Result<Self> {
        let span = (spec.length.max(1) - 1) * spec.stride.max(1) + 1;
        let mut index = Vec::new();
        let mut shape = None;
        for (i, f) in files.iter().enumerate() {
            let m = f.meta();
            if m.channel_names() != stats.channels {
                return Err(WellError::invalid(
                    f.path(),
                    "/",
                    format!(
                        "channels {:?} differ from the statistics' {:?}",
                        m.channel_names(),
                        stats.channels
                    ),
                ));
            }
            let s = m.spatial_shape();
            if s.len() != 2 {
                return Err(WellError::invalid(
                    f.path(),
                    "/dimensions",
                    "training windows need 2-D data",
                ));
            }
            if *shape.get_or_insert([s[0], s[1]]) != [s[0], s[1]] {
                return Err(WellError::invalid(
                    f.path(),
                    "/dimensions",
                    "grid differs from the split's first file",
                ));
            }
            for traj in 0..m.n_trajectories {
                for start in 0..(m.n_steps() + 1).saturating_sub(span) {
                    index.push((i, traj, start));
                }
            }
        }
        Ok(WellDataset {
            files,
            index,
            stats,
            spec,
            shape: shape.unwrap_or([0, 0]),
        })
    }

    /// Only the windows that start at frame `first` or later of their trajectory: training
    /// that skips an initial transient, such as Rayleigh-Bénard's motionless conduction state.
    pub fn starting_at(mut self, first: usize) -> Self {
        self.index.retain(|&(_, _, start)| start >= first);
        self
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn files(&self) -> &[WellFile] {
        &self.files
    }

    /// `[L, C, H, W]` of every window.
    pub fn window_shape(&self) -> [usize; 4] {
        [
            self.spec.length,
            self.stats.channels.len(),
            self.shape[0],
            self.shape[1],
        ]
    }

    /// Window `i`, normalised, not augmented.
    pub fn window(&self, i: usize) -> Result<Window> {
        let &(f, traj, start) = self.index.get(i).ok_or_else(|| {
            WellError::invalid(
                Path::new("dataset"),
                "/",
                format!("window {i} of {}", self.len()),
            )
        })?;
        let file = &self.files[f];
        let shape = self.window_shape();
        let mut data = Vec::with_capacity(shape.iter().product());
        for l in 0..self.spec.length {
            file.read_frame_into(traj, start + l * self.spec.stride, &mut data)?;
        }
        self.stats
            .normalise(&mut data, self.shape[0] * self.shape[1]);
        Ok(Window {
            data,
            shape,
            labels: labels(file.meta()),
        })
    }

    /// Window `i` under a random symmetry of its file, drawn from `seed` and `i` so the same
    /// (seed, i) always gives the same sample.
    pub fn sample(&self, i: usize, seed: u64) -> Result<Window> {
        let mut w = self.window(i)?;
        let meta = self.files[self.index[i].0].meta();
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let aug = Augment::random(Symmetries::of(meta), self.shape, &mut rng);
        aug.apply(meta, &mut w.data, self.shape);
        Ok(w)
    }
}
