//! lemur's tensor runtime: a WGSL/wgpu GPU backend, a CPU reference backend with the same
//! primitive ops, and reverse-mode autodiff over either.

pub mod backend;
pub mod cpu;
mod error;
pub mod gpu;
mod ops;
pub mod optim;
pub mod params;
pub mod rng;
mod select;
pub mod soap;
mod tensor;
#[doc(hidden)]
pub mod testing;

pub use backend::{Backend, OpCounters};
pub use cpu::CpuBackend;
pub use error::{Error, Result};
pub use gpu::GpuBackend;
pub use optim::{AdamW, AdamWConfig, CosineSchedule, Optimizer};
pub use params::{HostTensors, ParamStore};
pub use select::{AnyBackend, BackendKind};
pub use soap::{Soap, SoapConfig};
pub use tensor::{Tensor, grad_enabled, no_grad};
