//! `lemur rollout`: emulate a trajectory with a trained run (diffusion with any sampler, the
//! surrogate, or an autoencoder's reconstruction), from a dataset trajectory or from initial
//! frames in a file, and write the prediction, PNG frames and an animated GIF per field.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lemur_solvers::System;
use lemur_tensor::params::{read_safetensors, write_safetensors};
use lemur_tensor::{AnyBackend, Backend};
use lemur_train::ModelKind;
use lemur_train::emulate::{Emulation, Prediction, Trajectory, read_trajectory_file};
use lemur_well::{TrajectoryData, WellFile, write_file};

use super::common::MAX_FRAMES;
use super::pretrained;
use super::sampling::SamplerArgs;
use super::visual;

#[derive(clap::Args, Clone, Debug)]
pub struct RolloutArgs {
    /// A diffusion, surrogate or autoencoder run (or one of its checkpoint directories), or an
    /// embedded pretrained run: `pretrained` (diffusion), `pretrained-surrogate`,
    /// `pretrained-autoencoder` (Euler), `pretrained-rb`, `pretrained-rb-surrogate`,
    /// `pretrained-rb-autoencoder` (Rayleigh-Bénard).
    #[arg(long, default_value = "pretrained")]
    pub run: PathBuf,
    /// Dataset to take the initial frames (and the truth) from; defaults to the data the
    /// run's autoencoder was trained on, and when that is not on this machine, to a fresh
    /// trajectory of the built-in solver (seed --index).
    #[arg(long, conflicts_with = "init")]
    pub data: Option<PathBuf>,
    /// Take the truth from a fresh trajectory of the built-in solver (seed --index) even when
    /// the run's dataset is on this machine.
    #[arg(long, conflicts_with_all = ["init", "data"])]
    pub simulate: bool,
    /// Split of --data.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Trajectory of the split (counting across its files in order).
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// First physical frame of the rollout in the trajectory [default: 0, or 80 for
    /// Rayleigh-Bénard runs: their first frames are a motionless conduction state].
    #[arg(long)]
    pub start: Option<usize>,
    /// Initial frames instead of a dataset: a safetensors file with `frames` [K, C, H, W] in
    /// physical units (K >= --context; the last --context are used) and, for models with
    /// labels, `labels` [F].
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Frames to predict after the context, each one training stride apart. Default: to the
    /// end of the dataset trajectory, 24 for a solver trajectory (required with --init). At
    /// most to the end of a dataset trajectory; without one, context + horizon <= 1000.
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Ensemble members (one batch, at most 64).
    #[arg(long, default_value_t = 1)]
    pub ensemble: usize,
    #[command(flatten)]
    pub sampling: SamplerArgs,
    /// Output directory (created; existing files in it are replaced).
    #[arg(long, default_value = "lemur-rollout")]
    pub out: PathBuf,
    /// Also write the prediction in The Well's HDF5 layout (members as trajectories); needs
    /// a dataset source for coordinates and field names.
    #[arg(long)]
    pub well: bool,
    /// Skip the PNG frames and GIFs.
    #[arg(long)]
    pub no_images: bool,
    /// Upscaling of each grid cell in the images.
    #[arg(long, default_value_t = 4)]
    pub pixel_scale: usize,
}

pub fn run(args: RolloutArgs) -> Result<()> {
    super::common::check_out_dir(&args.out)?;
    check_sizes(&args)?;
    let backend = super::common::open_backend(args.sampling.backend.as_deref())?;
    match backend {
        AnyBackend::Cpu(b) => run_on(b, &args),
        AnyBackend::Gpu(b) => run_on(b, &args),
    }
}

/// The sizes that need no model or data, checked before any work: `--ensemble`, `--steps`,
/// `--horizon`, and with `--init` (no truth to end the rollout) `--context` + `--horizon`
/// against [`MAX_FRAMES`].
fn check_sizes(args: &RolloutArgs) -> Result<()> {
    super::common::check_sampling(args.ensemble, args.sampling.steps)?;
    if args.horizon == Some(0) {
        bail!("--horizon must be at least 1");
    }
    // The sampler and window options, parsed before any work (a truth is simulated and
    // written before the model runs).
    args.sampling.options(1, args.ensemble, None)?;
    // Each image is the grid times this on each side: 64 draws a 64x64 grid at 4096 pixels.
    const MAX_PIXEL_SCALE: usize = 64;
    if !(1..=MAX_PIXEL_SCALE).contains(&args.pixel_scale) {
        bail!(
            "--pixel-scale {}: between 1 and {MAX_PIXEL_SCALE}",
            args.pixel_scale
        );
    }
    if args.init.is_some()
        && let Some(h) = args.horizon
    {
        check_unbounded(h, args.sampling.context, "from --init")?;
    }
    Ok(())
}

/// `--context` + `--horizon` frames without a dataset trajectory to bound them.
fn check_unbounded(horizon: usize, context: usize, source: &str) -> Result<()> {
    if horizon.saturating_add(context) > MAX_FRAMES {
        bail!(
            "--horizon {horizon}: with --context {context} that is {} frames; a rollout {source} \
             has no dataset trajectory to end it and makes at most {MAX_FRAMES} (context \
             included), so --horizon can be at most {}",
            horizon.saturating_add(context),
            MAX_FRAMES.saturating_sub(context)
        );
    }
    Ok(())
}

/// Where the initial frames came from.
struct Source {
    /// `[K, C, H, W]` physical frames, one stride apart, K >= context.
    init: Vec<f32>,
    /// Frames one stride apart from the start, including the initial ones, when known.
    truth: Option<Vec<f32>>,
    grid: [usize; 2],
    labels: Vec<f32>,
    well: Option<(PathBuf, f64)>,
    description: String,
}

fn load_source<B: Backend>(em: &Emulation<B>, args: &RolloutArgs) -> Result<Source> {
    let context = args.sampling.context;
    let c = em.stats.channels.len();
    if let Some(path) = &args.init {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let t = read_safetensors(&bytes, path)?;
        let (shape, frames) = t
            .get("frames")
            .with_context(|| format!("{}: no tensor `frames` [K, C, H, W]", path.display()))?;
        if shape.len() != 4 || shape[1] != c || shape[0] < context.max(1) {
            bail!(
                "{}: `frames` has shape {shape:?}; expected [K >= {}, {c}, H, W] \
                 (the run's channels: {:?})",
                path.display(),
                context.max(1),
                em.stats.channels
            );
        }
        let frame = frames.len() / shape[0];
        let labels = t.get("labels").map(|(_, v)| v.clone()).unwrap_or_default();
        return Ok(Source {
            init: frames[(shape[0] - context) * frame..].to_vec(),
            truth: None,
            grid: [shape[2], shape[3]],
            labels,
            well: None,
            description: format!("{}", path.display()),
        });
    }
    let traj = match &args.data {
        Some(root) => read_indexed(root, args)?,
        // The embedded runs' recorded data is the training machine's, even where a directory
        // of that name happens to exist: they always get a fresh trajectory.
        None if em.physical_data.root.is_dir()
            && !args.simulate
            && !super::pretrained::is_pretrained(&args.run) =>
        {
            read_indexed(&em.physical_data.root, args)?
        }
        None => simulate(em, args)?,
    };
    if traj.channels != em.stats.channels {
        bail!(
            "{}: channels {:?} differ from the run's {:?}",
            traj.file.display(),
            traj.channels,
            em.stats.channels
        );
    }
    if args.start() >= traj.steps {
        bail!(
            "--start {}: trajectory {} of {} has {} frames (0 to {})",
            args.start(),
            traj.index,
            traj.file.display(),
            traj.steps,
            traj.steps - 1
        );
    }
    let truth = traj.strided(args.start(), em.stride, None);
    let frame = c * traj.grid[0] * traj.grid[1];
    let known = truth.len() / frame;
    if known < context + 1 {
        bail!(
            "{}: trajectory {} has {} frames; from --start {} at stride {} that leaves {known} \
             for --context {context} and at least one prediction",
            traj.file.display(),
            traj.index,
            traj.steps,
            args.start(),
            em.stride,
        );
    }
    if let Some(h) = args.horizon
        && h.saturating_add(context) > known
    {
        bail!(
            "--horizon {h} runs past the end of the truth: with --context {context} at stride {} from \
             --start {}, trajectory {} of {} has {known} frames ({} physical), so at most {} can \
             be predicted",
            em.stride,
            args.start(),
            traj.index,
            traj.file.display(),
            traj.steps,
            known - context
        );
    }
    let dt = WellFile::open(&traj.file)?
        .meta()
        .time
        .windows(2)
        .next()
        .map_or(1.0, |w| w[1] - w[0]);
    Ok(Source {
        init: truth[..context * frame].to_vec(),
        grid: traj.grid,
        labels: traj.labels.clone(),
        well: Some((traj.file.clone(), dt)),
        description: format!(
            "{} trajectory {} from frame {}",
            traj.file.display(),
            traj.index,
            args.start()
        ),
        truth: Some(truth),
    })
}

impl RolloutArgs {
    /// `--start`, once `run_on` has filled in the run's default.
    fn start(&self) -> usize {
        self.start.unwrap_or(0)
    }
}

fn run_on<B: Backend>(backend: B, args: &RolloutArgs) -> Result<()> {
    let em = Emulation::open(backend, &pretrained::resolve(&args.run)?)?;
    let args = &RolloutArgs {
        start: Some(
            args.start
                .unwrap_or_else(|| super::common::default_start(&em.stats.dataset_name)),
        ),
        ..args.clone()
    };
    let src = load_source(&em, args)?;
    let frame = em.stats.channels.len() * src.grid[0] * src.grid[1];
    let context = args.sampling.context;
    let known = src.truth.as_ref().map(|t| t.len() / frame);
    let horizon = match (args.horizon, known) {
        (Some(h), _) => h,
        (None, Some(k)) => k - context,
        (None, None) => bail!("--horizon is required with --init"),
    };
    if horizon == 0 {
        bail!("--horizon must be at least 1");
    }
    super::common::check_prediction_size(args.ensemble, context + horizon, frame)?;
    let opts = args
        .sampling
        .options(horizon, args.ensemble, em.recommended_overlap()?)?;
    // An autoencoder run reconstructs the true frames.
    let init = if em.kind == ModelKind::Autoencoder {
        let truth = src
            .truth
            .as_ref()
            .context("an autoencoder run reconstructs dataset frames: give --data, not --init")?;
        truth[..truth.len().min((context + horizon) * frame)].to_vec()
    } else {
        src.init.clone()
    };
    let pred = em.predict(&init, src.grid, &src.labels, &opts)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    write_prediction(&em, args, &src, &pred, opts.overlap)?;
    if args.well {
        write_well(&em, args, &src, &pred)?;
    }
    let images = if args.no_images {
        0
    } else {
        visual::rollout_images(
            &args.out,
            &em.stats.channels,
            src.truth.as_deref(),
            &pred,
            args.pixel_scale,
            em.stride,
            // As the app draws it: the hot plate at the bottom of the wide box.
            System::of(&em.stats.dataset_name) == Some(System::RayleighBenard),
        )?
    };
    let total = pred.encode_s + pred.emulate_s + pred.decode_s;
    println!(
        "{} rollout of {} ({}): {} frames x {} member(s) at stride {}, {} context frame(s)",
        em.kind,
        args.run.display(),
        src.description,
        pred.steps,
        pred.members,
        em.stride,
        context
    );
    if em.kind == ModelKind::Diffusion {
        println!(
            "sampler {}, {} steps per window",
            opts.sampler.method, opts.sampler.steps
        );
    }
    println!(
        "timings: encode {:.3} s, emulate {:.3} s, decode {:.3} s, total {:.3} s ({:.2} predicted frames/s per member)",
        pred.encode_s,
        pred.emulate_s,
        pred.decode_s,
        total,
        (pred.steps - context.min(pred.steps)) as f64 / total
    );
    println!(
        "wrote {} ({} images) to {}",
        if args.well {
            "prediction.safetensors and prediction.hdf5"
        } else {
            "prediction.safetensors"
        },
        images,
        args.out.display()
    );
    Ok(())
}

fn write_prediction<B: Backend>(
    em: &Emulation<B>,
    args: &RolloutArgs,
    src: &Source,
    pred: &Prediction,
    overlap: usize,
) -> Result<()> {
    let [c, h, w] = pred.shape;
    let t = pred.steps;
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "prediction".to_string(),
        (vec![pred.members, t, c, h, w], pred.frames.clone()),
    );
    tensors.insert("mean".to_string(), (vec![t, c, h, w], pred.mean()));
    tensors.insert("spread".to_string(), (vec![t, c, h, w], pred.spread()));
    if let Some(truth) = &src.truth {
        let n = (truth.len() / (c * h * w)).min(t);
        tensors.insert(
            "truth".to_string(),
            (vec![n, c, h, w], truth[..n * c * h * w].to_vec()),
        );
    }
    let mut meta = HashMap::new();
    meta.insert("channels".to_string(), em.stats.channels.join(","));
    meta.insert("run".to_string(), args.run.display().to_string());
    meta.insert("kind".to_string(), em.kind.to_string());
    meta.insert("source".to_string(), src.description.clone());
    meta.insert("stride".to_string(), em.stride.to_string());
    meta.insert("context".to_string(), args.sampling.context.to_string());
    meta.insert("overlap".to_string(), overlap.to_string());
    meta.insert(
        "sampler".to_string(),
        format!("{} steps {}", args.sampling.sampler, args.sampling.steps),
    );
    write_safetensors(
        &args.out.join("prediction.safetensors"),
        &tensors,
        Some(meta),
    )?;
    Ok(())
}

/// The members as trajectories of one Well file, fields and coordinates from the source.
fn write_well<B: Backend>(
    em: &Emulation<B>,
    args: &RolloutArgs,
    src: &Source,
    pred: &Prediction,
) -> Result<()> {
    let Some((file, dt)) = &src.well else {
        bail!("--well needs a dataset source (--data) for coordinates and field names");
    };
    let f = WellFile::open(file)?;
    let m = f.meta();
    let names = |order: usize| -> Vec<String> {
        m.fields
            .iter()
            .filter(|f| f.order == order)
            .map(|f| f.name.clone())
            .collect()
    };
    let (t0, t1) = (names(0), names(1));
    if m.fields.iter().any(|f| f.order > 1) || m.coords.len() != 2 {
        bail!(
            "{}: --well writes 2-D scalar and vector fields only",
            file.display()
        );
    }
    let [c, h, w] = pred.shape;
    let t = pred.steps;
    let boundary = |axis: usize| {
        m.axis_boundary(axis)
            .unwrap_or(lemur_well::BoundaryType::Open)
    };
    let t_start = m.time.get(args.start()).copied().unwrap_or(0.0);
    let trajectories: Vec<TrajectoryData> = (0..pred.members)
        .map(|n| {
            let member = pred.member(n);
            // [T, C, H, W] -> [T, H, W, C]
            let mut data = vec![0.0f32; member.len()];
            for ti in 0..t {
                for ci in 0..c {
                    for p in 0..h * w {
                        data[(ti * h * w + p) * c + ci] = member[(ti * c + ci) * h * w + p];
                    }
                }
            }
            TrajectoryData {
                dataset_name: m.dataset_name.clone(),
                x: m.coords[0].clone(),
                y: m.coords[1].clone(),
                times: (0..t)
                    .map(|i| t_start + (i * em.stride) as f64 * dt)
                    .collect(),
                t0_fields: t0.clone(),
                t1_fields: t1.clone(),
                data,
                scalars: m.constant_scalars(),
                boundaries: [boundary(0), boundary(1)],
            }
        })
        .collect();
    write_file(
        args.out.join("prediction.hdf5"),
        &trajectories.iter().collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// Trajectory `--index` of `--split` of a dataset directory or Well file, checked first.
fn read_indexed(root: &Path, args: &RolloutArgs) -> Result<Trajectory> {
    let all = super::common::data_trajectories(root, &args.split)?;
    let Some((file, i)) = all.get(args.index) else {
        bail!(
            "--index {}: trajectory {} requested, the {} split of {} has {} (0 to {})",
            args.index,
            args.index,
            args.split,
            root.display(),
            all.len(),
            all.len() - 1
        );
    };
    Ok(read_trajectory_file(file, *i)?)
}

/// A fresh trajectory of the built-in Euler solver on the run's grid (seed `--index`), written
/// as a Well file beside the outputs and read back like any dataset: the truth when the
/// training data is not on this machine (the embedded pretrained runs).
fn simulate<B: Backend>(em: &Emulation<B>, args: &RolloutArgs) -> Result<Trajectory> {
    let name = &em.stats.dataset_name;
    let Some(system) = System::of(name) else {
        bail!(
            "the run's data ({}, {name}) is not on this machine and only Euler and \
             Rayleigh-Bénard data can be simulated on the fly: give --data DIR or --init FILE",
            em.physical_data.root.display()
        );
    };
    let horizon = args.horizon.unwrap_or(24);
    let context = args.sampling.context;
    check_unbounded(horizon, context, "on a simulated truth")?;
    let limit = MAX_FRAMES * em.stride;
    if args.start() > limit {
        bail!(
            "--start {}: a simulated truth starts at most {limit} frames in ({MAX_FRAMES} frames \
             at the run's stride {})",
            args.start(),
            em.stride
        );
    }
    let [nx, ny] = em.physical_data.grid;
    let frames = args.start() + (context + horizon) * em.stride;
    // The embedded runs were trained elsewhere: their data is never here, and its path would
    // name a directory of the machine that trained them.
    if !args.simulate && !super::pretrained::is_pretrained(&args.run) {
        eprintln!(
            "lemur: the run's data {} is not here; the truth is a fresh trajectory of the \
             built-in solver",
            em.physical_data.root.display()
        );
    }
    eprintln!(
        "lemur: simulating {} trajectory {} ({frames} frames at {nx}x{ny})",
        system.title(),
        args.index
    );
    let seed = args.index as u64;
    let t = if let System::Euler { periodic } = system {
        let cfg = lemur_solvers::euler::EulerConfig {
            nx,
            ny,
            frames,
            periodic,
            ..Default::default()
        };
        lemur_solvers::euler::generate(&cfg, seed, &mut |_, _| {})?
    } else {
        let cfg = lemur_solvers::rayleigh_benard::RbConfig {
            nx,
            nz: ny,
            frames,
            ..Default::default()
        };
        lemur_solvers::rayleigh_benard::generate(&cfg, seed, &mut |_, _| {})?
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let file = args.out.join("truth.hdf5");
    write_file(&file, &[&super::generate::to_well(t)])?;
    Ok(read_trajectory_file(&file, 0)?)
}
