//! The ViT denoiser and surrogate against the reference fixtures (`vit_denoiser`,
//! `vit_surrogate`), on both backends, plus shapes for other configurations, finite-difference
//! gradients, context-mask statistics and reproducible losses.

mod common;

use common::{Fixture, assert_rel, host};
use lemur_models::diffusion::{Denoiser, TrainDraw, context_mask};
use lemur_models::nn::Builder;
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::test_device;
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

/// A model from a reference fixture (weights perturbed so that every parameter matters) and
/// its training loss at fixed inputs and a fixed draw, so that the loss is a deterministic
/// function of the parameters.
struct GradCase<B: Backend> {
    name: &'static str,
    store: ParamStore<B>,
    loss: Box<dyn Fn() -> Tensor<B>>,
}

/// The denoiser (`vit_denoiser` weights) and the surrogate (`vit_surrogate` weights), each with
/// its own loss on the fixture's inputs; context: the first frame of the first window and the
/// last frame of the second (both ends of the mask).
fn grad_cases<B: Backend + 'static>(b: &B) -> Vec<GradCase<B>> {
    let mask = Tensor::from_slice(b, &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 1, 3, 1, 1]).unwrap();
    let draw = TrainDraw {
        seed: 4,
        step: 0,
        micro: 0,
    };
    let fx = Fixture::load("vit_denoiser.safetensors");
    let mut store = ParamStore::new();
    let den = Denoiser::new(&fx.config(), &mut Builder::new(b, &mut store, 0)).unwrap();
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let (x, label, m) = (
        fx.tensor(b, "input.x_t"),
        fx.tensor(b, "input.label"),
        mask.clone(),
    );
    let denoiser = GradCase {
        name: "denoiser",
        store,
        loss: Box::new(move || den.loss(&x, Some(&label), &m, draw, false).unwrap()),
    };
    let fx = Fixture::load("vit_surrogate.safetensors");
    let mut store = ParamStore::new();
    let sur = Surrogate::new(&fx.config(), &mut Builder::new(b, &mut store, 0)).unwrap();
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let (x, label) = (fx.tensor(b, "input.x"), fx.tensor(b, "input.label"));
    let surrogate = GradCase {
        name: "surrogate",
        store,
        loss: Box::new(move || sur.loss(&x, Some(&label), &mask, draw, false).unwrap()),
    };
    // Patch size 2, three heads, no labels, another schedule: random weights perturbed away
    // from the initialisation (whose zero adaLN output layers would stop most gradients).
    let mut cfg = other_config();
    cfg.dropout = None;
    cfg.hid_blocks = 1;
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(b, &mut store, 3)).unwrap();
    for (i, (name, p)) in store.iter().enumerate() {
        if !is_buffer(name) {
            let v: Vec<f32> = host(p)
                .iter()
                .zip(lemur_models_test_randn(500 + i as u64, p.numel()))
                .map(|(x, r)| x + 0.2 * r)
                .collect();
            p.set_storage(b.upload(&v).unwrap()).unwrap();
        }
    }
    let x = Tensor::randn(b, &[1, 3, 2, 4, 4], 9, 0).unwrap();
    let m = Tensor::from_slice(b, &[1.0, 0.0], &[1, 1, 2, 1, 1]).unwrap();
    let patched = GradCase {
        name: "denoiser (patch 2)",
        store,
        loss: Box::new(move || den.loss(&x, None, &m, draw, false).unwrap()),
    };
    vec![denoiser, surrogate, patched]
}

/// Fixed (non-trainable) tensors: the sinusoidal embeddings' frequencies.
fn is_buffer(name: &str) -> bool {
    name.ends_with("freqs")
}

/// `(name, gradient, values)` of every trainable parameter after one backward pass.
fn gradients<B: Backend>(case: &GradCase<B>) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    case.store.zero_grad();
    (case.loss)().backward().unwrap();
    case.store
        .iter()
        .filter(|(n, _)| !is_buffer(n))
        .map(|(n, p)| {
            let g = p
                .grad()
                .unwrap_or_else(|| panic!("{}: `{n}` got no gradient", case.name));
            (n.to_string(), host(&g), host(p))
        })
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// The ViT backward pass against central finite differences on the CPU backend, for every
/// trainable tensor of the fixture denoiser and surrogate (the reference has no ViT gradient
/// fixture, unlike the DCAE's `dcae_vrmse_grad`). Three checks per tensor, each of which a
/// zero, wrongly scaled or misrouted gradient fails (unlike a tolerance `2e-2 (1 + |fd|)` on a
/// few entries, which an all-zero gradient passed):
/// - along the tensor's own gradient direction `u = g / |g|`, the finite-difference slope must
///   equal `|g|` (to 2%): a gradient scaled by k gives k |g| against |g|; an error `e`
///   orthogonal to the true gradient gives `|g|^2 - |e|^2` against `|g|^2`; zero fails `|g| > 0`;
/// - along a random unit direction `r`, the slope must equal `g . r` to 2% of `|g|`;
/// - at the entry of largest gradient and at two random entries, `g[i]` must equal the
///   one-entry finite difference to 3% of `max |g|`.
///
/// Observed (CPU): worst directional error 5.0e-3 of |g| (blocks.0.theta, the smallest
/// gradient), worst entry error 9.1e-3 of max |g|.
///
/// Then the same along the whole model's gradient direction at once. Catches: a backward
/// kernel that drops a factor (attention's `1/sqrt(d)`, RoPE's rotation, adaLN's `1 + scale`),
/// a transposed weight gradient, a parameter used twice whose gradients are not accumulated.
#[test]
fn vit_gradients_match_finite_differences() {
    let b = CpuBackend;
    let (mut worst_dir, mut worst_entry, mut probes) = (0f64, 0f64, 0usize);
    for case in grad_cases(&b) {
        let grads = gradients(&case);
        assert!(grads.len() >= 20, "{}: {} tensors", case.name, grads.len());
        let loss = || no_grad(|| (case.loss)().item().unwrap()) as f64;
        // The slope of the loss from the current parameters along `dir` (one per tensor, or
        // zero-length to leave a tensor alone), by central differences with step `h`.
        let slope = |dirs: &[Vec<f32>], h: f32| -> f64 {
            let at = |sign: f32| {
                for ((name, _, base), d) in grads.iter().zip(dirs) {
                    if !d.is_empty() {
                        let v: Vec<f32> =
                            base.iter().zip(d).map(|(x, d)| x + sign * h * d).collect();
                        let p = case.store.get(name).unwrap();
                        p.set_storage(b.upload(&v).unwrap()).unwrap();
                    }
                }
                let l = loss();
                for ((name, _, base), d) in grads.iter().zip(dirs) {
                    if !d.is_empty() {
                        let p = case.store.get(name).unwrap();
                        p.set_storage(b.upload(base).unwrap()).unwrap();
                    }
                }
                l
            };
            (at(1.0) - at(-1.0)) / (2.0 * h as f64)
        };
        let only = |k: usize, d: Vec<f32>| -> Vec<Vec<f32>> {
            (0..grads.len())
                .map(|j| if j == k { d.clone() } else { Vec::new() })
                .collect()
        };
        for (k, (name, g, base)) in grads.iter().enumerate() {
            let what = format!("{} {name}", case.name);
            let gn = norm(g);
            assert!(gn > 1e-6, "{what}: gradient norm {gn:e} (all zero?)");
            // Along the gradient's own direction: the slope is |g|.
            let u: Vec<f32> = g.iter().map(|&x| (x as f64 / gn) as f32).collect();
            let fd = slope(&only(k, u), step(gn));
            let rel = (fd - gn).abs() / gn;
            worst_dir = worst_dir.max(rel);
            assert!(
                rel <= 2e-2,
                "{what}: finite-difference slope along the gradient {fd:e}, |g| {gn:e} (rel {rel:.2e})"
            );
            // Along a random unit direction: the slope is g . r.
            let r = lemur_models_test_randn(1000 + k as u64, g.len());
            let rn = norm(&r);
            let r: Vec<f32> = r.iter().map(|&x| (x as f64 / rn) as f32).collect();
            let want: f64 = g.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum();
            let fd = slope(&only(k, r), step(gn));
            let rel = (fd - want).abs() / gn;
            worst_dir = worst_dir.max(rel);
            assert!(
                rel <= 2e-2,
                "{what}: slope along a random direction {fd:e}, g . r {want:e} (|g| {gn:e})"
            );
            // Single entries: the largest gradient and two random ones.
            let gmax = common::scale(g) as f64;
            let big = (0..g.len()).fold(0, |m, i| if g[i].abs() > g[m].abs() { i } else { m });
            let pick = |c: u64| (lemur_tensor::rng::bits(77 + k as u64, c) as usize) % g.len();
            for i in [big, pick(0), pick(1)] {
                let mut e = vec![0.0; base.len()];
                e[i] = 1.0;
                let fd = slope(&only(k, e), H);
                let err = (fd - g[i] as f64).abs();
                worst_entry = worst_entry.max(err / gmax);
                assert!(
                    err <= 3e-2 * gmax,
                    "{what}[{i}]: autodiff {} vs finite difference {fd:e} (max |g| {gmax:e})",
                    g[i]
                );
                probes += 1;
            }
        }
        // Every tensor at once, along the whole gradient.
        let total = grads
            .iter()
            .map(|(_, g, _)| norm(g).powi(2))
            .sum::<f64>()
            .sqrt();
        let dirs: Vec<Vec<f32>> = grads
            .iter()
            .map(|(_, g, _)| g.iter().map(|&x| (x as f64 / total) as f32).collect())
            .collect();
        let fd = slope(&dirs, step(total));
        let rel = (fd - total).abs() / total;
        worst_dir = worst_dir.max(rel);
        assert!(
            rel <= 2e-2,
            "{}: slope along the whole gradient {fd:e}, |g| {total:e}",
            case.name
        );
    }
    eprintln!(
        "{probes} entry probes, worst |fd - g[i]| / max |g| {worst_entry:.2e}; worst directional \
         error / |g| {worst_dir:.2e}"
    );
}

/// The finite-difference step along a unit direction (or one entry). The loss is f32, about 1,
/// so its round-off (1.2e-7) over 2H must stay small against the smallest gradients (|g| about
/// 6e-4 for RoPE's theta): at 1e-2 it was 1.6% of that |g|; at 0.1 the worst error is 0.5%,
/// and the curvature error at the largest gradients is still under 1% (ada_zero.2.bias).
const H: f32 = 0.1;

/// The step along a unit direction for a gradient of norm `g`: H, or less where the loss would
/// change by more than 0.01 (curvature: the whole patch-2 model's gradient, |g| 17, was 2.8% off
/// at H).
fn step(g: f64) -> f32 {
    H.min((1e-2 / g) as f32)
}

/// Standard-normal values from stream `seed` (the shared counter-based generator).
fn lemur_models_test_randn(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| lemur_tensor::rng::normal(seed, i))
        .collect()
}

/// The GPU backward pass gives the CPU's gradients (which the test above checks against
/// finite differences) for every trainable tensor of both fixture models, to 1e-3 of each
/// gradient's scale (the fixtures' tolerance for gradients). Catches a WGSL backward kernel
/// that differs from the CPU one: a missed workgroup partial in a reduction, a wrong stride.
#[test]
fn vit_gradients_agree_across_backends() {
    let Some(g) = common::gpu() else { return };
    let (cpu, gpu) = (grad_cases(&CpuBackend), grad_cases(&g));
    let mut worst = 0f32;
    for (c, gc) in cpu.iter().zip(&gpu) {
        let (want, got) = (gradients(c), gradients(gc));
        assert_eq!(want.len(), got.len());
        for ((name, w, _), (_, x, _)) in want.iter().zip(&got) {
            let rel = assert_rel(&format!("gpu {} grad {name}", c.name), x, w, 1e-3);
            worst = worst.max(rel);
        }
    }
    eprintln!("gpu vs cpu ViT gradients: worst max |diff| / scale {worst:.2e}");
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

/// `loss_with_context` reads the context at the mask's positions and the target everywhere:
/// a context that differs from the target only outside the mask gives `loss`'s value, one
/// that differs inside it gives another, for the denoiser and the surrogate.
#[test]
fn losses_read_the_context_at_the_mask_alone() {
    let b = CpuBackend;
    let cfg = other_config();
    let s = [3, 3, 2, 2, 4]; // patch 2 in (L, H, W)
    let x = Tensor::randn(&b, &s, 9, 0).unwrap();
    let m = context_mask(3, 2, 0.66, 5);
    let mask = Tensor::from_slice(&b, &m, &[3, 1, 2, 1, 1]).unwrap();
    let inside = mask.broadcast_to(&s).unwrap();
    let outside = inside.scale(-1.0).unwrap().add_scalar(1.0).unwrap();
    let noise = Tensor::randn(&b, &s, 10, 0).unwrap();
    let off_mask = x.add(&noise.mul(&outside).unwrap()).unwrap();
    let on_mask = x.add(&noise.mul(&inside).unwrap()).unwrap();
    let d = TrainDraw {
        seed: 4,
        step: 7,
        micro: 1,
    };
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(&b, &mut store, 3)).unwrap();
    let mut scfg = other_config();
    scfg.schedule = None;
    let mut sstore = ParamStore::new();
    let sur = Surrogate::new(&scfg, &mut Builder::new(&b, &mut sstore, 3)).unwrap();
    let den_loss = |c: &Tensor<CpuBackend>| {
        no_grad(|| den.loss_with_context(&x, c, None, &mask, d, true))
            .unwrap()
            .item()
            .unwrap()
    };
    let sur_loss = |c: &Tensor<CpuBackend>| {
        no_grad(|| sur.loss_with_context(&x, c, None, &mask, d, true))
            .unwrap()
            .item()
            .unwrap()
    };
    let den_plain = no_grad(|| den.loss(&x, None, &mask, d, true))
        .unwrap()
        .item()
        .unwrap();
    let sur_plain = no_grad(|| sur.loss(&x, None, &mask, d, true))
        .unwrap()
        .item()
        .unwrap();
    assert_eq!(den_loss(&off_mask), den_plain);
    assert_eq!(sur_loss(&off_mask), sur_plain);
    assert!((den_loss(&on_mask) - den_plain).abs() > 1e-4 * den_plain.abs());
    assert!((sur_loss(&on_mask) - sur_plain).abs() > 1e-4 * sur_plain.abs());
    let wrong = Tensor::randn(&b, &[3, 3, 2, 2, 3], 11, 0).unwrap();
    for e in [
        den.loss_with_context(&x, &wrong, None, &mask, d, true),
        sur.loss_with_context(&x, &wrong, None, &mask, d, true),
    ] {
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("context") && e.contains("[3, 3, 2, 2, 3]"),
            "{e}"
        );
    }
}
