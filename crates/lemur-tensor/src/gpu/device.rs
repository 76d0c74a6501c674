//! Adapter selection and device creation.

use std::fmt;

use crate::error::{Error, Result};

/// Which adapter to open. From the environment: `LEMUR_GPU_BACKEND` = vulkan | metal | dx12 |
/// gl | webgpu | all (default all) and `LEMUR_ADAPTER` = a case-insensitive substring of the
/// adapter name (e.g. `llvmpipe` for lavapipe, `nvidia`). Without a name, discrete GPUs are
/// preferred over integrated, virtual and CPU adapters.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    pub backends: Option<wgpu::Backends>,
    pub name: Option<String>,
}

impl AdapterChoice {
    pub fn from_env() -> Self {
        let backends = std::env::var("LEMUR_GPU_BACKEND")
            .ok()
            .map(|b| {
                if b.eq_ignore_ascii_case("all") {
                    wgpu::Backends::all()
                } else {
                    wgpu::Backends::from_comma_list(&b)
                }
            })
            .filter(|b| !b.is_empty());
        let name = std::env::var("LEMUR_ADAPTER")
            .ok()
            .filter(|s| !s.is_empty());
        Self { backends, name }
    }
}

/// What was opened, for logs and benchmark headers.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
}

impl fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}",
            self.name, self.backend, self.device_type
        )?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

async fn pick_adapter(
    instance: &wgpu::Instance,
    choice: &AdapterChoice,
    backends: wgpu::Backends,
) -> Result<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut adapters = instance.enumerate_adapters(backends).await;
        let names: Vec<String> = adapters
            .iter()
            .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
            .collect();
        if let Some(want) = &choice.name {
            let want = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
            if adapters.is_empty() {
                return Err(Error::NoAdapter {
                    detail: format!(
                        "no adapter name contains `{want}`; found: [{}]",
                        names.join(", ")
                    ),
                });
            }
        }
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        adapters.into_iter().next().ok_or_else(|| Error::NoAdapter {
            detail: format!("backends {backends:?} offer none"),
        })
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (choice, backends);
        instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter {
                detail: e.to_string(),
            })
    }
}

pub(crate) async fn open(choice: &AdapterChoice) -> Result<(wgpu::Device, wgpu::Queue, GpuInfo)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = choice.backends.unwrap_or(desc.backends);
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapter = pick_adapter(&instance, choice, backends).await?;
    let ai = adapter.get_info();
    // Kernels are written for WebGPU's default limits so they run in every browser; on native
    // we raise only the buffer-size limits to what the adapter allows, for larger batches.
    #[cfg(not(target_arch = "wasm32"))]
    let limits = {
        let supported = adapter.limits();
        wgpu::Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_buffer_size: supported.max_buffer_size,
            ..wgpu::Limits::default()
        }
    };
    #[cfg(target_arch = "wasm32")]
    let limits = wgpu::Limits::default();
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("lemur device"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::RequestDevice(e.to_string()))?;
    let info = GpuInfo {
        name: ai.name,
        backend: ai.backend,
        device_type: ai.device_type,
        driver: ai.driver_info,
    };
    Ok((device, queue, info))
}
