//! A small MLP trained for 20 AdamW steps on each backend: the loss must fall, and the GPU's
//! losses must track the CPU's step for step.

mod common;

use lemur_tensor::optim::{AdamW, AdamWConfig, CosineSchedule};
use lemur_tensor::{Backend, CpuBackend, ParamStore, Result, Tensor};

fn train<B: Backend>(b: &B) -> Result<Vec<f32>> {
    let (n, din, hid, dout) = (37, 5, 33, 3);
    let mut ps = ParamStore::new();
    let w1 = ps.add(
        b,
        "fc1.weight",
        &common::randn(1, hid * din)
            .iter()
            .map(|v| v * 0.4)
            .collect::<Vec<_>>(),
        &[hid, din],
    )?;
    let b1 = ps.add(b, "fc1.bias", &vec![0.0; hid], &[hid])?;
    let w2 = ps.add(
        b,
        "fc2.weight",
        &common::randn(2, dout * hid)
            .iter()
            .map(|v| v * 0.2)
            .collect::<Vec<_>>(),
        &[dout, hid],
    )?;
    let b2 = ps.add(b, "fc2.bias", &vec![0.0; dout], &[dout])?;
    // Targets from a fixed nonlinear function of the inputs.
    let xv = common::randn(3, n * din);
    let yv: Vec<f32> = (0..n * dout)
        .map(|i| (xv[(i / dout) * din + i % dout] * 1.5).sin())
        .collect();
    let x = Tensor::from_slice(b, &xv, &[n, din])?;
    let y = Tensor::from_slice(b, &yv, &[n, dout])?;
    let config = AdamWConfig {
        schedule: CosineSchedule {
            peak: 2e-2,
            min_lr: 1e-3,
            warmup: 3,
            total: 20,
        },
        weight_decay: 1e-2,
        ..Default::default()
    };
    let mut opt = AdamW::new(config);
    let mut losses = Vec::new();
    for _ in 0..20 {
        let h = x.linear(&w1, Some(&b1))?.silu()?;
        let pred = h.linear(&w2, Some(&b2))?;
        let loss = pred.sub(&y)?.square()?.mean_all()?;
        losses.push(loss.item()?);
        loss.backward()?;
        opt.step(&ps)?;
    }
    Ok(losses)
}

#[test]
fn mlp_trains_on_both_backends_and_they_agree() {
    let cpu = train(&CpuBackend).unwrap();
    assert!(cpu[19] < 0.5 * cpu[0], "CPU loss did not fall: {cpu:?}");
    if let Some(g) = common::gpu() {
        let gpu = train(&g).unwrap();
        assert!(gpu[19] < 0.5 * gpu[0], "GPU loss did not fall: {gpu:?}");
        for (i, (a, c)) in gpu.iter().zip(&cpu).enumerate() {
            assert!(
                (a - c).abs() <= 1e-4 * c.abs().max(1.0),
                "step {i}: gpu loss {a} vs cpu {c}"
            );
        }
    }
}
