pub mod bench;
pub mod bench_kernels;
pub mod bench_solvers;
pub mod data;
pub mod encode;
pub mod generate;
pub mod train;
