//! Choosing a backend at run time: `LEMUR_BACKEND` = `gpu` | `cpu` | `auto` (default).

use crate::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::gpu::GpuBackend;

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The GPU, or an error saying how to get one.
    Gpu,
    Cpu,
    /// A hardware GPU when one exists, else the CPU (said once on stderr). Software adapters
    /// (lavapipe, SwiftShader) run lemur's kernels far slower than the CPU backend, so `auto`
    /// never picks them; `gpu` does.
    Auto,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "gpu" => Ok(Self::Gpu),
            "cpu" => Ok(Self::Cpu),
            "auto" | "" => Ok(Self::Auto),
            other => Err(Error::Invalid {
                op: "backend",
                detail: format!("unknown backend `{other}` (use gpu, cpu or auto)"),
            }),
        }
    }
}

impl BackendKind {
    pub fn from_env() -> Result<Self> {
        std::env::var("LEMUR_BACKEND").unwrap_or_default().parse()
    }
}

/// An opened backend. Model code is generic over `Backend`; match on this once at the top.
#[derive(Clone, Debug)]
pub enum AnyBackend {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
}

impl AnyBackend {
    pub async fn open(kind: BackendKind) -> Result<Self> {
        match kind {
            BackendKind::Cpu => Ok(Self::Cpu(CpuBackend)),
            BackendKind::Gpu => Ok(Self::Gpu(GpuBackend::new().await?)),
            BackendKind::Auto => match GpuBackend::new().await {
                Ok(g) if g.info().device_type == wgpu::DeviceType::Cpu => {
                    eprintln!(
                        "lemur: the only GPU adapter is a software one ({}); using the faster \
                         CPU backend (--backend gpu to use it anyway)",
                        g.info().name
                    );
                    Ok(Self::Cpu(CpuBackend))
                }
                Ok(g) => Ok(Self::Gpu(g)),
                Err(e @ Error::NoAdapter { .. }) => {
                    eprintln!("lemur: {e}\nlemur: falling back to the CPU backend");
                    Ok(Self::Cpu(CpuBackend))
                }
                Err(e) => Err(e),
            },
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_blocking(kind: BackendKind) -> Result<Self> {
        pollster::block_on(Self::open(kind))
    }

    pub fn name(&self) -> String {
        use crate::Backend;
        match self {
            Self::Cpu(c) => c.name(),
            Self::Gpu(g) => g.name(),
        }
    }

    /// The opened backend's [`OpCounters`](crate::OpCounters).
    pub fn counters(&self) -> crate::OpCounters {
        use crate::Backend;
        match self {
            Self::Cpu(c) => c.counters(),
            Self::Gpu(g) => g.counters(),
        }
    }
}
