//! Adapter selection and device creation.

use std::fmt;

use crate::error::{Error, Result};

/// Which adapter to open. From the environment: `LEMUR_GPU_BACKEND` = a comma list of
/// vulkan | metal | dx12, or all (default all; these are the graphics APIs compiled in, and any
/// other value is an error naming the variable) and `LEMUR_ADAPTER` = a case-insensitive
/// substring of the adapter name (e.g. `llvmpipe` for lavapipe, `nvidia`). Without a name,
/// discrete GPUs are preferred over integrated, virtual and CPU adapters.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    pub backends: Option<wgpu::Backends>,
    pub name: Option<String>,
}

/// The values `LEMUR_GPU_BACKEND` accepts: the graphics APIs compiled into native builds.
const GPU_BACKENDS: &[(&str, wgpu::Backends)] = &[
    ("vulkan", wgpu::Backends::VULKAN),
    ("metal", wgpu::Backends::METAL),
    ("dx12", wgpu::Backends::DX12),
];

/// `LEMUR_GPU_BACKEND`'s value: `all`, or a comma list of [`GPU_BACKENDS`] names (case and
/// spaces ignored); `None` when empty.
fn parse_gpu_backends(value: &str) -> Result<Option<wgpu::Backends>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    if value.trim().eq_ignore_ascii_case("all") {
        return Ok(Some(
            GPU_BACKENDS
                .iter()
                .fold(wgpu::Backends::empty(), |a, b| a | b.1),
        ));
    }
    let mut backends = wgpu::Backends::empty();
    for name in value.split(',').map(str::trim) {
        let Some((_, b)) = GPU_BACKENDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            let accepted: Vec<&str> = GPU_BACKENDS.iter().map(|(n, _)| *n).collect();
            return Err(Error::Invalid {
                op: "LEMUR_GPU_BACKEND",
                detail: format!(
                    "LEMUR_GPU_BACKEND={value}: `{name}` is not a graphics API compiled into lemur; \
                     use {}, a comma list of them, or all",
                    accepted.join(", ")
                ),
            });
        };
        backends |= *b;
    }
    Ok(Some(backends))
}

impl AdapterChoice {
    /// The choice made by `LEMUR_GPU_BACKEND` and `LEMUR_ADAPTER`; an unknown graphics API
    /// in `LEMUR_GPU_BACKEND` is an error naming the variable and the accepted values.
    pub fn from_env() -> Result<Self> {
        let backends = match std::env::var("LEMUR_GPU_BACKEND") {
            Ok(b) => parse_gpu_backends(&b)?,
            Err(_) => None,
        };
        let name = std::env::var("LEMUR_ADAPTER")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Self { backends, name })
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

/// The limits lemur asks for, given what the adapter supports: WebGPU's defaults (the kernels
/// are written for them, so the same shaders run in every browser), with only the buffer-size
/// limits raised natively to what the adapter allows, for larger batches. An application that
/// creates the device itself (e.g. through eframe) should request these.
pub fn required_limits(adapter_limits: &wgpu::Limits) -> wgpu::Limits {
    #[cfg(not(target_arch = "wasm32"))]
    {
        wgpu::Limits {
            max_storage_buffer_binding_size: adapter_limits.max_storage_buffer_binding_size,
            max_buffer_size: adapter_limits.max_buffer_size,
            ..wgpu::Limits::default()
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        // Browsers cap buffers per page and vary widely; the defaults are what every one
        // guarantees.
        let _ = adapter_limits;
        wgpu::Limits::default()
    }
}

/// The features lemur needs: none (f16 and subgroups would be optional extras, and the kernels
/// keep to core WebGPU). Kept as a function so that an application creating the device itself
/// stays in step if that changes.
pub fn required_features(adapter_features: wgpu::Features) -> wgpu::Features {
    let _ = adapter_features;
    wgpu::Features::empty()
}

/// Checks that a device handed to [`GpuBackend::from_device`](super::GpuBackend::from_device)
/// can run the kernels: a WebGL2 or otherwise downlevel device would fail much later, at the
/// first dispatch, with a less useful message.
pub(crate) fn check_limits(have: &wgpu::Limits) -> Result<()> {
    let need = wgpu::Limits::default();
    let checks: [(&str, u64, u64); 7] = [
        (
            "max_storage_buffers_per_shader_stage",
            have.max_storage_buffers_per_shader_stage.into(),
            need.max_storage_buffers_per_shader_stage.into(),
        ),
        (
            "max_storage_textures_per_shader_stage",
            have.max_storage_textures_per_shader_stage.into(),
            1,
        ),
        (
            "max_compute_workgroup_storage_size",
            have.max_compute_workgroup_storage_size.into(),
            need.max_compute_workgroup_storage_size.into(),
        ),
        (
            "max_compute_invocations_per_workgroup",
            have.max_compute_invocations_per_workgroup.into(),
            need.max_compute_invocations_per_workgroup.into(),
        ),
        (
            "max_compute_workgroup_size_x",
            have.max_compute_workgroup_size_x.into(),
            need.max_compute_workgroup_size_x.into(),
        ),
        (
            "max_compute_workgroups_per_dimension",
            have.max_compute_workgroups_per_dimension.into(),
            need.max_compute_workgroups_per_dimension.into(),
        ),
        (
            "max_compute_workgroup_size_y",
            have.max_compute_workgroup_size_y.into(),
            need.max_compute_workgroup_size_y.into(),
        ),
    ];
    let short: Vec<String> = checks
        .iter()
        .filter(|(_, h, n)| h < n)
        .map(|(name, h, n)| format!("{name} = {h} (needs {n})"))
        .collect();
    if short.is_empty() {
        Ok(())
    } else {
        Err(Error::RequestDevice(format!(
            "the device is below WebGPU's default limits that the kernels need (a WebGL2 or \
             downlevel device cannot run them; request the device with \
             lemur_tensor::gpu::required_limits): {}",
            short.join(", ")
        )))
    }
}

impl From<&wgpu::AdapterInfo> for GpuInfo {
    fn from(ai: &wgpu::AdapterInfo) -> Self {
        GpuInfo {
            name: ai.name.clone(),
            backend: ai.backend,
            device_type: ai.device_type,
            driver: ai.driver_info.clone(),
        }
    }
}

pub(crate) async fn open(
    choice: &AdapterChoice,
) -> Result<(wgpu::Device, wgpu::Queue, wgpu::AdapterInfo)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = choice.backends.unwrap_or(desc.backends);
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapter = pick_adapter(&instance, choice, backends).await?;
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("lemur device"),
            required_features: required_features(adapter.features()),
            required_limits: required_limits(&adapter.limits()),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::RequestDevice(e.to_string()))?;
    Ok((device, queue, adapter.get_info()))
}

/// Mesa's device-select Vulkan layer looks for a Wayland compositor on every Vulkan instance
/// and, without a login session (`XDG_RUNTIME_DIR` unset, as under ssh, cron, containers or
/// CI), prints "error: XDG_RUNTIME_DIR is invalid or not set" each time. With no session there
/// is no compositor GPU to prefer, so this switches the layer off (`NODEVICE_SELECT=1`) and
/// wgpu picks the adapter itself. A user's own `NODEVICE_SELECT` stands.
///
/// # Safety
/// It sets an environment variable: call it before any other thread exists (first in `main`).
#[cfg(not(target_arch = "wasm32"))]
#[allow(unsafe_code)]
pub unsafe fn quiet_mesa_without_session() {
    let session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller guarantees no other thread reads the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lemur_gpu_backend_takes_compiled_apis_and_rejects_the_rest() {
        use wgpu::Backends;
        assert_eq!(parse_gpu_backends("").unwrap(), None);
        assert_eq!(
            parse_gpu_backends("vulkan").unwrap(),
            Some(Backends::VULKAN)
        );
        assert_eq!(
            parse_gpu_backends("Vulkan, dx12").unwrap(),
            Some(Backends::VULKAN | Backends::DX12)
        );
        assert_eq!(
            parse_gpu_backends("all").unwrap(),
            Some(Backends::VULKAN | Backends::METAL | Backends::DX12)
        );
        for bad in ["gl", "vulkan,gl", "bogus", "vulkan,"] {
            let e = parse_gpu_backends(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("LEMUR_GPU_BACKEND={bad}")), "{e}");
            assert!(e.contains("vulkan, metal, dx12"), "{e}");
        }
    }
}
