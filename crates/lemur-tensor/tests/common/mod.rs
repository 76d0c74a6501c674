//! Shared test harness: the backends under test, seeded inputs and comparisons that print the
//! failing index with both values.
#![allow(dead_code, unused_imports)]

pub use lemur_tensor::testing::gpu;
use lemur_tensor::{Backend, CpuBackend, rng};

/// A device created the way an application (eframe) would, outside `GpuBackend`, with the
/// limits and features lemur asks for, or `limits` instead when given. `None` exactly when
/// [`gpu`] skips; a missing adapter fails with the same advice.
pub fn app_device(
    limits: Option<wgpu::Limits>,
) -> Option<(wgpu::Device, wgpu::Queue, wgpu::AdapterInfo)> {
    if lemur_tensor::testing::skip_gpu("the GPU backend") {
        return None;
    }
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // The adapter GpuBackend::new would open: the one LEMUR_ADAPTER names, else the most
    // capable kind.
    if let Ok(want) = std::env::var("LEMUR_ADAPTER") {
        adapters.retain(|a| {
            a.get_info()
                .name
                .to_lowercase()
                .contains(&want.to_lowercase())
        });
    }
    adapters.sort_by_key(|a| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    });
    let adapter = adapters.into_iter().next().unwrap_or_else(|| {
        panic!(
            "{}",
            lemur_tensor::Error::NoAdapter {
                detail: "enumerate_adapters found none".into()
            }
        )
    });
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("test app device"),
        required_features: lemur_tensor::gpu::required_features(adapter.features()),
        required_limits:
            limits.unwrap_or_else(|| lemur_tensor::gpu::required_limits(&adapter.limits())),
        ..Default::default()
    }))
    .expect("request_device");
    Some((device, queue, adapter.get_info()))
}

/// Drives `fut` the way a UI loop does in `Polling::External` mode: poll the future, and while
/// it is pending poll the device without blocking, for at most ten seconds.
pub fn drive<F: std::future::Future>(device: &wgpu::Device, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let start = std::time::Instant::now();
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "future still pending after 10 s of device polling"
        );
        device.poll(wgpu::PollType::Poll).expect("device.poll");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `n` standard-normal values from stream `seed`.
pub fn randn(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64).map(|i| rng::normal(seed, i)).collect()
}

/// `n` values uniform on (lo, hi].
pub fn randu(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| lo + (hi - lo) * rng::uniform(seed, i))
        .collect()
}

pub fn upload<B: Backend>(b: &B, x: &[f32]) -> B::Storage {
    b.upload(x).expect("upload")
}

pub fn read<B: Backend>(b: &B, s: &B::Storage) -> Vec<f32> {
    pollster::block_on(b.read(s)).expect("read")
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere; on failure names the first bad
/// index with both values and the worst error.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} != expected {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0f32);
    let mut first_bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = err <= atol + rtol * w.abs() && g.is_finite() == w.is_finite();
        if !ok && first_bad.is_none() {
            first_bad = Some(i);
        }
        if err > worst.1 || err.is_nan() {
            worst = (i, err);
        }
    }
    if let Some(i) = first_bad {
        panic!(
            "{what}: mismatch at index {i}: got {} expected {} (atol {atol}, rtol {rtol}); worst |err| {} at index {}",
            got[i], want[i], worst.1, worst.0
        );
    }
}

/// The CPU backend's result for the same op, the oracle for GPU kernels.
pub fn cpu() -> CpuBackend {
    CpuBackend
}
