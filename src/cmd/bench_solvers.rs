//! `lemur bench solvers`: throughput of the built-in CFD solvers.

use lemur_solvers::bench::{Solver, Throughput, measure};
use std::time::Duration;

#[derive(clap::Args)]
pub struct BenchSolversArgs {
    /// Grid sizes n (each solver runs on n x n cells).
    #[arg(long, value_delimiter = ',', default_values_t = vec![64, 128])]
    pub sizes: Vec<usize>,
    /// Thread counts to compare; the scaling ratio is last / first.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2])]
    pub threads: Vec<usize>,
    /// Seconds of timed stepping per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Skip timing the generation of the default training sets.
    #[arg(long)]
    pub no_generate: bool,
}

pub fn run(args: BenchSolversArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.sizes.is_empty() && !args.threads.is_empty(),
        "need at least one size and one thread count"
    );
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    let budget = Duration::from_secs_f64(args.seconds);
    println!(
        "solver throughput (cell updates per second; one update = one cell advanced one internal step)"
    );
    println!(
        "{:<16} {:>9} {:>8} {:>8} {:>14} {:>8}",
        "solver", "grid", "threads", "steps", "cell-upd/s", "scaling"
    );
    for (solver, name) in [
        (Solver::Euler, "euler"),
        (Solver::RayleighBenard, "rayleigh-benard"),
    ] {
        for &n in &args.sizes {
            let mut first: Option<Throughput> = None;
            for &t in &args.threads {
                let r = measure(solver, n, t, budget)?;
                let rate = r.cell_updates_per_second();
                let scaling = match &first {
                    Some(f) => format!("{:.2}x", rate / f.cell_updates_per_second()),
                    None => "-".to_string(),
                };
                println!(
                    "{name:<16} {:>9} {t:>8} {:>8} {rate:>14.3e} {scaling:>8}",
                    format!("{n}x{n}"),
                    r.steps
                );
                first.get_or_insert(r);
            }
        }
    }
    if args.threads.len() > 1 {
        println!(
            "scaling = throughput at {} threads / at {} (target >= 1.7 for 2 vs 1 on an idle machine)",
            args.threads.last().unwrap_or(&1),
            args.threads[0]
        );
    }
    if !args.no_generate {
        generation_times()?;
    }
    Ok(())
}

/// Times `lemur generate` with its defaults for each system, into a scratch directory.
fn generation_times() -> anyhow::Result<()> {
    use super::generate::{GenerateArgs, System, generate};
    println!("\ndefault training sets (`lemur generate <system>` with its defaults)");
    for (system, name) in [
        (System::Euler, "euler"),
        (System::RayleighBenard, "rayleigh-benard"),
    ] {
        let out = std::env::temp_dir().join(format!(
            "lemur-bench-generate-{name}-{}",
            std::process::id()
        ));
        let args = GenerateArgs {
            system,
            trajectories: 40,
            frames: None,
            size: None,
            seed: 0,
            periodic: false,
            out: out.clone(),
            overwrite: false,
            extend: false,
        };
        let report = generate(&args, false);
        let _ = std::fs::remove_dir_all(&out);
        let r = report?;
        println!(
            "{name:<16} {} trajectories x {} frames: {:.2} s simulate+write, {:.2} s statistics",
            r.trajectories,
            r.frames,
            r.simulate_and_write.as_secs_f64(),
            r.statistics.as_secs_f64()
        );
    }
    Ok(())
}
