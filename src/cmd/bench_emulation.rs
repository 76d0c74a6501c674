//! `lemur bench emulation`: the paper's premise, measured. Physical frames per second of the
//! solver that makes the data against the latent emulator at the same resolution (the
//! autoencoder with the 16-step AB3 diffusion sampler, ensembles of 1 and 8, and the
//! deterministic surrogate), on each backend, in one run.
//!
//! Emulation cost does not depend on the weights, so the models are the presets' (freshly
//! initialised); pass `--preset` to time other sizes. One emulated latent frame stands for
//! `--stride` physical frames, as in training (DESIGN.md: windows of 5 frames, stride 4).

use std::time::Instant;

use anyhow::{Result, bail};
use lemur_models::dcae::{Dcae, DcaeConfig};
use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::rollout::{DiffusionEmulator, RolloutPlan, SurrogateEmulator, rollout};
use lemur_models::sampling::{Method, Sampler};
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::{AnyBackend, Backend, BackendKind, ParamStore, Tensor, no_grad};

#[derive(clap::Args, Clone, Debug)]
pub struct BenchEmulationArgs {
    /// Grid n x n of the solver and of the emulated fields.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Latent frames to emulate after the context frame.
    #[arg(long, default_value_t = 8)]
    pub horizon: usize,
    /// Physical frames per latent frame (the training stride).
    #[arg(long, default_value_t = 4)]
    pub stride: usize,
    /// Latent frames per window.
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// Ensemble sizes of the diffusion emulator.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8])]
    pub ensembles: Vec<usize>,
    /// Sampler steps (AB order 3).
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Preset size of the models: tiny, small or paper (built in; the files of assets/presets/).
    #[arg(long, default_value = "small")]
    pub preset: String,
    /// Backends: cpu, gpu or both.
    #[arg(long, default_value = "both")]
    pub backend: String,
}

fn preset(kind: &str, name: &str) -> Result<String> {
    super::presets::builtin(kind, name)
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::anyhow!("--preset {name}: no such preset; the presets are tiny, small, paper")
        })
}

pub fn run(args: BenchEmulationArgs) -> Result<()> {
    if args.horizon == 0 || args.stride == 0 || args.size == 0 || args.ensembles.contains(&0) {
        bail!("--size, --horizon, --stride and every ensemble size must be positive");
    }
    preset("autoencoder", &args.preset)?;
    let physical = args.horizon * args.stride;
    // The solver: the Euler system `lemur generate euler` simulates, same grid, same frame
    // spacing, for as many physical frames as the emulator predicts.
    let cfg = lemur_solvers::euler::EulerConfig {
        nx: args.size,
        ny: args.size,
        frames: physical + 1,
        ..Default::default()
    };
    let t = Instant::now();
    lemur_solvers::euler::generate(&cfg, 0, &mut |_, _| {})?;
    let solver_s = t.elapsed().as_secs_f64();
    let solver_fps = physical as f64 / solver_s;
    println!(
        "emulation vs simulation, {n}x{n} Euler fields, {physical} physical frames ({} latent frames x stride {})",
        args.horizon,
        args.stride,
        n = args.size
    );
    println!(
        "{:<44} {:>10} {:>14} {:>10}",
        "", "time (s)", "frames/s", "vs solver"
    );
    println!(
        "{:<44} {solver_s:>10.3} {solver_fps:>14.2} {:>10}",
        format!(
            "solver (euler, {} rayon threads)",
            rayon::current_num_threads()
        ),
        "1.00x"
    );
    let kinds: Vec<BackendKind> = match args.backend.as_str() {
        "both" => vec![BackendKind::Cpu, BackendKind::Gpu],
        other => vec![other.parse()?],
    };
    for kind in kinds {
        match AnyBackend::open_blocking(kind)? {
            AnyBackend::Cpu(b) => emulate_on(&b, &args, solver_fps)?,
            AnyBackend::Gpu(b) => emulate_on(&b, &args, solver_fps)?,
        }
    }
    println!(
        "frames/s counts physical frames of every ensemble member; the solver runs one trajectory"
    );
    Ok(())
}

fn emulate_on<B: Backend>(b: &B, args: &BenchEmulationArgs, solver_fps: f64) -> Result<()> {
    let ae_cfg = DcaeConfig::from_json(&preset("autoencoder", &args.preset)?)?;
    let den_cfg: VitConfig = serde_json::from_str(&preset("denoiser", &args.preset)?)?;
    let sur_cfg: VitConfig = serde_json::from_str(&preset("surrogate", &args.preset)?)?;
    let mut store = ParamStore::new();
    let ae = Dcae::new(&ae_cfg, &mut Builder::new(b, &mut store, 1))?;
    let den = Denoiser::new(&den_cfg, &mut Builder::new(b, &mut store, 2))?;
    let sur = Surrogate::new(&sur_cfg, &mut Builder::new(b, &mut store, 3))?;
    let n = args.size;
    let frame = Tensor::randn(b, &[1, ae_cfg.pix_channels, n, n], 4, 0)?;
    let plan = RolloutPlan {
        window: args.window,
        context: 1,
        overlap: 1,
        frames: 1 + args.horizon,
    };
    let physical = (args.horizon * args.stride) as f64;
    let line = |name: String,
                members: usize,
                f: &mut dyn FnMut(&Tensor<B>, usize) -> Result<()>|
     -> Result<()> {
        // One untimed pass compiles pipelines and fills the buffer pool.
        let time = |f: &mut dyn FnMut(&Tensor<B>, usize) -> Result<()>| -> Result<f64> {
            let t = Instant::now();
            no_grad(|| -> Result<()> {
                let z = ae.encode(&frame)?;
                let s = z.shape().to_vec();
                let z0 = z
                    .reshape(&[1, s[1], 1, s[2], s[3]])?
                    .broadcast_to(&[members, s[1], 1, s[2], s[3]])?;
                f(&z0, members)
            })?;
            pollster::block_on(b.sync())?;
            Ok(t.elapsed().as_secs_f64())
        };
        time(f)?;
        let s = time(f)?;
        let fps = physical * members as f64 / s;
        println!(
            "{name:<44} {s:>10.3} {fps:>14.2} {:>9.2}x",
            fps / solver_fps
        );
        Ok(())
    };
    let labels = |m: usize| -> Result<Option<Tensor<B>>> {
        Ok((den_cfg.label_features > 0)
            .then(|| Tensor::zeros(b, &[m, den_cfg.label_features]))
            .transpose()?)
    };
    let decode = |z: &Tensor<B>| -> Result<()> {
        let s = z.shape().to_vec();
        let frames = z
            .permute(&[0, 2, 1, 3, 4])?
            .reshape(&[s[0] * s[2], s[1], s[3], s[4]])?;
        for start in (0..s[0] * s[2]).step_by(16) {
            let len = 16.min(s[0] * s[2] - start);
            ae.decode(&frames.slice(0, start, len)?)?;
        }
        Ok(())
    };
    println!("backend: {}", b.name());
    for &members in &args.ensembles {
        line(
            format!("diffusion AB3 x {} steps, ensemble {members}", args.steps),
            members,
            &mut |z0, m| {
                let label = labels(m)?;
                let mut em = DiffusionEmulator {
                    denoiser: &den,
                    label: label.as_ref(),
                    sampler: Sampler::new(Method::Ab { order: 3 }, args.steps, 0)?,
                };
                decode(&rollout(&mut em, z0, &plan)?)
            },
        )?;
    }
    line("surrogate".to_string(), 1, &mut |z0, m| {
        let label = (sur_cfg.label_features > 0)
            .then(|| Tensor::zeros(b, &[m, sur_cfg.label_features]))
            .transpose()?;
        let mut em = SurrogateEmulator {
            surrogate: &sur,
            label: label.as_ref(),
        };
        decode(&rollout(&mut em, z0, &plan)?)
    })?;
    Ok(())
}
