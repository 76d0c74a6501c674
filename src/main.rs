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
    /// Import a run trained elsewhere (the reference PyTorch implementation) as a lemur run.
    Import {
        #[command(subcommand)]
        command: cmd::import::ImportCommand,
    },
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
    /// Experiments made of the commands above (resumable: run again to continue).
    Experiment {
        #[command(subcommand)]
        command: cmd::experiment::ExperimentCommand,
    },
}

fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        lemur_tensor::gpu::quiet_mesa_without_session()
    };
    quiet_broken_pipe();
    let cli = Cli::parse();
    let result = dispatch(cli.command);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<cmd::interrupt::Interrupted>() => {
            eprintln!("lemur: {e}");
            std::process::ExitCode::from(cmd::interrupt::EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("{}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command (also the stages of `lemur experiment`, parsed from their command lines).
fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate(args) => cmd::generate::run(args),
        Command::Data { command } => cmd::data::run(command),
        Command::Train { command } => cmd::train::run(command),
        Command::Encode(args) => cmd::encode::run(args),
        Command::Import { command } => cmd::import::run(command),
        Command::Rollout(args) => cmd::rollout::run(args),
        Command::Eval(args) => cmd::evaluation::run(args),
        Command::Bench { command } => cmd::bench::run(command),
        Command::Experiment { command } => cmd::experiment::run(command),
    }
}

/// A reader that stopped reading (`lemur data info DIR | head -1`) ends the program quietly:
/// `println!` panics on a closed stdout, so the panic hook exits 0 for that one panic.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout")
            && (payload.contains("Broken pipe") || payload.contains("os error 32"))
        {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, once each: no backtrace (a user error is not a bug), and a
/// cause whose text the previous message already shows is left out.
fn error_report(e: &anyhow::Error) -> String {
    let mut shown: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || shown.last().is_some_and(|last| last.contains(text)) {
            continue;
        }
        shown.push(text.to_string());
    }
    let mut out = format!("error: {}", shown.first().map_or("", String::as_str));
    for cause in shown.iter().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}
