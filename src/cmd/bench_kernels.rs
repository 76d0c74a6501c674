//! `lemur bench kernels`: time the tensor kernels on each backend.
//!
//! Every line prints the time per call, the throughput (GFLOP/s for compute-bound ops, GB/s
//! for memory-bound ones) and a ratio against a baseline measured in the same run: for the
//! CPU backend, `matrixmultiply`'s sgemm called directly (compute) or a host memcpy (memory);
//! for the GPU backend, the CPU backend's figure for the same op.

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
    /// Largest square matmul size (2048 takes a while on lavapipe).
    #[arg(long, default_value_t = 2048)]
    max_size: usize,
    /// Minimum measuring time per line, in milliseconds.
    #[arg(long, default_value_t = 300)]
    min_ms: u64,
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

fn suite<B: Backend>(b: &B, args: &BenchKernelsArgs) -> Result<Vec<Line>> {
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
    for s in [256usize, 512, 1024, 2048]
        .into_iter()
        .filter(|&s| s <= args.max_size)
    {
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
        let d = ConvDesc {
            batch: 16,
            cin: 64,
            cout: 64,
            h: 64,
            w: 64,
            kernel: 3,
            circular: false,
        };
        let (x, w) = (rand(b, 16 * 64 * 64 * 64, 1)?, rand(b, 64 * 64 * 9, 2)?);
        let secs = time(b, min, || {
            b.conv2d(&x, &w, None, &d)?;
            Ok(())
        })?;
        lines.push(Line {
            name: "conv2d 3x3 (16,64,64,64)".into(),
            secs,
            work: 2.0 * (16usize * 64 * 64 * 64 * 64 * 9) as f64,
            unit: Unit::Flops,
        });
    }
    for t in [80usize, 320, 1280] {
        let (bh, dim) = (8 * 4, 64);
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
            name: format!("attention B=8 4x64 T={t} (fused)"),
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
    for s in [256usize, 512, 1024, 2048]
        .into_iter()
        .filter(|&s| s <= args.max_size)
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
        println!(
            "{:<38} {:>8.3} ms {:>8.2} {:<7} {:>7.2}x  {what}",
            l.name,
            l.secs * 1e3,
            l.rate(),
            unit,
            l.rate() / base
        );
    }
}

pub fn run(args: BenchKernelsArgs) -> Result<()> {
    let want_cpu = matches!(args.backend.as_str(), "cpu" | "both");
    let want_gpu = matches!(args.backend.as_str(), "gpu" | "both");
    anyhow::ensure!(want_cpu || want_gpu, "--backend must be cpu, gpu or both");
    // The CPU backend's figures are the GPU's baseline, so measure them whenever the GPU runs.
    let cpu_lines = suite(&CpuBackend, &args)?;
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
        let gpu_lines = suite(&g, &args)?;
        print(&format!("backend: {}", g.name()), &gpu_lines, |l| {
            let c = cpu_lines
                .iter()
                .find(|c| c.name == l.name)
                .map(Line::rate)
                .unwrap_or(f64::NAN);
            (c, format!("CPU backend: {c:.2}"))
        });
        let mem = g.memory();
        println!(
            "GPU memory: peak {:.1} MiB live, {:.1} MiB pooled",
            mem.peak as f64 / 1048576.0,
            mem.pooled as f64 / 1048576.0
        );
    }
    Ok(())
}
