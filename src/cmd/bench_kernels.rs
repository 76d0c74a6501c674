//! `lemur bench kernels`: time the tensor kernels on each backend.
//!
//! Every line prints the time per call, the throughput (GFLOP/s for compute-bound ops, GB/s
//! for memory-bound ones) and a ratio against a baseline measured in the same run: for the
//! CPU backend, `matrixmultiply`'s sgemm called directly (compute) or a host memcpy (memory);
//! for the GPU backend, the CPU backend's figure for the same op, and beside the square
//! matmuls the recorded cuBLAS figures of the reference GPU (see [`CUBLAS`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use lemur_tensor::backend::{AdamWDesc, AttentionDesc, ConvDesc, MatmulDesc, NormDesc, NormKind};
use lemur_tensor::{Backend, CpuBackend, GpuBackend};

#[derive(clap::Args)]
pub struct BenchKernelsArgs {
    /// Backends to measure: cpu, gpu or both.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Largest square matmul size: 256, 512, ..., up to 8192 (2048 takes a while on lavapipe;
    /// the CPU backend stops at 2048 whatever this says).
    #[arg(long, default_value_t = 2048)]
    max_size: usize,
    /// Minimum measuring time per line, in milliseconds.
    #[arg(long, default_value_t = 300)]
    min_ms: u64,
    /// Batch of the batched kernels: conv2d 3x3 (default 16) and fused attention (default 8).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch: Option<u64>,
    /// GPU: measure every kernel again built with wgpu's runtime shader checks (bounds
    /// clamps, loop bounding), against the unchecked build lemur uses natively.
    #[arg(long)]
    compare_shader_checks: bool,
}

/// Square matmul sizes; the CPU backend runs those up to [`CPU_MAX_SIZE`].
const SIZES: [usize; 6] = [256, 512, 1024, 2048, 4096, 8192];
const CPU_MAX_SIZE: usize = 2048;

/// cuBLAS float32 (TF32 off) GEMM throughput recorded on one NVIDIA H200 (issue #10), in
/// TFLOP/s by square size: printed beside the GPU's square matmuls, meaningful only when the
/// GPU is an H200-class one.
pub const CUBLAS: [(usize, f64); 3] = [(1024, 34.0), (2048, 48.1), (8192, 50.9)];

/// `; cuBLAS fp32, NVIDIA H200: R TFLOP/s (this/cuBLAS Q)` beside a GPU line, for a square
/// matmul whose size has a recorded figure.
fn cublas(name: &str, gflops: f64) -> String {
    let size = name
        .strip_prefix("matmul ")
        .and_then(|s| s.strip_suffix("^3"))
        .and_then(|s| s.parse::<usize>().ok());
    match size.and_then(|s| CUBLAS.iter().find(|c| c.0 == s)) {
        Some(&(_, t)) => format!(
            "; cuBLAS fp32, NVIDIA H200: {t} TFLOP/s (ratio {:.3})",
            gflops / 1e3 / t
        ),
        None => String::new(),
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Flops,
    Bytes,
}

struct Line {
    name: String,
    secs: f64,
    work: f64,
    unit: Unit,
}

impl Line {
    fn rate(&self) -> f64 {
        self.work / self.secs / 1e9
    }
}

/// Calls `f` (which records work) until `min` has elapsed, syncing the backend each round.
fn time<B: Backend>(b: &B, min: Duration, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    pollster::block_on(b.sync())?;
    let start = Instant::now();
    let mut iters = 0u32;
    while start.elapsed() < min || iters == 0 {
        f()?;
        pollster::block_on(b.sync())?;
        iters += 1;
    }
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

fn rand<B: Backend>(b: &B, n: usize, seed: u64) -> Result<B::Storage> {
    Ok(b.random(lemur_tensor::backend::Dist::Normal, seed, 0, n)?)
}

fn suite<B: Backend>(b: &B, args: &BenchKernelsArgs, max_size: usize) -> Result<Vec<Line>> {
    let min = Duration::from_millis(args.min_ms);
    let mut lines = Vec::new();
    let mm = |m: usize, n: usize, k: usize| MatmulDesc {
        batch: 1,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        a_batched: true,
        b_batched: true,
    };
    for s in SIZES.into_iter().filter(|&s| s <= max_size) {
        let (a, w) = (rand(b, s * s, 1)?, rand(b, s * s, 2)?);
        let secs = time(b, min, || {
            b.matmul(&a, &w, None, &mm(s, s, s))?;
            Ok(())
        })?;
        lines.push(Line {
            name: format!("matmul {s}^3"),
            secs,
            work: 2.0 * (s * s * s) as f64,
            unit: Unit::Flops,
        });
    }
    for t in [80usize, 320, 1280] {
        let (x, w, bias) = (
            rand(b, t * 256, 1)?,
            rand(b, 1024 * 256, 2)?,
            rand(b, 1024, 3)?,
        );
        let d = MatmulDesc {
            trans_b: true,
            ..mm(t, 1024, 256)
        };
        let secs = time(b, min, || {
            b.matmul(&x, &w, Some(&bias), &d)?;
            Ok(())
        })?;
        lines.push(Line {
            name: format!("linear {t}x256 -> 1024 (+bias)"),
            secs,
            work: 2.0 * (t * 256 * 1024) as f64,
            unit: Unit::Flops,
        });
    }
    {
        let batch = args.batch.map_or(16, |b| b as usize);
        let d = ConvDesc {
            batch,
            cin: 64,
            cout: 64,
            h: 64,
            w: 64,
            kernel: 3,
            circular: [false, false],
        };
        let (x, w) = (rand(b, batch * 64 * 64 * 64, 1)?, rand(b, 64 * 64 * 9, 2)?);
        let secs = time(b, min, || {
            b.conv2d(&x, &w, None, &d)?;
            Ok(())
        })?;
        lines.push(Line {
            name: format!("conv2d 3x3 ({batch},64,64,64)"),
            secs,
            work: 2.0 * (batch * 64 * 64 * 64 * 64 * 9) as f64,
            unit: Unit::Flops,
        });
    }
    let attention_batch = args.batch.map_or(8, |b| b as usize);
    for t in [80usize, 320, 1280] {
        let (bh, dim) = (attention_batch * 4, 64);
        let (q, k, v) = (
            rand(b, bh * t * dim, 1)?,
            rand(b, bh * t * dim, 2)?,
            rand(b, bh * t * dim, 3)?,
        );
        let d = AttentionDesc {
            bh,
            tokens: t,
            dim,
            scale: 0.125,
        };
        let secs = time(b, min, || {
            b.attention(&q, &k, &v, &d)?;
            Ok(())
        })?;
        lines.push(Line {
            name: format!("attention B={attention_batch} 4x64 T={t} (fused)"),
            secs,
            work: 4.0 * (bh * t * t * dim) as f64,
            unit: Unit::Flops,
        });
    }
    {
        let (rows, c) = (8 * 1280, 256);
        let x = rand(b, rows * c, 1)?;
        let d = NormDesc {
            outer: rows,
            c,
            inner: 1,
            eps: 1e-5,
            kind: NormKind::Layer,
        };
        let secs = time(b, min, || {
            b.norm(&x, &d)?;
            Ok(())
        })?;
        lines.push(Line {
            name: format!("layer norm {rows}x{c}"),
            secs,
            work: (2 * rows * c * 4) as f64,
            unit: Unit::Bytes,
        });
    }
    {
        let n = 10_000_000;
        let (mut p, mut m, mut v, g) = (
            rand(b, n, 1)?,
            b.fill(n, 0.0)?,
            b.fill(n, 0.0)?,
            rand(b, n, 2)?,
        );
        let d = AdamWDesc {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            step: 1,
            max_norm: 0.0,
        };
        let secs = time(b, min, || {
            let (np, nm, nv) = b.adamw(p.clone(), m.clone(), v.clone(), &g, &d, None)?;
            (p, m, v) = (np, nm, nv);
            Ok(())
        })?;
        // Reads p, m, v, g and writes p, m, v.
        lines.push(Line {
            name: "AdamW 10M params".into(),
            secs,
            work: (7 * n * 4) as f64,
            unit: Unit::Bytes,
        });
    }
    Ok(lines)
}

/// Host baselines: sgemm called directly, and memcpy bandwidth.
fn baselines(args: &BenchKernelsArgs) -> (HashMap<usize, f64>, f64) {
    let min = Duration::from_millis(args.min_ms);
    let mut sgemm = HashMap::new();
    for s in SIZES
        .into_iter()
        .filter(|&s| s <= args.max_size.min(CPU_MAX_SIZE))
    {
        let a: Vec<f32> = (0..s * s)
            .map(|i| lemur_tensor::rng::normal(1, i as u64))
            .collect();
        let bm: Vec<f32> = (0..s * s)
            .map(|i| lemur_tensor::rng::normal(2, i as u64))
            .collect();
        let mut c = vec![0f32; s * s];
        let secs = time(&CpuBackend, min, || {
            #[allow(unsafe_code)]
            // SAFETY: a, bm and c are s*s row-major matrices with the strides given.
            unsafe {
                matrixmultiply::sgemm(
                    s,
                    s,
                    s,
                    1.0,
                    a.as_ptr(),
                    s as isize,
                    1,
                    bm.as_ptr(),
                    s as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    s as isize,
                    1,
                );
            }
            Ok(())
        })
        .unwrap_or(f64::NAN);
        sgemm.insert(s, 2.0 * (s * s * s) as f64 / secs / 1e9);
    }
    let src = vec![1f32; 16 << 20];
    let mut dst = vec![0f32; 16 << 20];
    let secs = time(&CpuBackend, min, || {
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
        Ok(())
    })
    .unwrap_or(f64::NAN);
    let memcpy = 2.0 * (src.len() * 4) as f64 / secs / 1e9;
    (sgemm, memcpy)
}

fn print(backend: &str, lines: &[Line], baseline: impl Fn(&Line) -> (f64, String)) {
    println!("\n{backend}");
    println!(
        "{:<38} {:>11} {:>14} {:>9}  baseline",
        "kernel", "time", "throughput", "ratio"
    );
    for l in lines {
        let unit = match l.unit {
            Unit::Flops => "GFLOP/s",
            Unit::Bytes => "GB/s",
        };
        let (base, what) = baseline(l);
        let ratio = if base.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2}x", l.rate() / base)
        };
        println!(
            "{:<38} {:>8.3} ms {:>8.2} {:<7} {ratio:>8}  {what}",
            l.name,
            l.secs * 1e3,
            l.rate(),
            unit,
        );
    }
}

pub fn run(args: BenchKernelsArgs) -> Result<()> {
    let want_cpu = matches!(args.backend.as_str(), "cpu" | "both");
    let want_gpu = matches!(args.backend.as_str(), "gpu" | "both");
    anyhow::ensure!(want_cpu || want_gpu, "--backend must be cpu, gpu or both");
    // The CPU backend's figures are the GPU's baseline, so measure them whenever the GPU runs.
    let cpu_lines = suite(&CpuBackend, &args, args.max_size.min(CPU_MAX_SIZE))?;
    if want_cpu {
        let (sgemm, memcpy) = baselines(&args);
        let best = sgemm.values().cloned().fold(0.0, f64::max);
        print(
            &format!("backend: {}", CpuBackend.name()),
            &cpu_lines,
            |l| match l.unit {
                Unit::Flops => {
                    let size = l
                        .name
                        .strip_prefix("matmul ")
                        .and_then(|s| s.strip_suffix("^3"))
                        .and_then(|s| s.parse().ok());
                    match size.and_then(|s: usize| sgemm.get(&s).map(|&g| (g, s))) {
                        Some((g, s)) => (
                            g,
                            format!("matrixmultiply sgemm {s}^3 direct: {g:.2} GFLOP/s"),
                        ),
                        None => (best, format!("best direct sgemm: {best:.2} GFLOP/s")),
                    }
                }
                Unit::Bytes => (memcpy, format!("host memcpy: {memcpy:.2} GB/s")),
            },
        );
    }
    if want_gpu {
        let g = GpuBackend::new_blocking()?;
        let gpu_lines = suite(&g, &args, args.max_size)?;
        print(&format!("backend: {}", g.name()), &gpu_lines, |l| {
            let c = cpu_lines
                .iter()
                .find(|c| c.name == l.name)
                .map(Line::rate)
                .unwrap_or(f64::NAN);
            let what = if c.is_nan() {
                "CPU backend: not run".to_string()
            } else {
                format!("CPU backend: {c:.2}")
            };
            (c, format!("{what}{}", cublas(&l.name, l.rate())))
        });
        if args.compare_shader_checks {
            let default = g.shader_checks();
            g.set_shader_checks(!default);
            let other = suite(&g, &args, args.max_size)?;
            g.set_shader_checks(default);
            let state = |on: bool| if on { "with" } else { "without" };
            print(
                &format!(
                    "backend: {}, kernels {} wgpu's runtime shader checks",
                    g.name(),
                    state(!default)
                ),
                &other,
                |l| {
                    let base = gpu_lines
                        .iter()
                        .find(|c| c.name == l.name)
                        .map(Line::rate)
                        .unwrap_or(f64::NAN);
                    (base, format!("{} checks: {base:.2}", state(default)))
                },
            );
        }
        println!(
            "cuBLAS figures: float32 with TF32 off, measured on one NVIDIA H200 (issue #10, not \
             here); their ratios mean something only when this GPU is an H200-class one"
        );
        let mem = g.memory();
        println!(
            "GPU memory: peak {:.1} MiB live, {:.1} MiB pooled",
            mem.peak as f64 / 1048576.0,
            mem.pooled as f64 / 1048576.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cublas;

    #[test]
    fn cublas_figures_are_labelled_and_beside_square_matmuls_only() {
        assert_eq!(
            cublas("matmul 2048^3", 2090.0),
            "; cuBLAS fp32, NVIDIA H200: 48.1 TFLOP/s (ratio 0.043)"
        );
        assert_eq!(
            cublas("matmul 1024^3", 34_000.0),
            "; cuBLAS fp32, NVIDIA H200: 34 TFLOP/s (ratio 1.000)"
        );
        assert!(cublas("matmul 8192^3", 1.0).contains("50.9 TFLOP/s"));
        assert_eq!(cublas("matmul 512^3", 100.0), "");
        assert_eq!(cublas("linear 80x256 -> 1024 (+bias)", 100.0), "");
    }
}
