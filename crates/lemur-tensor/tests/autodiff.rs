//! Autodiff: every differentiable op's gradient against central finite differences on the CPU
//! backend, and the same graphs on the GPU backend against the CPU (forward and gradients).

mod common;

use common::{assert_close, randn};
use lemur_tensor::backend::NormKind;
use lemur_tensor::{Backend, CpuBackend, Result, Tensor};

type Case<B> = fn(&[Tensor<B>]) -> Result<Tensor<B>>;

/// loss = sum(f(inputs) * r) for a fixed random r, so every output element matters.
fn loss<B: Backend>(f: Case<B>, xs: &[Tensor<B>], seed: u64) -> Result<Tensor<B>> {
    let y = f(xs)?;
    let r = Tensor::from_slice(y.backend(), &randn(seed, y.numel()), y.shape())?;
    y.mul(&r)?.sum_all()
}

fn params<B: Backend>(b: &B, shapes: &[&[usize]], seed: u64) -> Vec<Tensor<B>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = s.iter().product();
            Tensor::param(b, b.upload(&randn(seed + i as u64, n)).unwrap(), s).unwrap()
        })
        .collect()
}

fn grads<B: Backend>(b: &B, f: Case<B>, shapes: &[&[usize]]) -> (f32, Vec<Vec<f32>>) {
    let xs = params(b, shapes, 100);
    let l = loss(f, &xs, 7).unwrap();
    let value = l.item().unwrap();
    l.backward().unwrap();
    (
        value,
        xs.iter()
            .map(|x| {
                x.grad()
                    .map(|g| g.to_vec().unwrap())
                    .unwrap_or_else(|| vec![0.0; x.numel()])
            })
            .collect(),
    )
}

/// Central differences in f32 with step h: tolerance 2e-2 absolute + relative covers the
/// O(h^2) truncation and the f32 rounding of the loss divided by 2h.
fn fd_check(f: Case<CpuBackend>, shapes: &[&[usize]], name: &str) {
    let b = CpuBackend;
    let (_, analytic) = grads(&b, f, shapes);
    let base = params(&b, shapes, 100);
    let h = 1e-2f32;
    for (i, s) in shapes.iter().enumerate() {
        let data = base[i].to_vec().unwrap();
        // At most 40 coordinates per input keep the test fast on big inputs.
        let stride = (data.len() / 40).max(1);
        let mut got = Vec::new();
        let mut want = Vec::new();
        for j in (0..data.len()).step_by(stride) {
            let eval = |delta: f32| {
                let mut d = data.clone();
                d[j] += delta;
                let mut xs: Vec<Tensor<CpuBackend>> = base.iter().map(|t| t.detach()).collect();
                xs[i] = Tensor::from_slice(&b, &d, s).unwrap();
                lemur_tensor::no_grad(|| loss(f, &xs, 7).unwrap().item().unwrap())
            };
            want.push((eval(h) - eval(-h)) / (2.0 * h));
            got.push(analytic[i][j]);
        }
        assert_close(
            &format!("{name}: d loss / d input {i} (finite differences)"),
            &got,
            &want,
            2e-2,
            2e-2,
        );
    }
}

/// Loss and gradients of the graph on the GPU against the CPU backend. f32 kernels differ from
/// the CPU reference in summation order only: 1e-3 relative covers it for these sizes.
fn gpu_vs_cpu(
    f_cpu: Case<CpuBackend>,
    f_gpu: Case<lemur_tensor::GpuBackend>,
    shapes: &[&[usize]],
    name: &str,
) {
    let Some(g) = common::gpu() else { return };
    let (lc, gc) = grads(&CpuBackend, f_cpu, shapes);
    let (lg, gg) = grads(&g, f_gpu, shapes);
    assert_close(
        &format!("{name}: loss gpu vs cpu"),
        &[lg],
        &[lc],
        1e-3,
        1e-3,
    );
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        assert_close(&format!("{name}: grad {i} gpu vs cpu"), a, b, 1e-3, 1e-3);
    }
}

macro_rules! grad_test {
    ($name:ident, [$($shape:expr),*], $body:expr) => {
        mod $name {
            use super::*;
            fn case<B: Backend>(x: &[Tensor<B>]) -> Result<Tensor<B>> {
                let f: fn(&[Tensor<B>]) -> Result<Tensor<B>> = $body;
                f(x)
            }
            #[test]
            fn finite_differences_cpu() {
                fd_check(case::<CpuBackend>, &[$(&$shape),*], stringify!($name));
            }
            #[test]
            fn gpu_matches_cpu() {
                gpu_vs_cpu(case::<CpuBackend>, case::<lemur_tensor::GpuBackend>, &[$(&$shape),*], stringify!($name));
            }
        }
    };
}

grad_test!(add_broadcast, [[3, 7], [7]], |x| x[0].add(&x[1]));
grad_test!(sub_broadcast, [[2, 3, 5], [3, 1]], |x| x[0].sub(&x[1]));
grad_test!(mul_broadcast, [[4, 1, 5], [1, 3, 5]], |x| x[0].mul(&x[1]));
grad_test!(div, [[33], [33]], |x| x[0]
    .div(&x[1].square()?.add_scalar(0.5)?));
grad_test!(gate, [[3, 11]], |x| x[0].scale(2.0)?.gate());
grad_test!(maximum_minimum, [[7, 5], [7, 5]], |x| x[0]
    .maximum(&x[1])?
    .add(&x[0].minimum(&x[1].scale(0.5)?)?));
grad_test!(unary_chain, [[33]], |x| {
    let a = x[0]
        .silu()?
        .add(&x[0].sin()?)?
        .add(&x[0].cos()?)?
        .add(&x[0].softclip()?)?;
    let b = x[0].square()?.add_scalar(0.5)?;
    // clamp and abs have kinks where finite differences lie; their derivatives are checked
    // away from the kinks in tests/elementwise.rs.
    a.add(&b.log()?)?
        .add(&b.sqrt()?)?
        .add(&b.rsqrt()?)?
        .add(&x[0].scale(0.3)?.exp()?)?
        .add(&x[0].neg()?)
});
grad_test!(select_mask, [[5, 7], [7]], |x| {
    let mask = x[0].gt(0.0)?;
    Tensor::select(&mask, &x[0], &x[1])
});
grad_test!(permute_flip, [[2, 3, 5]], |x| x[0]
    .permute(&[2, 0, 1])?
    .flip(&[0, 2]));
grad_test!(broadcast_to, [[3, 1, 5]], |x| x[0]
    .broadcast_to(&[2, 3, 4, 5]));
grad_test!(slice_concat, [[4, 7], [4, 2]], |x| {
    let s = x[0].slice(1, 2, 3)?;
    Tensor::concat(&[&x[1], &s, &x[1].scale(2.0)?], 1)
});
// Slices at the start, the middle and the end of an axis (their gradients are pads), and a
// pad of its own.
grad_test!(slice_ends_and_pad, [[3, 9, 5]], |x| {
    let head = x[0].slice(1, 0, 2)?;
    let tail = x[0].slice(1, 6, 3)?;
    let mid = x[0].slice(2, 1, 3)?.pad(2, 2, 0)?;
    let ends = Tensor::concat(&[&head, &tail, &tail.pad(1, 1, 0)?.slice(1, 0, 4)?], 1)?;
    ends.pad(1, 0, 0)?
        .mul(&ends)?
        .sum(1, false)?
        .add(&mid.sum(1, false)?)
});
// The gate per batch element (B, 1, C) and shared (C), on awkward sizes.
grad_test!(
    gated_residual_batched,
    [[3, 5, 7], [3, 1, 7], [3, 5, 7]],
    |x| { Tensor::gated_residual(&x[0], &x[1], &x[2]) }
);
grad_test!(gated_residual_shared, [[2, 9, 3], [3], [2, 9, 3]], |x| {
    Tensor::gated_residual(&x[0], &x[1], &x[2])
});
grad_test!(modulate_batched, [[3, 5, 7], [3, 1, 7], [3, 1, 7]], |x| {
    Tensor::modulate(&x[0], &x[1], &x[2])
});
grad_test!(modulate_shared, [[2, 9, 3], [1, 3], [1, 3]], |x| {
    Tensor::modulate(&x[0], &x[1], &x[2])
});
grad_test!(reductions, [[3, 7, 5]], |x| {
    let a = x[0].sum(1, false)?;
    let b = x[0].mean(2, false)?.sum(1, true)?;
    let c = x[0].var(1, false, true)?.add(&x[0].var(1, false, false)?)?;
    a.add(&c)?.mul(&b)
});
grad_test!(matmul_batched, [[2, 7, 5], [2, 5, 3]], |x| x[0]
    .matmul(&x[1]));
grad_test!(matmul_shared_rhs, [[2, 3, 7, 5], [5, 33]], |x| x[0]
    .matmul(&x[1]));
grad_test!(matmul_transposed, [[2, 7, 5], [2, 9, 5]], |x| x[0]
    .matmul_t(&x[1]));
grad_test!(linear_bias, [[2, 7, 5], [3, 5], [3]], |x| x[0]
    .linear(&x[1], Some(&x[2])));
grad_test!(conv2d_zeros, [[2, 3, 5, 7], [4, 3, 3, 3], [4]], |x| x[0]
    .conv2d(&x[1], Some(&x[2]), [false, false]));
grad_test!(conv2d_circular, [[1, 2, 6, 5], [3, 2, 3, 3]], |x| x[0]
    .conv2d(&x[1], None, [true, true]));
// Periodic along x only, as Rayleigh-Bénard's box (walls in z).
grad_test!(
    conv2d_circular_along_w,
    [[2, 2, 4, 5], [3, 2, 3, 3], [3]],
    |x| x[0].conv2d(&x[1], Some(&x[2]), [false, true])
);
grad_test!(conv2d_1x1, [[2, 3, 4, 5], [5, 3, 1, 1], [5]], |x| x[0]
    .conv2d(&x[1], Some(&x[2]), [false, false]));
grad_test!(layer_norm_tokens, [[3, 7]], |x| x[0].norm(
    1,
    NormKind::Layer,
    1e-5
));
grad_test!(layer_norm_channels_unbiased, [[2, 5, 3, 4]], |x| x[0].norm(
    1,
    NormKind::LayerUnbiased,
    1e-5
));
grad_test!(rms_norm, [[2, 3, 8]], |x| x[0].norm(2, NormKind::Rms, 1e-5));
grad_test!(softmax, [[3, 7]], |x| x[0].softmax());
grad_test!(rope, [[2, 2, 5, 4], [5, 4]], |x| x[0].rope(&x[1]));
grad_test!(attention, [[1, 2, 5, 4], [1, 2, 5, 4], [1, 2, 5, 4]], |x| {
    Tensor::attention(&x[0], &x[1], &x[2], 0.5)
});
grad_test!(pixel_shuffle_roundtrip, [[2, 3, 4, 6]], |x| {
    let u = x[0].pixel_unshuffle()?;
    u.scale(2.0)?
        .pixel_shuffle()?
        .add(&u.reshape(&[2, 3, 4, 6])?)
});
grad_test!(patchify_roundtrip, [[2, 3, 2, 4, 6]], |x| {
    let t = x[0].patchify([1, 2, 3])?;
    t.square()?.unpatchify([2, 2, 2], 3, [1, 2, 3])
});
grad_test!(dropout, [[4, 33]], |x| x[0].dropout(0.25, 9, 0));

#[test]
fn pixel_unshuffle_channel_order() {
    // Channel c*4 + dy*2 + dx of the output holds x[c, 2h + dy, 2w + dx] (DESIGN.md section 2).
    let b = CpuBackend;
    let x: Vec<f32> = (0..2 * 4 * 6).map(|v| v as f32).collect();
    let t = Tensor::from_slice(&b, &x, &[1, 2, 4, 6]).unwrap();
    let u = t.pixel_unshuffle().unwrap();
    assert_eq!(u.shape(), &[1, 8, 2, 3]);
    let got = u.to_vec().unwrap();
    for c in 0..2 {
        for dy in 0..2 {
            for dx in 0..2 {
                for h in 0..2 {
                    for w in 0..3 {
                        let out = got[((c * 4 + dy * 2 + dx) * 2 + h) * 3 + w];
                        assert_eq!(out, x[(c * 4 + 2 * h + dy) * 6 + 2 * w + dx]);
                    }
                }
            }
        }
    }
    assert_eq!(u.pixel_shuffle().unwrap().to_vec().unwrap(), x);
}

#[test]
fn gradients_accumulate_across_backward_calls() {
    let b = CpuBackend;
    let p = Tensor::param(&b, b.upload(&[1.0, 2.0, 3.0]).unwrap(), &[3]).unwrap();
    for _ in 0..2 {
        p.square().unwrap().sum_all().unwrap().backward().unwrap();
    }
    assert_eq!(p.grad().unwrap().to_vec().unwrap(), vec![4.0, 8.0, 12.0]);
    p.zero_grad();
    assert!(p.grad().is_none());
}

#[test]
fn no_grad_records_nothing() {
    let b = CpuBackend;
    let p = Tensor::param(&b, b.upload(&[1.0, 2.0]).unwrap(), &[2]).unwrap();
    let y = lemur_tensor::no_grad(|| p.square().unwrap().sum_all().unwrap());
    assert!(!y.requires_grad());
    let err = y.backward().unwrap_err().to_string();
    assert!(err.contains("does not depend on any parameter"), "{err}");
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let b = CpuBackend;
    let a = Tensor::zeros(&b, &[2, 3]).unwrap();
    let c = Tensor::zeros(&b, &[4, 5]).unwrap();
    let e = a.matmul(&c).unwrap_err().to_string();
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = a.add(&c).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = a.reshape(&[7]).unwrap_err().to_string();
    assert!(
        e.contains("reshape") && e.contains("[2, 3]") && e.contains("[7]"),
        "{e}"
    );
    let w = Tensor::zeros(&b, &[4, 2, 3, 3]).unwrap();
    let x = Tensor::zeros(&b, &[1, 3, 5, 5]).unwrap();
    let e = x.conv2d(&w, None, [false, false]).unwrap_err().to_string();
    assert!(
        e.contains("conv2d") && e.contains("[1, 3, 5, 5]") && e.contains("[4, 2, 3, 3]"),
        "{e}"
    );
}
