//! Matmul and conv2d (forward, weight gradient, and the input gradient's adjoint identity)
//! against naive f64 references on both backends; the GPU against the CPU backend directly
//! (each matmul kernel forced in turn); finite differences for the weight gradient on the CPU
//! backend.
//!
//! Tolerances: an f32 sum of K products of unit normals has a typical rounding error near
//! sqrt(K) * eps * sqrt(K) = K * eps (eps = 1.2e-7) and a worst case near K^2 * eps; the
//! tests allow `1e-5 * K` absolute (about 100x the typical error, far below any indexing
//! bug's O(1) error) plus 1e-5 relative.

mod common;

use common::{assert_close, randn, read, upload};
use lemur_tensor::backend::*;
use lemur_tensor::cpu::CpuBackend;
use lemur_tensor::gpu::GemmKernel;
use lemur_tensor::test_device;

/// Absolute tolerance for f32 sums of `k` unit-variance products (see the module comment).
fn tol(k: usize) -> f32 {
    1e-5 * k.max(1) as f32
}

/// (M, N, K): ones, primes, sizes just past a tile edge (33 > 32, 130 > 128), K not a
/// multiple of the K-step, and multiples of 4 that take the vec4 kernel.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (7, 33, 5),
    (33, 7, 130),
    (130, 9, 33),
    (1, 130, 7),
    (8, 12, 16),
    (36, 20, 12),
];

fn naive_matmul(a: &[f32], b: &[f32], bias: Option<&[f32]>, d: &MatmulDesc) -> Vec<f32> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![0f32; d.batch * m * n];
    for z in 0..d.batch {
        let ab = if d.a_batched { z * m * k } else { 0 };
        let bb = if d.b_batched { z * k * n } else { 0 };
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |bias| bias[j] as f64);
                for l in 0..k {
                    let av = if d.trans_a {
                        a[ab + l * m + i]
                    } else {
                        a[ab + i * k + l]
                    };
                    let bv = if d.trans_b {
                        b[bb + j * k + l]
                    } else {
                        b[bb + l * n + j]
                    };
                    s += av as f64 * bv as f64;
                }
                out[(z * m + i) * n + j] = s as f32;
            }
        }
    }
    out
}

/// Every combination of transposes, batched/shared operands and bias for one shape.
fn matmul_descs(m: usize, n: usize, k: usize) -> Vec<(MatmulDesc, bool)> {
    let mut v = Vec::new();
    for trans_a in [false, true] {
        for trans_b in [false, true] {
            for (a_batched, b_batched) in [(true, true), (true, false), (false, true)] {
                for bias in [false, true] {
                    let d = MatmulDesc {
                        batch: 2,
                        m,
                        n,
                        k,
                        trans_a,
                        trans_b,
                        a_batched,
                        b_batched,
                    };
                    v.push((d, bias));
                }
            }
        }
    }
    v
}

struct MatmulCase {
    d: MatmulDesc,
    a: Vec<f32>,
    b: Vec<f32>,
    bias: Option<Vec<f32>>,
}

fn matmul_cases() -> Vec<MatmulCase> {
    let mut cases = Vec::new();
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        for (j, (d, has_bias)) in matmul_descs(m, n, k).into_iter().enumerate() {
            let seed = (i * 100 + j) as u64;
            let na = if d.a_batched { d.batch } else { 1 } * m * k;
            let nb = if d.b_batched { d.batch } else { 1 } * k * n;
            cases.push(MatmulCase {
                d,
                a: randn(seed, na),
                b: randn(seed + 50_000, nb),
                bias: has_bias.then(|| randn(seed + 90_000, n)),
            });
        }
    }
    cases
}

fn run_matmul<B: Backend>(b: &B, c: &MatmulCase) -> Vec<f32> {
    let bias = c.bias.as_ref().map(|v| upload(b, v));
    read(
        b,
        &b.matmul(&upload(b, &c.a), &upload(b, &c.b), bias.as_ref(), &c.d)
            .unwrap(),
    )
}

fn matmul_against_naive<B: Backend>(b: &B) {
    for c in matmul_cases() {
        let want = naive_matmul(&c.a, &c.b, c.bias.as_deref(), &c.d);
        let got = run_matmul(b, &c);
        assert_close(
            &format!("matmul {:?} bias={}", c.d, c.bias.is_some()),
            &got,
            &want,
            tol(c.d.k),
            1e-5,
        );
    }
}
test_device!(matmul, matmul_against_naive);

/// Both GPU kernels (tiled, and blocked with and without vec4 loads) against the CPU backend,
/// whatever the adapter would choose by itself.
#[test]
fn gpu_matmul_kernels_match_cpu() {
    let Some(g) = common::gpu() else { return };
    let mut cases = matmul_cases();
    // A shape spanning several 128-tiles on both output axes, and an aligned one that does.
    for (seed, (m, n, k)) in [(7u64, (130, 133, 20)), (8, (132, 136, 24))] {
        let d = MatmulDesc {
            batch: 2,
            m,
            n,
            k,
            trans_a: seed == 8,
            trans_b: seed == 8,
            a_batched: true,
            b_batched: false,
        };
        cases.push(MatmulCase {
            d,
            a: randn(seed, 2 * m * k),
            b: randn(seed + 1, k * n),
            bias: Some(randn(seed + 2, n)),
        });
    }
    for c in &cases {
        let want = run_matmul(&CpuBackend, c);
        for kernel in [GemmKernel::Tiled, GemmKernel::Blocked] {
            let bias = c.bias.as_ref().map(|v| upload(&g, v));
            let out = g
                .matmul_with(
                    kernel,
                    &upload(&g, &c.a),
                    &upload(&g, &c.b),
                    bias.as_ref(),
                    &c.d,
                )
                .unwrap();
            assert_close(
                &format!("gpu {kernel:?} matmul {:?} bias={}", c.d, c.bias.is_some()),
                &read(&g, &out),
                &want,
                tol(c.d.k),
                1e-5,
            );
        }
    }
}

// ---- conv2d ----

/// Awkward shapes: channels and sizes not multiples of anything, a single row, a single
/// column, a row wider than a blocked tile.
const CONVS: [(usize, usize, usize, usize, usize); 4] = [
    (2, 3, 5, 7, 9),
    (1, 2, 3, 1, 33),
    (2, 4, 2, 5, 1),
    (1, 1, 1, 3, 3),
];

fn conv_descs() -> Vec<ConvDesc> {
    let mut v = Vec::new();
    for (batch, cin, cout, h, w) in CONVS {
        for kernel in [1, 3] {
            for circular in [[false, false], [true, true], [true, false], [false, true]] {
                v.push(ConvDesc {
                    batch,
                    cin,
                    cout,
                    h,
                    w,
                    kernel,
                    circular,
                });
            }
        }
    }
    v
}

/// plane[y, x] of one (H, W) image plane under the padding mode, or None for a zero pad.
fn pixel(plane: &[f32], d: &ConvDesc, y: isize, xx: isize) -> Option<f64> {
    let (h, w) = (d.h as isize, d.w as isize);
    let y = if d.circular[0] { y.rem_euclid(h) } else { y };
    let xx = if d.circular[1] { xx.rem_euclid(w) } else { xx };
    if y < 0 || y >= h || xx < 0 || xx >= w {
        return None;
    }
    Some(plane[y as usize * d.w + xx as usize] as f64)
}

fn naive_conv(x: &[f32], w: &[f32], bias: Option<&[f32]>, d: &ConvDesc) -> Vec<f32> {
    let (k, p) = (d.kernel, (d.kernel / 2) as isize);
    let mut out = vec![0f32; d.batch * d.cout * d.h * d.w];
    for bi in 0..d.batch {
        for co in 0..d.cout {
            for y in 0..d.h {
                for xx in 0..d.w {
                    let mut s = bias.map_or(0.0, |b| b[co] as f64);
                    for ci in 0..d.cin {
                        let plane = &x[(bi * d.cin + ci) * d.h * d.w..];
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) =
                                    (y as isize + ky as isize - p, xx as isize + kx as isize - p);
                                if let Some(v) = pixel(plane, d, iy, ix) {
                                    s += v * w[((co * d.cin + ci) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                    }
                    out[((bi * d.cout + co) * d.h + y) * d.w + xx] = s as f32;
                }
            }
        }
    }
    out
}

fn naive_weight_grad(x: &[f32], dy: &[f32], d: &ConvDesc) -> Vec<f32> {
    let (k, p) = (d.kernel, (d.kernel / 2) as isize);
    let mut dw = vec![0f64; d.cout * d.cin * k * k];
    for bi in 0..d.batch {
        for co in 0..d.cout {
            for ci in 0..d.cin {
                let plane = &x[(bi * d.cin + ci) * d.h * d.w..];
                for ky in 0..k {
                    for kx in 0..k {
                        let mut s = 0.0;
                        for y in 0..d.h {
                            for xx in 0..d.w {
                                let (iy, ix) =
                                    (y as isize + ky as isize - p, xx as isize + kx as isize - p);
                                if let Some(v) = pixel(plane, d, iy, ix) {
                                    s += v * dy[((bi * d.cout + co) * d.h + y) * d.w + xx] as f64;
                                }
                            }
                        }
                        dw[((co * d.cin + ci) * k + ky) * k + kx] += s;
                    }
                }
            }
        }
    }
    dw.iter().map(|&v| v as f32).collect()
}

struct ConvCase {
    d: ConvDesc,
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Option<Vec<f32>>,
    dy: Vec<f32>,
}

fn conv_cases() -> Vec<ConvCase> {
    conv_descs()
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let s = i as u64 * 10;
            ConvCase {
                x: randn(s, d.batch * d.cin * d.h * d.w),
                w: randn(s + 1, d.cout * d.cin * d.kernel * d.kernel),
                bias: (i % 2 == 0).then(|| randn(s + 2, d.cout)),
                dy: randn(s + 3, d.batch * d.cout * d.h * d.w),
                d,
            }
        })
        .collect()
}

fn conv_forward_and_weight_grad<B: Backend>(b: &B) {
    for c in conv_cases() {
        let d = c.d;
        let bias = c.bias.as_ref().map(|v| upload(b, v));
        let got = read(
            b,
            &b.conv2d(&upload(b, &c.x), &upload(b, &c.w), bias.as_ref(), &d)
                .unwrap(),
        );
        let want = naive_conv(&c.x, &c.w, c.bias.as_deref(), &d);
        // K = Cin*k*k terms per output.
        let k = d.cin * d.kernel * d.kernel;
        assert_close(&format!("conv2d {d:?}"), &got, &want, tol(k), 1e-5);

        let got = read(
            b,
            &b.conv2d_weight_grad(&upload(b, &c.x), &upload(b, &c.dy), &d)
                .unwrap(),
        );
        let want = naive_weight_grad(&c.x, &c.dy, &d);
        // K = B*H*W terms per weight.
        assert_close(
            &format!("conv2d_weight_grad {d:?}"),
            &got,
            &want,
            tol(d.batch * d.h * d.w),
            1e-5,
        );
    }
}
test_device!(conv2d, conv_forward_and_weight_grad);

/// w' (Cin, Cout, k, k) = w transposed in (Cout, Cin) and flipped spatially.
fn adjoint_weight(w: &[f32], d: &ConvDesc) -> Vec<f32> {
    let k = d.kernel;
    let mut wt = vec![0f32; w.len()];
    for co in 0..d.cout {
        for ci in 0..d.cin {
            for ky in 0..k {
                for kx in 0..k {
                    wt[((ci * d.cout + co) * k + (k - 1 - ky)) * k + (k - 1 - kx)] =
                        w[((co * d.cin + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    wt
}

fn dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    let s = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let mag = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum();
    (s, mag)
}

/// The autodiff layer computes dx as conv2d(dy, w') (`conv2d_input_grad`): that is only right
/// if conv2d with w' is the adjoint of conv2d with w, <conv2d(x, w), dy> == <x, conv2d(dy, w')>,
/// for both paddings; and `conv2d_input_grad` must be that convolution.
fn conv_input_grad_adjoint<B: Backend>(b: &B) {
    for c in conv_cases() {
        let d = c.d;
        let y = read(
            b,
            &b.conv2d(&upload(b, &c.x), &upload(b, &c.w), None, &d)
                .unwrap(),
        );
        let dt = ConvDesc {
            cin: d.cout,
            cout: d.cin,
            ..d
        };
        let wt = adjoint_weight(&c.w, &d);
        let dx = read(
            b,
            &b.conv2d(&upload(b, &c.dy), &upload(b, &wt), None, &dt)
                .unwrap(),
        );
        let (lhs, mag) = dot(&y, &c.dy);
        let (rhs, _) = dot(&c.x, &dx);
        // The backend's own input gradient reads w in place: the same convolution.
        let got = read(
            b,
            &b.conv2d_input_grad(&upload(b, &c.dy), &upload(b, &c.w), &d)
                .unwrap(),
        );
        let want = naive_conv(&c.dy, &wt, None, &dt);
        let k_terms = d.cout * d.kernel * d.kernel;
        assert_close(
            &format!("conv2d_input_grad {d:?}"),
            &got,
            &want,
            tol(k_terms),
            1e-5,
        );
        // Both sides are f64 sums of f32 conv outputs, each off by ~K*eps relative to the
        // magnitude of its terms.
        let k = (d.cin.max(d.cout) * d.kernel * d.kernel) as f64;
        assert!(
            (lhs - rhs).abs() <= 1e-6 * k * mag.max(1.0),
            "adjoint {d:?}: <conv(x,w),dy> = {lhs} but <x,conv(dy,w')> = {rhs}"
        );
    }
}
test_device!(conv2d_adjoint, conv_input_grad_adjoint);

/// The GPU convolution against the CPU backend for forward and weight gradient, including a
/// shape that spans several tiles.
#[test]
fn gpu_conv_matches_cpu() {
    let Some(g) = common::gpu() else { return };
    let cpu = CpuBackend;
    let mut cases = conv_cases();
    // Enough output channels and pixels to span two 128-tiles on each axis of the tiled GEMM.
    let d = ConvDesc {
        batch: 2,
        cin: 15,
        cout: 130,
        h: 9,
        w: 15,
        kernel: 3,
        circular: [true, true],
    };
    cases.push(ConvCase {
        x: randn(1, 2 * 15 * 9 * 15),
        w: randn(2, 130 * 15 * 9),
        bias: Some(randn(3, 130)),
        dy: randn(4, 2 * 130 * 9 * 15),
        d,
    });
    for c in &cases {
        let d = c.d;
        let cb = c.bias.as_ref().map(|v| upload(&cpu, v));
        let want_y = read(
            &cpu,
            &cpu.conv2d(&upload(&cpu, &c.x), &upload(&cpu, &c.w), cb.as_ref(), &d)
                .unwrap(),
        );
        let want_dw = read(
            &cpu,
            &cpu.conv2d_weight_grad(&upload(&cpu, &c.x), &upload(&cpu, &c.dy), &d)
                .unwrap(),
        );
        let want_dx = read(
            &cpu,
            &cpu.conv2d_input_grad(&upload(&cpu, &c.dy), &upload(&cpu, &c.w), &d)
                .unwrap(),
        );
        let dx = g
            .conv2d_input_grad(&upload(&g, &c.dy), &upload(&g, &c.w), &d)
            .unwrap();
        assert_close(
            &format!("gpu conv2d_input_grad {d:?}"),
            &read(&g, &dx),
            &want_dx,
            tol(d.cout * d.kernel * d.kernel),
            1e-5,
        );
        let gb = c.bias.as_ref().map(|v| upload(&g, v));
        let y = g
            .conv2d(&upload(&g, &c.x), &upload(&g, &c.w), gb.as_ref(), &d)
            .unwrap();
        assert_close(
            &format!("gpu conv2d {d:?}"),
            &read(&g, &y),
            &want_y,
            tol(d.cin * d.kernel * d.kernel),
            1e-5,
        );
        let dw = g
            .conv2d_weight_grad(&upload(&g, &c.x), &upload(&g, &c.dy), &d)
            .unwrap();
        assert_close(
            &format!("gpu conv2d_weight_grad {d:?}"),
            &read(&g, &dw),
            &want_dw,
            tol(d.batch * d.h * d.w),
            1e-5,
        );
    }
}

/// Central differences of L(w) = <conv2d(x, w), dy> on the CPU backend, for every weight and
/// for a random direction. L is linear in w, so the difference quotient is exact but for f32
/// rounding of the conv outputs.
#[test]
fn conv_weight_grad_finite_differences() {
    let b = CpuBackend;
    for d in [
        ConvDesc {
            batch: 2,
            cin: 2,
            cout: 3,
            h: 5,
            w: 4,
            kernel: 3,
            circular: [false, false],
        },
        ConvDesc {
            batch: 1,
            cin: 3,
            cout: 2,
            h: 4,
            w: 6,
            kernel: 3,
            circular: [true, true],
        },
        ConvDesc {
            batch: 2,
            cin: 2,
            cout: 3,
            h: 5,
            w: 3,
            kernel: 3,
            circular: [false, true],
        },
        ConvDesc {
            batch: 2,
            cin: 3,
            cout: 2,
            h: 3,
            w: 5,
            kernel: 1,
            circular: [false, false],
        },
    ] {
        let x = randn(11, d.batch * d.cin * d.h * d.w);
        let w = randn(12, d.cout * d.cin * d.kernel * d.kernel);
        let dy = randn(13, d.batch * d.cout * d.h * d.w);
        let xs = upload(&b, &x);
        let loss = |w: &[f32]| -> f64 {
            let y = read(&b, &b.conv2d(&xs, &upload(&b, w), None, &d).unwrap());
            dot(&y, &dy).0
        };
        let dw = read(
            &b,
            &b.conv2d_weight_grad(&xs, &upload(&b, &dy), &d).unwrap(),
        );
        let h = 1e-2f32;
        // Rounding of L (a sum of ~B*Cout*H*W f32 outputs of size ~sqrt(K)) is ~1e-5; divided
        // by 2h that is ~1e-3.
        let atol = 3e-3;
        for i in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[i] += h;
            wm[i] -= h;
            let fd = (loss(&wp) - loss(&wm)) / (2.0 * h as f64);
            assert!(
                (fd - dw[i] as f64).abs() <= atol + 1e-3 * fd.abs(),
                "{d:?}: dw[{i}] = {} but the central difference is {fd}",
                dw[i]
            );
        }
        let v = randn(14, w.len());
        let wp: Vec<f32> = w.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let wm: Vec<f32> = w.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let fd = (loss(&wp) - loss(&wm)) / (2.0 * h as f64);
        let (want, _) = dot(&dw, &v);
        assert!(
            (fd - want).abs() <= atol * (w.len() as f64).sqrt() + 1e-3 * fd.abs(),
            "{d:?}: <dw, v> = {want} but the directional difference is {fd}"
        );
    }
}

/// The CPU backend's blocked paths on shapes large enough to take them: products split across
/// threads (rows not a multiple of the split), batches run as parallel tasks, convolutions cut
/// into bands of rows (a ragged last band) or groups of small images (a ragged last group),
/// and a single image whose GEMM rows are split.
#[test]
fn cpu_blocked_paths_match_naive() {
    let b = CpuBackend;
    for (i, &(batch, m, n, k)) in [(1, 203, 71, 150), (9, 45, 37, 61), (3, 97, 130, 90)]
        .iter()
        .enumerate()
    {
        for (j, (mut d, has_bias)) in matmul_descs(m, n, k).into_iter().enumerate() {
            d.batch = batch;
            let seed = 7000 + (i * 100 + j) as u64;
            let na = if d.a_batched { batch } else { 1 } * m * k;
            let nb = if d.b_batched { batch } else { 1 } * k * n;
            let c = MatmulCase {
                d,
                a: randn(seed, na),
                b: randn(seed + 1, nb),
                bias: has_bias.then(|| randn(seed + 2, n)),
            };
            let want = naive_matmul(&c.a, &c.b, c.bias.as_deref(), &c.d);
            let got = run_matmul(&b, &c);
            let what = format!("cpu matmul {:?} bias={has_bias}", c.d);
            assert_close(&what, &got, &want, tol(k), 1e-5);
        }
    }
    let convs = [
        // Bands of rows: K = 333 columns per pixel, 45 rows of 31.
        (2, 37, 19, 45, 31, 3, [false, false]),
        (2, 37, 19, 45, 31, 3, [true, true]),
        (2, 37, 19, 45, 31, 3, [false, true]),
        // Groups of small images, the last one shorter.
        (37, 5, 6, 4, 3, 3, [false, false]),
        (37, 5, 6, 4, 3, 1, [true, true]),
        (37, 5, 6, 4, 3, 3, [true, false]),
        // One image with many output channels: rows of its GEMM split across threads.
        (1, 9, 70, 20, 17, 3, [true, true]),
        // A batch of 3 small images: one group, split rows.
        (3, 40, 64, 5, 5, 3, [false, false]),
    ];
    for (i, (batch, cin, cout, h, w, kernel, circular)) in convs.into_iter().enumerate() {
        let d = ConvDesc {
            batch,
            cin,
            cout,
            h,
            w,
            kernel,
            circular,
        };
        let s = 9000 + i as u64 * 10;
        let x = randn(s, batch * cin * h * w);
        let wt = randn(s + 1, cout * cin * kernel * kernel);
        let bias = (i % 2 == 0).then(|| randn(s + 2, cout));
        let dy = randn(s + 3, batch * cout * h * w);
        let bs = bias.as_ref().map(|v| upload(&b, v));
        let got = read(
            &b,
            &b.conv2d(&upload(&b, &x), &upload(&b, &wt), bs.as_ref(), &d)
                .unwrap(),
        );
        let want = naive_conv(&x, &wt, bias.as_deref(), &d);
        let kk = cin * kernel * kernel;
        assert_close(&format!("cpu conv2d {d:?}"), &got, &want, tol(kk), 1e-5);
        let got = read(
            &b,
            &b.conv2d_weight_grad(&upload(&b, &x), &upload(&b, &dy), &d)
                .unwrap(),
        );
        let want = naive_weight_grad(&x, &dy, &d);
        let what = format!("cpu conv2d_weight_grad {d:?}");
        assert_close(&what, &got, &want, tol(batch * h * w), 1e-5);
    }
}

/// Descriptors whose sizes overflow `usize` (or exceed the operands) are errors naming the
/// op, never a panic or a read past a buffer. Each case is chosen so that unchecked
/// arithmetic goes wrong: `k = usize::MAX / 2` tripped the old bounds assert (a panic);
/// `m = n = 2, k = 2^63 + 1` wrapped the old `fits()` to a tiny extent in release builds (so
/// the unsafe sgemm read far past 2-element buffers) and panicked on overflow in debug builds;
/// a huge batch or image wrapped the output size.
#[test]
fn cpu_huge_sizes_are_errors() {
    let b = CpuBackend;
    let two = upload(&b, &[1.0, 2.0]);
    let one = upload(&b, &[1.0]);
    let desc = |batch, m, n, k| MatmulDesc {
        batch,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        a_batched: true,
        b_batched: false,
    };
    let cases = [
        (desc(1, 1, 1, usize::MAX / 2), &one, &one),
        (desc(1, 2, 2, (1 << 63) + 1), &two, &two),
        (
            MatmulDesc {
                trans_a: true,
                trans_b: true,
                b_batched: true,
                ..desc(1, 2, 2, (1 << 63) + 1)
            },
            &two,
            &two,
        ),
        (desc(usize::MAX / 2, 2, 2, 1), &two, &two),
        (desc(3, 1 << 32, 1 << 32, 1), &two, &two),
        // No overflow, but operands shorter than the descriptor says.
        (desc(1, 2, 2, 2), &two, &two),
    ];
    for (d, a, bm) in cases {
        let e = b
            .matmul(a, bm, None, &d)
            .expect_err(&format!("{d:?} must be rejected"));
        let msg = e.to_string();
        assert!(msg.starts_with("matmul: shape mismatch"), "{msg}");
        assert!(msg.contains(&format!("k: {}", d.k)), "{msg}");
    }
    // A bias shorter than n.
    let d = desc(1, 1, 2, 1);
    let e = b.matmul(&one, &two, Some(&one), &d).unwrap_err();
    assert!(
        e.to_string().contains("bias has 1 elements, needs 2"),
        "{e}"
    );

    let conv = |batch, cin, cout, h, w| ConvDesc {
        batch,
        cin,
        cout,
        h,
        w,
        kernel: 1,
        circular: [false, false],
    };
    for d in [
        conv(1, 1, 1, 1 << 40, 1 << 40),
        conv(1 << 40, 1 << 30, 1, 1, 1),
        conv(1, 1, 1 << 62, 2, 2),
        conv(1, 3, 1, 1, 1),
        ConvDesc {
            kernel: usize::MAX,
            ..conv(1, 1, 1, 1, 1)
        },
    ] {
        let e = b.conv2d(&two, &two, None, &d).expect_err(&format!("{d:?}"));
        assert!(e.to_string().starts_with("conv2d: shape mismatch"), "{e}");
        let e = b
            .conv2d_weight_grad(&two, &two, &d)
            .expect_err(&format!("{d:?}"));
        assert!(
            e.to_string()
                .starts_with("conv2d_weight_grad: shape mismatch"),
            "{e}"
        );
    }
    // In-range descriptors still run.
    let d = desc(1, 1, 1, 2);
    assert_eq!(read(&b, &b.matmul(&two, &two, None, &d).unwrap()), [5.0]);
    let d = conv(1, 1, 1, 1, 2);
    assert_eq!(
        read(&b, &b.conv2d(&two, &one, None, &d).unwrap()),
        [1.0, 2.0]
    );
}

/// Kernels built without wgpu's runtime checks (the native default) compute what the checked
/// build does: tiled and blocked matmuls and the three convolution modes, on awkward shapes.
#[test]
fn unchecked_shaders_match_checked_ones() {
    let Some(g) = common::gpu() else { return };
    let d = MatmulDesc {
        batch: 2,
        m: 37,
        n: 131,
        k: 45,
        trans_a: true,
        trans_b: false,
        a_batched: true,
        b_batched: false,
    };
    let (a, b) = (randn(1, 2 * 37 * 45), randn(2, 45 * 131));
    let conv = ConvDesc {
        batch: 2,
        cin: 5,
        cout: 7,
        h: 9,
        w: 11,
        kernel: 3,
        circular: [false, false],
    };
    let (x, w) = (randn(3, 2 * 5 * 99), randn(4, 7 * 5 * 9));
    let dy = randn(5, 2 * 7 * 99);
    let outputs = |checks: bool| {
        g.set_shader_checks(checks);
        assert_eq!(g.shader_checks(), checks);
        let mut outs = Vec::new();
        for kernel in [GemmKernel::Tiled, GemmKernel::Blocked] {
            let y = g
                .matmul_with(kernel, &upload(&g, &a), &upload(&g, &b), None, &d)
                .unwrap();
            outs.push((format!("{kernel:?} matmul"), read(&g, &y)));
        }
        let (xs, ws, dys) = (upload(&g, &x), upload(&g, &w), upload(&g, &dy));
        let y = g.conv2d(&xs, &ws, None, &conv).unwrap();
        outs.push(("conv2d".into(), read(&g, &y)));
        let dx = g.conv2d_input_grad(&dys, &ws, &conv).unwrap();
        outs.push(("conv2d_input_grad".into(), read(&g, &dx)));
        let dw = g.conv2d_weight_grad(&xs, &dys, &conv).unwrap();
        outs.push(("conv2d_weight_grad".into(), read(&g, &dw)));
        outs
    };
    let checked = outputs(true);
    let unchecked = outputs(false);
    for ((what, want), (_, got)) in checked.iter().zip(&unchecked) {
        assert!(want.iter().any(|v| *v != 0.0), "{what}: all zeros");
        assert_close(&format!("unchecked {what}"), got, want, 1e-6, 1e-6);
    }
}
