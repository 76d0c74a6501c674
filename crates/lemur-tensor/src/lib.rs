//! lemur's tensor runtime: a WGSL/wgpu GPU backend, a CPU reference backend with the same
//! primitive ops, and reverse-mode autodiff over either.

pub mod backend;
pub mod cpu;
mod error;
pub mod gpu;
pub mod rng;

pub use backend::Backend;
pub use cpu::CpuBackend;
pub use error::{Error, Result};
pub use gpu::GpuBackend;
