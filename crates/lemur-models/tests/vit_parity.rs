//! The ViT denoiser and surrogate against the reference fixtures (`vit_denoiser`,
//! `vit_surrogate`), on both backends, plus shapes for other configurations, finite-difference
//! gradients, context-mask statistics and reproducible losses.

mod common;

use common::{Fixture, assert_rel, host};
use lemur_models::diffusion::{Denoiser, TrainDraw, context_mask};
use lemur_models::nn::Builder;
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::{Backend, CpuBackend, ParamStore, Tensor, no_grad};

fn denoiser_parity<B: Backend>(b: &B) {
    let fx = Fixture::load("vit_denoiser.safetensors");
    let cfg: VitConfig = fx.config();
    let mut store = ParamStore::new();
    let model = Denoiser::new(&cfg, &mut Builder::new(b, &mut store, 0)).unwrap();
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let t: Vec<f32> = fx.get("input.t").1.clone();
    for (i, &ti) in t.iter().enumerate() {
        let (a, s) = model.schedule.alpha_sigma(ti as f64);
        assert!((a as f32 - fx.get("output.alpha").1[i]).abs() < 1e-6);
        let want = fx.get("output.sigma").1[i];
        assert!(
            ((s as f32) - want).abs() <= 1e-5 * want.abs().max(1.0),
            "sigma({ti}) = {s}, reference {want}"
        );
    }
    let (x_t, label, cond) = (
        fx.tensor(b, "input.x_t"),
        fx.tensor(b, "input.label"),
        fx.tensor(b, "input.cond"),
    );
    let (mean, var) = no_grad(|| model.forward(&x_t, &t, Some(&label), Some(&cond))).unwrap();
    let rel = assert_rel(
        &format!("{} output.mean", b.name()),
        &host(&mean),
        &fx.get("output.mean").1,
        1e-4,
    );
    eprintln!(
        "{}: vit_denoiser mean relative max diff {rel:.3e}",
        b.name()
    );
    assert_rel(
        &format!("{} output.var", b.name()),
        &host(&var),
        &fx.get("output.var").1,
        1e-5,
    );
}
test_device!(vit_denoiser_matches_reference, denoiser_parity);

fn surrogate_parity<B: Backend>(b: &B) {
    let fx = Fixture::load("vit_surrogate.safetensors");
    let cfg: VitConfig = fx.config();
    let mut store = ParamStore::new();
    let model = Surrogate::new(&cfg, &mut Builder::new(b, &mut store, 0)).unwrap();
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let (x, mask, label) = (
        fx.tensor(b, "input.x"),
        fx.tensor(b, "input.mask"),
        fx.tensor(b, "input.label"),
    );
    let y = no_grad(|| model.forward(&x, &mask, Some(&label))).unwrap();
    let rel = assert_rel(
        &format!("{} output.y", b.name()),
        &host(&y),
        &fx.get("output.y").1,
        1e-4,
    );
    eprintln!("{}: vit_surrogate relative max diff {rel:.3e}", b.name());
}
test_device!(vit_surrogate_matches_reference, surrogate_parity);

fn other_config() -> VitConfig {
    serde_json::from_str(
        r#"{"channels": 3, "emb_features": 16, "label_features": 0, "masked": true, "hid_channels": 24,
            "hid_blocks": 3, "attention_heads": 3, "patch_size": 2, "ffn_factor": 2, "dropout": 0.1,
            "schedule": {"name": "log_linear"}}"#,
    )
    .unwrap()
}

fn other_configurations_run<B: Backend>(b: &B) {
    let cfg = other_config();
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(b, &mut store, 1)).unwrap();
    assert_eq!(
        store
            .iter()
            .filter(|(n, _)| !n.ends_with("freqs"))
            .map(|(_, t)| t.numel())
            .sum::<usize>(),
        Denoiser::<B>::param_count(&cfg)
    );
    // Non-square (L, H, W) = (2, 4, 6) with patch 2.
    let x = Tensor::randn(b, &[2, 3, 2, 4, 6], 5, 0).unwrap();
    let mask = Tensor::from_slice(b, &context_mask(2, 2, 0.66, 3), &[2, 1, 2, 1, 1]).unwrap();
    let cond = mask.broadcast_to(&[2, 3, 2, 4, 6]).unwrap();
    let (mean, var) = no_grad(|| den.forward(&x, &[0.3, 0.9], None, Some(&cond))).unwrap();
    assert_eq!(mean.shape(), x.shape());
    assert_eq!(var.shape(), x.shape());
    let loss = den
        .loss(
            &x,
            None,
            &mask,
            TrainDraw {
                seed: 1,
                step: 2,
                micro: 0,
            },
            true,
        )
        .unwrap();
    assert!(loss.item().unwrap().is_finite());

    let mut scfg = other_config();
    scfg.schedule = None;
    let mut store = ParamStore::new();
    let sur = Surrogate::new(&scfg, &mut Builder::new(b, &mut store, 1)).unwrap();
    assert_eq!(
        store
            .iter()
            .filter(|(n, _)| !n.ends_with("freqs"))
            .map(|(_, t)| t.numel())
            .sum::<usize>(),
        Surrogate::<B>::param_count(&scfg)
    );
    let y = no_grad(|| sur.forward(&x, &mask, None)).unwrap();
    assert_eq!(y.shape(), x.shape());
    let e = sur
        .forward(&x, &mask, Some(&Tensor::zeros(b, &[2, 2]).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Surrogate"), "{e}");
}
test_device!(other_configurations, other_configurations_run);

#[test]
fn denoiser_loss_gradient_matches_finite_differences() {
    let b = CpuBackend;
    let mut cfg = other_config();
    cfg.dropout = None;
    cfg.hid_blocks = 1;
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(&b, &mut store, 3)).unwrap();
    let x = Tensor::randn(&b, &[1, 3, 2, 2, 2], 9, 0).unwrap();
    let mask = Tensor::from_slice(&b, &[1.0, 0.0], &[1, 1, 2, 1, 1]).unwrap();
    let draw = TrainDraw {
        seed: 4,
        step: 0,
        micro: 0,
    };
    den.loss(&x, None, &mask, draw, false)
        .unwrap()
        .backward()
        .unwrap();
    for name in [
        "backbone.backbone.blocks.0.theta",
        "backbone.backbone.blocks.0.msa.qkv_proj.weight",
        "backbone.time_embedding.1.bias",
    ] {
        let p = store.get(name).unwrap();
        let g = p.grad().unwrap().to_vec().unwrap();
        let base = p.to_vec().unwrap();
        for j in [0, base.len() / 2, base.len() - 1] {
            let eval = |h: f32| {
                let mut v = base.clone();
                v[j] += h;
                p.set_storage(b.upload(&v).unwrap()).unwrap();
                let l = no_grad(|| {
                    den.loss(&x, None, &mask, draw, false)
                        .unwrap()
                        .item()
                        .unwrap()
                });
                p.set_storage(b.upload(&base).unwrap()).unwrap();
                l
            };
            let fd = (eval(1e-2) - eval(-1e-2)) / 2e-2;
            assert!(
                (fd - g[j]).abs() <= 2e-2 * (1.0 + fd.abs()),
                "{name}[{j}]: autodiff {} vs finite difference {fd}",
                g[j]
            );
        }
    }
}

#[test]
fn context_masks_follow_their_definition() {
    let (n, l) = (20_000, 5);
    let m = context_mask(n, l, 0.66, 42);
    let mut at_start = 0;
    let mut counts = [0usize; 5];
    for i in 0..n {
        let row = &m[i * l..(i + 1) * l];
        let k = row.iter().filter(|&&v| v == 1.0).count();
        assert!((1..l).contains(&k), "context of {k} frames");
        counts[k] += 1;
        if row[0] == 1.0 && row[l - 1] == 0.0 {
            at_start += 1;
        }
        // Contiguous at one end.
        let first = row.iter().position(|&v| v == 1.0).unwrap();
        assert!(row[first..first + k].iter().all(|&v| v == 1.0));
    }
    let frac = at_start as f64 / n as f64;
    assert!(
        (frac - 0.66).abs() < 0.015,
        "context at the start in {frac} of windows"
    );
    // Poisson(1) mod 4 + 1: P(k=1) = P(0) + P(4) + ... = e^-1 (1 + 1/24 + ...) ~ 0.3834.
    let p1 = counts[1] as f64 / n as f64;
    assert!((p1 - 0.3834).abs() < 0.015, "P(1 context frame) = {p1}");
}

#[test]
fn same_draw_same_loss() {
    let b = CpuBackend;
    let cfg = other_config();
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(&b, &mut store, 3)).unwrap();
    let x = Tensor::randn(&b, &[2, 3, 2, 2, 2], 9, 0).unwrap();
    let mask = Tensor::from_slice(&b, &context_mask(2, 2, 0.66, 1), &[2, 1, 2, 1, 1]).unwrap();
    let d = TrainDraw {
        seed: 4,
        step: 7,
        micro: 1,
    };
    let l1 = no_grad(|| den.loss(&x, None, &mask, d, true).unwrap().item().unwrap());
    let l2 = no_grad(|| den.loss(&x, None, &mask, d, true).unwrap().item().unwrap());
    let l3 = no_grad(|| {
        den.loss(&x, None, &mask, TrainDraw { step: 8, ..d }, true)
            .unwrap()
            .item()
            .unwrap()
    });
    assert_eq!(l1, l2);
    assert_ne!(l1, l3);
}
