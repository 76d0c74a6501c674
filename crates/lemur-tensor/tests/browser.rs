//! Runs a matmul kernel through WebGPU in a real browser (headless Chromium on SwiftShader):
//! `cargo test --target wasm32-unknown-unknown -p lemur-tensor --test browser` with
//! wasm-bindgen-test-runner and chromedriver (see README.md and webdriver.json).
#![cfg(target_arch = "wasm32")]

use lemur_tensor::backend::{Backend, MatmulDesc};
use lemur_tensor::{GpuBackend, rng};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn matmul_runs_on_webgpu() {
    let g = GpuBackend::new()
        .await
        .expect("a WebGPU adapter (Chromium needs --enable-unsafe-webgpu)");
    // Awkward sizes: not multiples of any tile.
    let (m, n, k) = (33, 7, 130);
    let a: Vec<f32> = (0..m * k).map(|i| rng::normal(1, i as u64)).collect();
    let b: Vec<f32> = (0..k * n).map(|i| rng::normal(2, i as u64)).collect();
    let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
    let d = MatmulDesc {
        batch: 1,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        a_batched: true,
        b_batched: true,
    };
    let out = g
        .matmul(
            &g.upload(&a).unwrap(),
            &g.upload(&b).unwrap(),
            Some(&g.upload(&bias).unwrap()),
            &d,
        )
        .unwrap();
    let got = g.read(&out).await.unwrap();
    for i in 0..m {
        for j in 0..n {
            let want: f64 = bias[j] as f64
                + (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum::<f64>();
            let v = got[i * n + j] as f64;
            assert!(
                (v - want).abs() <= 1e-3 * (1.0 + want.abs()),
                "out[{i},{j}] = {v}, expected {want}"
            );
        }
    }
}
