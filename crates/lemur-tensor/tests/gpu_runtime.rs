//! The GPU runtime itself: the buffer pool's reuse and accounting, deferred submission, and
//! device errors surfacing as `Err` instead of panics.

mod common;

use lemur_tensor::{Backend, Error};

#[test]
fn pool_reuses_buffers_and_reports_live_and_peak_bytes() {
    let Some(g) = common::gpu() else { return };
    let base = g.memory();
    let a = g.fill(1000, 1.0).unwrap();
    let after_a = g.memory();
    assert!(after_a.live >= base.live + 4000, "{after_a:?}");
    assert!(after_a.peak >= after_a.live);
    drop(a);
    let freed = g.memory();
    assert_eq!(
        freed.live, base.live,
        "a dropped tensor's buffer leaves the live count"
    );
    assert!(freed.pooled >= 4000, "and goes back to the pool: {freed:?}");
    // Same size class: served from the pool, no new device memory.
    let b = g.fill(990, 2.0).unwrap();
    let reused = g.memory();
    assert_eq!(reused.pooled, freed.pooled - (after_a.live - base.live));
    assert_eq!(reused.peak, after_a.peak);
    assert_eq!(common::read(&g, &b), vec![2.0; 990]);
    g.trim();
    assert_eq!(g.memory().pooled, 0);
}

#[test]
fn reused_buffer_inside_one_encoder_keeps_results_ordered() {
    // x is dropped before the next op is recorded, so its buffer is reused by `z` while the
    // reads of x are still unsubmitted: queue order must keep y correct.
    let Some(g) = common::gpu() else { return };
    let x = g.upload(&[1.0, 2.0, 3.0]).unwrap();
    let y = g
        .unary(lemur_tensor::backend::Unary::Scale(2.0), &x)
        .unwrap();
    drop(x);
    let z = g.upload(&[10.0, 20.0, 30.0]).unwrap();
    assert_eq!(common::read(&g, &y), vec![2.0, 4.0, 6.0]);
    assert_eq!(common::read(&g, &z), vec![10.0, 20.0, 30.0]);
}

#[test]
fn device_errors_are_results_not_panics() {
    let Some(g) = common::gpu() else { return };
    // An invalid buffer (MAP_READ cannot be combined with STORAGE) raises a validation error.
    let _bad = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("deliberately invalid"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let err = pollster::block_on(g.sync()).unwrap_err();
    assert!(matches!(err, Error::Gpu { .. }), "{err}");
    assert!(
        err.to_string().contains("deliberately invalid") || err.to_string().contains("usage"),
        "{err}"
    );
    // The device stays usable afterwards.
    let ok = g.fill(5, 3.0).unwrap();
    assert_eq!(common::read(&g, &ok), vec![3.0; 5]);
}

#[test]
fn adapter_choice_names_what_exists_when_nothing_matches() {
    if lemur_tensor::testing::skip_gpu("adapter choice") {
        return;
    }
    let choice = lemur_tensor::gpu::AdapterChoice {
        backends: None,
        name: Some("no-such-adapter-xyz".into()),
    };
    let err = pollster::block_on(lemur_tensor::GpuBackend::with_choice(&choice))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
}

#[test]
fn dropping_a_backend_with_unsubmitted_work_is_clean() {
    let Some(g) = common::gpu() else { return };
    let x = g.fill(10, 1.0).unwrap();
    let _y = g.unary(lemur_tensor::backend::Unary::Exp, &x).unwrap();
    // Recorded, never read: the open error scopes are popped in order on drop.
    drop(g);
}

#[test]
fn auto_skips_software_adapters() {
    let Some(g) = common::gpu() else { return };
    let software = g.info().device_type == wgpu::DeviceType::Cpu;
    let auto = lemur_tensor::AnyBackend::open_blocking(lemur_tensor::BackendKind::Auto).unwrap();
    match auto {
        lemur_tensor::AnyBackend::Cpu(_) => {
            assert!(software, "auto chose the CPU over {}", g.info())
        }
        lemur_tensor::AnyBackend::Gpu(a) => {
            assert!(!software, "auto chose the software adapter {}", a.info())
        }
    }
}

#[test]
fn from_device_in_external_mode_never_blocks_and_completes_when_the_owner_polls() {
    use lemur_tensor::gpu::Polling;
    use std::task::{Context, Waker};
    let Some((device, queue, info)) = common::app_device(None) else {
        return;
    };
    let g = lemur_tensor::GpuBackend::from_device(device.clone(), queue, &info, Polling::External)
        .unwrap();
    assert_eq!(g.polling(), Polling::External);
    assert_eq!(g.info().name, info.name);
    let x = g.upload(&[1.0, -2.0, 3.5]).unwrap();
    let y = g
        .unary(lemur_tensor::backend::Unary::Scale(2.0), &x)
        .unwrap();
    // wgpu runs map callbacks only inside device.poll, and nobody has polled: a backend that
    // blocked (or polled) inside read would be ready here.
    let mut read = std::pin::pin!(g.read(&y));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(read.as_mut().poll(&mut cx).is_pending());
    assert_eq!(common::drive(&device, read).unwrap(), vec![2.0, -4.0, 7.0]);

    // work_done: the future owns its handle, so the backend and its storages may go first.
    let z = g.unary(lemur_tensor::backend::Unary::Exp, &y).unwrap();
    let mut done = Box::pin(g.work_done());
    assert!(done.as_mut().poll(&mut cx).is_pending());
    common::drive(&device, done).unwrap();
    let got = common::drive(&device, g.read(&z)).unwrap();
    common::assert_close(
        "exp after work_done",
        &got,
        &[2f32.exp(), (-4f32).exp(), 7f32.exp()],
        0.0,
        1e-6,
    );
    // sync behaves like work_done.
    common::drive(&device, g.sync()).unwrap();
}

#[test]
fn work_done_in_blocking_mode_is_ready_at_once_and_reports_errors() {
    use std::task::{Context, Waker};
    let Some(g) = common::gpu() else { return };
    let x = g.fill(1000, 0.5).unwrap();
    let _y = g.unary(lemur_tensor::backend::Unary::Exp, &x).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut done = Box::pin(g.work_done());
    assert!(matches!(
        done.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Ok(()))
    ));
    // An invalid object created outside any scope surfaces at the next work_done.
    let _bad = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("deliberately invalid for work_done"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let err = pollster::block_on(g.work_done()).unwrap_err();
    assert!(
        matches!(&err, Error::Gpu { context, .. } if context == "work_done"),
        "{err}"
    );
}

#[test]
fn from_device_rejects_a_device_below_webgpu_limits() {
    use lemur_tensor::gpu::Polling;
    let Some((device, queue, info)) =
        common::app_device(Some(wgpu::Limits::downlevel_webgl2_defaults()))
    else {
        return;
    };
    let err = lemur_tensor::GpuBackend::from_device(device, queue, &info, Polling::Blocking)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_storage_buffers_per_shader_stage = 0 (needs 8)")
            && err.contains("required_limits"),
        "{err}"
    );
}

#[test]
fn required_limits_are_webgpu_defaults_with_native_buffer_sizes() {
    let adapter = wgpu::Limits {
        max_buffer_size: 1 << 34,
        max_storage_buffer_binding_size: 1 << 33,
        max_compute_workgroup_storage_size: 1 << 15,
        ..wgpu::Limits::default()
    };
    let got = lemur_tensor::gpu::required_limits(&adapter);
    assert_eq!(got.max_buffer_size, 1 << 34);
    assert_eq!(got.max_storage_buffer_binding_size, 1 << 33);
    // Everything the kernels are written for stays at the browser-portable default.
    assert_eq!(got.max_compute_workgroup_storage_size, 16384);
    assert_eq!(got.max_storage_buffers_per_shader_stage, 8);
    assert_eq!(
        lemur_tensor::gpu::required_features(wgpu::Features::all()),
        wgpu::Features::empty()
    );
}

#[test]
fn a_storage_buffer_holds_row_major_f32_from_byte_zero() {
    let Some(g) = common::gpu() else { return };
    // 37 values in a pooled buffer of a larger size class.
    let data: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 3.0).collect();
    let x = g.upload(&data).unwrap();
    let y = g
        .unary(lemur_tensor::backend::Unary::AddScalar(1.0), &x)
        .unwrap();
    let buf = lemur_tensor::gpu::buffer(&y);
    assert!(buf.size() >= 37 * 4);
    assert!(
        buf.usage()
            .contains(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC)
    );
    assert_eq!(y.len(), 37);
    // The app's own commands, submitted after the backend's work is.
    pollster::block_on(g.work_done()).unwrap();
    let staging = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test app readback"),
        size: 37 * 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = g
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("test app copy"),
        });
    enc.copy_buffer_to_buffer(buf, 0, &staging, 0, 37 * 4);
    g.queue().submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    g.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let got: Vec<f32> =
        bytemuck::cast_slice(&staging.slice(..).get_mapped_range().unwrap()[..]).to_vec();
    let want: Vec<f32> = data.iter().map(|v| v + 1.0).collect();
    assert_eq!(got, want);
}
