//! Rotary embedding (forward, inverse, angle gradient) and the fused attention forward
//! against naive f64 references on both backends, each result also against the CPU backend,
//! and central finite differences of the CPU backend's rope for both of its gradients.
//! The backend picks its attention kernel from the adapter (barrier-free rows on lavapipe,
//! flash tiles on GPUs); `both_gpu_attention_kernels` runs each explicitly.

mod common;

use common::{assert_close, cpu, randn, read, upload};
use lemur_tensor::backend::*;
use lemur_tensor::gpu::GemmKernel;
use lemur_tensor::test_device;

/// (B, heads, T, D).
const ROPE_SHAPES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 1, 2),
    (2, 3, 7, 8),
    (1, 2, 33, 64),
    (2, 1, 130, 8),
    (1, 3, 5, 2),
];

fn rope_desc((batch, heads, tokens, dim): (usize, usize, usize, usize)) -> RopeDesc {
    RopeDesc {
        batch,
        heads,
        tokens,
        dim,
    }
}

/// Learned angles are unbounded: spread 10, so that many exceed pi.
fn angles(seed: u64, d: &RopeDesc) -> Vec<f32> {
    randn(seed, d.tokens * d.heads * d.dim / 2)
        .iter()
        .map(|v| 10.0 * v)
        .collect()
}

fn naive_rope(x: &[f32], ang: &[f32], d: &RopeDesc, sign: f64) -> Vec<f64> {
    let half = d.dim / 2;
    let mut out = vec![0.0; x.len()];
    for b in 0..d.batch {
        for h in 0..d.heads {
            for t in 0..d.tokens {
                for i in 0..half {
                    let a = sign * ang[t * d.heads * half + h * half + i] as f64;
                    let k = ((b * d.heads + h) * d.tokens + t) * d.dim + 2 * i;
                    let (x0, x1) = (x[k] as f64, x[k + 1] as f64);
                    out[k] = x0 * a.cos() - x1 * a.sin();
                    out[k + 1] = x0 * a.sin() + x1 * a.cos();
                }
            }
        }
    }
    out
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn rope_forward_and_inverse<B: Backend>(b: &B) {
    for (s, &shape) in ROPE_SHAPES.iter().enumerate() {
        let d = rope_desc(shape);
        let x = randn(s as u64, shape.0 * shape.1 * shape.2 * shape.3);
        let ang = angles(20 + s as u64, &d);
        let (xs, angs) = (upload(b, &x), upload(b, &ang));
        for (inverse, sign) in [(false, 1.0), (true, -1.0)] {
            let got = read(b, &b.rope(&xs, &angs, &d, inverse).unwrap());
            // Angles up to ~40 carry f32 representation error ~40 * 6e-8 into sin/cos.
            let what = format!("rope {shape:?} inverse={inverse}");
            assert_close(
                &what,
                &got,
                &f32s(&naive_rope(&x, &ang, &d, sign)),
                1e-5,
                1e-5,
            );
            let c = cpu();
            let want = read(
                &c,
                &c.rope(&upload(&c, &x), &upload(&c, &ang), &d, inverse)
                    .unwrap(),
            );
            assert_close(&format!("{what} vs cpu"), &got, &want, 1e-5, 1e-5);
        }
        // The inverse undoes the forward.
        let y = b.rope(&xs, &angs, &d, false).unwrap();
        let back = read(b, &b.rope(&y, &angs, &d, true).unwrap());
        assert_close(&format!("rope {shape:?} round trip"), &back, &x, 1e-5, 1e-5);
    }
}
test_device!(rope, rope_forward_and_inverse);

fn rope_angle_grad<B: Backend>(b: &B) {
    for (s, &shape) in ROPE_SHAPES.iter().enumerate() {
        let d = rope_desc(shape);
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let y = randn(s as u64, n);
        let dy = randn(40 + s as u64, n);
        let got = read(
            b,
            &b.rope_angle_grad(&upload(b, &y), &upload(b, &dy), &d)
                .unwrap(),
        );
        let half = d.dim / 2;
        let mut want = vec![0.0f64; d.tokens * d.heads * half];
        for bi in 0..d.batch {
            for h in 0..d.heads {
                for t in 0..d.tokens {
                    for i in 0..half {
                        let k = ((bi * d.heads + h) * d.tokens + t) * d.dim + 2 * i;
                        want[t * d.heads * half + h * half + i] +=
                            dy[k + 1] as f64 * y[k] as f64 - dy[k] as f64 * y[k + 1] as f64;
                    }
                }
            }
        }
        // Sums of 2 * B products of O(1) values.
        let what = format!("rope_angle_grad {shape:?}");
        assert_close(&what, &got, &f32s(&want), 1e-5, 1e-5);
        let c = cpu();
        let cg = read(
            &c,
            &c.rope_angle_grad(&upload(&c, &y), &upload(&c, &dy), &d)
                .unwrap(),
        );
        assert_close(&format!("{what} vs cpu"), &got, &cg, 1e-5, 1e-5);
    }
}
test_device!(rope_grad, rope_angle_grad);

/// Central differences of `loss = <f(p), dy>` in f64 over an f32 forward, per coordinate.
fn finite_diff(p: &[f32], dy: &[f32], h: f32, f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let loss = |p: &[f32]| -> f64 {
        f(p).iter()
            .zip(dy)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    (0..p.len())
        .map(|k| {
            let mut pp = p.to_vec();
            pp[k] += h;
            let mut pm = p.to_vec();
            pm[k] -= h;
            ((loss(&pp) - loss(&pm)) / (2.0 * h as f64)) as f32
        })
        .collect()
}

#[test]
fn rope_gradients_match_finite_differences() {
    let c = cpu();
    for shape in [(2, 3, 7, 8), (1, 1, 1, 2), (2, 2, 3, 4)] {
        let d = rope_desc(shape);
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let x = randn(1, n);
        let ang: Vec<f32> = randn(2, d.tokens * d.heads * d.dim / 2);
        let dy = randn(3, n);
        let (xs, angs, dys) = (upload(&c, &x), upload(&c, &ang), upload(&c, &dy));
        // h = 1e-3 on O(1) values: truncation ~h^2, f32 output rounding ~6e-8 * sqrt(n) / h.
        let want_x = finite_diff(&x, &dy, 1e-3, |x| {
            read(&c, &c.rope(&upload(&c, x), &angs, &d, false).unwrap())
        });
        let got_x = read(&c, &c.rope(&dys, &angs, &d, true).unwrap());
        assert_close(
            &format!("rope FD dx {shape:?}"),
            &got_x,
            &want_x,
            1e-3,
            1e-2,
        );

        let want_a = finite_diff(&ang, &dy, 1e-3, |a| {
            read(&c, &c.rope(&xs, &upload(&c, a), &d, false).unwrap())
        });
        let y = c.rope(&xs, &angs, &d, false).unwrap();
        let got_a = read(&c, &c.rope_angle_grad(&y, &dys, &d).unwrap());
        assert_close(
            &format!("rope FD d angles {shape:?}"),
            &got_a,
            &want_a,
            1e-3,
            1e-2,
        );
    }
}

/// (BH, T, D): D > 64 uses 8 query rows per workgroup, D <= 64 uses 16; T = 2050 streams 65
/// key tiles; D = 136 exceeds the fused kernel and takes the materialised path.
const ATTN_SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 2),
    (3, 7, 8),
    (2, 33, 64),
    (1, 130, 64),
    (2, 130, 8),
    (1, 33, 128),
    (2, 7, 96),
    (1, 2050, 8),
    (1, 7, 136),
];

fn naive_attention(q: &[f32], k: &[f32], v: &[f32], d: &AttentionDesc) -> Vec<f64> {
    let (t, dim) = (d.tokens, d.dim);
    let mut out = vec![0.0; d.bh * t * dim];
    let mut s = vec![0.0f64; t];
    for bh in 0..d.bh {
        let base = bh * t * dim;
        for i in 0..t {
            for j in 0..t {
                s[j] = (0..dim)
                    .map(|c| q[base + i * dim + c] as f64 * k[base + j * dim + c] as f64)
                    .sum::<f64>()
                    * d.scale as f64;
            }
            let max = s.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let sum: f64 = s.iter().map(|&x| (x - max).exp()).sum();
            for c in 0..dim {
                out[base + i * dim + c] = (0..t)
                    .map(|j| (s[j] - max).exp() / sum * v[base + j * dim + c] as f64)
                    .sum();
            }
        }
    }
    out
}

fn attention_forward<B: Backend>(b: &B) {
    check_attention(b, |q, k, v, d| b.attention(q, k, v, d).unwrap());
}
test_device!(attention, attention_forward);

#[test]
fn both_gpu_attention_kernels() {
    let Some(g) = common::gpu() else { return };
    for kernel in [GemmKernel::Tiled, GemmKernel::Blocked] {
        check_attention(&g, |q, k, v, d| {
            g.attention_with(kernel, q, k, v, d).unwrap()
        });
    }
}

/// Every shape in `ATTN_SHAPES` through `attention` against the naive reference and the CPU
/// backend.
fn check_attention<B: Backend>(
    b: &B,
    attention: impl Fn(&B::Storage, &B::Storage, &B::Storage, &AttentionDesc) -> B::Storage,
) {
    for (s, &(bh, tokens, dim)) in ATTN_SHAPES.iter().enumerate() {
        let n = bh * tokens * dim;
        // Queries of spread 3 make the softmax peaked, so the running max moves between
        // key tiles and the rescaling is exercised.
        let q: Vec<f32> = randn(3 * s as u64, n).iter().map(|v| 3.0 * v).collect();
        let k = randn(3 * s as u64 + 1, n);
        let v = randn(3 * s as u64 + 2, n);
        let d = AttentionDesc {
            bh,
            tokens,
            dim,
            scale: 1.0 / (dim as f32).sqrt(),
        };
        let got = read(
            b,
            &attention(&upload(b, &q), &upload(b, &k), &upload(b, &v), &d),
        );
        // Outputs are convex combinations of v (|v| < 5): f32 dot products of up to 136
        // terms and exp leave ~1e-6 relative in the weights.
        let what = format!("attention ({bh}, {tokens}, {dim})");
        let want = f32s(&naive_attention(&q, &k, &v, &d));
        assert_close(&what, &got, &want, 5e-5, 1e-4);
        let c = cpu();
        let cout = read(
            &c,
            &c.attention(&upload(&c, &q), &upload(&c, &k), &upload(&c, &v), &d)
                .unwrap(),
        );
        assert_close(&format!("{what} vs cpu"), &got, &cout, 5e-5, 1e-4);
    }
}
