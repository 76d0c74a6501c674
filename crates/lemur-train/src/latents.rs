//! The latent cache written by `lemur encode` and read by the emulators' training.
//!
//! ```text
//! LATENTS/
//!   latents.json         manifest (LatentManifest): the autoencoder's provenance, shapes,
//!                        normalisation statistics, and every trajectory of every split
//!   train.safetensors    traj.<i> [T, c, h, w] and labels.<i> [n_labels], i in manifest order
//!   valid.safetensors
//!   test.safetensors
//! ```
//!
//! Every trajectory is encoded once, frame by frame; the train split also gets `augment`
//! copies under random symmetries of its dataset (flips, axis swaps, rolls, as allowed by the
//! boundaries), drawn from the seed. The directory is built under a temporary name and renamed
//! into place when complete, so a cache either exists whole or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lemur_models::dcae::Dcae;
use lemur_models::nn::Builder;
use lemur_tensor::params::{read_safetensors, write_atomic, write_safetensors};
use lemur_tensor::{AnyBackend, Backend, BackendKind, ParamStore, Tensor, no_grad};
use lemur_well::WellFile;
use lemur_well::dataset::{Augment, SPLITS, SplitMix64, Stats, Symmetries, labels, split_files};
use serde::{Deserialize, Serialize};

use crate::autoencoder::{check_fit, open_stats, parse_config};
use crate::error::{Result, TrainError, io_err, json_err};
use crate::provenance::{DataProvenance, FileEntry, absolute, git_revision};
use crate::run::{CheckpointMeta, ModelKind, locate, read_weights_at};

pub const MANIFEST: &str = "latents.json";
pub const FORMAT: &str = "lemur-latents/1";

/// One encoded trajectory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentTrajectory {
    /// The source file and trajectory index in it.
    pub source: PathBuf,
    pub trajectory: usize,
    /// 0 for the data as is, `k > 0` for the k-th augmented copy.
    pub copy: usize,
    /// The symmetry applied (identity for copy 0).
    pub transpose: bool,
    pub flip: [bool; 2],
    pub roll: [usize; 2],
    /// Frames `T`.
    pub frames: usize,
    pub labels: Vec<f32>,
}

/// One split of the cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentSplit {
    pub file: String,
    pub bytes: u64,
    pub trajectories: Vec<LatentTrajectory>,
}

/// `latents.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentManifest {
    pub format: String,
    /// `[c, h, w]` of one latent frame.
    pub latent_shape: [usize; 3],
    /// The autoencoder: its run or checkpoint directory, step and metadata (configuration,
    /// training data provenance, git revision).
    pub autoencoder_path: PathBuf,
    pub autoencoder: CheckpointMeta,
    /// The physical fields' statistics (to decode back to physical units).
    pub stats: Stats,
    /// The dataset encoded.
    pub data: DataProvenance,
    pub label_count: usize,
    /// Augmented copies of each training trajectory.
    pub augment: usize,
    pub seed: u64,
    pub backend: String,
    pub git_revision: String,
    pub splits: BTreeMap<String, LatentSplit>,
}

/// Arguments of `lemur encode`.
#[derive(Clone, Debug)]
pub struct EncodeArgs {
    pub autoencoder: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    pub augment: usize,
    pub seed: u64,
    /// Frames encoded per forward pass.
    pub batch: usize,
    pub backend: BackendKind,
}

/// Encodes every split of a dataset; returns the manifest written.
pub fn encode(args: &EncodeArgs) -> Result<LatentManifest> {
    if args.out.exists() {
        return Err(TrainError::Options(format!(
            "{} already exists; choose another --out (caches are never overwritten)",
            args.out.display()
        )));
    }
    if args.batch == 0 {
        return Err(TrainError::Options("--batch must be positive".into()));
    }
    let (ckpt_dir, meta) = locate(&args.autoencoder)?;
    if meta.kind != ModelKind::Autoencoder {
        return Err(TrainError::Mismatch {
            path: args.autoencoder.clone(),
            detail: format!("a {} run, not an autoencoder", meta.kind),
        });
    }
    let backend = AnyBackend::open_blocking(args.backend)?;
    eprintln!("lemur: backend {}", backend.name());
    match backend {
        AnyBackend::Cpu(b) => encode_on(b, args, &ckpt_dir, meta),
        AnyBackend::Gpu(b) => encode_on(b, args, &ckpt_dir, meta),
    }
}

fn encode_on<B: Backend>(
    backend: B,
    args: &EncodeArgs,
    ckpt_dir: &Path,
    meta: CheckpointMeta,
) -> Result<LatentManifest> {
    let cfg = parse_config(&meta.model_config)?;
    let stats = open_stats(&args.data)?;
    if stats.channels != meta.data.channels {
        return Err(TrainError::Data {
            path: args.data.clone(),
            detail: format!(
                "the dataset's channels {:?} differ from the autoencoder's {:?}",
                stats.channels, meta.data.channels
            ),
        });
    }
    let mut params = ParamStore::new();
    let model = Dcae::new(&cfg, &mut Builder::new(&backend, &mut params, 0))?;
    let (wpath, weights) = read_weights_at(ckpt_dir)?;
    params
        .load_host(&weights, &wpath)
        .map_err(|e| TrainError::Mismatch {
            path: wpath.clone(),
            detail: e.to_string(),
        })?;

    let parent = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "latents".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;

    let mut grid = None;
    let mut files_seen = vec![FileEntry::of(&Stats::path(&args.data))?];
    let mut splits = BTreeMap::new();
    let mut latent_shape = None;
    let mut label_count = None;
    for split in SPLITS {
        let mut tensors = BTreeMap::new();
        let mut trajectories = Vec::new();
        for path in split_files(&args.data, split)? {
            files_seen.push(FileEntry::of(&path)?);
            let file = WellFile::open(&path)?;
            let m = file.meta();
            if m.channel_names() != stats.channels {
                return Err(TrainError::Data {
                    path: path.clone(),
                    detail: format!(
                        "channels {:?} differ from the statistics' {:?}",
                        m.channel_names(),
                        stats.channels
                    ),
                });
            }
            let s = m.spatial_shape();
            if s.len() != 2 {
                return Err(TrainError::Data {
                    path: path.clone(),
                    detail: format!("spatial shape {s:?}: the autoencoder needs 2-D fields"),
                });
            }
            let hw = [s[0], s[1]];
            check_fit(&path, &stats, hw, &cfg)?;
            if *grid.get_or_insert(hw) != hw {
                return Err(TrainError::Data {
                    path: path.clone(),
                    detail: format!(
                        "grid {hw:?} differs from the dataset's first file {:?}",
                        grid
                    ),
                });
            }
            let lat = cfg.latent_shape(hw[0], hw[1])?;
            latent_shape = Some(lat);
            let file_labels = labels(m);
            if *label_count.get_or_insert(file_labels.len()) != file_labels.len() {
                return Err(TrainError::Data {
                    path: path.clone(),
                    detail: "the number of labels differs between files".into(),
                });
            }
            let copies = if split == "train" {
                1 + args.augment
            } else {
                1
            };
            let sym = Symmetries::of(m);
            let (t_len, plane) = (m.n_steps(), hw[0] * hw[1]);
            for traj in 0..m.n_trajectories {
                let mut frames = Vec::with_capacity(t_len * stats.channels.len() * plane);
                for t in 0..t_len {
                    file.read_frame_into(traj, t, &mut frames)?;
                }
                stats.normalise(&mut frames, plane);
                for copy in 0..copies {
                    let aug = if copy == 0 {
                        Augment::default()
                    } else {
                        let file_key = path.file_name().map_or(0, |n| {
                            n.to_string_lossy()
                                .bytes()
                                .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))
                        });
                        let mut rng = SplitMix64::new(
                            args.seed ^ file_key ^ ((traj as u64) << 32) ^ copy as u64,
                        );
                        Augment::random(sym, hw, &mut rng)
                    };
                    let mut data = frames.clone();
                    aug.apply(m, &mut data, hw);
                    let z = encode_frames(
                        &backend,
                        &model,
                        &data,
                        [t_len, stats.channels.len(), hw[0], hw[1]],
                        args.batch,
                    )?;
                    let i = trajectories.len();
                    tensors.insert(
                        format!("traj.{i}"),
                        (vec![t_len, lat[0], lat[1], lat[2]], z),
                    );
                    tensors.insert(
                        format!("labels.{i}"),
                        (vec![file_labels.len()], file_labels.clone()),
                    );
                    trajectories.push(LatentTrajectory {
                        source: absolute(&path),
                        trajectory: traj,
                        copy,
                        transpose: aug.transpose,
                        flip: aug.flip,
                        roll: aug.roll,
                        frames: t_len,
                        labels: file_labels.clone(),
                    });
                }
            }
        }
        let file = format!("{split}.safetensors");
        let fpath = tmp.join(&file);
        write_safetensors(&fpath, &tensors, None)?;
        let bytes = std::fs::metadata(&fpath).map_err(io_err(&fpath))?.len();
        splits.insert(
            split.to_string(),
            LatentSplit {
                file,
                bytes,
                trajectories,
            },
        );
    }
    let grid = grid.ok_or_else(|| TrainError::Data {
        path: args.data.clone(),
        detail: "no .hdf5 files in any split".into(),
    })?;
    let manifest = LatentManifest {
        format: FORMAT.into(),
        latent_shape: latent_shape.expect("set with the grid"),
        autoencoder_path: absolute(&args.autoencoder),
        autoencoder: meta,
        stats: stats.clone(),
        data: DataProvenance {
            kind: "well".into(),
            root: absolute(&args.data),
            files: files_seen,
            channels: stats.channels.clone(),
            grid,
        },
        label_count: label_count.unwrap_or(0),
        augment: args.augment,
        seed: args.seed,
        backend: backend.name(),
        git_revision: git_revision(),
        splits,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(json_err(&tmp))?;
    write_atomic(&tmp.join(MANIFEST), &json)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &args.out).map_err(io_err(&args.out))?;
    Ok(manifest)
}

/// `[T, C, H, W]` normalised frames to `[T, c, h, w]` latents, `batch` frames at a time.
fn encode_frames<B: Backend>(
    backend: &B,
    model: &Dcae<B>,
    data: &[f32],
    shape: [usize; 4],
    batch: usize,
) -> Result<Vec<f32>> {
    let [t, c, h, w] = shape;
    let frame = c * h * w;
    let mut out = Vec::new();
    no_grad(|| {
        for start in (0..t).step_by(batch) {
            let n = batch.min(t - start);
            let x = Tensor::from_slice(
                backend,
                &data[start * frame..(start + n) * frame],
                &[n, c, h, w],
            )?;
            out.extend(model.encode(&x)?.to_vec()?);
        }
        Ok::<_, TrainError>(())
    })?;
    Ok(out)
}

/// An opened latent cache: the manifest and the trajectories of the splits read.
#[derive(Debug)]
pub struct LatentCache {
    pub root: PathBuf,
    pub manifest: LatentManifest,
}

/// Latent trajectories of one split, with their labels.
#[derive(Debug)]
pub struct LatentSet {
    /// `[T, c, h, w]` each.
    pub trajectories: Vec<Vec<f32>>,
    pub frames: Vec<usize>,
    pub labels: Vec<Vec<f32>>,
    pub frame_shape: [usize; 3],
}

impl LatentCache {
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(TrainError::Missing {
                path: root.into(),
                hint: " (expected a latent cache written by `lemur encode`)".into(),
            });
        }
        let path = root.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let manifest: LatentManifest = serde_json::from_slice(&bytes).map_err(json_err(&path))?;
        if manifest.format != FORMAT {
            return Err(TrainError::Data {
                path,
                detail: format!("format {:?}, expected {FORMAT:?}", manifest.format),
            });
        }
        Ok(LatentCache {
            root: root.to_path_buf(),
            manifest,
        })
    }

    /// The manifest and split files, with sizes.
    pub fn files(&self) -> Result<Vec<FileEntry>> {
        let mut out = vec![FileEntry::of(&self.root.join(MANIFEST))?];
        for s in self.manifest.splits.values() {
            out.push(FileEntry::of(&self.root.join(&s.file))?);
        }
        Ok(out)
    }

    /// Reads one split (an absent split is empty).
    pub fn split(&self, name: &str) -> Result<LatentSet> {
        let fs = self.manifest.latent_shape;
        let mut set = LatentSet {
            trajectories: Vec::new(),
            frames: Vec::new(),
            labels: Vec::new(),
            frame_shape: fs,
        };
        let Some(split) = self.manifest.splits.get(name) else {
            return Ok(set);
        };
        let path = self.root.join(&split.file);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let mut tensors = read_safetensors(&bytes, &path)?;
        for (i, t) in split.trajectories.iter().enumerate() {
            let bad = |d: String| TrainError::Data {
                path: path.clone(),
                detail: d,
            };
            let (shape, data) = tensors
                .remove(&format!("traj.{i}"))
                .ok_or_else(|| bad(format!("traj.{i} is missing")))?;
            if shape != [t.frames, fs[0], fs[1], fs[2]] {
                return Err(bad(format!(
                    "traj.{i} has shape {shape:?}, the manifest says [{}, {}, {}, {}]",
                    t.frames, fs[0], fs[1], fs[2]
                )));
            }
            let (_, labels) = tensors
                .remove(&format!("labels.{i}"))
                .ok_or_else(|| bad(format!("labels.{i} is missing")))?;
            set.trajectories.push(data);
            set.frames.push(t.frames);
            set.labels.push(labels);
        }
        Ok(set)
    }
}

impl LatentSet {
    /// `(trajectory, first frame)` of every window of `length` frames `stride` apart that
    /// starts at frame `first` or later.
    pub fn windows(&self, length: usize, stride: usize, first: usize) -> Vec<(usize, usize)> {
        let span = (length - 1) * stride + 1;
        let mut out = Vec::new();
        for (i, &t) in self.frames.iter().enumerate() {
            for start in first..(t + 1).saturating_sub(span) {
                out.push((i, start));
            }
        }
        out
    }

    /// The `[L, c, h, w]` window starting at `start` of trajectory `traj`.
    pub fn window(&self, traj: usize, start: usize, length: usize, stride: usize) -> Vec<f32> {
        let frame: usize = self.frame_shape.iter().product();
        let data = &self.trajectories[traj];
        (0..length)
            .flat_map(|l| {
                data[(start + l * stride) * frame..(start + l * stride + 1) * frame]
                    .iter()
                    .copied()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::LatentSet;

    #[test]
    fn windows_start_at_the_first_frame() {
        let set = LatentSet {
            trajectories: vec![(0..9).map(|v| v as f32).collect(), vec![0.0; 11]],
            frames: vec![9, 11],
            labels: vec![vec![], vec![]],
            frame_shape: [1, 1, 1],
        };
        // Windows of 3 frames 2 apart span 5 frames: starts 0-4 and 0-6.
        assert_eq!(set.windows(3, 2, 0).len(), 5 + 7);
        let later = set.windows(3, 2, 3);
        assert_eq!(later, [(0, 3), (0, 4), (1, 3), (1, 4), (1, 5), (1, 6)]);
        assert_eq!(set.window(0, 3, 3, 2), [3.0, 5.0, 7.0]);
        assert_eq!(set.windows(3, 2, 5), [(1, 5), (1, 6)]);
        assert!(set.windows(3, 2, 7).is_empty());
    }
}
