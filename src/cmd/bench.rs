use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Tensor kernels on each backend (matmul, conv2d, attention, layer norm, AdamW).
    Kernels(super::bench_kernels::BenchKernelsArgs),
    /// Solver throughput (cell updates per second, thread scaling, dataset generation time).
    Solvers(super::bench_solvers::BenchSolversArgs),
    /// Training throughput (samples/s of one optimizer step) of an autoencoder preset and fixed
    /// configurations, on each backend.
    Training(super::bench_training::BenchTrainingArgs),
    /// Emulation speed against the solver that makes the data (physical frames per second).
    Emulation(super::bench_emulation::BenchEmulationArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Kernels(args) => super::bench_kernels::run(args),
        BenchCommand::Solvers(args) => super::bench_solvers::run(args),
        BenchCommand::Training(args) => super::bench_training::run(&args),
        BenchCommand::Emulation(args) => super::bench_emulation::run(args),
    }
}
