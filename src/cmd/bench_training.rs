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
}

/// Where the PyTorch figures of the fixed configurations come from. They are CPU figures, so
/// they are shown (and a ratio taken) only beside the CPU backend's.
pub const REFERENCE: &str = "PyTorch figures: the reference implementation on a 2-core CPU, \
    2 threads (given with the benchmark's specification, not measured here)";

/// ` (PyTorch, 2-core CPU, 2 threads: R, ratio V/R)` beside a CPU figure `v` with a reference
/// `r`; nothing beside a GPU figure, which is never compared with a CPU one.
fn versus(cpu: bool, v: f64, r: Option<f64>) -> String {
    match r {
        Some(r) if cpu => format!(" (PyTorch, 2-core CPU, 2 threads: {r}, ratio {:.2})", v / r),
        _ => String::new(),
    }
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
    } else {
        println!(
            "no GPU reference figures here: the PyTorch figures are CPU ones (2-core CPU, 2 threads), shown beside the CPU backend only"
        );
    }
    let min = std::time::Duration::from_millis(args.bench.min_ms);
    let only = args.bench.only.as_deref();
    let configs = [
        (
            format!("{} 64x64 batch 16", preset.0),
            preset.1.clone(),
            None,
        ),
        (
            "autoencoder-fixed 64x64 batch 16".to_string(),
            bench::fixed_autoencoder(),
            Some((8.4, 26.0)),
        ),
    ];
    for (name, cfg, reference) in configs {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let line = match bench::autoencoder(backend, &name, &cfg, 16, [64, 64], min) {
            Ok(line) => line,
            Err(e) => {
                // One configuration failing (e.g. over a GPU limit) should not hide the others.
                println!("{name:<36} failed on {}: {e}", backend.name());
                continue;
            }
        };
        println!(
            "{:<36} {:>10} params  train {:>7.2} samples/s{}  encode+decode {:>7.2} frames/s{}  [{}]",
            line.name,
            line.params,
            line.train_per_s,
            versus(cpu, line.train_per_s, reference.map(|r| r.0)),
            line.infer_per_s,
            versus(cpu, line.infer_per_s, reference.map(|r| r.1)),
            line.backend
        );
    }
    let name = "denoiser-fixed 4x(5,4,4) batch 32";
    if only.is_none_or(|o| name.contains(o)) {
        match bench::denoiser(backend, name, &bench::fixed_denoiser(), 32, [5, 4, 4], min) {
            Ok(line) => println!(
                "{:<36} {:>10} params  train {:>7.2} samples/s{}  forward {:>7.2} samples/s{}  [{}]",
                line.name,
                line.params,
                line.train_per_s,
                versus(cpu, line.train_per_s, Some(26.5)),
                line.infer_per_s,
                versus(cpu, line.infer_per_s, Some(86.0)),
                line.backend
            ),
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
    use super::versus;

    #[test]
    fn pytorch_figures_are_labelled_and_only_beside_cpu_figures() {
        assert_eq!(
            versus(true, 13.25, Some(26.5)),
            " (PyTorch, 2-core CPU, 2 threads: 26.5, ratio 0.50)"
        );
        assert_eq!(versus(false, 130.0, Some(26.5)), "");
        assert_eq!(versus(true, 13.25, None), "");
    }
}
