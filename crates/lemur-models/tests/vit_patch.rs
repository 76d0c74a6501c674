//! The ViT's patch size per axis (`patch_size: [pl, ph, pw]`, as the reference accepts): its
//! configuration form, and its computation, checked against an equivalence that holds for
//! any weights. Patchifying by `(pl, ph, pw)` and projecting the `(C pl ph pw)` values of each
//! patch is exactly the patch-1 ViT applied to the input rearranged space-to-depth (channel
//! `c pl ph pw + (dl ph + dh) pw + dw`): both see the same token grid, so the same positional
//! and rotary embeddings, and the projections have the same shapes. Equal weights must then
//! give equal outputs, on both backends.

mod common;

use common::{assert_rel, host};
use lemur_models::nn::Builder;
use lemur_models::vit::{PatchSize, Vit, VitConfig, vit_param_count};
use lemur_tensor::test_device;
use lemur_tensor::{Backend, ParamStore, Tensor, no_grad};

fn config(patch: &str) -> VitConfig {
    serde_json::from_str(&format!(
        r#"{{"channels": 3, "hid_channels": 24, "hid_blocks": 2, "attention_heads": 2,
            "patch_size": {patch}}}"#
    ))
    .unwrap()
}

#[test]
fn patch_size_is_one_number_or_three() {
    assert_eq!(config("2").patch_size, PatchSize([2, 2, 2]));
    assert_eq!(config("[1, 2, 3]").patch_size, PatchSize([1, 2, 3]));
    // Equal entries serialise as one number, so existing checkpoints read the same.
    let v = serde_json::to_value(config("[2, 2, 2]")).unwrap();
    assert_eq!(v["patch_size"], serde_json::json!(2));
    let v = serde_json::to_value(config("[1, 2, 3]")).unwrap();
    assert_eq!(v["patch_size"], serde_json::json!([1, 2, 3]));
    for bad in ["[1, 2]", "[1, 2, 3, 4]", "\"2\"", "-1"] {
        let e = serde_json::from_str::<VitConfig>(&format!(
            r#"{{"channels": 3, "hid_channels": 24, "hid_blocks": 1, "patch_size": {bad}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("patch_size"), "{bad}: {e}");
    }
    let e = config("[1, 0, 2]").validate().unwrap_err().to_string();
    assert!(e.contains("patch_size"), "{e}");
    // The input and output projections grow with pl * ph * pw.
    assert_eq!(
        vit_param_count(&config("[1, 2, 3]"), 3, 0, 3, 0)
            - vit_param_count(&config("1"), 3, 0, 3, 0),
        (6 - 1) * 3 * 24 * 2 + (6 - 1) * 3
    );
}

/// `x` (B, C, L, H, W) rearranged to (B, C pl ph pw, L/pl, H/ph, W/pw), or back.
fn space_to_depth(x: &[f32], s: [usize; 5], p: [usize; 3], back: bool) -> Vec<f32> {
    let [b, c, l, h, w] = s;
    let [pl, ph, pw] = p;
    let (lo, ho, wo) = (l / pl, h / ph, w / pw);
    let mut out = vec![0.0f32; x.len()];
    for n in 0..b {
        for ci in 0..c {
            for li in 0..l {
                for hi in 0..h {
                    for wi in 0..w {
                        let (dl, dh, dw) = (li % pl, hi % ph, wi % pw);
                        let cc = ci * pl * ph * pw + (dl * ph + dh) * pw + dw;
                        let src = (((n * c + ci) * l + li) * h + hi) * w + wi;
                        let dst = ((((n * c * pl * ph * pw) + cc) * lo + li / pl) * ho + hi / ph)
                            * wo
                            + wi / pw;
                        if back {
                            out[src] = x[dst];
                        } else {
                            out[dst] = x[src];
                        }
                    }
                }
            }
        }
    }
    out
}

fn per_axis_patch_is_space_to_depth<B: Backend>(b: &B) {
    let p = [2, 1, 3];
    let (c, shape) = (3, [2, 3, 4, 2, 6]);
    let mut store_a = ParamStore::new();
    let a = Vit::new(
        &config("[2, 1, 3]"),
        c,
        c,
        0,
        0,
        &mut Builder::new(b, &mut store_a, 7),
    )
    .unwrap();
    let deep = 6 * c;
    let mut store_b = ParamStore::new();
    let vb = Vit::new(
        &config("1"),
        deep,
        deep,
        0,
        0,
        &mut Builder::new(b, &mut store_b, 8),
    )
    .unwrap();
    // The same weights in both (same names and shapes).
    let weights: std::collections::BTreeMap<_, _> = store_a
        .iter()
        .map(|(n, t)| (n.to_string(), (t.shape().to_vec(), t.to_vec().unwrap())))
        .collect();
    store_b
        .load_host(&weights, std::path::Path::new("patched ViT"))
        .unwrap();
    let x: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let ya = no_grad(|| {
        a.forward(
            &Tensor::from_slice(b, &x, &shape).unwrap(),
            None,
            None,
            None,
        )
    })
    .unwrap();
    assert_eq!(ya.shape(), &shape[..]);
    let xd = space_to_depth(&x, shape, p, false);
    let dshape = [2, deep, 2, 2, 2];
    let yb = no_grad(|| {
        vb.forward(
            &Tensor::from_slice(b, &xd, &dshape).unwrap(),
            None,
            None,
            None,
        )
    })
    .unwrap();
    let yb = space_to_depth(&host(&yb), shape, p, true);
    let rel = assert_rel(
        &format!("{} patch [2, 1, 3]", b.name()),
        &host(&ya),
        &yb,
        1e-5,
    );
    eprintln!(
        "{}: patch [2, 1, 3] against space-to-depth: {rel:.3e}",
        b.name()
    );
    // A grid that is not a multiple of the patch is refused, naming the patch.
    let e = a
        .forward(
            &Tensor::zeros(b, &[1, 3, 4, 2, 4]).unwrap(),
            None,
            None,
            None,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("[2, 1, 3]"), "{e}");
}
test_device!(
    per_axis_patch_matches_space_to_depth,
    per_axis_patch_is_space_to_depth
);
