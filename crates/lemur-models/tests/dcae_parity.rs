//! DCAE tests: parity with the reference implementation (`dcae`, `dcae_vrmse_grad` fixtures) on
//! both backends, shapes and circular-padding equivariance for another configuration,
//! gradients against finite differences, the presets and the configuration errors.

mod common;

use lemur_tensor::test_device;
use std::path::PathBuf;

use common::{Fixture, assert_rel, host};
use lemur_models::Error;
use lemur_models::dcae::{Dcae, DcaeConfig, Loss, Periodic, TrainCtx, mae, mse, vrmse};
use lemur_models::nn::Builder;
use lemur_tensor::{Backend, CpuBackend, ParamStore, Tensor, no_grad, rng};

fn build<B: Backend>(b: &B, cfg: &DcaeConfig, seed: u64) -> (ParamStore<B>, Dcae<B>) {
    let mut store = ParamStore::new();
    let model = Dcae::new(cfg, &mut Builder::new(b, &mut store, seed)).expect("Dcae::new");
    (store, model)
}

/// The model of the `dcae` fixture: configuration from the file's metadata, weights from its
/// `param.*` tensors, loaded with strict key and shape checking.
fn reference_model<B: Backend>(b: &B) -> (Fixture, ParamStore<B>, Dcae<B>) {
    let fx = Fixture::load("dcae.safetensors");
    let cfg: DcaeConfig = fx.config();
    cfg.validate().expect("fixture config");
    let (store, model) = build(b, &cfg, 0);
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    for eps in model.buffers() {
        assert_eq!(host(eps), [1e-5], "norm.eps buffer");
    }
    (fx, store, model)
}

fn forward_parity<B: Backend>(b: &B) {
    let (fx, _store, model) = reference_model(b);
    let x = fx.tensor(b, "input.x");
    let (z_raw, z, y) = no_grad(|| {
        let z_raw = model.encode_raw(&x).unwrap();
        let z = model.encode(&x).unwrap();
        let y = model.decode(&z).unwrap();
        (z_raw, z, y)
    });
    let (zs, ys) = no_grad(|| model.forward(&x)).unwrap();
    for (name, t) in [
        ("z_raw", &z_raw),
        ("z", &z),
        ("y", &y),
        ("z", &zs),
        ("y", &ys),
    ] {
        let (shape, want) = fx.get(&format!("output.{name}"));
        assert_eq!(t.shape(), shape.as_slice(), "output.{name} shape");
        let got = host(t);
        let rel = assert_rel(&format!("{} output.{name}", b.name()), &got, want, 1e-4);
        eprintln!(
            "{}: output.{name}: max |diff| {:.3e}, scale {:.3e}, relative {rel:.3e}",
            b.name(),
            common::max_abs_diff(&got, want),
            common::scale(want)
        );
    }
}
test_device!(dcae_forward_matches_reference, forward_parity);

fn vrmse_grad_parity<B: Backend>(b: &B) {
    let (_, store, model) = reference_model(b);
    let fx = Fixture::load("dcae_vrmse_grad.safetensors");
    let x = fx.tensor(b, "input.x");
    let loss = model.loss(&x, Loss::Vrmse, None).unwrap();
    let (_, want) = fx.get("output.loss");
    let rel = assert_rel(
        &format!("{} output.loss", b.name()),
        &host(&loss),
        want,
        1e-4,
    );
    eprintln!(
        "{}: loss {} vs {}: rel {rel:.3e}",
        b.name(),
        host(&loss)[0],
        want[0]
    );
    loss.backward().unwrap();
    let grads = fx.with_prefix("grad.");
    let mut worst = (String::new(), 0.0f32);
    let mut worst_abs = 0.0f32;
    let mut checked = 0;
    for (name, p) in store.iter() {
        if Dcae::<B>::is_buffer(name) {
            assert!(
                p.grad().is_none() && !grads.contains_key(name),
                "{name}: a buffer gets no gradient"
            );
            continue;
        }
        let (shape, want) = grads
            .get(name)
            .unwrap_or_else(|| panic!("no reference gradient for `{name}`"));
        let g = p
            .grad()
            .unwrap_or_else(|| panic!("`{name}` got no gradient"));
        assert_eq!(g.shape(), shape.as_slice(), "grad.{name} shape");
        let got = host(&g);
        let rel = assert_rel(&format!("{} grad.{name}", b.name()), &got, want, 1e-3);
        worst_abs = worst_abs.max(common::max_abs_diff(&got, want));
        if rel > worst.1 {
            worst = (name.to_string(), rel);
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        grads.len(),
        "every reference gradient has a parameter"
    );
    eprintln!(
        "{}: {checked} gradients, worst max |diff| / scale = {:.3e} ({}), worst max |diff| {worst_abs:.3e}",
        b.name(),
        worst.1,
        worst.0
    );
}
test_device!(dcae_vrmse_gradients_match_reference, vrmse_grad_parity);

/// Periodic, non-square, two stages, FFN factor 2, patch 1.
fn periodic_config() -> DcaeConfig {
    DcaeConfig::from_json(
        r#"{"pix_channels": 3, "lat_channels": 2, "hid_channels": [4, 8], "hid_blocks": [1, 2],
            "ffn_factor": 2, "periodic": true, "dropout": 0.2, "latent_noise": 0.1}"#,
    )
    .unwrap()
}

/// Rolls a host (B, C, H, W) array by (dh, dw).
fn roll(x: &[f32], s: [usize; 4], dh: usize, dw: usize) -> Vec<f32> {
    let [b, c, h, w] = s;
    let mut out = vec![0.0; x.len()];
    for bc in 0..b * c {
        for i in 0..h {
            for j in 0..w {
                out[bc * h * w + ((i + dh) % h) * w + (j + dw) % w] = x[bc * h * w + i * w + j];
            }
        }
    }
    out
}

fn randn(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64).map(|i| rng::normal(seed, i)).collect()
}

fn periodic_shapes_and_equivariance<B: Backend>(b: &B) {
    let cfg = periodic_config();
    let (_store, model) = build(b, &cfg, 7);
    let s = [2, 3, 8, 12];
    let xd = randn(1, s.iter().product());
    let x = Tensor::from_slice(b, &xd, &s).unwrap();
    assert_eq!(model.latent_shape(8, 12).unwrap(), [2, 4, 6]);
    let (z, y) = no_grad(|| model.forward(&x)).unwrap();
    assert_eq!(z.shape(), [2, 2, 4, 6]);
    assert_eq!(y.shape(), s);
    let y2 = no_grad(|| model.decode(&model.encode(&x)?)).unwrap();
    assert_eq!(host(&y2), host(&y), "decode(encode(x)) is forward's y");

    // Circular padding: rolling the field by the down-sampling factor (2) rolls the latent by 1,
    // and rolling the latent by 1 rolls the reconstruction by 2.
    let zr = no_grad(|| model.encode(&Tensor::from_slice(b, &roll(&xd, s, 2, 4), &s)?)).unwrap();
    assert_rel(
        "encode(roll x) = roll encode(x)",
        &host(&zr),
        &roll(&host(&z), [2, 2, 4, 6], 1, 2),
        1e-5,
    );
    let zd = host(&z);
    let yr = no_grad(|| {
        model.decode(&Tensor::from_slice(
            b,
            &roll(&zd, [2, 2, 4, 6], 3, 1),
            &[2, 2, 4, 6],
        )?)
    })
    .unwrap();
    assert_rel(
        "decode(roll z) = roll decode(z)",
        &host(&yr),
        &roll(&host(&y), s, 6, 2),
        1e-5,
    );

    // Training randomness (dropout, latent noise) depends on (seed, step) only: the same on
    // every backend, different from inference and between steps.
    let ctx = TrainCtx { seed: 3, step: 11 };
    let train = |be: &B| {
        host(
            &model
                .forward_with(&Tensor::from_slice(be, &xd, &s).unwrap(), Some(&ctx))
                .unwrap()
                .1,
        )
    };
    let (t1, t2) = (train(b), train(b));
    assert_eq!(t1, t2, "same TrainCtx, same masks");
    assert!(
        common::max_abs_diff(&t1, &host(&y)) > 1e-4,
        "dropout and latent noise change the output in training"
    );
    let other = host(
        &model
            .forward_with(&x, Some(&TrainCtx { seed: 3, step: 12 }))
            .unwrap()
            .1,
    );
    assert!(
        common::max_abs_diff(&t1, &other) > 1e-4,
        "another step draws other masks"
    );
    let (_cs, cpu_model) = build(&CpuBackend, &cfg, 7);
    let cpu_t = host(
        &cpu_model
            .forward_with(
                &Tensor::from_slice(&CpuBackend, &xd, &s).unwrap(),
                Some(&ctx),
            )
            .unwrap()
            .1,
    );
    assert_rel("training forward vs the CPU backend", &t1, &cpu_t, 1e-4);
    let loss = model.loss(&x, Loss::Mse, Some(&ctx)).unwrap();
    assert_eq!(loss.shape(), [1]);
    assert!(host(&loss)[0].is_finite());
}
test_device!(
    dcae_periodic_nonsquare_two_stages,
    periodic_shapes_and_equivariance
);

#[test]
fn zeros_padding_is_not_periodic() {
    // The equivariance above is a property of circular padding, not of every configuration.
    let mut cfg = periodic_config();
    cfg.periodic = false.into();
    let (_s, model) = build(&CpuBackend, &cfg, 7);
    let s = [1, 3, 8, 12];
    let xd = randn(1, 3 * 8 * 12);
    let z = host(&no_grad(|| model.encode(&Tensor::from_slice(&CpuBackend, &xd, &s)?)).unwrap());
    let zr = host(
        &no_grad(|| model.encode(&Tensor::from_slice(&CpuBackend, &roll(&xd, s, 2, 4), &s)?))
            .unwrap(),
    );
    assert!(common::max_abs_diff(&zr, &roll(&z, [1, 2, 4, 6], 1, 2)) > 1e-3);
}

#[test]
fn padding_follows_each_axis() {
    // Periodic along W only: rolling along W commutes with the encoder, rolling along H does not.
    let mut cfg = periodic_config();
    cfg.periodic = Periodic([false, true]);
    let (_s, model) = build(&CpuBackend, &cfg, 7);
    let s = [1, 3, 8, 12];
    let xd = randn(1, 3 * 8 * 12);
    let encode = |x: &[f32]| {
        host(&no_grad(|| model.encode(&Tensor::from_slice(&CpuBackend, x, &s)?)).unwrap())
    };
    let z = encode(&xd);
    assert_rel(
        "encode(roll_W x) = roll_W encode(x)",
        &encode(&roll(&xd, s, 0, 4)),
        &roll(&z, [1, 2, 4, 6], 0, 2),
        1e-5,
    );
    let zh = encode(&roll(&xd, s, 2, 0));
    assert!(common::max_abs_diff(&zh, &roll(&z, [1, 2, 4, 6], 1, 0)) > 1e-3);
}

#[test]
fn decoder_loss_trains_the_decoder_alone() {
    let cfg = periodic_config();
    let (store, model) = build(&CpuBackend, &cfg, 11);
    let x = Tensor::from_slice(&CpuBackend, &randn(6, 2 * 3 * 8 * 12), &[2, 3, 8, 12]).unwrap();
    let grads = |frozen: bool| {
        store.zero_grad();
        let loss = match frozen {
            true => model.decoder_loss(&x, Loss::Vrmse, None),
            false => model.loss(&x, Loss::Vrmse, None),
        }
        .unwrap();
        loss.backward().unwrap();
        let g: Vec<(String, Option<Vec<f32>>)> = store
            .iter()
            .map(|(n, p)| (n.to_string(), p.grad().map(|g| host(&g))))
            .collect();
        (host(&loss)[0], g)
    };
    let (full, g_full) = grads(false);
    let (frozen, g_frozen) = grads(true);
    assert_eq!(full, frozen, "the same reconstruction");
    let mut decoder = 0;
    for ((name, full), (_, frozen)) in g_full.iter().zip(&g_frozen) {
        if Dcae::<CpuBackend>::is_buffer(name) {
            continue;
        }
        if name.starts_with("encoder.") {
            assert!(
                frozen.is_none(),
                "{name} has a gradient with the encoder frozen"
            );
            assert!(full.is_some(), "{name}: no gradient when trained whole");
        } else {
            let (full, frozen) = (full.as_ref().unwrap(), frozen.as_ref().unwrap());
            assert_rel(name, frozen, full, 1e-6);
            assert!(common::scale(frozen) > 0.0, "{name}: a zero gradient");
            decoder += 1;
        }
    }
    // The latent convolution, three blocks of two, the up-sampling and the output convolution.
    assert_eq!(decoder, 2 * 9, "decoder weights and biases checked");
}

#[test]
fn periodic_reads_one_flag_or_one_per_axis() {
    let parse = |v: &str| serde_json::from_str::<Periodic>(v);
    assert_eq!(parse("true").unwrap(), Periodic([true, true]));
    assert_eq!(parse("false").unwrap(), Periodic([false, false]));
    assert_eq!(parse("[true, false]").unwrap(), Periodic([true, false]));
    for bad in ["[true]", "[true, false, true]", "\"yes\"", "1"] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("two booleans"), "{bad}: {e}");
    }
    // Written as the reference writes it where the axes agree.
    assert_eq!(
        serde_json::to_string(&Periodic([true, true])).unwrap(),
        "true"
    );
    assert_eq!(
        serde_json::to_string(&Periodic([true, false])).unwrap(),
        "[true,false]"
    );
}

#[test]
fn gradients_match_finite_differences() {
    let b = CpuBackend;
    let cfg = DcaeConfig::from_json(
        r#"{"pix_channels": 2, "lat_channels": 2, "hid_channels": [3, 4], "hid_blocks": [1, 1],
            "periodic": true, "identity_init": false}"#,
    )
    .unwrap();
    let (store, model) = build(&b, &cfg, 5);
    let s = [2, 2, 4, 6];
    let x = Tensor::from_slice(&b, &randn(2, 96), &s).unwrap();
    // A loss through both the latent and the reconstruction: VRMSE of y plus a weighted sum of z.
    let r = Tensor::from_slice(&b, &randn(3, 2 * 2 * 2 * 3), &[2, 2, 2, 3]).unwrap();
    let loss = || -> f64 {
        let (z, y) = model.forward(&x).unwrap();
        let l = vrmse(&x, &y)
            .unwrap()
            .add(&z.mul(&r).unwrap().sum_all().unwrap())
            .unwrap();
        l.item().unwrap() as f64
    };
    let (z, y) = model.forward(&x).unwrap();
    vrmse(&x, &y)
        .unwrap()
        .add(&z.mul(&r).unwrap().sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let mut checked = 0;
    for (name, p) in store.iter() {
        if Dcae::<CpuBackend>::is_buffer(name) {
            continue;
        }
        let g = host(&p.grad().unwrap_or_else(|| panic!("{name}: no gradient")));
        let data = host(p);
        let gscale = common::scale(&g);
        // Three entries per tensor: the first, the largest gradient and one in the middle.
        let big = g
            .iter()
            .enumerate()
            .fold(0, |m, (i, v)| if v.abs() > g[m].abs() { i } else { m });
        for i in [0, big, data.len() / 2] {
            let h = 1e-2f32;
            let mut d = data.clone();
            d[i] = data[i] + h;
            p.set_storage(b.upload(&d).unwrap()).unwrap();
            let lp = no_grad(loss);
            d[i] = data[i] - h;
            p.set_storage(b.upload(&d).unwrap()).unwrap();
            let lm = no_grad(loss);
            p.set_storage(b.upload(&data).unwrap()).unwrap();
            let fd = ((lp - lm) / (2.0 * h as f64)) as f32;
            let err = (fd - g[i]).abs();
            assert!(
                err <= 2e-2 * gscale.max(1e-3) + 1e-3 * fd.abs(),
                "{name}[{i}]: autodiff {} vs finite difference {fd} (scale {gscale})",
                g[i]
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} entries checked");
}

#[test]
fn losses_match_their_formulas() {
    let b = CpuBackend;
    let (xd, yd) = (randn(8, 2 * 3 * 20), randn(9, 2 * 3 * 20));
    let s = [2, 3, 4, 5];
    let (x, y) = (
        Tensor::from_slice(&b, &xd, &s).unwrap(),
        Tensor::from_slice(&b, &yd, &s).unwrap(),
    );
    let n = 20;
    let mut want = 0.0f64;
    for bc in 0..6 {
        let (xs, ys) = (&xd[bc * n..(bc + 1) * n], &yd[bc * n..(bc + 1) * n]);
        let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se = xs
            .iter()
            .zip(ys)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
            / n as f64;
        want += (se / (var + 1e-2)).sqrt() / 6.0;
    }
    assert_rel(
        "vrmse",
        &host(&vrmse(&x, &y).unwrap()),
        &[want as f32],
        1e-5,
    );
    let m = xd
        .iter()
        .zip(&yd)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / 120.0;
    assert_rel(
        "mse",
        &host(&Loss::Mse.compute(&x, &y).unwrap()),
        &[m as f32],
        1e-5,
    );
    assert_rel("mse fn", &host(&mse(&x, &y).unwrap()), &[m as f32], 1e-5);
    let a = xd
        .iter()
        .zip(&yd)
        .map(|(a, b)| ((a - b) as f64).abs())
        .sum::<f64>()
        / 120.0;
    assert_rel("mae", &host(&mae(&x, &y).unwrap()), &[a as f32], 1e-5);
    let bad = Tensor::from_slice(&b, &yd[..60], &[1, 3, 4, 5]).unwrap();
    let e = vrmse(&x, &bad).unwrap_err().to_string();
    assert!(
        e.contains("vrmse") && e.contains("[1, 3, 4, 5]") && e.contains("[2, 3, 4, 5]"),
        "{e}"
    );
}

fn preset(name: &str) -> DcaeConfig {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/presets"))
        .join(format!("autoencoder-{name}.json"));
    let s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    DcaeConfig::from_json(&s).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn presets_construct_and_run() {
    let b = CpuBackend;
    for (name, size, count) in [("tiny", 16, 22_785), ("small", 64, 2_307_993)] {
        let cfg = preset(name);
        let (store, model) = build(&b, &cfg, 0);
        assert_eq!(model.param_count(), count, "{name}");
        assert_eq!(cfg.param_count(), count, "{name}");
        assert_eq!(
            store.count(),
            count + model.buffers().len(),
            "{name}: parameters and norm.eps buffers"
        );
        let x =
            Tensor::from_slice(&b, &randn(4, 2 * 5 * size * size), &[2, 5, size, size]).unwrap();
        let (z, y) = no_grad(|| model.forward(&x)).unwrap();
        let [c, h, w] = model.latent_shape(size, size).unwrap();
        assert_eq!(z.shape(), [2, c, h, w], "{name}");
        assert_eq!(y.shape(), x.shape(), "{name}");
        assert!(host(&y).iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn paper_preset_has_the_reference_parameter_count() {
    let cfg = preset("paper");
    // The reference's `dcae_f32c64_large` on 5 fields: hid = [64, 128, 256, 512, 768, 1024],
    // 3 blocks per stage, 64 latent channels, 3x3 kernels, so with conv(a, b) = 9ab + b:
    //   blocks (encoder and decoder each): sum_i 3 * 2 * conv(hid_i, hid_i)       = 107_290_752
    //   encoder: conv(5, 64) + sum_{i>0} conv(4 hid_{i-1}, hid_i) + conv(1024, 64) =  49_256_000
    //   decoder: conv(64, 1024) + sum_{i>0} conv(hid_i, 4 hid_{i-1}) + conv(64, 5)  =  49_261_125
    //   total = 2 * 107_290_752 + 49_256_000 + 49_261_125                          = 313_098_629
    let conv = |a: usize, b: usize| 9 * a * b + b;
    let h = [64, 128, 256, 512, 768, 1024];
    let blocks: usize = h.iter().map(|&c| 3 * 2 * conv(c, c)).sum();
    let enc =
        conv(5, 64) + (1..6).map(|i| conv(4 * h[i - 1], h[i])).sum::<usize>() + conv(1024, 64);
    let dec =
        conv(64, 1024) + (1..6).map(|i| conv(h[i], 4 * h[i - 1])).sum::<usize>() + conv(64, 5);
    assert_eq!((blocks, enc, dec), (107_290_752, 49_256_000, 49_261_125));
    assert_eq!(2 * blocks + enc + dec, 313_098_629);
    assert_eq!(cfg.param_count(), 313_098_629);

    let b = CpuBackend;
    let (_store, model) = build(&b, &cfg, 0);
    assert_eq!(model.param_count(), 313_098_629);
    // A forward pass on the smallest field the six stages allow (factor 32, a 1x1 latent):
    // constructing the 313M parameters already takes most of this test's time, and 64x64 would
    // add about 3 s on a 2-core CPU.
    let size = 32;
    let x = Tensor::from_slice(&b, &randn(6, 5 * size * size), &[1, 5, size, size]).unwrap();
    let (z, y) = no_grad(|| model.forward(&x)).unwrap();
    assert_eq!(z.shape(), [1, 64, 1, 1]);
    assert_eq!(y.shape(), [1, 5, size, size]);
    assert!(host(&y).iter().all(|v| v.is_finite()));
}

#[test]
fn bad_configurations_and_inputs_are_errors() {
    let base =
        r#""pix_channels": 5, "lat_channels": 4, "hid_channels": [8, 16], "hid_blocks": [1, 1]"#;
    for (extra, needle) in [
        (r#", "hid_blocks": [1]"#, "duplicate field"),
        (r#", "spatial": 3"#, "spatial"),
        (r#", "arch": "vit""#, "arch"),
        (r#", "norm": "group""#, "norm"),
        (r#", "pixel_shuffle": false"#, "pixel_shuffle"),
        (r#", "kernel_size": 5"#, "kernel_size"),
        (r#", "patch_size": 0"#, "patch_size"),
        (r#", "ffn_factor": 0"#, "ffn_factor"),
        (r#", "dropout": 1.0"#, "dropout"),
        (r#", "latent_noise": -1"#, "latent_noise"),
        (r#", "saturation": "cubic""#, "cubic"),
        (r#", "hidden": 3"#, "unknown field"),
    ] {
        let e = DcaeConfig::from_json(&format!("{{{base}{extra}}}")).unwrap_err();
        assert!(
            matches!(e, Error::Config(_)) && e.to_string().contains(needle),
            "{extra}: {e}"
        );
    }
    for (json, needle) in [
        (
            r#"{"pix_channels": 5, "lat_channels": 4, "hid_channels": [8, 16], "hid_blocks": [1]}"#,
            "equal length",
        ),
        (
            r#"{"pix_channels": 5, "lat_channels": 4, "hid_channels": [], "hid_blocks": []}"#,
            "non-empty",
        ),
        (
            r#"{"pix_channels": 5, "lat_channels": 4, "hid_channels": [1, 16], "hid_blocks": [1, 1]}"#,
            "at least 2",
        ),
        (
            r#"{"pix_channels": 0, "lat_channels": 4, "hid_channels": [8], "hid_blocks": [1]}"#,
            "positive",
        ),
    ] {
        let e = DcaeConfig::from_json(json).unwrap_err();
        assert!(
            matches!(e, Error::Config(_)) && e.to_string().contains(needle),
            "{json}: {e}"
        );
    }
    let cfg = DcaeConfig::from_json(&format!("{{{base}}}")).unwrap();
    let b = CpuBackend;
    let (_s, model) = build(&b, &cfg, 0);
    for shape in [vec![1, 4, 8, 8], vec![1, 5, 7, 8], vec![1, 5, 8]] {
        let x = Tensor::zeros(&b, &shape).unwrap();
        let e = model.encode(&x).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Input { .. })
                && msg.contains("Dcae")
                && msg.contains(&format!("{shape:?}")),
            "{msg}"
        );
    }
    let e = model
        .decode(&Tensor::zeros(&b, &[1, 3, 4, 4]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Dcae") && e.contains("[1, 3, 4, 4]") && e.contains("latent"),
        "{e}"
    );
    assert!(model.latent_shape(9, 8).is_err());
}

#[test]
fn identity_initialisation() {
    let b = CpuBackend;
    let cfg = preset("tiny");
    let (store, _model) = build(&b, &cfg, 0);
    let get = |n: &str| host(store.get(n).unwrap_or_else(|| panic!("no `{n}`")));
    // Resampling and latent convolutions: 1e-2 * U(±1/sqrt(fan_in)) + E, E[o, o mod C_in, 1, 1] = 1.
    for (name, cout, cin) in [
        ("encoder.descent.1.0.1.weight", 16, 32),
        ("encoder.descent.1.2.weight", 4, 16),
        ("decoder.ascent.0.0.weight", 16, 4),
        ("decoder.ascent.0.2.0.weight", 32, 16),
    ] {
        let w = get(name);
        let bound = 1e-2 / ((cin * 9) as f32).sqrt();
        for o in 0..cout {
            for i in 0..cin {
                for k in 0..9 {
                    let v = w[(o * cin + i) * 9 + k];
                    let eye = if i == o % cin && k == 4 { 1.0 } else { 0.0 };
                    assert!((v - eye).abs() <= bound, "{name}[{o}, {i}, {k}] = {v}");
                }
            }
        }
    }
    // The last FFN convolution is scaled by 1e-2; the first keeps PyTorch's default.
    let small = get("encoder.descent.0.1.ffn.3.weight");
    assert!(common::scale(&small) <= 1e-2 / 72f32.sqrt());
    let default = get("encoder.descent.0.1.ffn.0.weight");
    assert!(
        common::scale(&default) > 0.5 / 72f32.sqrt()
            && common::scale(&default) <= 1.0 / 72f32.sqrt()
    );
    // The first encoder and last decoder convolutions are never identities.
    let first = get("encoder.descent.0.0.weight");
    assert!(common::scale(&first) <= 1.0 / 45f32.sqrt());
    assert_eq!(
        store.get("encoder.descent.0.1.norm.eps").unwrap().shape(),
        [] as [usize; 0]
    );
}
