//! lemur's visualiser: live latent rollouts of the pretrained emulators beside the built-in
//! solvers (Euler, Rayleigh-Bénard), natively (eframe on wgpu) and in the browser (wasm, WebGPU or the CPU
//! backend). The app is a library (`LemurApp`); `main.rs` holds the native and web entry
//! points.

pub mod app;
pub mod bundle;
pub mod display;
pub mod engine;
mod error;
pub mod export;
pub mod fields;
pub mod platform;
pub mod truth;
#[cfg(not(target_arch = "wasm32"))]
mod worker;

pub use app::{BackendPref, LaunchOptions, LemurApp};
pub use error::{AppError, Result};

/// eframe's wgpu set-up: the device is created with the limits lemur's kernels need where
/// the adapter has them (WebGPU's defaults, larger buffers natively), so the app's rendering
/// and the emulator share one device.
pub fn wgpu_options() -> egui_wgpu::WgpuConfiguration {
    let mut config = egui_wgpu::WgpuConfiguration::default();
    if let egui_wgpu::WgpuSetup::CreateNew(setup) = &mut config.wgpu_setup {
        setup.device_descriptor = std::sync::Arc::new(device_descriptor);
    }
    config
}

fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    let info = adapter.get_info();
    let gl = info.backend == wgpu::Backend::Gl;
    // WebGL renders only; the emulator then runs on the CPU backend.
    let limits = if gl {
        wgpu::Limits::downlevel_webgl2_defaults()
    } else {
        lemur_tensor::gpu::required_limits(&adapter.limits())
    };
    wgpu::DeviceDescriptor {
        label: Some("lemur app device"),
        required_features: if gl {
            wgpu::Features::empty()
        } else {
            lemur_tensor::gpu::required_features(adapter.features())
        },
        required_limits: wgpu::Limits {
            max_texture_dimension_2d: 8192.min(adapter.limits().max_texture_dimension_2d),
            ..limits
        },
        ..Default::default()
    }
}
