//! Layer norm (biased and unbiased variance), RMS norm and softmax, forward and backward,
//! against naive f64 references on both backends, each result also against the CPU backend,
//! and central finite differences of the CPU backend's forward for every backward.
//!
//! Shapes cover both GPU geometries: columns shorter than 64 or numerous strided columns go
//! one invocation per column; long rows (inner = 1, C >= 64) and few long strided columns go
//! one workgroup per column.

mod common;

use common::{assert_close, cpu, randn, randu, read, upload};
use lemur_tensor::backend::*;
use lemur_tensor::test_device;

const KINDS: [NormKind; 3] = [NormKind::Layer, NormKind::LayerUnbiased, NormKind::Rms];
const EPS: f32 = 1e-5;

/// (outer, C, inner): tokens (inner = 1) and NCHW channels (inner = H*W).
const SHAPES: [(usize, usize, usize); 10] = [
    (3, 1, 1),
    (4, 7, 1),
    (5, 33, 1),
    (3, 130, 1),
    (2, 7, 5),
    (2, 33, 49),
    (2, 130, 5),
    (1, 130, 49),
    (1, 1, 49),
    // 4096 strided columns of 70: the serial geometry with long columns.
    (1, 70, 4096),
];

fn desc(kind: NormKind, (outer, c, inner): (usize, usize, usize)) -> NormDesc {
    NormDesc {
        outer,
        c,
        inner,
        eps: EPS,
        kind,
    }
}

/// The unbiased variance needs two channels; with one the op returns y = 0 like the backend.
fn var_divisor(kind: NormKind, c: usize) -> f64 {
    match kind {
        NormKind::LayerUnbiased => (c as f64 - 1.0).max(1.0),
        _ => c as f64,
    }
}

/// Naive (y, rstd) in f64.
fn naive_norm(x: &[f32], d: &NormDesc) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; x.len()];
    let mut rstd = vec![0.0; d.outer * d.inner];
    for o in 0..d.outer {
        for i in 0..d.inner {
            let idx = |j: usize| (o * d.c + j) * d.inner + i;
            let mean = if d.kind == NormKind::Rms {
                0.0
            } else {
                (0..d.c).map(|j| x[idx(j)] as f64).sum::<f64>() / d.c as f64
            };
            let var = (0..d.c)
                .map(|j| (x[idx(j)] as f64 - mean).powi(2))
                .sum::<f64>()
                / var_divisor(d.kind, d.c);
            let r = 1.0 / (var + d.eps as f64).sqrt();
            rstd[o * d.inner + i] = r;
            for j in 0..d.c {
                y[idx(j)] = (x[idx(j)] as f64 - mean) * r;
            }
        }
    }
    (y, rstd)
}

/// Naive dx in f64 from x, through the f64 forward.
fn naive_norm_backward(x: &[f32], dy: &[f32], d: &NormDesc) -> Vec<f64> {
    let (y, rstd) = naive_norm(x, d);
    let mut dx = vec![0.0; x.len()];
    for o in 0..d.outer {
        for i in 0..d.inner {
            let idx = |j: usize| (o * d.c + j) * d.inner + i;
            let s1: f64 = (0..d.c).map(|j| dy[idx(j)] as f64).sum();
            let s2: f64 = (0..d.c).map(|j| dy[idx(j)] as f64 * y[idx(j)]).sum();
            let mean_dy = if d.kind == NormKind::Rms {
                0.0
            } else {
                s1 / d.c as f64
            };
            let r = rstd[o * d.inner + i];
            for j in 0..d.c {
                dx[idx(j)] =
                    r * (dy[idx(j)] as f64 - mean_dy - y[idx(j)] * s2 / var_divisor(d.kind, d.c));
            }
        }
    }
    dx
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Inputs with a non-zero mean so that centring matters.
fn norm_input(seed: u64, n: usize) -> Vec<f32> {
    randn(seed, n).iter().map(|v| 1.5 * v + 0.7).collect()
}

fn norm_forward<B: Backend>(b: &B) {
    for (s, &shape) in SHAPES.iter().enumerate() {
        for kind in KINDS {
            let d = desc(kind, shape);
            let x = norm_input(s as u64, shape.0 * shape.1 * shape.2);
            let (y, rstd) = b.norm(&upload(b, &x), &d).unwrap();
            let (y, rstd) = (read(b, &y), read(b, &rstd));
            let (wy, wr) = naive_norm(&x, &d);
            let what = format!("norm {kind:?} {shape:?}");
            // y is O(1): f32 sums over up to 130 terms and a rsqrt leave ~1e-6 relative.
            assert_close(&format!("{what} y"), &y, &f32s(&wy), 2e-5, 1e-4);
            // rstd reaches 1/sqrt(eps) ~ 316 when a column is constant (C = 1, Layer).
            assert_close(&format!("{what} rstd"), &rstd, &f32s(&wr), 1e-5, 1e-4);

            let c = cpu();
            let (cy, cr) = c.norm(&upload(&c, &x), &d).unwrap();
            assert_close(&format!("{what} y vs cpu"), &y, &read(&c, &cy), 2e-5, 1e-4);
            assert_close(
                &format!("{what} rstd vs cpu"),
                &rstd,
                &read(&c, &cr),
                1e-5,
                1e-4,
            );
        }
    }
}
test_device!(norm, norm_forward);

fn norm_backward<B: Backend>(b: &B) {
    for (s, &shape) in SHAPES.iter().enumerate() {
        for kind in KINDS {
            let d = desc(kind, shape);
            let n = shape.0 * shape.1 * shape.2;
            let x = norm_input(s as u64, n);
            let dy = randn(100 + s as u64, n);
            let (y, rstd) = b.norm(&upload(b, &x), &d).unwrap();
            let dx = read(b, &b.norm_backward(&y, &rstd, &upload(b, &dy), &d).unwrap());
            let what = format!("norm_backward {kind:?} {shape:?}");
            // dx = rstd * (terms of size |dy| ~ 3): f32 sums of C products, ~1e-6 relative,
            // amplified by rstd (up to ~2 here; 316 only where y = 0 and dx = 0).
            assert_close(
                &what,
                &dx,
                &f32s(&naive_norm_backward(&x, &dy, &d)),
                5e-5,
                1e-4,
            );

            let c = cpu();
            let (cy, cr) = c.norm(&upload(&c, &x), &d).unwrap();
            let cdx = read(
                &c,
                &c.norm_backward(&cy, &cr, &upload(&c, &dy), &d).unwrap(),
            );
            assert_close(&format!("{what} vs cpu"), &dx, &cdx, 5e-5, 1e-4);
        }
    }
}
test_device!(norm_grad, norm_backward);

/// Central differences of `loss(x) = <f(x), dy>` in f64 over the f32 forward of the CPU
/// backend, one coordinate at a time.
fn finite_diff(x: &[f32], dy: &[f32], h: f32, f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let loss = |x: &[f32]| -> f64 {
        f(x).iter()
            .zip(dy)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    (0..x.len())
        .map(|k| {
            let mut xp = x.to_vec();
            xp[k] += h;
            let mut xm = x.to_vec();
            xm[k] -= h;
            ((loss(&xp) - loss(&xm)) / (2.0 * h as f64)) as f32
        })
        .collect()
}

#[test]
fn norm_backward_matches_finite_differences() {
    let c = cpu();
    for kind in KINDS {
        for shape in [(2, 7, 3), (3, 2, 1), (2, 1, 2), (1, 33, 1)] {
            let d = desc(kind, shape);
            let n = shape.0 * shape.1 * shape.2;
            let x = norm_input(7, n);
            let dy = randn(8, n);
            let fwd = |x: &[f32]| read(&c, &c.norm(&upload(&c, x), &d).unwrap().0);
            // h = 1e-3 on O(1) inputs: truncation ~h^2 ~ 1e-6, f32 rounding of the outputs
            // ~6e-8 * sqrt(C) * |dy| / h ~ 1e-4.
            let want = finite_diff(&x, &dy, 1e-3, fwd);
            let (y, rstd) = c.norm(&upload(&c, &x), &d).unwrap();
            let got = read(
                &c,
                &c.norm_backward(&y, &rstd, &upload(&c, &dy), &d).unwrap(),
            );
            assert_close(
                &format!("norm FD {kind:?} {shape:?}"),
                &got,
                &want,
                1e-3,
                1e-2,
            );
        }
    }
}

/// (rows, n): n >= 64 takes the workgroup-per-row geometry on the GPU.
const SOFTMAX_SHAPES: [(usize, usize); 6] =
    [(1, 1), (3, 7), (5, 33), (4, 130), (2, 1030), (300, 64)];

fn naive_softmax(x: &[f32], rows: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for j in 0..n {
            y[r * n + j] = (row[j] as f64 - max).exp() / sum;
        }
    }
    y
}

/// Logits of spread 3 plus a per-row offset up to 90, which overflows exp without the max
/// shift.
fn logits(seed: u64, rows: usize, n: usize) -> Vec<f32> {
    let x = randn(seed, rows * n);
    let off = randu(seed + 1, rows, -90.0, 90.0);
    x.iter()
        .enumerate()
        .map(|(i, &v)| 3.0 * v + off[i / n])
        .collect()
}

fn softmax_forward<B: Backend>(b: &B) {
    for (s, &(rows, n)) in SOFTMAX_SHAPES.iter().enumerate() {
        let x = logits(s as u64, rows, n);
        let y = read(b, &b.softmax(&upload(b, &x), rows, n).unwrap());
        // Probabilities in [0, 1]; exp on GPUs is accurate to a few ulp.
        assert_close(
            &format!("softmax ({rows}, {n})"),
            &y,
            &f32s(&naive_softmax(&x, rows, n)),
            1e-6,
            1e-4,
        );
        let c = cpu();
        let cy = read(&c, &c.softmax(&upload(&c, &x), rows, n).unwrap());
        assert_close(
            &format!("softmax ({rows}, {n}) vs cpu"),
            &y,
            &cy,
            1e-6,
            1e-4,
        );
    }
}
test_device!(softmax, softmax_forward);

fn softmax_backward<B: Backend>(b: &B) {
    for (s, &(rows, n)) in SOFTMAX_SHAPES.iter().enumerate() {
        let y = f32s(&naive_softmax(&logits(s as u64, rows, n), rows, n));
        let dy = randn(50 + s as u64, rows * n);
        let got = read(
            b,
            &b.softmax_backward(&upload(b, &y), &upload(b, &dy), rows, n)
                .unwrap(),
        );
        let mut want = vec![0.0; rows * n];
        for r in 0..rows {
            let dot: f64 = (0..n)
                .map(|j| y[r * n + j] as f64 * dy[r * n + j] as f64)
                .sum();
            for j in 0..n {
                let k = r * n + j;
                want[k] = y[k] as f64 * (dy[k] as f64 - dot);
            }
        }
        // |dx| <= |y| * (|dy| + max|dy|): a few units times values in [0, 1].
        assert_close(
            &format!("softmax_backward ({rows}, {n})"),
            &got,
            &f32s(&want),
            1e-6,
            1e-4,
        );
        let c = cpu();
        let cdx = read(
            &c,
            &c.softmax_backward(&upload(&c, &y), &upload(&c, &dy), rows, n)
                .unwrap(),
        );
        assert_close(
            &format!("softmax_backward ({rows}, {n}) vs cpu"),
            &got,
            &cdx,
            1e-6,
            1e-4,
        );
    }
}
test_device!(softmax_grad, softmax_backward);

#[test]
fn softmax_backward_matches_finite_differences() {
    let c = cpu();
    for (rows, n) in [(1, 1), (3, 7), (2, 33)] {
        let x = randn(rows as u64, rows * n);
        let dy = randn(9, rows * n);
        let fwd = |x: &[f32]| read(&c, &c.softmax(&upload(&c, x), rows, n).unwrap());
        // Outputs in [0, 1]: truncation ~h^2, rounding ~6e-8 * sqrt(n) / h.
        let want = finite_diff(&x, &dy, 1e-3, fwd);
        let y = c.softmax(&upload(&c, &x), rows, n).unwrap();
        let got = read(
            &c,
            &c.softmax_backward(&y, &upload(&c, &dy), rows, n).unwrap(),
        );
        assert_close(
            &format!("softmax FD ({rows}, {n})"),
            &got,
            &want,
            1e-3,
            1e-2,
        );
    }
}
