//! `lemur bench training`: training throughput (samples/s of one optimizer step) of an
//! autoencoder preset and the fixed configurations of `lemur_train::bench`, on each backend.
//! The preset is built in (see [`super::presets`]), so an installed binary needs no source tree.

use anyhow::Result;

/// Arguments of `lemur bench training`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchTrainingArgs {
    #[command(flatten)]
    pub bench: super::train::BenchArgs,
    /// Autoencoder configuration to time besides the fixed ones: a built-in preset (tiny,
    /// small, paper, or autoencoder-small, ...) or a JSON file.
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Batch of every configuration (default: 16 for the autoencoders, 32 for the denoiser,
    /// the batches of the recorded reference figures; those figures also exist at 128 for the
    /// autoencoder-fixed and 256 for the denoiser-fixed training step).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
}

/// Where the PyTorch CPU figures of the fixed configurations come from. They are shown (and a
/// ratio taken) only beside the CPU backend's.
pub const REFERENCE: &str = "PyTorch CPU figures: the reference implementation on a 2-core CPU, \
    2 threads (given with the benchmark's specification, not measured here)";

/// Where the PyTorch CUDA figures come from; shown beside the GPU backend's only.
pub const CUDA_REFERENCE: &str = "PyTorch CUDA figures: the reference implementation in float32 \
    with TF32 off, measured on one NVIDIA H200 (issue #10, not measured here); GPU ratios mean \
    something only when this run's GPU is an H200-class one";

/// A recorded throughput (samples or frames per second): a range over repeated runs, at one
/// batch.
#[derive(Clone, Copy, Debug)]
struct Figure {
    batch: u64,
    lo: f64,
    hi: f64,
}

const fn fig(batch: u64, lo: f64, hi: f64) -> Figure {
    Figure { batch, lo, hi }
}

/// Recorded figures of one configuration: a label, then training and inference figures.
struct Reference {
    label: &'static str,
    train: &'static [Figure],
    infer: &'static [Figure],
}

const CPU: &str = "PyTorch, 2-core CPU, 2 threads";
const CUDA: &str = "PyTorch CUDA fp32, NVIDIA H200";

const CPU_AUTOENCODER: Reference = Reference {
    label: CPU,
    train: &[fig(16, 8.4, 8.4)],
    infer: &[fig(16, 26.0, 26.0)],
};
const CPU_DENOISER: Reference = Reference {
    label: CPU,
    train: &[fig(32, 26.5, 26.5)],
    infer: &[fig(32, 86.0, 86.0)],
};
const CUDA_AUTOENCODER: Reference = Reference {
    label: CUDA,
    train: &[fig(16, 597.0, 686.0), fig(128, 2026.0, 2181.0)],
    infer: &[fig(16, 1943.0, 3248.0)],
};
const CUDA_DENOISER: Reference = Reference {
    label: CUDA,
    train: &[fig(32, 539.0, 539.0), fig(256, 4608.0, 4608.0)],
    infer: &[fig(32, 2203.0, 2203.0)],
};

fn range(lo: f64, hi: f64, digits: usize) -> String {
    if lo == hi {
        format!("{lo:.digits$}")
    } else {
        format!("{lo:.digits$}-{hi:.digits$}")
    }
}

/// ` (LABEL: R, ratio V/R)` beside a figure `v` measured at `batch`, when `figures` has one at
/// that batch; else ` (LABEL: R at batch B; no ratio at batch N)`; nothing without figures.
fn versus(v: f64, batch: u64, label: &str, figures: &[Figure]) -> String {
    // The recorded figures as given (597-686, 26.5).
    let plain = |f: &Figure| {
        if f.lo == f.hi {
            format!("{}", f.lo)
        } else {
            format!("{}-{}", f.lo, f.hi)
        }
    };
    if let Some(f) = figures.iter().find(|f| f.batch == batch) {
        let ratio = range(v / f.hi, v / f.lo, 2);
        return format!(" ({label}: {}, ratio {ratio})", plain(f));
    }
    if figures.is_empty() {
        return String::new();
    }
    let at: Vec<String> = figures
        .iter()
        .map(|f| format!("{} at batch {}", plain(f), f.batch))
        .collect();
    format!(" ({label}: {}; no ratio at batch {batch})", at.join(", "))
}

/// A count per call, whole when it is one.
fn per(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `per train step: dispatches D, submissions S, syncs Y, uploads U, bind groups G; per
/// <infer>: ...`: the work each timed call asked of the backend.
fn counts(line: &lemur_train::bench::BenchLine, infer: &str) -> String {
    let one = |c: &lemur_train::bench::Counted| {
        format!(
            "dispatches {}, submissions {}, syncs {}, uploads {}, bind groups {}",
            per(c.per_call(|o| o.dispatches)),
            per(c.per_call(|o| o.submissions)),
            per(c.per_call(|o| o.syncs)),
            per(c.per_call(|o| o.uploads)),
            per(c.per_call(|o| o.bind_groups)),
        )
    };
    format!(
        "    per train step: {}; per {infer}: {}",
        one(&line.train_ops),
        one(&line.infer_ops)
    )
}

fn bench_on<B: lemur_tensor::Backend>(
    backend: &B,
    cpu: bool,
    args: &BenchTrainingArgs,
    preset: &(String, lemur_train::bench::AutoencoderConfig),
) -> Result<()> {
    use lemur_train::bench;
    if cpu {
        println!("{REFERENCE}; ratios are this run's figure over PyTorch's");
        println!(
            "counts per call on the CPU backend: dispatches are kernel calls, syncs are reads and \
             syncs (no waiting on a CPU), no submissions or bind groups; the bench syncs once per call"
        );
    } else {
        println!(
            "{CUDA_REFERENCE} (this run: {}); ratios are this run's figure over PyTorch's",
            backend.name()
        );
        println!(
            "counts per call: compute dispatches, queue submissions, host-device synchronisations \
             (each read, sync, work_done; the bench syncs once per call), uploads, bind groups"
        );
    }
    let min = std::time::Duration::from_millis(args.bench.min_ms);
    let only = args.bench.only.as_deref();
    let ae_batch = args.batch.unwrap_or(16);
    let den_batch = args.batch.unwrap_or(32);
    let (ae_ref, den_ref) = if cpu {
        (CPU_AUTOENCODER, CPU_DENOISER)
    } else {
        (CUDA_AUTOENCODER, CUDA_DENOISER)
    };
    let configs = [
        (
            format!("{} 64x64 batch {ae_batch}", preset.0),
            preset.1.clone(),
            None,
        ),
        (
            format!("autoencoder-fixed 64x64 batch {ae_batch}"),
            bench::fixed_autoencoder(),
            Some(&ae_ref),
        ),
    ];
    for (name, cfg, reference) in configs {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let line = match bench::autoencoder(backend, &name, &cfg, ae_batch as usize, [64, 64], min)
        {
            Ok(line) => line,
            Err(e) => {
                // One configuration failing (e.g. over a GPU limit) should not hide the others.
                println!("{name:<36} failed on {}: {e}", backend.name());
                continue;
            }
        };
        let label = reference.map_or("", |r| r.label);
        println!(
            "{:<36} {:>10} params  train {:>7.2} samples/s{}  encode+decode {:>7.2} frames/s{}  [{}]",
            line.name,
            line.params,
            line.train_per_s,
            versus(
                line.train_per_s,
                ae_batch,
                label,
                reference.map_or(&[], |r| r.train)
            ),
            line.infer_per_s,
            versus(
                line.infer_per_s,
                ae_batch,
                label,
                reference.map_or(&[], |r| r.infer)
            ),
            line.backend
        );
        println!("{}", counts(&line, "encode+decode"));
    }
    let name = format!("denoiser-fixed 4x(5,4,4) batch {den_batch}");
    if only.is_none_or(|o| name.contains(o)) {
        match bench::denoiser(
            backend,
            &name,
            &bench::fixed_denoiser(),
            den_batch as usize,
            [5, 4, 4],
            min,
        ) {
            Ok(line) => {
                println!(
                    "{:<36} {:>10} params  train {:>7.2} samples/s{}  forward {:>7.2} samples/s{}  [{}]",
                    line.name,
                    line.params,
                    line.train_per_s,
                    versus(line.train_per_s, den_batch, den_ref.label, den_ref.train),
                    line.infer_per_s,
                    versus(line.infer_per_s, den_batch, den_ref.label, den_ref.infer),
                    line.backend
                );
                println!("{}", counts(&line, "forward"));
            }
            Err(e) => println!("{name:<36} failed on {}: {e}", backend.name()),
        }
    }
    Ok(())
}

pub fn run(args: &BenchTrainingArgs) -> Result<()> {
    let backends: &[&str] = match args.bench.backend.as_str() {
        "both" => &["cpu", "gpu"],
        "cpu" => &["cpu"],
        "gpu" => &["gpu"],
        other => anyhow::bail!("--backend {other}: use cpu, gpu or both"),
    };
    // Resolved before any backend opens, so a bad --config fails at once.
    let text = super::presets::resolve("--config", "autoencoder", &args.config)?;
    let cfg = lemur_train::bench::AutoencoderConfig::from_json(&text)
        .map_err(|e| anyhow::anyhow!("--config {}: {e}", args.config))?;
    let label = match super::presets::builtin("autoencoder", &args.config) {
        Some(_) if args.config.starts_with("autoencoder-") => args.config.clone(),
        Some(_) => format!("autoencoder-{}", args.config),
        None => std::path::Path::new(&args.config)
            .file_stem()
            .map_or_else(|| args.config.clone(), |s| s.to_string_lossy().into_owned()),
    };
    let preset = (label, cfg);
    for &b in backends {
        match lemur_tensor::AnyBackend::open_blocking(b.parse()?)? {
            lemur_tensor::AnyBackend::Cpu(c) => bench_on(&c, true, args, &preset)?,
            lemur_tensor::AnyBackend::Gpu(g) => bench_on(&g, false, args, &preset)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_cpu_figures_are_labelled_with_a_ratio_at_their_batch() {
        assert_eq!(
            versus(13.25, 32, CPU, CPU_DENOISER.train),
            " (PyTorch, 2-core CPU, 2 threads: 26.5, ratio 0.50)"
        );
        assert_eq!(
            versus(13.25, 64, CPU, CPU_DENOISER.train),
            " (PyTorch, 2-core CPU, 2 threads: 26.5 at batch 32; no ratio at batch 64)"
        );
        assert_eq!(versus(13.25, 16, CPU, &[]), "");
    }

    #[test]
    fn pytorch_cuda_figures_name_the_gpu_and_give_ranges() {
        assert_eq!(
            versus(68.6, 16, CUDA, CUDA_AUTOENCODER.train),
            " (PyTorch CUDA fp32, NVIDIA H200: 597-686, ratio 0.10-0.11)"
        );
        assert_eq!(
            versus(1050.0, 128, CUDA, CUDA_AUTOENCODER.train),
            " (PyTorch CUDA fp32, NVIDIA H200: 2026-2181, ratio 0.48-0.52)"
        );
        assert_eq!(
            versus(100.0, 8, CUDA, CUDA_AUTOENCODER.train),
            " (PyTorch CUDA fp32, NVIDIA H200: 597-686 at batch 16, 2026-2181 at batch 128; \
             no ratio at batch 8)"
        );
        // The denoiser's forward figure exists at batch 32 only.
        assert_eq!(
            versus(2203.0, 32, CUDA, CUDA_DENOISER.infer),
            " (PyTorch CUDA fp32, NVIDIA H200: 2203, ratio 1.00)"
        );
        assert!(CUDA_REFERENCE.contains("H200"));
    }

    #[test]
    fn counts_are_whole_when_they_are() {
        assert_eq!(per(3.0), "3");
        assert_eq!(per(2.5), "2.50");
        assert_eq!(per(0.0), "0");
    }
}
