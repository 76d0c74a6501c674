//! The emulator as the app runs it: the pretrained models on one backend and a rollout that
//! advances in bounded slices, so that the UI thread (and the browser's event loop) never
//! waits on it. A slice is one sampler step, one surrogate window or the decoding of one
//! frame; on the GPU the next slice is recorded only once the previous one has finished
//! (at most one step in flight), and every readback is asynchronous.
//!
//! Shape legend: N members, c latent channels at (h, w), C physical channels and D display
//! fields (see [`crate::fields`]) at (H, W), L frames per window.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use lemur_models::dcae::Dcae;
use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::rollout::{Cursor, DiffusionWindow, RolloutPlan};
use lemur_models::sampling::{Method, Sampler};
use lemur_models::surrogate::Surrogate;
use lemur_tensor::{Backend, CpuBackend, GpuBackend, ParamStore, Tensor, no_grad};
use lemur_well::dataset::{Stats, Transform};
use web_time::Instant;

use crate::bundle::{Bundle, HostTensors};
use crate::error::{AppError, Result};
use crate::fields::FieldLayout;
use crate::truth::{Initial, System, Truth};

/// A future the app polls once per frame (never blocking on it).
pub type Pending<T> = Pin<Box<dyn Future<Output = T>>>;

/// Polls `f` once without a waker: the app polls again every frame until it is ready.
pub fn poll_now<T>(f: &mut Pending<T>) -> Option<T> {
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// What each backend adds to [`Backend`] for the app.
pub trait Compute: Backend + 'static {
    /// Resolves once the work recorded so far has finished on the device (`None` when work
    /// runs synchronously, as on the CPU).
    fn settled(&self) -> Option<Pending<lemur_tensor::Result<()>>>;
    /// Device memory held by tensors and the pool, in bytes, where the backend tracks it.
    fn memory_bytes(&self) -> Option<u64>;
}

impl Compute for CpuBackend {
    fn settled(&self) -> Option<Pending<lemur_tensor::Result<()>>> {
        None
    }
    fn memory_bytes(&self) -> Option<u64> {
        None
    }
}

impl Compute for GpuBackend {
    fn settled(&self) -> Option<Pending<lemur_tensor::Result<()>>> {
        let be = self.clone();
        Some(Box::pin(async move { be.work_done().await }))
    }
    fn memory_bytes(&self) -> Option<u64> {
        let m = self.memory();
        Some(m.live + m.pooled)
    }
}

/// Which emulator rolls out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelChoice {
    Diffusion,
    Surrogate,
}

/// Everything a rollout depends on; changing any of it means a new rollout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub model: ModelChoice,
    pub method: Method,
    pub steps: usize,
    pub ensemble: usize,
    pub seed: u64,
    /// Known latent frames at the start (taken from the solver).
    pub context: usize,
    /// Latent frames to predict after the context.
    pub horizon: usize,
    /// Frames each later window takes from the previous one; `None`: the diffusion run's
    /// recommendation (1 for the surrogate).
    pub overlap: Option<usize>,
    pub initial: Initial,
}

/// Samplers by name, as the CLI spells them, with the CLI's default parameters.
pub const SAMPLERS: [&str; 7] = ["ab", "eab", "euler", "ddim", "ddpm", "heun", "pc"];

pub fn method(name: &str) -> Result<Method> {
    Ok(Method::parse(name, 3, 0.0, 1, 0.1)?)
}

pub fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Ab { .. } => "ab",
        Method::Eab { .. } => "eab",
        Method::Euler => "euler",
        Method::Ddim { eta } if *eta >= 1.0 => "ddpm",
        Method::Ddim { .. } => "ddim",
        Method::Heun => "heun",
        Method::Pc { .. } => "pc",
    }
}

impl Settings {
    /// The paper's defaults (AB3 x 16 steps, context 1) for `ensemble` members.
    pub fn new(ensemble: usize, horizon: usize) -> Self {
        Self {
            model: ModelChoice::Diffusion,
            method: Method::Ab { order: 3 },
            steps: 16,
            ensemble,
            seed: 0,
            context: 1,
            horizon,
            overlap: None,
            initial: Initial::Random(0),
        }
    }

    /// Members actually run: the surrogate is deterministic, one member says everything.
    pub fn members(&self) -> usize {
        match self.model {
            ModelChoice::Diffusion => self.ensemble.max(1),
            ModelChoice::Surrogate => 1,
        }
    }

    /// The window overlap this rollout uses, given the diffusion run's recommended one.
    pub fn overlap_with(&self, recommended: usize) -> usize {
        self.overlap.unwrap_or(match self.model {
            ModelChoice::Diffusion => recommended,
            ModelChoice::Surrogate => 1,
        })
    }

    pub fn validate(&self, window: usize) -> Result<()> {
        let bad = |name, value: String, detail: String| {
            Err(AppError::Setting {
                name,
                value,
                detail,
            })
        };
        if !(1..=64).contains(&self.ensemble) {
            return bad("ensemble", self.ensemble.to_string(), "must be 1-64".into());
        }
        if self.steps == 0 || self.steps > 1024 {
            return bad("steps", self.steps.to_string(), "must be 1-1024".into());
        }
        // Context and overlap are both frames a window takes as known: 1 to window - 1.
        for (name, frames) in [("context", Some(self.context)), ("overlap", self.overlap)] {
            if let Some(n) = frames
                && (n == 0 || n >= window)
            {
                return bad(
                    name,
                    n.to_string(),
                    format!("must be 1-{} for windows of {window} frames", window - 1),
                );
            }
        }
        if self.horizon == 0 || self.horizon > 400 {
            return bad("horizon", self.horizon.to_string(), "must be 1-400".into());
        }
        self.method.validate()?;
        Ok(())
    }
}

/// The pretrained models on one backend.
pub struct Models<B: Compute> {
    pub backend: B,
    autoencoder: Dcae<B>,
    denoiser: Denoiser<B>,
    surrogate: Surrogate<B>,
    pub stats: Stats,
    pub layout: FieldLayout,
    pub window: usize,
    pub stride: usize,
    /// The diffusion run's recommended window overlap (the surrogate's windows overlap by 1).
    pub overlap: usize,
    pub grid: [usize; 2],
    pub dataset_name: String,
    /// What the truth's solver simulates, from the dataset name.
    pub system: System,
    /// (1, C, 1, 1): std, mean and 1 where the channel was log1p-transformed.
    denorm: [Tensor<B>; 3],
    _params: [ParamStore<B>; 3],
}

fn load<B: Backend>(params: &ParamStore<B>, weights: &HostTensors, source: &str) -> Result<()> {
    let file = format!("{source}/model.safetensors");
    params
        .load_host(weights, std::path::Path::new(&file))
        .map_err(|e| AppError::Weights {
            file,
            detail: e.to_string(),
        })
}

impl<B: Compute> Models<B> {
    pub fn new(backend: B, bundle: &Bundle) -> Result<Self> {
        let system = crate::truth::system_of(&bundle.dataset_name)?;
        let mut ps: [ParamStore<B>; 3] = Default::default();
        let [pa, pd, psur] = &mut ps;
        let autoencoder = Dcae::new(
            &bundle.autoencoder.config,
            &mut Builder::new(&backend, pa, 0),
        )?;
        load(pa, &bundle.autoencoder.weights, &bundle.autoencoder.source)?;
        let denoiser = Denoiser::new(&bundle.diffusion.config, &mut Builder::new(&backend, pd, 0))?;
        load(pd, &bundle.diffusion.weights, &bundle.diffusion.source)?;
        let surrogate = Surrogate::new(
            &bundle.surrogate.config,
            &mut Builder::new(&backend, psur, 0),
        )?;
        load(psur, &bundle.surrogate.weights, &bundle.surrogate.source)?;
        let stats = bundle.stats.clone();
        let c = stats.channels.len();
        let col = |v: Vec<f32>| Tensor::from_slice(&backend, &v, &[1, c, 1, 1]);
        let denorm = [
            col(stats.std.iter().map(|&s| s as f32).collect())?,
            col(stats.mean.iter().map(|&m| m as f32).collect())?,
            col(stats
                .transforms
                .iter()
                .map(|t| f32::from(u8::from(*t == Transform::Log1p)))
                .collect())?,
        ];
        Ok(Self {
            layout: FieldLayout::new(&stats.channels, system, bundle.grid),
            window: bundle.window,
            overlap: bundle.overlap,
            stride: bundle.stride,
            grid: bundle.grid,
            dataset_name: bundle.dataset_name.clone(),
            system,
            backend,
            autoencoder,
            denoiser,
            surrogate,
            stats,
            denorm,
            _params: ps,
        })
    }

    pub fn label_features(&self) -> usize {
        self.denoiser.config.label_features
    }

    /// Physical frames `[T, C, H, W]` to latents (1, c, T, h, w).
    fn encode(&self, frames: &[f32]) -> Result<Tensor<B>> {
        let [h, w] = self.grid;
        let c = self.stats.channels.len();
        let t = frames.len() / (c * h * w);
        let mut x = frames.to_vec();
        self.stats.normalise(&mut x, h * w);
        let z = no_grad(|| {
            let x = Tensor::from_slice(&self.backend, &x, &[t, c, h, w])?;
            self.autoencoder.encode(&x)
        })?;
        let s = z.shape().to_vec();
        Ok(z.reshape(&[1, t, s[1], s[2], s[3]])?
            .permute(&[0, 2, 1, 3, 4])?)
    }

    /// Latent frame (N, c, h, w) to display fields (N, D, H, W) in physical units.
    fn decode(&self, z: &Tensor<B>) -> Result<Tensor<B>> {
        no_grad(|| {
            let x = self.autoencoder.decode(z)?;
            let [std, mean, log] = &self.denorm;
            let y = x.mul(std)?.add(mean)?;
            let phys = Tensor::select(log, &y.exp()?.add_scalar(-1.0)?, &y)?;
            self.layout.derive(&phys)
        })
    }
}

/// One emulated lead time: the members' display fields and their statistics on the device.
pub struct Frame<B: Backend> {
    /// (N, D, H, W).
    pub members: Tensor<B>,
    /// (D, H, W).
    pub mean: Tensor<B>,
    /// (D, H, W): the members' standard deviation (unbiased; zeros for one member).
    pub spread: Tensor<B>,
    /// (D, H, W) and its mean - truth, once the solver has reached this frame.
    pub truth: Option<Tensor<B>>,
    pub error: Option<Tensor<B>>,
    /// Per display field, once read back.
    pub scores: Option<Scores>,
}

/// Scores of one frame, per display field, as `lemur-metrics` defines them.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub vrmse: Vec<f64>,
    pub rmse: Vec<f64>,
    pub spread: Vec<f64>,
    pub spread_skill: Vec<f64>,
}

enum Phase<B: Backend> {
    /// Waiting for the solver's context frames.
    Context,
    /// Sampling a window (diffusion); `None` between windows.
    Window(Option<(DiffusionWindow<B>, Instant)>),
    /// Decoding the new latent frames (N, c, n, h, w), one per slice.
    Decode(Tensor<B>, usize),
    Done,
}

/// What a slice did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Work was recorded; more can follow this frame.
    Busy,
    /// Waiting on the device or on the solver: try again next frame.
    Waiting,
    Done,
}

/// Timings the status line shows.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Mean seconds per sampler step (or surrogate window), device time included.
    pub step_s: Option<f64>,
    pub window_s: Option<f64>,
    steps: u64,
    step_total: f64,
    windows: u64,
    window_total: f64,
    /// When the rollout started and when its first emulated frame was decoded.
    pub started: Option<Instant>,
    pub first_frame_s: Option<f64>,
    pub finished_s: Option<f64>,
}

impl Timings {
    /// Windows emulated so far.
    pub fn windows(&self) -> u64 {
        self.windows
    }
}

/// A rollout in progress.
pub struct Job<B: Compute> {
    pub settings: Settings,
    phase: Phase<B>,
    cursor: Option<Cursor<B>>,
    label: Option<Tensor<B>>,
    /// Emulated lead times so far (the context frames first).
    pub frames: Vec<Frame<B>>,
    pub timings: Timings,
    /// The device work of the last slice, and when that slice began.
    in_flight: Option<(Pending<lemur_tensor::Result<()>>, Instant, bool)>,
    scoring: Vec<(usize, Pending<lemur_tensor::Result<Vec<f32>>>)>,
    /// Host copies of the truth's display fields, per frame, for the scores.
    truth_var: Vec<Option<Vec<f64>>>,
}

impl<B: Compute> Job<B> {
    pub fn new(models: &Models<B>, settings: Settings) -> Result<Self> {
        settings.validate(models.window)?;
        Ok(Self {
            settings,
            phase: Phase::Context,
            cursor: None,
            label: None,
            frames: Vec::new(),
            timings: Timings {
                started: Some(Instant::now()),
                ..Default::default()
            },
            in_flight: None,
            scoring: Vec::new(),
            truth_var: Vec::new(),
        })
    }

    /// Lead times in all (context included).
    pub fn total_frames(&self) -> usize {
        self.settings.context + self.settings.horizon
    }

    pub fn done(&self) -> bool {
        matches!(self.phase, Phase::Done) && self.in_flight.is_none()
    }

    /// Marks a mirrored rollout (one computed elsewhere, see `crate::worker`) finished.
    pub fn mark_done(&mut self) {
        self.phase = Phase::Done;
        self.in_flight = None;
    }

    /// Runs slices until `budget_s` has passed, the device is busy or the rollout is done.
    pub fn run(&mut self, models: &Models<B>, truth: &Truth, budget_s: f64) -> Result<Tick> {
        let start = Instant::now();
        self.score(models, truth)?;
        loop {
            let t = self.tick(models, truth)?;
            if t != Tick::Busy || start.elapsed().as_secs_f64() >= budget_s {
                return Ok(t);
            }
        }
    }

    fn tick(&mut self, models: &Models<B>, truth: &Truth) -> Result<Tick> {
        if let Some((f, began, step)) = &mut self.in_flight {
            match poll_now(f) {
                None => return Ok(Tick::Waiting),
                Some(r) => {
                    r?;
                    if *step {
                        self.timings.steps += 1;
                        self.timings.step_total += began.elapsed().as_secs_f64();
                        self.timings.step_s =
                            Some(self.timings.step_total / self.timings.steps as f64);
                    }
                    self.in_flight = None;
                }
            }
        }
        let began = Instant::now();
        let s = self.settings;
        let n = s.members();
        // The phase is taken by value and put back, so the slice can use the rest of `self`.
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Done => Ok(Tick::Done),
            Phase::Context => {
                if truth.frames.len() < s.context {
                    self.phase = Phase::Context;
                    return Ok(Tick::Waiting);
                }
                let init: Vec<f32> = truth.frames[..s.context].concat();
                let z0 = models.encode(&init)?;
                let mut shape = z0.shape().to_vec();
                shape[0] = n;
                let z0 = z0.broadcast_to(&shape)?;
                let f = models.label_features();
                if f > 0 {
                    if truth.labels.len() != f {
                        return Err(AppError::Setting {
                            name: "labels",
                            value: format!("{:?}", truth.labels),
                            detail: format!("the emulator takes {f} labels"),
                        });
                    }
                    let rows: Vec<f32> = (0..n).flat_map(|_| truth.labels.clone()).collect();
                    self.label = Some(Tensor::from_slice(&models.backend, &rows, &[n, f])?);
                }
                let plan = RolloutPlan {
                    window: models.window,
                    context: s.context,
                    overlap: s.overlap_with(models.overlap),
                    frames: s.context + s.horizon,
                };
                self.cursor = Some(Cursor::new(&z0, &plan)?);
                self.phase = Phase::Window(None);
                Ok(Tick::Busy)
            }
            Phase::Window(slot) => {
                let cursor = self.cursor.as_mut().expect("a window phase has a cursor");
                let Some(index) = cursor.next_index() else {
                    self.timings.finished_s =
                        self.timings.started.map(|t| t.elapsed().as_secs_f64());
                    return Ok(Tick::Busy);
                };
                match s.model {
                    ModelChoice::Surrogate => {
                        let (y, mask) = cursor.window()?;
                        let out =
                            no_grad(|| models.surrogate.forward(&y, &mask, self.label.as_ref()))?;
                        let new = cursor.accept(&out)?;
                        self.window_time(began);
                        self.phase = Phase::Decode(new, 0);
                    }
                    ModelChoice::Diffusion => {
                        let (mut win, started) = match slot {
                            Some(w) => w,
                            None => {
                                let (y, mask) = cursor.window()?;
                                let sampler = Sampler::new(s.method, s.steps, s.seed)?;
                                let win = DiffusionWindow::start(
                                    &models.denoiser,
                                    sampler,
                                    &y,
                                    &mask,
                                    index,
                                )?;
                                (win, Instant::now())
                            }
                        };
                        if win.step(&models.denoiser, self.label.as_ref())? {
                            let new = cursor.accept(&win.finish()?)?;
                            self.window_time(started);
                            self.phase = Phase::Decode(new, 0);
                        } else {
                            self.phase = Phase::Window(Some((win, started)));
                        }
                    }
                }
                self.settle(models, began, true)
            }
            Phase::Decode(z, j) => {
                let zj = z.slice(2, j, 1)?;
                let sh = zj.shape().to_vec();
                let zj = zj.reshape(&[sh[0], sh[1], sh[3], sh[4]])?;
                let members = models.decode(&zj)?;
                let frame = no_grad(|| -> Result<Frame<B>> {
                    let mean = members.mean(0, false)?;
                    let spread = if n > 1 {
                        members.var(0, false, true)?.sqrt()?
                    } else {
                        Tensor::zeros(&models.backend, mean.shape())?
                    };
                    Ok(Frame {
                        members,
                        mean,
                        spread,
                        truth: None,
                        error: None,
                        scores: None,
                    })
                })?;
                self.frames.push(frame);
                if self.frames.len() == s.context + 1 && self.timings.first_frame_s.is_none() {
                    self.timings.first_frame_s =
                        self.timings.started.map(|t| t.elapsed().as_secs_f64());
                }
                self.phase = if j + 1 == z.dim(2) {
                    Phase::Window(None)
                } else {
                    Phase::Decode(z, j + 1)
                };
                self.settle(models, began, false)
            }
        }
    }

    fn window_time(&mut self, started: Instant) {
        self.timings.windows += 1;
        self.timings.window_total += started.elapsed().as_secs_f64();
        self.timings.window_s = Some(self.timings.window_total / self.timings.windows as f64);
    }

    /// After a slice: on the GPU wait for it before the next (back-pressure, and honest step
    /// times); on the CPU it is already done.
    fn settle(&mut self, models: &Models<B>, began: Instant, step: bool) -> Result<Tick> {
        match models.backend.settled() {
            Some(f) => {
                self.in_flight = Some((f, began, step));
                Ok(Tick::Waiting)
            }
            None => {
                if step {
                    self.timings.steps += 1;
                    self.timings.step_total += began.elapsed().as_secs_f64();
                    self.timings.step_s = Some(self.timings.step_total / self.timings.steps as f64);
                }
                Ok(Tick::Busy)
            }
        }
    }

    /// Uploads the truth of frames the solver has reached, forms the error and starts the
    /// (small) readback of each frame's scores; collects finished readbacks.
    fn score(&mut self, models: &Models<B>, truth: &Truth) -> Result<()> {
        let [h, w] = models.grid;
        let d = models.layout.len();
        let n = self.settings.members();
        for t in 0..self.frames.len().min(truth.frames.len()) {
            if self.frames[t].truth.is_some() {
                continue;
            }
            let host = models.layout.derive_host(&truth.frames[t]);
            let plane = h * w;
            let var: Vec<f64> = host
                .chunks_exact(plane)
                .map(|p| {
                    let m = p.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64;
                    p.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>()
                        / (plane - 1).max(1) as f64
                })
                .collect();
            if self.truth_var.len() <= t {
                self.truth_var.resize(t + 1, None);
            }
            self.truth_var[t] = Some(var);
            let frame = &mut self.frames[t];
            let tt = Tensor::from_slice(&models.backend, &host, &[d, h, w])?;
            let err = frame.mean.sub(&tt)?;
            // [D] mean squared error and [D] mean squared spread, read back together.
            let sums = Tensor::concat(
                &[
                    &err.square()?.reshape(&[d, plane])?.mean(1, false)?,
                    &frame
                        .spread
                        .square()?
                        .reshape(&[d, plane])?
                        .mean(1, false)?,
                ],
                0,
            )?;
            frame.truth = Some(tt);
            frame.error = Some(err);
            self.scoring
                .push((t, Box::pin(async move { sums.to_vec_async().await })));
        }
        let mut i = 0;
        while i < self.scoring.len() {
            if let Some(r) = poll_now(&mut self.scoring[i].1) {
                let (t, _) = self.scoring.swap_remove(i);
                let v = r?;
                let var = self.truth_var[t].as_ref().expect("set with the truth");
                let factor = if n > 1 {
                    (n + 1) as f64 / n as f64
                } else {
                    0.0
                };
                let rmse: Vec<f64> = v[..d].iter().map(|&m| f64::from(m).sqrt()).collect();
                let spread: Vec<f64> = v[d..]
                    .iter()
                    .map(|&s| (factor * f64::from(s)).sqrt())
                    .collect();
                self.frames[t].scores = Some(Scores {
                    vrmse: rmse
                        .iter()
                        .zip(var)
                        .map(|(r, v)| (r * r / (v + 1e-6)).sqrt())
                        .collect(),
                    spread_skill: spread
                        .iter()
                        .zip(&rmse)
                        .map(|(s, r)| (s + 1e-3) / (r + 1e-3))
                        .collect(),
                    rmse,
                    spread,
                });
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}
