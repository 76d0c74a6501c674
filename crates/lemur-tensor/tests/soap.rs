//! SOAP: a hand-checked case, the backends against a plain f64 host reference on seeded random
//! inputs, the host eigendecomposition and QR, a quadratic where it beats AdamW, and a
//! checkpoint round trip that continues bit for bit.

mod common;

use lemur_tensor::test_device;
use std::collections::BTreeMap;

use lemur_tensor::HostTensors;

use lemur_tensor::soap::{eigh_desc, matrix_shape, preconditioned_sides, qr_q};
use lemur_tensor::{
    AdamW, AdamWConfig, Backend, CosineSchedule, CpuBackend, ParamStore, Soap, SoapConfig, Tensor,
};

fn constant_lr(lr: f32) -> CosineSchedule {
    CosineSchedule {
        peak: lr,
        min_lr: lr,
        warmup: 0,
        total: 1,
    }
}

/// Sets every parameter's gradient to the given values exactly: d/dp sum(p * g) = g.
fn set_grads<B: Backend>(b: &B, ps: &ParamStore<B>, grads: &BTreeMap<String, Vec<f32>>) {
    let mut loss: Option<Tensor<B>> = None;
    for (name, p) in ps.iter() {
        let g = Tensor::from_slice(b, &grads[name], p.shape()).unwrap();
        let term = p.mul(&g).unwrap().sum_all().unwrap();
        loss = Some(match loss {
            Some(l) => l.add(&term).unwrap(),
            None => term,
        });
    }
    loss.unwrap().backward().unwrap();
}

fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[i * m + j] = (0..k).map(|l| a[i * k + l] * b[l * m + j]).sum();
        }
    }
    out
}

fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = a[i * cols + j];
        }
    }
    out
}

// ---- a hand-checked case -----------------------------------------------------------------

/// A constant gradient G = U diag(s) V^T on a 2x3 weight, with known rotations U and V: L and
/// R have eigenvectors U and V with distinct eigenvalues, so SOAP is Adam on the singular
/// values, and each step moves the weight by `step_size * U diag(n_t(s)) V^T` with
/// `n_t(s) = (1 - b1^t) s / (sqrt(1 - b2^t) s + eps)`. A bias is plain Adam. The first call
/// moves nothing. Refreshing the basis every 2 steps keeps the exact eigenvectors. R's third
/// eigenvector is G's null direction, where the f32 rotation leaves ~1e-7 of rounding that
/// Adam would normalise to a visible step with a tiny eps; eps 1e-2 keeps that below the
/// tolerance while still changing the expected values.
fn hand_checked<B: Backend>(b: &B) {
    let (lr, wd, b1, b2, eps) = (0.05f64, 0.1f64, 0.9f64, 0.8f64, 1e-2f64);
    let rot2 = |t: f64| vec![t.cos(), -t.sin(), t.sin(), t.cos()];
    let u = rot2(0.3);
    // V = rotation about z by 0.5, then about x by 0.7.
    let (ca, sa, cb, sb) = (0.5f64.cos(), 0.5f64.sin(), 0.7f64.cos(), 0.7f64.sin());
    let rz = vec![ca, -sa, 0.0, sa, ca, 0.0, 0.0, 0.0, 1.0];
    let rx = vec![1.0, 0.0, 0.0, 0.0, cb, -sb, 0.0, sb, cb];
    let v = matmul(&rz, &rx, 3, 3, 3);
    let s = [2.0, 0.5];
    // U S V^T with S = [[s0, 0, 0], [0, s1, 0]].
    let usv = |s: [f64; 2]| -> Vec<f64> {
        let mut sm = vec![0.0; 6];
        sm[0] = s[0];
        sm[4] = s[1];
        matmul(&matmul(&u, &sm, 2, 2, 3), &transpose(&v, 3, 3), 2, 3, 3)
    };
    let g = usv(s);
    let bias_g = [1.0, -2.0, 0.5];
    let w0 = [0.3, -0.1, 0.2, 0.5, 0.0, -0.4];
    let bias0 = [0.1, 0.2, -0.3];

    let mut ps = ParamStore::new();
    let f32s = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<_>>();
    ps.add(b, "w", &f32s(&w0), &[2, 3]).unwrap();
    ps.add(b, "bias", &f32s(&bias0), &[3]).unwrap();
    let grads: BTreeMap<String, Vec<f32>> = [
        ("w".to_string(), f32s(&g)),
        ("bias".to_string(), f32s(&bias_g)),
    ]
    .into();
    let mut opt = Soap::new(SoapConfig {
        betas: (b1 as f32, b2 as f32),
        shampoo_beta: Some(0.7),
        eps: eps as f32,
        weight_decay: wd as f32,
        max_norm: 0.0,
        precondition_frequency: 2,
        max_precond_dim: 512,
        schedule: constant_lr(lr as f32),
    });

    set_grads(b, &ps, &grads);
    opt.step(&ps).unwrap();
    common::assert_close(
        "w after the initialising call",
        &ps.get("w").unwrap().to_vec().unwrap(),
        &f32s(&w0),
        0.0,
        0.0,
    );

    let (mut w, mut bias) = (w0.to_vec(), bias0.to_vec());
    for t in 1..=4 {
        set_grads(b, &ps, &grads);
        opt.step(&ps).unwrap();
        let tf = f64::from(t);
        let (c1, c2) = (1.0 - b1.powf(tf), 1.0 - b2.powf(tf));
        let step_size = lr * c2.sqrt() / c1;
        let n = |x: f64| c1 * x / (c2.sqrt() * x.abs() + eps);
        let dw = usv([n(s[0]), n(s[1])]);
        for (wi, d) in w.iter_mut().zip(&dw) {
            *wi = (*wi - step_size * d) * (1.0 - lr * wd);
        }
        for (bi, gi) in bias.iter_mut().zip(&bias_g) {
            *bi = (*bi - step_size * n(*gi)) * (1.0 - lr * wd);
        }
        common::assert_close(
            &format!("w after Adam step {t}"),
            &ps.get("w").unwrap().to_vec().unwrap(),
            &f32s(&w),
            2e-6,
            1e-5,
        );
        common::assert_close(
            &format!("bias after Adam step {t}"),
            &ps.get("bias").unwrap().to_vec().unwrap(),
            &f32s(&bias),
            2e-6,
            1e-5,
        );
    }
    // The comparison is not vacuous: the weight moved.
    let moved: f64 = w.iter().zip(&w0).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    assert!(moved > 0.01, "the weight barely moved: {moved}");
}
test_device!(soap_hand_checked, hand_checked);

// ---- the backends against a host f64 reference -------------------------------------------

/// Plain f64 SOAP over host matrices, written from the algorithm's description.
struct RefParam {
    p: Vec<f64>,
    rows: usize,
    cols: usize,
    m: Vec<f64>,
    v: Vec<f64>,
    /// (L or R, its basis) per side that is rotated.
    sides: [Option<(Vec<f64>, Vec<f64>)>; 2],
    step: u32,
    started: bool,
}

impl RefParam {
    fn project(&self, x: &[f64], back: bool) -> Vec<f64> {
        let (r, c) = (self.rows, self.cols);
        let mut x = x.to_vec();
        if let Some((_, q)) = &self.sides[0] {
            let q = if back { q.clone() } else { transpose(q, r, r) };
            x = matmul(&q, &x, r, r, c);
        }
        if let Some((_, q)) = &self.sides[1] {
            let q = if back { transpose(q, c, c) } else { q.clone() };
            x = matmul(&x, &q, r, c, c);
        }
        x
    }
}

fn reference_step(params: &mut [RefParam], grads: &[Vec<f64>], c: &SoapConfig, step: u32, sb: f64) {
    let lr = f64::from(c.schedule.lr(step));
    let (b1, b2) = (f64::from(c.betas.0), f64::from(c.betas.1));
    let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
    let clip = (f64::from(c.max_norm) / norm).min(1.0);
    for (rp, g) in params.iter_mut().zip(grads) {
        let g: Vec<f64> = g.iter().map(|x| x * clip).collect();
        let n = |axis: usize| if axis == 0 { rp.rows } else { rp.cols };
        if !rp.started {
            rp.started = true;
            for axis in 0..2 {
                if let Some(side) = &mut rp.sides[axis] {
                    side.0 = rp_outer(&g, rp.rows, rp.cols, axis)
                        .iter()
                        .map(|x| x * (1.0 - sb))
                        .collect();
                    side.1 = eigh_desc(&side.0, n(axis)).0;
                }
            }
            continue;
        }
        rp.step += 1;
        let gp = rp.project(&g, false);
        for i in 0..gp.len() {
            rp.m[i] = b1 * rp.m[i] + (1.0 - b1) * gp[i];
            rp.v[i] = b2 * rp.v[i] + (1.0 - b2) * gp[i] * gp[i];
        }
        let adam: Vec<f64> = (0..gp.len())
            .map(|i| rp.m[i] / (rp.v[i].sqrt() + f64::from(c.eps)))
            .collect();
        let dir = rp.project(&adam, true);
        let t = f64::from(rp.step);
        let step_size = lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
        for (p, d) in rp.p.iter_mut().zip(&dir) {
            *p = (*p - step_size * d) * (1.0 - lr * f64::from(c.weight_decay));
        }
        for axis in 0..2 {
            let outer = rp_outer(&g, rp.rows, rp.cols, axis);
            if let Some(side) = &mut rp.sides[axis] {
                for (l, o) in side.0.iter_mut().zip(&outer) {
                    *l = sb * *l + (1.0 - sb) * o;
                }
            }
        }
        if rp.step % c.precondition_frequency == 0 {
            let m_orig = rp.project(&rp.m.clone(), true);
            for axis in 0..2 {
                let (rows, cols) = (rp.rows, rp.cols);
                let Some((l, q)) = &mut rp.sides[axis] else {
                    continue;
                };
                let k = n(axis);
                // Sort the basis by diag(Q^T L Q), descending, and v's axis with it.
                let lq = matmul(l, q, k, k, k);
                let est: Vec<f64> = (0..k)
                    .map(|j| (0..k).map(|i| q[i * k + j] * lq[i * k + j]).sum())
                    .collect();
                let mut order: Vec<usize> = (0..k).collect();
                order.sort_by(|&i, &j| est[j].total_cmp(&est[i]));
                let mut sorted = vec![0.0; k * k];
                for i in 0..k {
                    for (j, &o) in order.iter().enumerate() {
                        sorted[i * k + j] = q[i * k + o];
                    }
                }
                let old_v = rp.v.clone();
                for i in 0..rows {
                    for j in 0..cols {
                        rp.v[i * cols + j] = if axis == 0 {
                            old_v[order[i] * cols + j]
                        } else {
                            old_v[i * cols + order[j]]
                        };
                    }
                }
                *q = qr_q(&matmul(l, &sorted, k, k, k), k);
            }
            rp.m = rp.project(&m_orig, false);
        }
    }
}

fn rp_outer(g: &[f64], r: usize, c: usize, axis: usize) -> Vec<f64> {
    if axis == 0 {
        matmul(g, &transpose(g, r, c), r, c, r)
    } else {
        matmul(&transpose(g, r, c), g, c, r, c)
    }
}

/// Awkward shapes: a side rotated and one over `max_precond_dim` (6) each way, a conv kernel
/// merged to (4, 18), a square weight rotated on both sides, a bias, and a column (8, 1) that
/// is plain Adam. Every rotated side's statistic has full rank from the first gradient, so its
/// eigenbasis is unique and the f32 backend can follow the f64 reference. Gradients are
/// clipped (their norm is well above 1) and the bases refresh every 3 steps.
fn matches_reference<B: Backend>(b: &B) {
    let shapes: [(&str, Vec<usize>); 6] = [
        ("a", vec![5, 7]),
        ("b", vec![7, 3]),
        ("conv", vec![4, 2, 3, 3]),
        ("sq", vec![3, 3]),
        ("bias", vec![5]),
        ("col", vec![8, 1]),
    ];
    let config = SoapConfig {
        betas: (0.9, 0.95),
        shampoo_beta: None,
        eps: 1e-8,
        weight_decay: 0.02,
        max_norm: 1.0,
        precondition_frequency: 3,
        max_precond_dim: 6,
        schedule: CosineSchedule {
            peak: 0.02,
            min_lr: 0.002,
            warmup: 2,
            total: 9,
        },
    };
    let sb = f64::from(config.betas.1);
    let mut ps = ParamStore::new();
    let mut reference = Vec::new();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let init = common::randn(100 + i as u64, n);
        ps.add(b, name, &init, shape).unwrap();
        let (rows, cols) = matrix_shape(shape);
        let on = preconditioned_sides(shape, config.max_precond_dim);
        reference.push(RefParam {
            p: init.iter().map(|&x| f64::from(x)).collect(),
            rows,
            cols,
            m: vec![0.0; n],
            v: vec![0.0; n],
            sides: [0, 1].map(|a| on[a].then(|| (vec![], vec![]))),
            step: 0,
            started: false,
        });
    }
    assert_eq!(
        reference
            .iter()
            .map(|r| r.sides.clone().map(|s| s.is_some()))
            .collect::<Vec<_>>(),
        vec![
            [true, false],
            [false, true],
            [true, false],
            [true, true],
            [false, false],
            [false, false]
        ]
    );
    let mut opt = Soap::new(config);
    for step in 1..=9u32 {
        let grads: BTreeMap<String, Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n = shape.iter().product();
                (
                    name.to_string(),
                    common::randn(1000 * u64::from(step) + i as u64, n),
                )
            })
            .collect();
        set_grads(b, &ps, &grads);
        opt.step(&ps).unwrap();
        let host: Vec<Vec<f64>> = shapes
            .iter()
            .map(|(name, _)| grads[*name].iter().map(|&x| f64::from(x)).collect())
            .collect();
        reference_step(&mut reference, &host, &config, step, sb);
        for ((name, _), r) in shapes.iter().zip(&reference) {
            let want: Vec<f32> = r.p.iter().map(|&x| x as f32).collect();
            common::assert_close(
                &format!("{name} after step {step}"),
                &ps.get(name).unwrap().to_vec().unwrap(),
                &want,
                1e-5,
                1e-4,
            );
        }
    }
    // The parameters really moved (by about lr per step), so the comparison is not vacuous.
    let moved: f64 = reference[0]
        .p
        .iter()
        .zip(common::randn(100, 35))
        .map(|(a, b)| (a - f64::from(b)).abs())
        .sum::<f64>()
        / 35.0;
    assert!(moved > 0.02, "mean |change| of `a` is only {moved}");
}
test_device!(soap_matches_host_reference, matches_reference);

// ---- host linear algebra -----------------------------------------------------------------

#[test]
fn eigh_and_qr_on_known_and_random_matrices() {
    // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1) and (1, -1) over sqrt 2.
    let (q, vals) = eigh_desc(&[2.0, 1.0, 1.0, 2.0], 2);
    assert!(
        (vals[0] - 3.0).abs() < 1e-14 && (vals[1] - 1.0).abs() < 1e-14,
        "{vals:?}"
    );
    let r = std::f64::consts::FRAC_1_SQRT_2;
    assert!(
        (q[0].abs() - r).abs() < 1e-14 && (q[0] - q[2]).abs() < 1e-14,
        "{q:?}"
    );
    assert!(
        (q[1].abs() - r).abs() < 1e-14 && (q[1] + q[3]).abs() < 1e-14,
        "{q:?}"
    );

    for (seed, n) in [(1u64, 7usize), (2, 40), (3, 1)] {
        // A = X X^T: symmetric positive semidefinite, like Shampoo's statistics.
        let x: Vec<f64> = common::randn(seed, n * (n + 2))
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let a = matmul(&x, &transpose(&x, n, n + 2), n, n + 2, n);
        let (q, vals) = eigh_desc(&a, n);
        assert!(
            vals.windows(2).all(|w| w[0] >= w[1]),
            "not descending: {vals:?}"
        );
        let aq = matmul(&a, &q, n, n, n);
        let scale = vals[0].abs().max(1.0);
        for i in 0..n {
            for j in 0..n {
                let err = (aq[i * n + j] - q[i * n + j] * vals[j]).abs();
                assert!(err < 1e-11 * scale, "n {n}: (A Q - Q L)[{i},{j}] = {err}");
            }
        }
        let qtq = matmul(&transpose(&q, n, n), &q, n, n, n);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (qtq[i * n + j] - want).abs() < 1e-12,
                    "n {n}: Q^T Q [{i},{j}]"
                );
            }
        }
    }

    // QR of a random matrix and of a rank-deficient one (a zero column, a repeated column).
    let n = 6;
    let mut m: Vec<f64> = common::randn(9, n * n)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    for deficient in [false, true] {
        if deficient {
            for i in 0..n {
                m[i * n + 2] = 0.0;
                m[i * n + 4] = m[i * n + 1];
            }
        }
        let q = qr_q(&m, n);
        let qtq = matmul(&transpose(&q, n, n), &q, n, n, n);
        let rr = matmul(&transpose(&q, n, n), &m, n, n, n);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((qtq[i * n + j] - want).abs() < 1e-12, "Q^T Q [{i},{j}]");
                if i > j {
                    assert!(
                        rr[i * n + j].abs() < 1e-12,
                        "R = Q^T M [{i},{j}] = {}",
                        rr[i * n + j]
                    );
                }
            }
        }
    }
}

// ---- SOAP against AdamW on an ill-conditioned quadratic -----------------------------------

/// f(W) = 1/2 <D, H_L D H_R>, D = W - W*, with H_L and H_R of condition number 1000 in random
/// rotated bases: the curvature is not axis-aligned, so a diagonal method cannot undo it, while
/// SOAP's bases approach H_L's and H_R's eigenvectors. Each optimizer gets its best learning
/// rate from the same grid and the same number of steps.
fn quadratic_loss(opt: &str, lr: f32, steps: u32) -> f64 {
    let b = CpuBackend;
    let (r, c) = (8, 6);
    let spectrum = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| 10f64.powf(-3.0 * i as f64 / (n - 1) as f64))
            .collect()
    };
    let hessian = |n: usize, seed: u64| -> Vec<f32> {
        let x: Vec<f64> = common::randn(seed, n * n)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let u = qr_q(&x, n);
        let mut ud = u.clone();
        let s = spectrum(n);
        for i in 0..n {
            for j in 0..n {
                ud[i * n + j] *= s[j];
            }
        }
        matmul(&ud, &transpose(&u, n, n), n, n, n)
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    let hl = Tensor::from_slice(&b, &hessian(r, 1), &[r, r]).unwrap();
    let hr = Tensor::from_slice(&b, &hessian(c, 2), &[c, c]).unwrap();
    let target = Tensor::from_slice(&b, &common::randn(3, r * c), &[r, c]).unwrap();
    let mut ps = ParamStore::new();
    let w = ps.add(&b, "w", &vec![0.0; r * c], &[r, c]).unwrap();
    let schedule = CosineSchedule {
        peak: lr,
        min_lr: 0.0,
        warmup: 0,
        total: steps,
    };
    let mut adamw = AdamW::new(AdamWConfig {
        betas: (0.9, 0.99),
        eps: 1e-8,
        weight_decay: 0.0,
        max_norm: 0.0,
        schedule,
    });
    let mut soap = Soap::new(SoapConfig {
        weight_decay: 0.0,
        schedule,
        ..SoapConfig::default()
    });
    let loss = || {
        let d = w.sub(&target).unwrap();
        d.mul(&hl.matmul(&d).unwrap().matmul(&hr).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .scale(0.5)
            .unwrap()
    };
    for _ in 0..steps {
        loss().backward().unwrap();
        if opt == "soap" {
            soap.step(&ps).unwrap();
        } else {
            adamw.step(&ps).unwrap();
        }
    }
    f64::from(loss().item().unwrap())
}

#[test]
fn soap_beats_adamw_on_an_ill_conditioned_quadratic() {
    let steps = 150;
    let start = quadratic_loss("adamw", 0.0, 1);
    let best = |opt: &str| {
        [1e-3f32, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0]
            .iter()
            .map(|&lr| (quadratic_loss(opt, lr, steps), lr))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
    };
    let (adamw, adamw_lr) = best("adamw");
    let (soap, soap_lr) = best("soap");
    eprintln!(
        "initial loss {start:.4e}; after {steps} steps: AdamW {adamw:.4e} (lr {adamw_lr}), SOAP {soap:.4e} (lr {soap_lr})"
    );
    assert!(adamw < start, "AdamW did not descend: {adamw} from {start}");
    assert!(
        soap < 0.1 * adamw,
        "SOAP {soap:.4e} (lr {soap_lr}) is not 10x below AdamW {adamw:.4e} (lr {adamw_lr}) at {steps} steps"
    );
}

// ---- checkpoints -------------------------------------------------------------------------

/// Runs `steps` SOAP steps on a small two-layer model whose gradients depend on the weights.
fn train_steps<B: Backend>(b: &B, ps: &ParamStore<B>, opt: &mut Soap<B>, steps: u32) {
    let x = Tensor::from_slice(b, &common::randn(7, 11 * 5), &[11, 5]).unwrap();
    let y = Tensor::from_slice(b, &common::randn(8, 11 * 3), &[11, 3]).unwrap();
    for _ in 0..steps {
        let h = x
            .linear(
                ps.get("fc1.weight").unwrap(),
                Some(ps.get("fc1.bias").unwrap()),
            )
            .unwrap()
            .silu()
            .unwrap();
        let pred = h.linear(ps.get("fc2.weight").unwrap(), None).unwrap();
        pred.sub(&y)
            .unwrap()
            .square()
            .unwrap()
            .mean_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(ps).unwrap();
    }
}

fn model<B: Backend>(b: &B, host: Option<&HostTensors>) -> ParamStore<B> {
    let mut ps = ParamStore::new();
    for (i, (name, shape)) in [
        ("fc1.weight", vec![9, 5]),
        ("fc1.bias", vec![9]),
        ("fc2.weight", vec![3, 9]),
    ]
    .iter()
    .enumerate()
    {
        let data = match host {
            Some(h) => h[*name].1.clone(),
            None => common::randn(20 + i as u64, shape.iter().product())
                .iter()
                .map(|v| v * 0.4)
                .collect(),
        };
        ps.add(b, name, &data, shape).unwrap();
    }
    ps
}

/// 7 calls, a checkpoint, then 6 more (crossing the basis refresh at Adam step 10, call 11)
/// must equal 13 uninterrupted calls bit for bit.
fn round_trip<B: Backend>(b: &B) {
    let config = SoapConfig {
        precondition_frequency: 5,
        max_norm: 1.0,
        schedule: CosineSchedule {
            peak: 1e-2,
            min_lr: 0.0,
            warmup: 2,
            total: 13,
        },
        ..SoapConfig::default()
    };
    let ps = model(b, None);
    let mut opt = Soap::new(config);
    train_steps(b, &ps, &mut opt, 7);
    let weights = pollster::block_on(ps.to_host()).unwrap();
    let state = pollster::block_on(opt.state_to_host(&ps)).unwrap();
    assert!(
        state.contains_key("fc1.weight.soap_q_l") && state.contains_key("fc1.weight.soap_gg_r")
    );
    assert_eq!(state["fc2.weight.soap_step"].1, vec![6.0]);
    train_steps(b, &ps, &mut opt, 6);
    let straight = pollster::block_on(ps.to_host()).unwrap();

    let resumed = model(b, Some(&weights));
    let mut opt2 = Soap::new(config);
    opt2.load_state(&resumed, &state, 7).unwrap();
    train_steps(b, &resumed, &mut opt2, 6);
    let after = pollster::block_on(resumed.to_host()).unwrap();
    for (name, (_, want)) in &straight {
        let got = &after[name].1;
        let same = got
            .iter()
            .zip(want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name} differs after resuming: {got:?} vs {want:?}");
        assert_ne!(
            want, &weights[name].1,
            "{name} did not move after the checkpoint"
        );
    }

    // A missing tensor is an error that names it.
    let mut broken = state.clone();
    broken.remove("fc1.weight.soap_q_r");
    let e = Soap::new(config)
        .load_state(&resumed, &broken, 7)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fc1.weight.soap_q_r"), "{e}");
}
test_device!(soap_state_round_trip, round_trip);
