//! `lemur generate`: simulate trajectories with a built-in solver and write them as a
//! Well-layout dataset (`<out>/data/{train,valid,test}/*.hdf5` and `<out>/stats.json`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use lemur_solvers::{Boundary, Trajectory};
use lemur_well::dataset::{SPLITS, split_counts, write_stats};
use lemur_well::{BoundaryType, TrajectoryData, write_file};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// Compressible Euler, four-quadrant Riemann problems on [0,1]^2.
    Euler,
    /// Boussinesq Rayleigh-Bénard convection on [0,4) x [0,1].
    RayleighBenard,
}

#[derive(clap::Args, Clone, Debug)]
pub struct GenerateArgs {
    /// The solver.
    pub system: System,
    /// Trajectories in all, split 80/10/10 into train/valid/test.
    #[arg(long, default_value_t = 40)]
    pub trajectories: usize,
    /// Stored frames per trajectory, initial condition included (default: the solver's).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Grid as `WxH`: W cells along x, H along y (the vertical z for Rayleigh-Bénard).
    /// Default: the solver's (64x64 Euler, 128x32 Rayleigh-Bénard).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(usize, usize)>,
    /// Seed of the whole set; trajectory i uses a seed derived from it and i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Euler only: periodic boundaries (`euler_multi_quadrants_periodicBC`) instead of open.
    #[arg(long)]
    pub periodic: bool,
    /// Dataset directory to create (an existing one must be empty unless --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the dataset in an existing --out (its `data/` and `stats.json`) instead of
    /// refusing a non-empty directory.
    #[arg(long)]
    pub overwrite: bool,
    /// Add --trajectories training trajectories to the dataset at --out instead of creating
    /// one: numbered after its last trajectory (new ones, from the same --seed), written to
    /// its training split only. Its validation and test splits and its stats.json (the
    /// normalisation of the runs trained on it) are kept. Give the options it was generated
    /// with.
    #[arg(long, conflicts_with = "overwrite")]
    pub extend: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WxH, got {s:?}"))?;
    let parse = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    let (w, h) = (parse(w)?, parse(h)?);
    if w < 2 || h < 2 {
        return Err(format!("grid {w}x{h} is too small"));
    }
    Ok((w, h))
}

/// Wall-clock breakdown of one generation, for `lemur generate` and the benchmarks.
#[derive(Clone, Debug)]
pub struct Report {
    pub trajectories: usize,
    pub frames: usize,
    pub simulate_and_write: Duration,
    pub statistics: Duration,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    if args.extend {
        super::interrupt::install(
            "finishing the trajectories in progress, then removing the new ones not yet added",
        )?;
        let (report, first) = extend(&args, true)?;
        println!(
            "{} training trajectories x {} frames (numbers {first} to {}) added to {} in {:.2} s \
             (its valid and test splits and stats.json kept), {} threads",
            report.trajectories,
            report.frames,
            first + report.trajectories - 1,
            args.out.display(),
            report.simulate_and_write.as_secs_f64(),
            rayon::current_num_threads()
        );
        return Ok(());
    }
    super::interrupt::install(
        "finishing the trajectories in progress, then removing the partial dataset",
    )?;
    let report = generate(&args, true)?;
    println!(
        "{} trajectories x {} frames written to {} in {:.2} s (+ {:.2} s statistics), {} threads",
        report.trajectories,
        report.frames,
        args.out.display(),
        report.simulate_and_write.as_secs_f64(),
        report.statistics.as_secs_f64(),
        rayon::current_num_threads()
    );
    Ok(())
}

/// Seed of trajectory `i`: a SplitMix64 step, so neighbouring indices get unrelated states.
fn trajectory_seed(seed: u64, i: usize) -> u64 {
    let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn simulate(
    args: &GenerateArgs,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Trajectory> {
    Ok(match args.system {
        System::Euler => {
            let mut cfg = lemur_solvers::euler::EulerConfig {
                periodic: args.periodic,
                ..Default::default()
            };
            if let Some((w, h)) = args.size {
                (cfg.nx, cfg.ny) = (w, h);
            }
            if let Some(f) = args.frames {
                cfg.frames = f;
            }
            lemur_solvers::euler::generate(&cfg, seed, progress)?
        }
        System::RayleighBenard => {
            let mut cfg = lemur_solvers::rayleigh_benard::RbConfig::default();
            if let Some((w, h)) = args.size {
                (cfg.nx, cfg.nz) = (w, h);
            }
            if let Some(f) = args.frames {
                cfg.frames = f;
            }
            lemur_solvers::rayleigh_benard::generate(&cfg, seed, progress)?
        }
    })
}

/// Limits of what `generate` takes, far above the paper's datasets (and the solvers' own
/// defaults), so that a typo is refused at once instead of simulating for hours or
/// allocating without bound: each trajectory is held in memory while it is simulated.
const MAX_GRID: usize = 4096;
const MAX_FRAMES: usize = 100_000;
const MAX_TRAJECTORIES: usize = 1_000_000;
const MAX_TRAJECTORY_BYTES: u64 = 4 << 30;
const MAX_DATASET_BYTES: u64 = 1 << 40;

/// Checks every size before any work, with checked arithmetic, naming the flag.
fn check_sizes(args: &GenerateArgs) -> anyhow::Result<()> {
    let (w, h) = args.size.unwrap_or(match args.system {
        System::Euler => {
            let c = lemur_solvers::euler::EulerConfig::default();
            (c.nx, c.ny)
        }
        System::RayleighBenard => {
            let c = lemur_solvers::rayleigh_benard::RbConfig::default();
            (c.nx, c.nz)
        }
    });
    anyhow::ensure!(
        w <= MAX_GRID && h <= MAX_GRID,
        "--size {w}x{h}: at most {MAX_GRID} cells along each axis"
    );
    let frames = frames_of(args);
    anyhow::ensure!(frames >= 1, "--frames must be at least 1");
    anyhow::ensure!(
        frames <= MAX_FRAMES,
        "--frames {frames}: at most {MAX_FRAMES} frames per trajectory"
    );
    anyhow::ensure!(
        args.trajectories <= MAX_TRAJECTORIES,
        "--trajectories {}: at most {MAX_TRAJECTORIES}",
        args.trajectories
    );
    // Five f32 channels at most (Euler's), with checked products.
    let per_trajectory = [w, h, frames, 5, 4]
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    anyhow::ensure!(
        per_trajectory <= MAX_TRAJECTORY_BYTES,
        "--frames {frames} at --size {w}x{h}: one trajectory takes {:.1} GiB in memory while it \
         is simulated (at most {:.0} GiB)",
        gib(per_trajectory),
        gib(MAX_TRAJECTORY_BYTES)
    );
    let total = per_trajectory.saturating_mul(args.trajectories as u64);
    anyhow::ensure!(
        total <= MAX_DATASET_BYTES,
        "--trajectories {} of {:.1} GiB each: {:.0} GiB in all (at most {:.0} GiB)",
        args.trajectories,
        gib(per_trajectory),
        gib(total),
        gib(MAX_DATASET_BYTES)
    );
    Ok(())
}

fn frames_of(args: &GenerateArgs) -> usize {
    args.frames.unwrap_or(match args.system {
        System::Euler => lemur_solvers::euler::EulerConfig::default().frames,
        System::RayleighBenard => lemur_solvers::rayleigh_benard::RbConfig::default().frames,
    })
}

pub(crate) fn to_well(t: Trajectory) -> TrajectoryData {
    let bc = |b: Boundary| match b {
        Boundary::Open => BoundaryType::Open,
        Boundary::Periodic => BoundaryType::Periodic,
        Boundary::Wall => BoundaryType::Wall,
    };
    TrajectoryData {
        dataset_name: t.dataset_name,
        x: t.x,
        y: t.y,
        times: t.times,
        t0_fields: t.t0_fields,
        t1_fields: t.t1_fields,
        data: t.data,
        scalars: t.scalars,
        boundaries: t.boundaries.map(bc),
    }
}

/// One file per trajectory, named after its parameters: The Well keeps a file's scalars
/// constant, our scalars differ per trajectory, and it bounds memory to one trajectory per
/// thread.
fn file_name(t: &TrajectoryData, index: usize) -> String {
    let mut name = t.dataset_name.clone();
    for (k, v) in &t.scalars {
        name.push_str(&format!("_{k}_{v}"));
    }
    format!("{name}_{index:05}.hdf5")
}

/// `--out` must be a directory that does not exist or is empty, so that old and new
/// trajectories never mix, unless `--overwrite` (which replaces the dataset only once the new
/// one is complete, see [`move_into_place`]).
fn check_out(out: &Path, overwrite: bool) -> anyhow::Result<()> {
    super::common::check_out_dir(out)?;
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    anyhow::ensure!(
        overwrite || entries.next().is_none(),
        "--out {} is not empty; choose another directory or give --overwrite to replace its \
         dataset",
        out.display()
    );
    Ok(())
}

/// The hidden sibling of `out` the dataset is written into (`.NAME.tmp-PID`): a partial
/// dataset never sits at `--out`, where it would look complete.
fn staging_dir(out: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?;
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        anyhow::bail!("--out {}: give a directory with a name", out.display());
    };
    Ok(parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Removes the staging directories of the same `--out` left by `generate`s that were killed
/// (SIGKILL, a power cut): those whose process no longer exists. Linux only (`/proc`);
/// elsewhere they stay, hidden, for the user to delete.
fn remove_dead_staging(staging: &Path) {
    let (Some(parent), Some(name)) = (staging.parent(), staging.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Some((prefix, _)) = name.rsplit_once('-') else {
        return;
    };
    if !cfg!(target_os = "linux") || !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        let dead = other
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if dead {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// An empty staging directory for `out` (dead siblings removed, a leftover of this PID
/// too), which an interrupt removes until [`super::interrupt::abandon_on_quit`] is cleared.
fn fresh_staging(out: &Path) -> anyhow::Result<PathBuf> {
    let staging = staging_dir(out)?;
    remove_dead_staging(&staging);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    super::interrupt::abandon_on_quit(Some(staging.clone()));
    Ok(staging)
}

/// Moves the complete dataset from `staging` to `out`. A new `out` is one rename; into an
/// existing (empty, or `--overwrite`) one, `stats.json` goes first and comes back last, so
/// that at no moment does `out` hold `stats.json` beside a partial `data/`.
fn move_into_place(staging: &Path, out: &Path) -> anyhow::Result<()> {
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .with_context(|| format!("moving {} to {}", from.display(), to.display()))
    };
    if !out.exists() {
        return rename(staging, out);
    }
    let (stats, data) = (out.join("stats.json"), out.join("data"));
    if stats.exists() {
        std::fs::remove_file(&stats).with_context(|| format!("removing {}", stats.display()))?;
    }
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    }
    rename(&staging.join("data"), &data)?;
    rename(&staging.join("stats.json"), &stats)?;
    std::fs::remove_dir(staging).with_context(|| format!("removing {}", staging.display()))
}

/// Simulate, write every split, then compute the training statistics, all in a staging
/// directory that is renamed to `--out` when complete; on an error or an interrupt it is
/// removed and `--out` is left as it was. `progress` shows a bar with an ETA on a terminal
/// (indicatif draws nothing otherwise).
pub fn generate(args: &GenerateArgs, progress: bool) -> anyhow::Result<Report> {
    anyhow::ensure!(args.trajectories > 0, "--trajectories must be positive");
    check_sizes(args)?;
    let out = &args.out;
    check_out(out, args.overwrite)?;
    let staging = fresh_staging(out)?;
    let result = generate_into(args, &staging, progress)
        .and_then(|report| move_into_place(&staging, out).map(|()| report));
    super::interrupt::abandon_on_quit(None);
    result.map_err(|e| {
        let removed = match std::fs::remove_dir_all(&staging) {
            Ok(()) => format!("the partial dataset {} was removed", staging.display()),
            Err(_) if !staging.exists() => "no partial dataset was left".to_string(),
            Err(r) => format!(
                "the partial dataset {} could not be removed ({r}); delete it",
                staging.display()
            ),
        };
        let kept = if out.exists() {
            format!("{} was left as it was", out.display())
        } else {
            format!("{} was not created", out.display())
        };
        if e.is::<super::interrupt::Interrupted>() {
            super::interrupt::Interrupted(format!("interrupted: {removed}; {kept}")).into()
        } else {
            e.context(format!("generating {} ({removed}; {kept})", out.display()))
        }
    })
}

fn generate_into(args: &GenerateArgs, out: &Path, progress: bool) -> anyhow::Result<Report> {
    let counts = split_counts(args.trajectories);
    let split_of = |i: usize| {
        if i < counts[0] {
            SPLITS[0]
        } else if i < counts[0] + counts[1] {
            SPLITS[1]
        } else {
            SPLITS[2]
        }
    };
    let mut report = simulate_into(args, out, 0, &split_of, None, progress)?;
    let start = Instant::now();
    write_stats(out)?;
    report.statistics = start.elapsed();
    Ok(report)
}

/// Simulates trajectories `first..first + --trajectories` into `out/data/SPLIT/`, each split
/// `split_of` its number; with `like`, each is checked against that file of the dataset it
/// joins before it is written.
fn simulate_into(
    args: &GenerateArgs,
    out: &Path,
    first: usize,
    split_of: &(dyn Fn(usize) -> &'static str + Sync),
    like: Option<&lemur_well::WellFile>,
    progress: bool,
) -> anyhow::Result<Report> {
    let frames = frames_of(args);
    for split in SPLITS {
        let dir = out.join("data").join(split);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = if progress {
        ProgressBar::new((args.trajectories * frames) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames, ETA {eta}",
        )
        .expect("static template"),
    );
    let start = Instant::now();
    (first..first + args.trajectories)
        .into_par_iter()
        .try_for_each(|i| -> anyhow::Result<()> {
            // Looked at before and after each simulation: trajectories in progress finish,
            // no new one starts, and nothing more is written.
            let stop = || anyhow::Error::from(super::interrupt::Interrupted("interrupted".into()));
            if super::interrupt::requested() {
                return Err(stop());
            }
            let mut last = 0;
            let mut tick = |done: usize, _total: usize| {
                bar.inc((done - last) as u64);
                last = done;
            };
            let traj = simulate(args, trajectory_seed(args.seed, i), &mut tick)
                .with_context(|| format!("trajectory {i}"))?;
            let data = to_well(traj);
            if let Some(like) = like {
                matches_dataset(&data, like)?;
            }
            if super::interrupt::requested() {
                return Err(stop());
            }
            let path = out.join("data").join(split_of(i)).join(file_name(&data, i));
            write_file(&path, &[&data])?;
            Ok(())
        })?;
    bar.finish_and_clear();
    let simulate_and_write = start.elapsed();
    if super::interrupt::requested() {
        return Err(super::interrupt::Interrupted("interrupted".into()).into());
    }
    Ok(Report {
        trajectories: args.trajectories,
        frames,
        simulate_and_write,
        statistics: Duration::ZERO,
    })
}

/// What a new trajectory must share with the dataset it joins: the system, grid, frames and
/// fields, so that `--extend` with other options is refused before anything is added.
fn matches_dataset(new: &TrajectoryData, like: &lemur_well::WellFile) -> anyhow::Result<()> {
    let meta = like.meta();
    let describe = |name: &str, shape: &[usize], frames: usize| {
        let grid: Vec<String> = shape.iter().map(usize::to_string).collect();
        format!("{name}, {} grid, {frames} frames", grid.join("x"))
    };
    let theirs = describe(&meta.dataset_name, &meta.spatial_shape(), meta.n_steps());
    let ours = describe(
        &new.dataset_name,
        &[new.x.len(), new.y.len()],
        new.times.len(),
    );
    anyhow::ensure!(
        ours == theirs,
        "--extend: the new trajectories ({ours}) do not match {} ({theirs}): give the options \
         the dataset was generated with",
        like.path().display()
    );
    Ok(())
}

/// The number `lemur generate` gave a trajectory file (`..._00042.hdf5`).
fn file_number(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_str()?;
    let (_, digits) = stem.rsplit_once('_')?;
    (digits.len() >= 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `--extend`: simulates the new training trajectories in a staging directory, checking each
/// against the dataset, then moves them into `--out/data/train/` one whole file at a time, so
/// that the dataset never holds a partial file. Returns the report and the first new number.
pub fn extend(args: &GenerateArgs, progress: bool) -> anyhow::Result<(Report, usize)> {
    anyhow::ensure!(args.trajectories > 0, "--trajectories must be positive");
    check_sizes(args)?;
    let out = &args.out;
    anyhow::ensure!(
        lemur_well::dataset::Stats::path(out).is_file(),
        "--extend: {} holds no dataset (no stats.json); generate one there first",
        out.display()
    );
    let mut files = Vec::new();
    for split in SPLITS {
        files.extend(lemur_well::dataset::split_files(out, split)?);
    }
    let Some(like) = files.first() else {
        anyhow::bail!("--extend: {} has no trajectory files", out.display());
    };
    let mut last = 0;
    for file in &files {
        let Some(n) = file_number(file) else {
            anyhow::bail!(
                "--extend: {} is not numbered as `lemur generate` numbers its files \
                 (NAME_00042.hdf5), so the next number is unknown",
                file.display()
            );
        };
        last = last.max(n);
    }
    let first = last + 1;
    let like = lemur_well::WellFile::open(like)?;
    let staging = fresh_staging(out)?;
    let train = lemur_well::dataset::data_dir(out).join(SPLITS[0]);
    let result = simulate_into(args, &staging, first, &|_| SPLITS[0], Some(&like), progress)
        .and_then(|report| {
            std::fs::create_dir_all(&train)
                .with_context(|| format!("creating {}", train.display()))?;
            let new = staging.join("data").join(SPLITS[0]);
            let mut names: Vec<_> = std::fs::read_dir(&new)
                .with_context(|| format!("reading {}", new.display()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("reading {}", new.display()))?;
            names.sort();
            for name in names {
                let (from, to) = (new.join(&name), train.join(&name));
                std::fs::rename(&from, &to)
                    .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
            }
            Ok(report)
        });
    super::interrupt::abandon_on_quit(None);
    let removed = std::fs::remove_dir_all(&staging);
    let report = result.map_err(|e| {
        let left = match removed {
            Ok(()) => format!(
                "the new trajectories not yet moved into {} were removed",
                train.display()
            ),
            Err(r) => format!(
                "{} could not be removed ({r}); delete it",
                staging.display()
            ),
        };
        if e.is::<super::interrupt::Interrupted>() {
            super::interrupt::Interrupted(format!("interrupted: {left}")).into()
        } else {
            e.context(format!("extending {} ({left})", out.display()))
        }
    })?;
    Ok((report, first))
}
