//! Rollout bookkeeping: toy emulators whose right answer is known must reproduce a known
//! trajectory exactly across windows, contexts and overlaps; ensembles of the diffusion
//! emulator differ between members and stay finite.

mod common;

use lemur_models::Result;
use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::rollout::{DiffusionEmulator, RolloutPlan, WindowEmulator, rollout};
use lemur_models::sampling::{Method, Sampler};
use lemur_models::vit::VitConfig;
use lemur_tensor::test_device;
use lemur_tensor::{Backend, ParamStore, Tensor};

const C: usize = 2;
const HW: usize = 3;

/// Frame k of the known trajectory: channel c, point p holds `100 k + 10 c + p` (exact in f32).
fn truth_frame(k: usize) -> Vec<f32> {
    (0..C * HW)
        .map(|i| (100 * k + 10 * (i / HW) + i % HW) as f32)
        .collect()
}

/// Continues the sequence from the last known frame: frame l = frame(last) + 100 (l - last).
/// It only sees what the rollout passes in, so a bookkeeping slip shows up as a wrong value.
struct Advance {
    calls: Vec<(usize, usize)>,
}

impl<B: Backend> WindowEmulator<B> for Advance {
    fn emulate(&mut self, y: &Tensor<B>, mask: &Tensor<B>, index: usize) -> Result<Tensor<B>> {
        let s = y.shape().to_vec();
        let (b, l) = (s[0], s[2]);
        let (y, m) = (y.to_vec()?, mask.to_vec()?);
        let plane = HW;
        let at = |bi: usize, c: usize, f: usize| ((bi * C + c) * l + f) * plane;
        let known = (0..l).take_while(|&f| m[at(0, 0, f)] != 0.0).count();
        assert!(known > 0 && m[at(b - 1, C - 1, known - 1)] != 0.0);
        self.calls.push((index, known));
        let mut out = y.clone();
        for bi in 0..b {
            for c in 0..C {
                for f in known..l {
                    for p in 0..plane {
                        out[at(bi, c, f) + p] =
                            y[at(bi, c, known - 1) + p] + 100.0 * (f + 1 - known) as f32;
                    }
                }
            }
        }
        Ok(Tensor::from_slice(mask.backend(), &out, &s)?)
    }
}

/// (B, C, frames, H*W) of the known trajectory from frame 0.
fn truth(b: usize, frames: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for _ in 0..b {
        for c in 0..C {
            for k in 0..frames {
                out.extend_from_slice(&truth_frame(k)[c * HW..(c + 1) * HW]);
            }
        }
    }
    out
}

fn toy_rollouts_are_exact<B: Backend>(be: &B) {
    for (window, context, overlap, frames) in [
        (5, 1, 1, 17),
        (5, 2, 1, 14),
        (4, 3, 2, 11),
        (6, 1, 3, 6),
        (3, 1, 2, 9),
        (5, 4, 4, 7),
    ] {
        let plan = RolloutPlan {
            window,
            context,
            overlap,
            frames,
        };
        let b = 2;
        let init: Vec<f32> = truth(b, context);
        let init = Tensor::from_slice(be, &init, &[b, C, context, 1, HW]).unwrap();
        let mut em = Advance { calls: Vec::new() };
        let got = rollout(&mut em, &init, &plan).unwrap();
        assert_eq!(got.shape(), &[b, C, frames, 1, HW]);
        assert_eq!(got.to_vec().unwrap(), truth(b, frames), "{plan:?}");
        let expected: Vec<(usize, usize)> = plan
            .windows()
            .iter()
            .enumerate()
            .map(|(i, &(_, k))| (i, k))
            .collect();
        assert_eq!(em.calls, expected, "{plan:?}");
    }
}
test_device!(toy_rollouts, toy_rollouts_are_exact);

fn ensembles<B: Backend>(be: &B) {
    let cfg: VitConfig = serde_json::from_str(
        r#"{"channels": 2, "emb_features": 16, "label_features": 0, "masked": true,
            "hid_channels": 16, "hid_blocks": 1, "attention_heads": 2, "patch_size": 1,
            "schedule": {"name": "log_logit"}}"#,
    )
    .unwrap();
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(be, &mut store, 3)).unwrap();
    let members = 3;
    let init = Tensor::randn(be, &[1, 2, 1, 2, 2], 1, 0)
        .unwrap()
        .broadcast_to(&[members, 2, 1, 2, 2])
        .unwrap();
    let plan = RolloutPlan {
        window: 3,
        context: 1,
        overlap: 1,
        frames: 6,
    };
    let mut em = DiffusionEmulator {
        denoiser: &den,
        label: None,
        sampler: Sampler::new(Method::Ab { order: 3 }, 4, 11).unwrap(),
    };
    let out = rollout(&mut em, &init, &plan).unwrap().to_vec().unwrap();
    let per = out.len() / members;
    assert!(out.iter().all(|v| v.is_finite()));
    // Frame 0 is the observed context for every member (up to the final noise level).
    for m in 0..members {
        for c in 0..2 {
            for p in 0..4 {
                let got = out[m * per + c * 6 * 4 + p];
                let want = init.to_vec().unwrap()[c * 4 + p];
                assert!(
                    (got - want).abs() < 1e-2,
                    "member {m}: context {got} vs {want}"
                );
            }
        }
    }
    let spread: f32 = (0..per)
        .map(|i| (out[i] - out[per + i]).abs() + (out[i] - out[2 * per + i]).abs())
        .sum();
    assert!(
        spread > 1e-2 * per as f32,
        "members are identical (spread {spread})"
    );
    // The same seed reproduces the ensemble.
    let again = rollout(&mut em, &init, &plan).unwrap().to_vec().unwrap();
    assert_eq!(out, again);
}
test_device!(ensemble_members_differ, ensembles);

/// A whole rollout (two windows) of the fixture denoiser and surrogate on the GPU equals the
/// CPU's for the same seed, to 1e-4 of the output's scale. Both backends draw the initial and
/// per-step noise from the one counter-based stream (`lemur_tensor::rng`, mirrored in
/// `shaders/random.wgsl`; the normal transform agrees to a few ulps), so the stochastic
/// samplers are compared value by value too: DDPM (DDIM with eta 1: fresh noise every step)
/// and Adams-Bashforth 3 (initial noise only). Fails on a sampler kernel or a window
/// bookkeeping step that differs between the backends (noise drawn at other offsets or
/// seeds, a wrong stride or coefficient in the fused WGSL update, context frames not
/// re-imposed).
#[test]
fn rollouts_agree_across_backends() {
    let Some(g) = common::gpu() else { return };
    let plan = RolloutPlan {
        window: 3,
        context: 1,
        overlap: 1,
        frames: 5,
    };
    let cpu = fixture_rollouts(&lemur_tensor::CpuBackend, &plan);
    let gpu = fixture_rollouts(&g, &plan);
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert!(c.iter().all(|v| v.is_finite()), "rollout {i}: not finite");
        let rel = common::assert_rel(&format!("rollout {i} gpu vs cpu"), g, c, 1e-4);
        eprintln!("rollout {i}: gpu vs cpu max |diff| / scale {rel:.2e}");
    }
}

/// Rollouts with the fixture weights: the denoiser with DDPM and AB3 (2 members, labels),
/// then the surrogate.
fn fixture_rollouts<B: Backend + 'static>(be: &B, plan: &RolloutPlan) -> Vec<Vec<f32>> {
    use common::Fixture;
    use lemur_models::rollout::SurrogateEmulator;
    use lemur_models::surrogate::Surrogate;
    let fx = Fixture::load("vit_denoiser.safetensors");
    let mut store = ParamStore::new();
    let den = Denoiser::new(&fx.config(), &mut Builder::new(be, &mut store, 0)).unwrap();
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let label = fx.tensor(be, "input.label");
    // The first frame of the fixture's inputs as the context of 2 members.
    let x = fx.get("input.x_t").1.clone();
    let first: Vec<f32> = (0..2 * 4)
        .flat_map(|bc| x[bc * 48..bc * 48 + 16].to_vec())
        .collect();
    let init = Tensor::from_slice(be, &first, &[2, 4, 1, 4, 4]).unwrap();
    let mut out = Vec::new();
    for method in [Method::Ddim { eta: 1.0 }, Method::Ab { order: 3 }] {
        let mut em = DiffusionEmulator {
            denoiser: &den,
            label: Some(&label),
            sampler: Sampler::new(method, 4, 21).unwrap(),
        };
        out.push(rollout(&mut em, &init, plan).unwrap().to_vec().unwrap());
    }
    let fx = Fixture::load("vit_surrogate.safetensors");
    let mut store = ParamStore::new();
    let sur = Surrogate::new(&fx.config(), &mut Builder::new(be, &mut store, 0)).unwrap();
    store
        .load_host(&fx.with_prefix("param."), &fx.path)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut em = SurrogateEmulator {
        surrogate: &sur,
        label: Some(&label),
    };
    out.push(rollout(&mut em, &init, plan).unwrap().to_vec().unwrap());
    out
}
