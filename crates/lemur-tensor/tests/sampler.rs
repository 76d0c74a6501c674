//! The fused sampler kernels (observe, update) against a naive f64 reference, on both backends,
//! at sizes that are not multiples of the workgroup size.

mod common;

use common::*;
use lemur_tensor::backend::{MAX_SAMPLER_SLOTS, SamplerUpdate};
use lemur_tensor::test_device;
use lemur_tensor::{Backend, rng};

fn obs_of(n: usize, seed: u64) -> Vec<f32> {
    let mut obs = randn(seed, n);
    obs.extend(
        randu(seed + 1, n, 0.0, 1.0)
            .iter()
            .map(|&u| f32::from(u8::from(u < 0.3))),
    );
    obs
}

fn sampler_observe<B: Backend>(b: &B) {
    for n in [1, 7, 257, 1030] {
        let x = randn(1, n);
        let obs = obs_of(n, 2);
        let k = 3.5f32;
        let got = read(
            b,
            &b.sampler_observe(&upload(b, &x), &upload(b, &obs), k)
                .unwrap(),
        );
        let want: Vec<f32> = (0..n)
            .map(|i| if obs[n + i] != 0.0 { k * obs[i] } else { x[i] })
            .collect();
        assert_eq!(got, want, "observe n={n}");
    }
}
test_device!(observe, sampler_observe);

fn sampler_update<B: Backend>(b: &B) {
    for (n, slots, observed, noisy) in [
        (1, 1, false, false),
        (7, 3, true, true),
        (257, 2, true, false),
        (1030, 3, false, true),
        (515, MAX_SAMPLER_SLOTS, true, true),
    ] {
        let xz = randn(10, n);
        let xb = randn(11, n);
        let mean = randn(12, n);
        let obs = obs_of(n, 13);
        let ring0 = randn(14, slots * n);
        let mut c = [0.0f32; MAX_SAMPLER_SLOTS];
        for (j, c) in c.iter_mut().enumerate().take(slots) {
            *c = 0.3 - 0.2 * j as f32;
        }
        let d = SamplerUpdate {
            a_t: 0.9,
            s_t: 0.45,
            slot: slots - 1,
            slots,
            cx: 0.8,
            cm: -0.6,
            c,
            cn: if noisy { 0.25 } else { 0.0 },
            seed: 0x1234_5678_9abc,
            offset: 77,
        };
        let obs_s = upload(b, &obs);
        let (x_s, ring) = b
            .sampler_update(
                upload(b, &ring0),
                &upload(b, &xz),
                &upload(b, &xb),
                &upload(b, &mean),
                observed.then_some(&obs_s),
                &d,
            )
            .unwrap();
        let mut ring_want: Vec<f64> = ring0.iter().map(|&v| v as f64).collect();
        let mut want = vec![0.0f32; n];
        for i in 0..n {
            let m = if observed && obs[n + i] != 0.0 {
                obs[i]
            } else {
                mean[i]
            } as f64;
            ring_want[d.slot * n + i] = (xz[i] as f64 - d.a_t as f64 * m) / d.s_t as f64;
            let mut acc = d.cx as f64 * xb[i] as f64 + d.cm as f64 * m;
            for j in 0..slots {
                acc += d.c[j] as f64 * ring_want[j * n + i];
            }
            acc += d.cn as f64 * rng::normal(d.seed, d.offset + i as u64) as f64;
            want[i] = acc as f32;
        }
        let ring_want: Vec<f32> = ring_want.iter().map(|&v| v as f32).collect();
        let what = format!("update n={n} slots={slots} observed={observed} noisy={noisy}");
        assert_close(
            &format!("{what} ring"),
            &read(b, &ring),
            &ring_want,
            1e-6,
            1e-5,
        );
        assert_close(&format!("{what} x_s"), &read(b, &x_s), &want, 1e-5, 1e-5);
    }
}
test_device!(update, sampler_update);
