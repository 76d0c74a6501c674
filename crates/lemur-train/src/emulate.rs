//! The emulator end to end (DESIGN.md section 6): open a trained run with its autoencoder,
//! encode initial frames, roll out in latent space (diffusion with any sampler, or the
//! surrogate; ensembles as one batch), decode and undo the normalisation.
//!
//! A run is a diffusion or surrogate run (its checkpoint names the latent cache, whose manifest
//! names the autoencoder checkpoint and the physical statistics), or an autoencoder run, whose
//! "rollout" is the reconstruction of the true frames: the floor every emulator sits on.
//!
//! Shape legend: T frames (one per training stride), C physical channels at (H, W), c latent
//! channels at (h, w), N ensemble members.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lemur_models::dcae::Dcae;
use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::rollout::{DiffusionEmulator, RolloutPlan, SurrogateEmulator, rollout};
use lemur_models::sampling::{Method, Sampler};
use lemur_models::surrogate::Surrogate;
use lemur_tensor::{Backend, ParamStore, Tensor, no_grad};
use lemur_well::WellFile;
use lemur_well::dataset::{Stats, labels, split_files};

use crate::autoencoder::parse_config;
use crate::error::{Result, TrainError};
use crate::provenance::DataProvenance;
use crate::run::{CheckpointMeta, ModelKind, locate, read_weights_at};

/// What predicts the latent frames.
enum Predictor<B: Backend> {
    Diffusion(Denoiser<B>),
    Surrogate(Surrogate<B>),
    /// An autoencoder run: the truth, encoded and decoded.
    Reconstruction,
}

/// A trained run ready to emulate.
pub struct Emulation<B: Backend> {
    pub backend: B,
    pub kind: ModelKind,
    /// The run's checkpoint and its directory.
    pub meta: CheckpointMeta,
    pub dir: PathBuf,
    /// The autoencoder's checkpoint directory and metadata.
    pub autoencoder_dir: PathBuf,
    pub autoencoder_meta: CheckpointMeta,
    /// Physical statistics (normalisation and transforms).
    pub stats: Stats,
    /// Latent frames per window and physical steps between frames (1 for an autoencoder run).
    pub window: usize,
    pub stride: usize,
    /// The physical dataset the autoencoder was trained on.
    pub physical_data: DataProvenance,
    /// Label features the emulator takes (0: none).
    pub label_features: usize,
    autoencoder: Dcae<B>,
    predictor: Predictor<B>,
    _params: (ParamStore<B>, ParamStore<B>),
}

/// A checkpoint's weights, read before its model is built: the number of values they hold
/// bounds what the checkpoint's `model_config` may allocate (see [`Builder::with_limit`]), so
/// a corrupt configuration with huge sizes is an error naming the files, not an allocation.
struct Weights {
    path: PathBuf,
    tensors: crate::run::HostTensors,
    values: usize,
}

impl Weights {
    fn read(dir: &Path) -> Result<Self> {
        let (path, tensors) = read_weights_at(dir)?;
        let values = tensors.values().map(|(_, v)| v.len()).sum();
        Ok(Self {
            path,
            tensors,
            values,
        })
    }

    /// Builds a model with `build` within the weights' size, then loads them into it.
    fn build<B: Backend, M>(
        &self,
        backend: &B,
        params: &mut ParamStore<B>,
        build: impl FnOnce(&mut Builder<'_, B>) -> lemur_models::Result<M>,
    ) -> Result<M> {
        let model =
            build(&mut Builder::with_limit(backend, params, 0, self.values)).map_err(|e| {
                TrainError::Mismatch {
                    path: self.path.clone(),
                    detail: format!(
                        "the checkpoint's model_config does not fit these weights: {e}"
                    ),
                }
            })?;
        params
            .load_host(&self.tensors, &self.path)
            .map_err(|e| TrainError::Mismatch {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        Ok(model)
    }
}

/// The autoencoder checkpoint a latent cache was encoded with: the run's latest when its
/// latents are those of `step` (a decoder fine-tuned with the encoder frozen keeps them, so its
/// latest decoder is the best), else the exact step when the run still keeps it.
fn autoencoder_checkpoint(path: &Path, step: Option<u32>) -> Result<(PathBuf, CheckpointMeta)> {
    let (dir, meta) = locate(path)?;
    let Some(step) = step else {
        return Ok((dir, meta));
    };
    if meta.latent_step() == step {
        return Ok((dir, meta));
    }
    let exact = path.join(format!("step-{step:08}"));
    if exact.is_dir() {
        let (dir, meta) = locate(&exact)?;
        if meta.latent_step() == step {
            return Ok((dir, meta));
        }
    }
    Err(TrainError::Mismatch {
        path: path.into(),
        detail: format!(
            "the latents were encoded at autoencoder step {step}, but the run's checkpoint is \
             at step {} and step {step} is no longer kept",
            meta.step
        ),
    })
}

/// How to roll out.
#[derive(Clone, Copy, Debug)]
pub struct RolloutOptions {
    /// Latent frames known at the start (taken from the initial frames).
    pub context: usize,
    pub overlap: usize,
    /// Frames to predict after the context.
    pub horizon: usize,
    pub ensemble: usize,
    pub sampler: Sampler,
}

impl RolloutOptions {
    /// The paper's defaults: context 1, overlap 1, AB order 3 with 16 steps.
    pub fn new(horizon: usize, ensemble: usize, seed: u64) -> Self {
        Self {
            context: 1,
            overlap: 1,
            horizon,
            ensemble,
            sampler: Sampler {
                method: Method::Ab { order: 3 },
                steps: 16,
                seed,
            },
        }
    }
}

/// A rollout's result: physical frames `[N, T, C, H, W]` (the context frames first) and the
/// time spent in each stage.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub frames: Vec<f32>,
    pub members: usize,
    pub steps: usize,
    pub shape: [usize; 3],
    pub encode_s: f64,
    pub emulate_s: f64,
    pub decode_s: f64,
}

impl Prediction {
    /// Member `n`'s frames `[T, C, H, W]`.
    pub fn member(&self, n: usize) -> &[f32] {
        let per = self.frames.len() / self.members;
        &self.frames[n * per..(n + 1) * per]
    }

    /// The ensemble mean `[T, C, H, W]`.
    pub fn mean(&self) -> Vec<f32> {
        let per = self.frames.len() / self.members;
        let mut out = vec![0.0f32; per];
        for n in 0..self.members {
            for (o, &v) in out.iter_mut().zip(self.member(n)) {
                *o += v / self.members as f32;
            }
        }
        out
    }

    /// The ensemble standard deviation `[T, C, H, W]` (0 for one member).
    pub fn spread(&self) -> Vec<f32> {
        let mean = self.mean();
        let per = mean.len();
        let mut out = vec![0.0f32; per];
        if self.members < 2 {
            return out;
        }
        for n in 0..self.members {
            for ((o, &v), &m) in out.iter_mut().zip(self.member(n)).zip(&mean) {
                *o += (v - m) * (v - m) / (self.members - 1) as f32;
            }
        }
        out.iter_mut().for_each(|v| *v = v.sqrt());
        out
    }
}

/// The autoencoder an emulator checkpoint (in `checkpoint_dir`) records: its recorded path,
/// or, when that is gone and the runs were moved together (a working directory copied, a
/// device sitting's runs unpacked elsewhere), the run of the same name beside the emulator's
/// run. The recorded step is still checked against it.
fn relocated(recorded: PathBuf, checkpoint_dir: &Path) -> PathBuf {
    if recorded.exists() {
        return recorded;
    }
    let beside = recorded.file_name().and_then(|name| {
        checkpoint_dir
            .ancestors()
            .skip(1)
            .take(2)
            .map(|parent| parent.join(name))
            .find(|p| p.join(crate::run::META_FILE).is_file())
    });
    match beside {
        Some(p) => {
            eprintln!(
                "lemur: the recorded autoencoder {} is gone: using {} beside the run",
                recorded.display(),
                p.display()
            );
            p
        }
        None => recorded,
    }
}

impl<B: Backend> Emulation<B> {
    /// Opens a diffusion, surrogate or autoencoder run (or one of its checkpoint directories).
    pub fn open(backend: B, run: &Path) -> Result<Self> {
        let (dir, meta) = locate(run)?;
        let (ae_dir, ae_meta, window, stride, physical_data) = match meta.kind {
            ModelKind::Autoencoder => {
                let data = meta.data.clone();
                (dir.clone(), meta.clone(), 2, 1, data)
            }
            ModelKind::Diffusion | ModelKind::Surrogate => {
                let extra = &meta.extra;
                let ae_path: PathBuf = extra
                    .get("autoencoder_path")
                    .and_then(|v| v.as_str())
                    .map(PathBuf::from)
                    .ok_or_else(|| TrainError::Mismatch {
                        path: run.into(),
                        detail: "the checkpoint does not record its autoencoder".into(),
                    })?;
                let ae_path = relocated(ae_path, &dir);
                let step = extra
                    .get("autoencoder_step")
                    .and_then(|v| v.as_u64())
                    .map(|s| s as u32);
                // An autoencoder that cannot be opened is named with the checkpoint that
                // records it (a moved or corrupt record, not a bad argument).
                let (ae_dir, ae_meta) =
                    autoencoder_checkpoint(&ae_path, step).map_err(|e| TrainError::Mismatch {
                        path: dir.join(crate::run::META_FILE),
                        detail: format!("its autoencoder {}: {e}", ae_path.display()),
                    })?;
                let physical: DataProvenance = extra
                    .get("physical_data")
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_else(|| ae_meta.data.clone());
                (
                    ae_dir,
                    ae_meta,
                    meta.options.window,
                    meta.options.stride,
                    physical,
                )
            }
        };
        if ae_meta.kind != ModelKind::Autoencoder {
            return Err(TrainError::Mismatch {
                path: ae_dir,
                detail: format!(
                    "a {} checkpoint where an autoencoder was expected",
                    ae_meta.kind
                ),
            });
        }
        let mut ae_params = ParamStore::new();
        // A configuration error names the checkpoint that holds the configuration.
        let config_err = |dir: &Path| {
            let path = dir.join(crate::run::META_FILE);
            move |e: TrainError| TrainError::Mismatch {
                path,
                detail: format!("model_config: {e}"),
            }
        };
        let ae_cfg = parse_config(&ae_meta.model_config).map_err(config_err(&ae_dir))?;
        let autoencoder =
            Weights::read(&ae_dir)?.build(&backend, &mut ae_params, |b| Dcae::new(&ae_cfg, b))?;
        let mut params = ParamStore::new();
        let (predictor, label_features) = match meta.kind {
            ModelKind::Autoencoder => (Predictor::Reconstruction, 0),
            kind => {
                let cfg =
                    crate::models::parse(kind, &meta.model_config).map_err(config_err(&dir))?;
                let weights = Weights::read(&dir)?;
                let p = if kind == ModelKind::Diffusion {
                    Predictor::Diffusion(
                        weights.build(&backend, &mut params, |b| Denoiser::new(&cfg, b))?,
                    )
                } else {
                    Predictor::Surrogate(
                        weights.build(&backend, &mut params, |b| Surrogate::new(&cfg, b))?,
                    )
                };
                (p, cfg.label_features)
            }
        };
        Ok(Self {
            backend,
            kind: meta.kind,
            stats: ae_meta.stats.clone(),
            meta,
            dir,
            autoencoder_dir: ae_dir,
            autoencoder_meta: ae_meta,
            window,
            stride,
            physical_data,
            label_features,
            autoencoder,
            predictor,
            _params: (ae_params, params),
        })
    }

    /// The window overlap the run recommends (`extra.rollout.overlap`, which
    /// `scripts/pack-pretrained.py --overlap` records after comparing overlaps on validation),
    /// or `None`; a value outside 1..window is an error naming the checkpoint.
    pub fn recommended_overlap(&self) -> Result<Option<usize>> {
        lemur_models::rollout::recommended_overlap(&self.meta.extra, self.window).map_err(|e| {
            TrainError::Mismatch {
                path: self.dir.join(crate::run::META_FILE),
                detail: format!("extra.{e}"),
            }
        })
    }

    fn channels(&self) -> usize {
        self.stats.channels.len()
    }

    /// Physical frames `[T, C, H, W]` to latents (1, c, T, h, w).
    pub fn encode(&self, frames: &[f32], grid: [usize; 2]) -> Result<Tensor<B>> {
        let (c, plane) = (self.channels(), grid[0] * grid[1]);
        if frames.is_empty() || !frames.len().is_multiple_of(c * plane) {
            return Err(TrainError::Options(format!(
                "{} values are not whole frames of {c} channels on {grid:?}",
                frames.len()
            )));
        }
        let t = frames.len() / (c * plane);
        let mut x = frames.to_vec();
        self.stats.normalise(&mut x, plane);
        let z = no_grad(|| {
            let x = Tensor::from_slice(&self.backend, &x, &[t, c, grid[0], grid[1]])?;
            self.autoencoder.encode(&x)
        })?;
        let s = z.shape().to_vec();
        Ok(z.reshape(&[1, t, s[1], s[2], s[3]])?
            .permute(&[0, 2, 1, 3, 4])?)
    }

    /// Latents (N, c, T, h, w) to physical frames `[N, T, C, H, W]`, 16 frames per pass.
    pub fn decode(&self, z: &Tensor<B>) -> Result<(Vec<f32>, [usize; 2])> {
        let s = z.shape().to_vec();
        let (n, t) = (s[0], s[2]);
        let frames = z
            .permute(&[0, 2, 1, 3, 4])?
            .reshape(&[n * t, s[1], s[3], s[4]])?;
        let mut out = Vec::new();
        let mut grid = [0, 0];
        no_grad(|| {
            for start in (0..n * t).step_by(16) {
                let len = 16.min(n * t - start);
                let x = self.autoencoder.decode(&frames.slice(0, start, len)?)?;
                grid = [x.shape()[2], x.shape()[3]];
                out.extend(x.to_vec()?);
            }
            Ok::<_, TrainError>(())
        })?;
        self.stats.denormalise(&mut out, grid[0] * grid[1]);
        Ok((out, grid))
    }

    /// The autoencoder's reconstruction of physical frames `[T, C, H, W]` (the floor every
    /// emulator of this run sits on), in physical units.
    pub fn reconstruct(&self, frames: &[f32], grid: [usize; 2]) -> Result<Vec<f32>> {
        Ok(self.decode(&self.encode(frames, grid)?)?.0)
    }

    /// Rolls out from physical frames `[context, C, H, W]` (for an autoencoder run, `init`
    /// must hold every frame to reconstruct and `horizon` is ignored).
    pub fn predict(
        &self,
        init: &[f32],
        grid: [usize; 2],
        labels: &[f32],
        opts: &RolloutOptions,
    ) -> Result<Prediction> {
        let n = opts.ensemble.max(1);
        let t0 = Instant::now();
        let z0 = self.encode(init, grid)?;
        let zs = z0.shape().to_vec();
        if zs[2] != opts.context && !matches!(self.predictor, Predictor::Reconstruction) {
            return Err(TrainError::Options(format!(
                "{} initial frames for a context of {}",
                zs[2], opts.context
            )));
        }
        let mut ensemble_shape = zs.clone();
        ensemble_shape[0] = n;
        let z0 = z0.broadcast_to(&ensemble_shape)?;
        pollster::block_on(self.backend.sync())?;
        let encode_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let label = if self.label_features > 0 {
            if labels.len() != self.label_features {
                return Err(TrainError::Options(format!(
                    "the emulator takes {} labels, {} given",
                    self.label_features,
                    labels.len()
                )));
            }
            let rows: Vec<f32> = (0..n).flat_map(|_| labels.iter().copied()).collect();
            Some(Tensor::from_slice(
                &self.backend,
                &rows,
                &[n, labels.len()],
            )?)
        } else {
            None
        };
        let plan = RolloutPlan {
            window: self.window,
            context: opts.context,
            overlap: opts.overlap,
            frames: opts.context + opts.horizon,
        };
        let z = match &self.predictor {
            Predictor::Diffusion(d) => rollout(
                &mut DiffusionEmulator {
                    denoiser: d,
                    label: label.as_ref(),
                    sampler: opts.sampler,
                },
                &z0,
                &plan,
            )?,
            Predictor::Surrogate(s) => rollout(
                &mut SurrogateEmulator {
                    surrogate: s,
                    label: label.as_ref(),
                },
                &z0,
                &plan,
            )?,
            Predictor::Reconstruction => z0,
        };
        pollster::block_on(self.backend.sync())?;
        let emulate_s = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let (frames, out_grid) = self.decode(&z)?;
        let decode_s = t2.elapsed().as_secs_f64();
        Ok(Prediction {
            steps: z.shape()[2],
            members: n,
            shape: [self.channels(), out_grid[0], out_grid[1]],
            frames,
            encode_s,
            emulate_s,
            decode_s,
        })
    }
}

/// One physical trajectory of a dataset split.
#[derive(Clone, Debug)]
pub struct Trajectory {
    pub file: PathBuf,
    pub index: usize,
    /// `[T, C, H, W]` in physical units.
    pub frames: Vec<f32>,
    pub steps: usize,
    pub grid: [usize; 2],
    pub channels: Vec<String>,
    pub labels: Vec<f32>,
}

impl Trajectory {
    /// Frames `start, start + stride, ...`, `count` of them (as many as exist when `None`);
    /// none from a trajectory without frames.
    pub fn strided(&self, start: usize, stride: usize, count: Option<usize>) -> Vec<f32> {
        let Some(frame) = self.frames.len().checked_div(self.steps) else {
            return Vec::new();
        };
        (start..self.steps)
            .step_by(stride.max(1))
            .take(count.unwrap_or(usize::MAX))
            .flat_map(|t| self.frames[t * frame..(t + 1) * frame].iter().copied())
            .collect()
    }
}

/// The trajectories of a split, in file order: `(file, index in file)`. A `root` that is one
/// Well file stands for itself, whatever the split.
pub fn split_trajectories(root: &Path, split: &str) -> Result<Vec<(PathBuf, usize)>> {
    let files = if root.is_file() {
        vec![root.to_path_buf()]
    } else {
        split_files(root, split)?
    };
    let mut out = Vec::new();
    for path in files {
        let f = WellFile::open(&path)?;
        out.extend((0..f.meta().n_trajectories).map(|i| (path.clone(), i)));
    }
    Ok(out)
}

/// Reads trajectory `index` of a split (counting across its files in order).
pub fn read_trajectory(root: &Path, split: &str, index: usize) -> Result<Trajectory> {
    let all = split_trajectories(root, split)?;
    let (file, i) = all.get(index).cloned().ok_or_else(|| TrainError::Data {
        path: root.join(split),
        detail: format!(
            "trajectory {index} requested, the {split} split has {}",
            all.len()
        ),
    })?;
    read_trajectory_file(&file, i)
}

/// Reads trajectory `i` of one Well file.
pub fn read_trajectory_file(file: &Path, i: usize) -> Result<Trajectory> {
    let f = WellFile::open(file)?;
    let m = f.meta();
    if i >= m.n_trajectories {
        return Err(TrainError::Data {
            path: file.into(),
            detail: format!(
                "trajectory {i} requested, the file has {}",
                m.n_trajectories
            ),
        });
    }
    let s = m.spatial_shape();
    if s.len() != 2 {
        return Err(TrainError::Data {
            path: file.into(),
            detail: format!("spatial shape {s:?}: emulation needs 2-D fields"),
        });
    }
    let steps = m.n_steps();
    if steps == 0 {
        return Err(lemur_well::WellError::Invalid {
            file: file.into(),
            path: "/dimensions/time".into(),
            reason: "the time axis is empty: the file holds no frames".into(),
        }
        .into());
    }
    let mut frames = Vec::new();
    for t in 0..steps {
        f.read_frame_into(i, t, &mut frames)?;
    }
    Ok(Trajectory {
        index: i,
        steps,
        grid: [s[0], s[1]],
        channels: m.channel_names(),
        labels: labels(m),
        frames,
        file: file.into(),
    })
}
