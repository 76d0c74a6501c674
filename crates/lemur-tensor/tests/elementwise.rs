//! Elementwise, broadcast, select, layout, reduction, random and AdamW kernels against naive
//! references, on both backends (awkward sizes: not multiples of the workgroup size).

mod common;

use common::{assert_close, randn, randu, read, upload};
use lemur_tensor::backend::*;
use lemur_tensor::cpu::CpuBackend;
use lemur_tensor::test_device;

const SIZES: [usize; 4] = [1, 7, 33, 1030];

fn naive_unary(op: Unary, x: f64) -> f64 {
    match op {
        Unary::Neg => -x,
        Unary::Silu => x / (1.0 + (-x).exp()),
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqrt => x.sqrt(),
        Unary::Rsqrt => 1.0 / x.sqrt(),
        Unary::Square => x * x,
        Unary::Sin => x.sin(),
        Unary::Cos => x.cos(),
        Unary::Abs => x.abs(),
        Unary::Softclip => x / (1.0 + (x / 5.0).powi(2)).sqrt(),
        Unary::Scale(s) => x * s as f64,
        Unary::AddScalar(s) => x + s as f64,
        Unary::Clamp(lo, hi) => x.clamp(lo as f64, hi as f64),
        Unary::Gt(s) => f64::from(u8::from(x > s as f64)),
        Unary::Gate => 1.0 / (1.0 + x * x).sqrt(),
    }
}

const UNARY: [Unary; 16] = [
    Unary::Neg,
    Unary::Silu,
    Unary::Exp,
    Unary::Log,
    Unary::Sqrt,
    Unary::Rsqrt,
    Unary::Square,
    Unary::Sin,
    Unary::Cos,
    Unary::Abs,
    Unary::Softclip,
    Unary::Scale(-1.7),
    Unary::AddScalar(0.3),
    Unary::Clamp(-0.5, 0.8),
    Unary::Gt(0.1),
    Unary::Gate,
];

fn positive_domain(op: Unary) -> bool {
    matches!(op, Unary::Log | Unary::Sqrt | Unary::Rsqrt)
}

fn unary_forward_and_backward<B: Backend>(b: &B) {
    for &n in &SIZES {
        for op in UNARY {
            let x = if positive_domain(op) {
                randu(n as u64, n, 0.1, 4.0)
            } else {
                randn(n as u64, n).iter().map(|v| 3.0 * v).collect()
            };
            let want: Vec<f32> = x
                .iter()
                .map(|&v| naive_unary(op, v as f64) as f32)
                .collect();
            let got = read(b, &b.unary(op, &upload(b, &x)).unwrap());
            assert_close(&format!("unary {op:?} n={n}"), &got, &want, 1e-5, 1e-5);

            // dy * f'(x) against a central difference of the naive function (in f64).
            let dy = randn(99, n);
            let got = read(
                b,
                &b.unary_backward(op, &upload(b, &x), &upload(b, &dy))
                    .unwrap(),
            );
            let h = 1e-4;
            let want: Vec<f32> = x
                .iter()
                .zip(&dy)
                .map(|(&v, &g)| {
                    let v = v as f64;
                    let (lo, hi) = match op {
                        Unary::Clamp(lo, hi)
                            if (v - lo as f64).abs() < 2.0 * h
                                || (v - hi as f64).abs() < 2.0 * h =>
                        {
                            return f32::NAN;
                        }
                        Unary::Gt(s) if (v - s as f64).abs() < 2.0 * h => return f32::NAN,
                        Unary::Abs if v.abs() < 2.0 * h => return f32::NAN,
                        _ => (naive_unary(op, v - h), naive_unary(op, v + h)),
                    };
                    (g as f64 * (hi - lo) / (2.0 * h)) as f32
                })
                .collect();
            let (got, want): (Vec<f32>, Vec<f32>) = got
                .iter()
                .zip(&want)
                .filter(|(_, w)| !w.is_nan())
                .map(|(g, w)| (*g, *w))
                .unzip();
            assert_close(
                &format!("unary_backward {op:?} n={n}"),
                &got,
                &want,
                1e-3,
                1e-3,
            );
        }
    }
}
test_device!(unary, unary_forward_and_backward);

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Strides of `shape` read as broadcast to `out` (right-aligned, 0 on broadcast axes).
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let pad = out.len() - shape.len();
    let c = contiguous_strides(shape);
    (0..out.len())
        .map(|d| {
            if d < pad || shape[d - pad] == 1 {
                0
            } else {
                c[d - pad]
            }
        })
        .collect()
}

fn binary_broadcast<B: Backend>(b: &B) {
    let cases: [(&[usize], &[usize], &[usize]); 4] = [
        (&[7], &[7], &[7]),
        (&[3, 33, 5], &[33, 1], &[3, 33, 5]),
        (
            &[2, 1, 4, 1, 3, 1, 2, 3],
            &[5, 1, 1, 1, 1, 3],
            &[2, 5, 4, 1, 3, 1, 2, 3],
        ),
        (&[1], &[130, 2], &[130, 2]),
    ];
    for (sa, sb, so) in cases {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let a = randn(1, na);
        let bv: Vec<f32> = randu(2, nb, 0.5, 2.0);
        let layout = Broadcast {
            shape: so.to_vec(),
            strides: vec![bstrides(sa, so), bstrides(sb, so)],
        };
        for op in [
            Binary::Add,
            Binary::Sub,
            Binary::Mul,
            Binary::Div,
            Binary::Max,
            Binary::Min,
        ] {
            let got = read(
                b,
                &b.binary(op, &upload(b, &a), &upload(b, &bv), &layout)
                    .unwrap(),
            );
            let n: usize = so.iter().product();
            let want: Vec<f32> = (0..n)
                .map(|i| {
                    let (mut rem, mut ia, mut ib) = (i, 0, 0);
                    for d in (0..so.len()).rev() {
                        let idx = rem % so[d];
                        rem /= so[d];
                        ia += idx * layout.strides[0][d];
                        ib += idx * layout.strides[1][d];
                    }
                    let (x, y) = (a[ia] as f64, bv[ib] as f64);
                    (match op {
                        Binary::Add => x + y,
                        Binary::Sub => x - y,
                        Binary::Mul => x * y,
                        Binary::Div => x / y,
                        Binary::Max => x.max(y),
                        Binary::Min => x.min(y),
                    }) as f32
                })
                .collect();
            assert_close(
                &format!("binary {op:?} {sa:?} {sb:?}"),
                &got,
                &want,
                1e-6,
                1e-6,
            );
        }
        // select with the mask broadcast like `a`.
        let mask: Vec<f32> = randu(3, na, 0.0, 1.0)
            .iter()
            .map(|&u| f32::from(u8::from(u > 0.5)))
            .collect();
        let zeros = vec![0.0f32; 1];
        let sel_layout = Broadcast {
            shape: so.to_vec(),
            strides: vec![bstrides(sa, so), bstrides(sa, so), vec![0; so.len()]],
        };
        let got = read(
            b,
            &b.select(
                &upload(b, &mask),
                &upload(b, &a),
                &upload(b, &zeros),
                &sel_layout,
            )
            .unwrap(),
        );
        let want = read(
            &CpuBackend,
            &CpuBackend
                .binary(
                    Binary::Mul,
                    &upload(&CpuBackend, &a),
                    &upload(&CpuBackend, &mask),
                    &Broadcast {
                        shape: so.to_vec(),
                        strides: vec![bstrides(sa, so), bstrides(sa, so)],
                    },
                )
                .unwrap(),
        );
        assert_close(&format!("select {sa:?}"), &got, &want, 0.0, 0.0);
    }
}
test_device!(binary, binary_broadcast);

fn strided_gather_and_concat<B: Backend>(b: &B) {
    // Permute (2, 3, 5, 7) -> (7, 2, 5, 3) and flip the last axis.
    let shape = [2usize, 3, 5, 7];
    let x = randn(5, 210);
    let c = contiguous_strides(&shape);
    let desc = Strided {
        shape: vec![7, 2, 5, 3],
        strides: vec![
            c[3] as isize,
            c[0] as isize,
            c[2] as isize,
            -(c[1] as isize),
        ],
        offset: 2 * c[1],
    };
    let got = read(b, &b.copy_strided(&upload(b, &x), &desc).unwrap());
    let mut want = Vec::new();
    for l in 0..7 {
        for i in 0..2 {
            for k in 0..5 {
                for j in (0..3).rev() {
                    want.push(x[i * c[0] + j * c[1] + k * c[2] + l * c[3]]);
                }
            }
        }
    }
    assert_close("copy_strided permute+flip", &got, &want, 0.0, 0.0);

    // Concat (3, n_i, 7) along the middle axis.
    let parts: Vec<Vec<f32>> = [1usize, 4, 33]
        .iter()
        .map(|&n| randn(n as u64 + 10, 3 * n * 7))
        .collect();
    let stor: Vec<B::Storage> = parts.iter().map(|p| upload(b, p)).collect();
    let refs: Vec<(&B::Storage, usize)> = stor.iter().zip([1usize, 4, 33]).collect();
    let got = read(b, &b.concat(&refs, 3, 7).unwrap());
    let mut want = Vec::new();
    for o in 0..3 {
        for (p, n) in parts.iter().zip([1usize, 4, 33]) {
            want.extend_from_slice(&p[o * n * 7..(o + 1) * n * 7]);
        }
    }
    assert_close("concat", &got, &want, 0.0, 0.0);

    // Pad (3, 5, 7) with 2 zero columns before and 4 after, and with none.
    let x = randn(20, 3 * 5 * 7);
    for (before, after) in [(2usize, 4usize), (0, 3), (1, 0), (0, 0)] {
        let got = read(b, &b.pad(&upload(b, &x), 3, 5, 7, before, after).unwrap());
        let mut want = Vec::new();
        for o in 0..3 {
            want.extend(std::iter::repeat_n(0.0, before * 7));
            want.extend_from_slice(&x[o * 35..(o + 1) * 35]);
            want.extend(std::iter::repeat_n(0.0, after * 7));
        }
        assert_close(&format!("pad {before}, {after}"), &got, &want, 0.0, 0.0);
    }
    assert!(
        b.pad(&upload(b, &x), 3, 5, 6, 1, 1).is_err(),
        "a wrong view"
    );
}
test_device!(layout, strided_gather_and_concat);

fn sums<B: Backend>(b: &B) {
    for (outer, r, inner) in [
        (1, 1, 1),
        (1, 100_003, 1),
        (7, 33, 1),
        (3, 130, 5),
        (2, 9, 5000),
        (1, 300, 7),
    ] {
        let x = randn(7, outer * r * inner);
        let got = read(b, &b.sum_axis(&upload(b, &x), outer, r, inner).unwrap());
        let mut want = vec![0f64; outer * inner];
        for o in 0..outer {
            for j in 0..r {
                for i in 0..inner {
                    want[o * inner + i] += x[(o * r + j) * inner + i] as f64;
                }
            }
        }
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        // f32 accumulation over r terms of unit variance: error grows like sqrt(r) ulps.
        assert_close(
            &format!("sum_axis ({outer},{r},{inner})"),
            &got,
            &want,
            1e-4 * (r as f32).sqrt(),
            1e-5,
        );
    }
}
test_device!(sum_axis, sums);

/// `acc + sum(x^2)` (the squared global gradient norm, one kernel per few gradients) against an f64
/// reference, chained through its running sum as the optimizer chains it; on the CPU also bit
/// for bit the square, sum and add it replaces; on the GPU also against the CPU backend.
fn sum_of_squares<B: Backend>(b: &B) {
    let sizes = [1usize, 7, 255, 257, 1030, 100_003];
    let xs: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| randn(n as u64 + 11, n).iter().map(|v| 1.5 * v).collect())
        .collect();
    let mut acc: Option<B::Storage> = None;
    let mut want = 0f64;
    for (x, &n) in xs.iter().zip(&sizes) {
        let s = upload(b, x);
        let single = read(b, &b.sum_squares(&[&s], None).unwrap());
        let one: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        let tol = 1e-6 * one as f32 + 1e-6;
        assert_close(
            &format!("sum_squares {n}"),
            &single,
            &[one as f32],
            tol,
            1e-5,
        );
        acc = Some(b.sum_squares(&[&s], acc.as_ref()).unwrap());
        want += one;
        let got = read(b, acc.as_ref().unwrap());
        let tol = 1e-6 * want as f32;
        assert_close(
            &format!("sum_squares chained to {n}"),
            &got,
            &[want as f32],
            tol,
            1e-5,
        );
        // The CPU backend, and on the CPU the unfused ops bit for bit.
        let cpu = CpuBackend;
        let c = upload(&cpu, x);
        let fused = read(&cpu, &cpu.sum_squares(&[&c], None).unwrap());
        let sq = cpu.unary(Unary::Square, &c).unwrap();
        let unfused = read(&cpu, &cpu.sum_axis(&sq, 1, n, 1).unwrap());
        assert_eq!(
            fused, unfused,
            "sum_squares {n}: CPU fused against square + sum"
        );
        assert_close(
            &format!("sum_squares {n} vs CPU"),
            &single,
            &fused,
            tol,
            1e-5,
        );
    }
    assert_eq!(b.len(acc.as_ref().unwrap()), 1);

    // Several tensors per call, as the optimizer batches them: 5, then the last one with the
    // running sum, give the chained total.
    let stored: Vec<B::Storage> = xs.iter().map(|x| upload(b, x)).collect();
    let refs: Vec<&B::Storage> = stored.iter().collect();
    let five = b.sum_squares(&refs[..5], None).unwrap();
    let all = read(b, &b.sum_squares(&refs[5..], Some(&five)).unwrap());
    assert_close(
        "sum_squares of 5 + 1",
        &all,
        &[want as f32],
        1e-6 * want as f32,
        1e-5,
    );
    let three = read(b, &b.sum_squares(&refs[1..4], None).unwrap());
    let want3: f64 = xs[1..4].iter().flatten().map(|&v| (v as f64).powi(2)).sum();
    assert_close(
        "sum_squares of 3",
        &three,
        &[want3 as f32],
        1e-6 * want3 as f32,
        1e-5,
    );
    assert!(b.sum_squares(&refs, None).is_err(), "6 tensors");
    assert!(b.sum_squares(&[], None).is_err(), "no tensor");
}
test_device!(sum_squares, sum_of_squares);

/// Sums over the outer and inner axes of (outer, C, inner), keeping C (conv bias gradients),
/// against an f64 reference and, on the GPU, the CPU backend.
fn channel_sums<B: Backend>(b: &B) {
    for (outer, c, inner) in [
        (1, 1, 1),
        (3, 5, 7),
        (2, 3, 1000),
        (5, 33, 257),
        (1, 300, 1),
        (4, 1, 20_000),
    ] {
        let x = randn(outer as u64 * 31 + c as u64, outer * c * inner);
        let got = read(b, &b.sum_channels(&upload(b, &x), outer, c, inner).unwrap());
        let mut want = vec![0f64; c];
        for o in 0..outer {
            for (ch, w) in want.iter_mut().enumerate() {
                for i in 0..inner {
                    *w += x[(o * c + ch) * inner + i] as f64;
                }
            }
        }
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        let tol = 1e-4 * ((outer * inner) as f32).sqrt();
        let name = format!("sum_channels ({outer},{c},{inner})");
        assert_close(&name, &got, &want, tol, 1e-5);
        let cpu = CpuBackend;
        let on_cpu = read(
            &cpu,
            &cpu.sum_channels(&upload(&cpu, &x), outer, c, inner)
                .unwrap(),
        );
        assert_close(&format!("{name} vs CPU"), &got, &on_cpu, tol, 1e-5);
    }
}
test_device!(sum_channels, channel_sums);

fn random_streams<B: Backend>(b: &B) {
    // Same numbers as the host reference, at any offset (including past 2^32).
    for (offset, n) in [(0u64, 1usize), (5, 1031), ((1u64 << 32) - 3, 77)] {
        let got = read(b, &b.random(Dist::Uniform, 42, offset, n).unwrap());
        let want: Vec<f32> = (0..n as u64)
            .map(|i| lemur_tensor::rng::uniform(42, offset + i))
            .collect();
        assert_close("uniform stream", &got, &want, 0.0, 0.0);
        let got = read(b, &b.random(Dist::Normal, 42, offset, n).unwrap());
        let want: Vec<f32> = (0..n as u64)
            .map(|i| lemur_tensor::rng::normal(42, offset + i))
            .collect();
        assert_close("normal stream", &got, &want, 1e-5, 1e-5);
    }
    // Moments of a long normal stream.
    let z = read(b, &b.random(Dist::Normal, 7, 0, 200_000).unwrap());
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / z.len() as f64;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / z.len() as f64;
    assert!(mean.abs() < 0.01, "normal mean {mean}");
    assert!((var - 1.0).abs() < 0.02, "normal variance {var}");
}
test_device!(random, random_streams);

fn adamw_step<B: Backend>(b: &B) {
    let n = 1027;
    let (p, g) = (randn(1, n), randn(2, n));
    let (m, v) = (randn(3, n), randu(4, n, 0.0, 1.0));
    let d = AdamWDesc {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
        step: 3,
        max_norm: 1.0,
    };
    let gnorm_sq: f32 = g.iter().map(|v| v * v).sum();
    for clip in [false, true] {
        let norm_s = upload(b, &[gnorm_sq]);
        let (p2, m2, v2) = b
            .adamw(
                upload(b, &p),
                upload(b, &m),
                upload(b, &v),
                &upload(b, &g),
                &d,
                clip.then_some(&norm_s),
            )
            .unwrap();
        let scale = if clip {
            (1.0 / (gnorm_sq as f64).sqrt()).min(1.0)
        } else {
            1.0
        };
        let (mut wp, mut wm, mut wv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        for i in 0..n {
            let gi = g[i] as f64 * scale;
            let mi = 0.9 * m[i] as f64 + 0.1 * gi;
            let vi = 0.99 * v[i] as f64 + 0.01 * gi * gi;
            let mhat = mi / (1.0 - 0.9f64.powi(3));
            let vhat = vi / (1.0 - 0.99f64.powi(3));
            wp[i] = (p[i] as f64 - 1e-2 * (mhat / (vhat.sqrt() + 1e-8) + 0.1 * p[i] as f64)) as f32;
            wm[i] = mi as f32;
            wv[i] = vi as f32;
        }
        assert_close("adamw m", &read(b, &m2), &wm, 1e-6, 1e-5);
        assert_close("adamw v", &read(b, &v2), &wv, 1e-6, 1e-5);
        assert_close("adamw p", &read(b, &p2), &wp, 1e-5, 1e-4);
    }
}
test_device!(adamw, adamw_step);

fn fill_values<B: Backend>(b: &B) {
    for n in SIZES {
        assert_close(
            "fill",
            &read(b, &b.fill(n, 2.5).unwrap()),
            &vec![2.5; n],
            0.0,
            0.0,
        );
    }
}
test_device!(fill, fill_values);

/// The AdaLN ops' layouts: per-channel vectors per batch element and shared, on sizes that are
/// not multiples of the workgroup.
fn adaln_cases() -> impl Iterator<Item = GateDesc> {
    [(3, 37, 11, true), (2, 129, 5, false), (1, 1, 1, true)]
        .into_iter()
        .map(|(batch, rows, channels, batched)| GateDesc {
            batch,
            rows,
            channels,
            batched,
        })
}

/// The index into a per-channel vector of element i of x.
fn vec_index(i: usize, d: &GateDesc) -> usize {
    let ch = i % d.channels;
    if d.batched {
        i / (d.rows * d.channels) * d.channels + ch
    } else {
        ch
    }
}

/// The gated residual (x + c y) rsqrt(1 + c^2) and its gradients against an f64 evaluation of
/// the formulas.
fn gated_residual_matches_the_formula<B: Backend>(b: &B) {
    for d in adaln_cases() {
        let n = d.len();
        let (x, y, dout) = (randn(1, n), randn(2, n), randn(3, n));
        let c = randn(4, d.gate_len());
        let mut want = vec![0.0; n];
        let (mut want_dx, mut want_dy) = (vec![0.0; n], vec![0.0; n]);
        let mut want_dc = vec![0.0f64; d.gate_len()];
        for i in 0..n {
            let k = vec_index(i, &d);
            let cv = c[k] as f64;
            let (xi, yi, di) = (x[i] as f64, y[i] as f64, dout[i] as f64);
            let g = 1.0 / (1.0 + cv * cv).sqrt();
            want[i] = ((xi + cv * yi) * g) as f32;
            want_dx[i] = (di * g) as f32;
            want_dy[i] = (di * cv * g) as f32;
            want_dc[k] += di * (yi * g - (xi + cv * yi) * cv * g.powi(3));
        }
        let want_dc: Vec<f32> = want_dc.iter().map(|&v| v as f32).collect();
        let (xs, ys, cs, ds) = (
            upload(b, &x),
            upload(b, &y),
            upload(b, &c),
            upload(b, &dout),
        );
        let got = read(b, &b.gated_residual(&xs, &ys, &cs, &d).unwrap());
        assert_close(&format!("gated_residual {d:?}"), &got, &want, 1e-5, 1e-5);
        let (dx, dy, dc) = b.gated_residual_backward(&xs, &ys, &cs, &ds, &d).unwrap();
        assert_close(&format!("dx {d:?}"), &read(b, &dx), &want_dx, 1e-5, 1e-5);
        assert_close(&format!("dy {d:?}"), &read(b, &dy), &want_dy, 1e-5, 1e-5);
        // dc sums rows (and the batch when shared): f32 summation error grows with their count.
        let terms = (n / d.gate_len()) as f32;
        assert_close(
            &format!("dc {d:?}"),
            &read(b, &dc),
            &want_dc,
            1e-6 * terms,
            1e-5,
        );
        let short = upload(b, &x[..n - 1]);
        assert!(b.gated_residual(&short, &ys, &cs, &d).is_err(), "a short x");
    }
}
test_device!(gated_residual, gated_residual_matches_the_formula);

/// The modulation (1 + a) x + b and its gradients against an f64 evaluation of the formulas.
fn modulate_matches_the_formula<B: Backend>(b: &B) {
    for d in adaln_cases() {
        let n = d.len();
        let (x, dout) = (randn(5, n), randn(6, n));
        let (a, bv) = (randn(7, d.gate_len()), randn(8, d.gate_len()));
        let mut want = vec![0.0; n];
        let mut want_dx = vec![0.0; n];
        let (mut want_da, mut want_db) = (vec![0.0f64; d.gate_len()], vec![0.0f64; d.gate_len()]);
        for i in 0..n {
            let k = vec_index(i, &d);
            let (xi, di, ak) = (x[i] as f64, dout[i] as f64, a[k] as f64);
            want[i] = ((1.0 + ak) * xi + bv[k] as f64) as f32;
            want_dx[i] = (di * (1.0 + ak)) as f32;
            want_da[k] += di * xi;
            want_db[k] += di;
        }
        let narrow = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let (xs, as_, bs, ds) = (
            upload(b, &x),
            upload(b, &a),
            upload(b, &bv),
            upload(b, &dout),
        );
        let got = read(b, &b.modulate(&xs, &as_, &bs, &d).unwrap());
        assert_close(&format!("modulate {d:?}"), &got, &want, 1e-5, 1e-5);
        let (dx, da, db) = b.modulate_backward(&xs, &as_, &ds, &d).unwrap();
        assert_close(&format!("dx {d:?}"), &read(b, &dx), &want_dx, 1e-5, 1e-5);
        let terms = (n / d.gate_len()) as f32;
        assert_close(
            &format!("da {d:?}"),
            &read(b, &da),
            &narrow(&want_da),
            1e-6 * terms,
            1e-5,
        );
        assert_close(
            &format!("db {d:?}"),
            &read(b, &db),
            &narrow(&want_db),
            1e-6 * terms,
            1e-5,
        );
        let short = upload(b, &a[..d.gate_len() - 1]);
        assert!(b.modulate(&xs, &short, &bs, &d).is_err(), "a short a");
    }
}
test_device!(modulate, modulate_matches_the_formula);
