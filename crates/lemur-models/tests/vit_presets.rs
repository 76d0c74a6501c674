//! The denoiser and surrogate presets construct, run, and the paper presets have the
//! reference's parameter count.

use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::{CpuBackend, ParamStore, Tensor, no_grad};

fn preset(name: &str) -> VitConfig {
    let path = format!(
        "{}/../../assets/presets/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn trainable(store: &ParamStore<CpuBackend>) -> usize {
    store
        .iter()
        .filter(|(n, _)| !n.ends_with(".freqs"))
        .map(|(_, t)| t.numel())
        .sum()
}

/// The reference's ViT (lola/nn/vit.py) counted by hand for the paper sizes: C = 64 latent
/// channels, D = 256, hid = 1024, 16 blocks, FFN x4, 3 labels.
const fn lin(i: usize, o: usize) -> usize {
    i * o + o
}
const BLOCK: usize = lin(1024, 3 * 1024) - 3 * 1024 // qkv_proj has no bias
    + lin(1024, 1024)                               // y_proj
    + 3 * 512                                       // theta (3, hid/2)
    + lin(1024, 4096) + lin(4096, 1024); // ffn.0, ffn.3
const ADA: usize = lin(256, 256) + lin(256, 4 * 1024);
const STEM: usize = lin(2 * 64, 1024) + lin(1024, 64) + lin(3 * 1024, 1024); // in, out, positional
const LABELS: usize = lin(3, 256) + lin(256, 256);
const PAPER_DENOISER: usize = STEM + 16 * (BLOCK + ADA) + 2 * lin(256, 256) + LABELS;
const PAPER_SURROGATE: usize = STEM + 16 * (BLOCK + ADA) + LABELS;

#[test]
fn paper_presets_match_the_reference_count_and_run() {
    let b = CpuBackend;
    let cfg = preset("denoiser-paper");
    assert_eq!(Denoiser::<CpuBackend>::param_count(&cfg), PAPER_DENOISER);
    let mut store = ParamStore::new();
    let den = Denoiser::new(&cfg, &mut Builder::new(&b, &mut store, 0)).unwrap();
    assert_eq!(trainable(&store), PAPER_DENOISER);
    eprintln!("denoiser-paper: {PAPER_DENOISER} parameters");
    // A small input: one frame of 2 x 2 latent tokens.
    let x = Tensor::randn(&b, &[1, 64, 1, 2, 2], 1, 0).unwrap();
    let cond = Tensor::zeros(&b, &[1, 64, 1, 2, 2]).unwrap();
    let label = Tensor::zeros(&b, &[1, 3]).unwrap();
    let (mean, _) = no_grad(|| den.forward(&x, &[0.5], Some(&label), Some(&cond))).unwrap();
    assert!(mean.to_vec().unwrap().iter().all(|v| v.is_finite()));
    drop((den, store));

    let cfg = preset("surrogate-paper");
    assert_eq!(Surrogate::<CpuBackend>::param_count(&cfg), PAPER_SURROGATE);
    let mut store = ParamStore::new();
    let sur = Surrogate::new(&cfg, &mut Builder::new(&b, &mut store, 0)).unwrap();
    assert_eq!(trainable(&store), PAPER_SURROGATE);
    eprintln!("surrogate-paper: {PAPER_SURROGATE} parameters");
    let mask = Tensor::full(&b, &[1, 1, 1, 1, 1], 1.0).unwrap();
    let y = no_grad(|| sur.forward(&x, &mask, Some(&label))).unwrap();
    assert_eq!(y.shape(), x.shape());
}

#[test]
fn tiny_and_small_presets_construct() {
    let b = CpuBackend;
    for name in ["denoiser-tiny", "denoiser-small"] {
        let cfg = preset(name);
        let mut store = ParamStore::new();
        Denoiser::new(&cfg, &mut Builder::new(&b, &mut store, 0)).unwrap();
        assert_eq!(
            trainable(&store),
            Denoiser::<CpuBackend>::param_count(&cfg),
            "{name}"
        );
    }
    for name in ["surrogate-tiny", "surrogate-small"] {
        let cfg = preset(name);
        let mut store = ParamStore::new();
        Surrogate::new(&cfg, &mut Builder::new(&b, &mut store, 0)).unwrap();
        assert_eq!(
            trainable(&store),
            Surrogate::<CpuBackend>::param_count(&cfg),
            "{name}"
        );
    }
}
