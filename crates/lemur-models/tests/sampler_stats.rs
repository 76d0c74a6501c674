//! Samplers on an exact Gaussian denoiser (`ExactGaussian`: the posterior of x ~ N(mu, var) is
//! known in closed form), so every sampler must produce samples with the target's mean and
//! variance; stochastic samplers are seeded and reproducible; DDIM(eta = 0) equals Euler;
//! inpainting pins the observed positions.

mod common;

use lemur_models::diffusion::Schedule;
use lemur_models::sampling::{Denoise, ExactGaussian, Method, Observation, Sampler};
use lemur_models::vit::ScheduleConfig;
use lemur_tensor::test_device;
use lemur_tensor::{Backend, CpuBackend, Tensor};

const N: usize = 12_000;

fn schedule() -> Schedule {
    Schedule::from_config(&ScheduleConfig {
        name: "log_logit".into(),
        sigma_min: 1e-3,
        sigma_max: 1e3,
        scale: 1.0,
        shift: 0.0,
    })
    .unwrap()
}

/// Two "channels" with different targets: N(0.5, 0.25) and N(-2, 4).
fn target<B: Backend>(b: &B) -> ExactGaussian<B> {
    ExactGaussian {
        schedule: schedule(),
        mu: Tensor::from_slice(b, &[0.5, -2.0], &[2, 1]).unwrap(),
        var: Tensor::from_slice(b, &[0.25, 4.0], &[2, 1]).unwrap(),
    }
}

fn moments(x: &[f32]) -> [(f64, f64); 2] {
    std::array::from_fn(|c| {
        let v = &x[c * N..(c + 1) * N];
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / N as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / (N - 1) as f64;
        (m, var)
    })
}

fn run<B: Backend>(b: &B, method: Method, steps: usize, seed: u64) -> Vec<f32> {
    let den = target(b);
    let sampler = Sampler::new(method, steps, seed).unwrap();
    let x1 = sampler
        .init(b, &den.schedule(), &[2, N], seed ^ 0xabc)
        .unwrap();
    sampler.sample(&den, x1, None).unwrap().to_vec().unwrap()
}

fn gaussian_moments<B: Backend>(b: &B) {
    for (method, steps) in [
        (Method::Euler, 64),
        (Method::Ddim { eta: 1.0 }, 256),
        (Method::Ddim { eta: 0.5 }, 256),
        (Method::Heun, 64),
        (Method::Ab { order: 3 }, 16),
        (Method::Eab { order: 3 }, 16),
        (
            Method::Pc {
                corrections: 1,
                delta: 0.1,
            },
            64,
        ),
    ] {
        let x = run(b, method, steps, 7);
        for (c, ((m, v), (mu, var))) in moments(&x)
            .into_iter()
            .zip([(0.5, 0.25), (-2.0, 4.0)])
            .enumerate()
        {
            // 5 standard errors of the estimators, plus 2% for the discretisation.
            let tol_m = 5.0 * (var / N as f64).sqrt() + 0.02 * var.sqrt();
            let tol_v = 5.0 * var * (2.0 / N as f64).sqrt() + 0.02 * var;
            assert!(
                (m - mu).abs() < tol_m && (v - var).abs() < tol_v,
                "{} {method:?} {steps} steps, channel {c}: mean {m:.4} (target {mu}), variance {v:.4} (target {var})",
                b.name()
            );
        }
    }
}
test_device!(samplers_reach_the_gaussian_target, gaussian_moments);

fn seeded<B: Backend>(b: &B) {
    let method = Method::Ddim { eta: 1.0 };
    let a = run(b, method, 8, 3);
    assert_eq!(a, run(b, method, 8, 3), "same seed, same samples");
    let c = run(b, method, 8, 4);
    let differ = a.iter().zip(&c).filter(|(x, y)| x != y).count();
    assert!(
        differ > N,
        "another seed changes the samples ({differ} differ)"
    );
    // The CPU and GPU draw the same noise: the same samples up to rounding.
    let cpu = run(&CpuBackend, method, 8, 3);
    let worst = a
        .iter()
        .zip(&cpu)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "{}: max difference to the CPU {worst}",
        b.name()
    );
}
test_device!(stochastic_samplers_are_seeded, seeded);

fn ddim0_is_euler<B: Backend>(b: &B) {
    let e = run(b, Method::Euler, 10, 1);
    let d = run(b, Method::Ddim { eta: 0.0 }, 10, 1);
    let worst = e
        .iter()
        .zip(&d)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "DDIM(0) vs Euler: {worst}");
}
test_device!(ddim_eta_zero_is_euler, ddim0_is_euler);

fn inpainting<B: Backend>(b: &B) {
    // Observe every third value of channel 0 at y = 3 (far from the prior mean 0.5): the samples
    // there must end at y, the others keep the prior (independent elements).
    let den = target(b);
    let n = 2 * N;
    let mask: Vec<f32> = (0..n)
        .map(|i| f32::from(u8::from(i < N && i % 3 == 0)))
        .collect();
    let obs = Observation::new(
        &Tensor::full(b, &[2, N], 3.0).unwrap(),
        &Tensor::from_slice(b, &mask, &[2, N]).unwrap(),
    )
    .unwrap();
    for method in [
        Method::Ab { order: 3 },
        Method::Heun,
        Method::Ddim { eta: 1.0 },
    ] {
        let sampler = Sampler::new(method, 16, 5).unwrap();
        let x1 = sampler.init(b, &den.schedule, &[2, N], 9).unwrap();
        let x = sampler
            .sample(&den, x1, Some(&obs))
            .unwrap()
            .to_vec()
            .unwrap();
        let worst = (0..n)
            .filter(|&i| mask[i] != 0.0)
            .map(|i| (x[i] - 3.0).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 0.05,
            "{method:?}: observed values end {worst} from y"
        );
        let free: Vec<f64> = (0..N).filter(|i| i % 3 != 0).map(|i| x[i] as f64).collect();
        let m = free.iter().sum::<f64>() / free.len() as f64;
        assert!((m - 0.5).abs() < 0.05, "{method:?}: unobserved mean {m}");
    }
}
test_device!(inpainting_pins_observations, inpainting);
