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
    if std::env::var("LEMUR_TEST_CPU_ONLY").is_ok_and(|v| v == "1") {
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
