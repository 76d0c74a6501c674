//! Whole reverse processes against the reference (`samplers.safetensors`: Euler, DDIM, Heun,
//! AB3 and EAB3 over 6 steps with the `vit_denoiser` weights, the first frame observed), on
//! both backends. The model is built from `vit_denoiser`'s stored configuration.

mod common;

use common::{Fixture, assert_rel, host};
use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::sampling::{Conditioned, Method, Observation, Sampler};
use lemur_models::vit::VitConfig;
use lemur_tensor::test_device;
use lemur_tensor::{Backend, ParamStore, no_grad};

fn samplers_parity<B: Backend>(b: &B) {
    let weights = Fixture::load("vit_denoiser.safetensors");
    let fx = Fixture::load("samplers.safetensors");
    let cfg: VitConfig = weights.config();
    let mut store = ParamStore::new();
    let model = Denoiser::new(&cfg, &mut Builder::new(b, &mut store, 0)).unwrap();
    store
        .load_host(&weights.with_prefix("param."), &weights.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let (label, mask, y) = (
        fx.tensor(b, "input.label"),
        fx.tensor(b, "input.mask"),
        fx.tensor(b, "input.y_obs"),
    );
    let den = Conditioned {
        denoiser: &model,
        label: Some(&label),
        cond: Some(&mask),
    };
    let obs = Observation::new(&y, &mask).unwrap();
    let (a1, s1) = model.schedule.alpha_sigma(1.0);
    for (name, method) in [
        ("euler", Method::Euler),
        ("ddim", Method::Ddim { eta: 0.0 }),
        ("heun", Method::Heun),
        ("ab3", Method::Ab { order: 3 }),
        ("eab3", Method::Eab { order: 3 }),
    ] {
        let x1 = fx
            .tensor(b, "input.x1_unit_noise")
            .scale((a1 * a1 + s1 * s1).sqrt() as f32)
            .unwrap();
        let sampler = Sampler::new(method, 6, 0).unwrap();
        let x0 = no_grad(|| sampler.sample(&den, x1, Some(&obs))).unwrap();
        let rel = assert_rel(
            &format!("{} output.{name}", b.name()),
            &host(&x0),
            &fx.get(&format!("output.{name}")).1,
            1e-3,
        );
        eprintln!("{}: {name} relative max diff {rel:.3e}", b.name());
    }
}
test_device!(samplers_match_reference, samplers_parity);
