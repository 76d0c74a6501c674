//! `lemur`: the command-line front end (data generation, training, emulation, evaluation,
//! benchmarks).

mod cmd;

#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lemur",
    version,
    about = "Latent EMUlatoR: fluid-dynamics emulation with latent diffusion on WebGPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a training dataset with a built-in solver (The Well's HDF5 layout).
    Generate(cmd::generate::GenerateArgs),
    /// Inspect datasets.
    Data {
        #[command(subcommand)]
        command: cmd::data::DataCommand,
    },
    /// Train a model (autoencoder, diffusion denoiser, surrogate), with checkpoints and resume.
    Train {
        #[command(subcommand)]
        command: cmd::train::TrainCommand,
    },
    /// Encode a dataset with a trained autoencoder into a latent cache.
    Encode(cmd::encode::EncodeArgs),
    /// Emulate a trajectory with a trained run: prediction, PNG frames and GIFs, timings.
    Rollout(cmd::rollout::RolloutArgs),
    /// Evaluate a run (diffusion, surrogate or autoencoder) on a dataset split: metrics per
    /// field and lead time (CSV), plots, and a summary table.
    Eval(cmd::evaluation::EvalArgs),
    /// Benchmarks (kernels, solvers, training, emulation).
    Bench {
        #[command(subcommand)]
        command: cmd::bench::BenchCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate(args) => cmd::generate::run(args),
        Command::Data { command } => cmd::data::run(command),
        Command::Train { command } => cmd::train::run(command),
        Command::Encode(args) => cmd::encode::run(args),
        Command::Rollout(args) => cmd::rollout::run(args),
        Command::Eval(args) => cmd::evaluation::run(args),
        Command::Bench { command } => cmd::bench::run(command),
    }
}
