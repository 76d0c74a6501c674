//! `lemur eval`: every metric of DESIGN.md section 7 per field and lead time, averaged over K
//! test trajectories, for a diffusion run, a surrogate run or an autoencoder alone, with the
//! autoencoder's reconstruction error as the floor. Writes `metrics.csv`, `summary.json` and
//! PNG plots, and prints a summary table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lemur_plot::{LinePlot, Series, palette, write_png};
use lemur_tensor::{AnyBackend, Backend};
use lemur_train::ModelKind;
use lemur_train::emulate::{Emulation, read_trajectory};
use lemur_train::evaluation::{
    Accumulator, CSV_HEADER, LeadMetrics, collapsed_variance, csv_row, lead_ranges,
};

use super::sampling::SamplerArgs;

#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// A diffusion, surrogate or autoencoder run (or one of its checkpoint directories), or an
    /// embedded one: `pretrained`, `pretrained-surrogate`, `pretrained-autoencoder` (Euler),
    /// `pretrained-rb`, `pretrained-rb-surrogate`, `pretrained-rb-autoencoder`
    /// (Rayleigh-Bénard).
    #[arg(long)]
    pub run: PathBuf,
    /// Dataset; defaults to the data the run's autoencoder was trained on.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Trajectories to average over (the split's first K; default: all).
    #[arg(long)]
    pub trajectories: Option<usize>,
    /// Ensemble members per trajectory.
    #[arg(long, default_value_t = 1)]
    pub ensemble: usize,
    /// Scored frames after the context (default: as many as every trajectory allows).
    #[arg(long)]
    pub horizon: Option<usize>,
    /// First physical frame of each rollout [default: 0, or 80 for Rayleigh-Bénard data: its
    /// first frames are a motionless conduction state, where VRMSE divides by zero variance].
    #[arg(long)]
    pub start: Option<usize>,
    /// Physical steps between scored frames (default: the run's training stride; 1 for an
    /// autoencoder run). Give an autoencoder run its emulators' stride to score it on the same
    /// frames.
    #[arg(long)]
    pub stride: Option<usize>,
    #[command(flatten)]
    pub sampling: SamplerArgs,
    /// Output directory (default RUN/eval-<split>, or lemur-eval-<split> for embedded runs).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    super::common::check_out_dir(&out_dir(&args))?;
    super::common::check_sampling(args.ensemble, args.sampling.steps)?;
    let backend = super::common::open_backend(args.sampling.backend.as_deref())?;
    match backend {
        AnyBackend::Cpu(b) => run_on(b, &args),
        AnyBackend::Gpu(b) => run_on(b, &args),
    }
}

fn run_on<B: Backend>(backend: B, args: &EvalArgs) -> Result<()> {
    let em = Emulation::open(backend, &super::pretrained::resolve(&args.run)?)?;
    // The embedded runs were trained elsewhere: the data path they record names a directory
    // of the machine that trained them, so they look only at --data.
    let root = match &args.data {
        Some(d) => Some(d.clone()),
        None if super::pretrained::is_pretrained(&args.run) => None,
        None => Some(em.physical_data.root.clone()),
    };
    let root = match root {
        Some(r) if r.exists() => r,
        missing => {
            let make = match lemur_solvers::System::of(&em.stats.dataset_name) {
                Some(system) => format!("make one like it with `{}`", system.generate_command()),
                None => format!(
                    "no built-in solver makes {} data: fetch it from The Well",
                    em.stats.dataset_name
                ),
            };
            let what = match missing {
                Some(r) => format!("{}: the run's dataset is not on this machine", r.display()),
                None => format!(
                    "{}: the {} data this embedded run was trained on is not on this machine",
                    args.run.display(),
                    em.stats.dataset_name
                ),
            };
            bail!("{what}; {make} and pass --data DIR");
        }
    };
    let available = super::common::data_trajectories(&root, &args.split)?.len();
    let stride = match args.stride {
        Some(0) => bail!("--stride must be at least 1"),
        Some(s) if em.kind != ModelKind::Autoencoder && s != em.stride => bail!(
            "--stride {s}: the {} run was trained at stride {}",
            em.kind,
            em.stride
        ),
        Some(s) => s,
        None => em.stride,
    };
    let k = args.trajectories.unwrap_or(available);
    if k == 0 || k > available {
        bail!(
            "--trajectories {k}: the {} split of {} has {available}",
            args.split,
            root.display()
        );
    }
    let context = args.sampling.context;
    let start = args
        .start
        .unwrap_or_else(|| super::common::default_start(&em.stats.dataset_name));
    let mut trajs = Vec::with_capacity(k);
    for i in 0..k {
        let t = read_trajectory(&root, &args.split, i)?;
        if t.channels != em.stats.channels {
            bail!(
                "{}: channels {:?} differ from the run's {:?}",
                t.file.display(),
                t.channels,
                em.stats.channels
            );
        }
        trajs.push(t);
    }
    let frame = em.stats.channels.len() * trajs[0].grid[0] * trajs[0].grid[1];
    let shortest = trajs
        .iter()
        .map(|t| t.strided(start, stride, None).len() / frame)
        .min()
        .unwrap_or(0);
    let horizon = match args.horizon {
        Some(h) if h + context > shortest => bail!(
            "--horizon {h}: with --context {context} at stride {} from frame {}, the shortest \
             trajectory has {shortest} frames, so at most {} can be scored",
            stride,
            start,
            shortest.saturating_sub(context)
        ),
        Some(h) => h,
        None => shortest.saturating_sub(context),
    };
    if horizon == 0 {
        bail!(
            "nothing to score: from --start {} at stride {stride} the shortest trajectory has \
             {shortest} frames, and --context {context} needs at least {}",
            start,
            context + 1
        );
    }
    super::common::check_prediction_size(args.ensemble, context + horizon, frame)?;
    let opts = args
        .sampling
        .options(horizon, args.ensemble, em.recommended_overlap()?)?;
    let grid = trajs[0].grid;
    let mut acc = Accumulator::new(em.stats.channels.len(), horizon, grid, horizon);
    let (mut enc, mut emu, mut dec) = (0.0, 0.0, 0.0);
    let mut members = 1;
    // A bar on a terminal (indicatif draws nothing otherwise): a diffusion ensemble takes
    // about a minute per trajectory on a CPU.
    let bar = indicatif::ProgressBar::new(k as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trajectories, ETA {eta}",
        )
        .expect("static template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    for t in &trajs {
        if t.grid != grid {
            bail!(
                "{}: grid {:?} differs from {:?}",
                t.file.display(),
                t.grid,
                grid
            );
        }
        let frames = t.strided(start, stride, Some(context + horizon));
        let truth = &frames[context * frame..];
        let (ensemble, recon) = if em.kind == ModelKind::Autoencoder {
            let p = em.predict(truth, grid, &[], &opts)?;
            (enc, emu, dec) = (enc + p.encode_s, emu + p.emulate_s, dec + p.decode_s);
            (p.frames.clone(), p.frames)
        } else {
            let p = em.predict(&frames[..context * frame], grid, &t.labels, &opts)?;
            (enc, emu, dec) = (enc + p.encode_s, emu + p.emulate_s, dec + p.decode_s);
            members = p.members;
            let per = p.steps * frame;
            let scored: Vec<f32> = (0..p.members)
                .flat_map(|n| p.frames[n * per + context * frame..(n + 1) * per].to_vec())
                .collect();
            (scored, em.reconstruct(truth, grid)?)
        };
        acc.add(truth, &ensemble, Some(&recon), grid);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let m = acc.finish();
    let out = out_dir(args);
    std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
    let channels = &em.stats.channels;
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for (lead, row) in m.iter().enumerate() {
        for (c, f) in row.iter().enumerate() {
            csv.push_str(&csv_row(&channels[c], lead + 1, f));
            csv.push('\n');
        }
    }
    write_file(&out.join("metrics.csv"), csv.as_bytes())?;
    plots(&out, channels, &m, &acc, stride)?;

    let ranges = lead_ranges(horizon);
    let describe = match em.kind {
        ModelKind::Diffusion => format!(
            "diffusion, sampler {} x {} steps, {members} member(s)",
            opts.sampler.method, opts.sampler.steps
        ),
        kind => kind.to_string(),
    };
    println!(
        "eval of {} ({describe}) on {} split {}: {k} trajectories, horizon {horizon} frames at stride {}, context {context}",
        args.run.display(),
        root.display(),
        args.split,
        stride
    );
    let avg = |c: usize, (a, b): (usize, usize), f: &dyn Fn(&LeadMetrics) -> f64| {
        (a..=b).map(|l| f(&m[l - 1][c])).sum::<f64>() / (b + 1 - a) as f64
    };
    let mut header = format!("{:<14}", "field");
    for (a, b) in &ranges {
        header.push_str(&format!(" {:>12}", format!("vrmse {a}-{b}")));
    }
    header.push_str(&format!(" {:>12} {:>12}", "ae floor", "spread-skill"));
    println!("{header}");
    // A deterministic model (surrogate, autoencoder) or a single member has no spread: its
    // spread-skill ratio means nothing.
    let has_spread = em.kind == ModelKind::Diffusion && members > 1;
    let ss_cell = |ss: Option<f64>| ss.map_or(format!(" {:>12}", "n/a"), |v| format!(" {v:>12.4}"));
    let mut summary_fields = serde_json::Map::new();
    for (c, name) in channels.iter().enumerate() {
        let mut line = format!("{name:<14}");
        let mut by_range = Vec::new();
        for &r in &ranges {
            let v = avg(c, r, &|x| x.vrmse);
            by_range.push(serde_json::json!({"leads": [r.0, r.1], "vrmse": v}));
            line.push_str(&format!(" {v:>12.4}"));
        }
        let all = (1, horizon);
        let (ae, ss) = (
            avg(c, all, &|x| x.ae_vrmse),
            avg(c, all, &|x| x.spread_skill),
        );
        let ss = has_spread.then_some(ss);
        line.push_str(&format!(" {ae:>12.4}{}", ss_cell(ss)));
        println!("{line}");
        summary_fields.insert(
            name.clone(),
            serde_json::json!({
                "vrmse": by_range,
                "ae_vrmse": ae,
                "spread_skill": ss,
                "spread_skill_ranges": null,
            }),
        );
    }
    let fields = channels.len() as f64;
    let mean = |r: (usize, usize), f: &dyn Fn(&LeadMetrics) -> f64| {
        (0..channels.len()).map(|c| avg(c, r, f)).sum::<f64>() / fields
    };
    let mut line = format!("{:<14}", "mean");
    let mut mean_vrmse = Vec::new();
    for &r in &ranges {
        let v = mean(r, &|x| x.vrmse);
        mean_vrmse.push(serde_json::json!({"leads": [r.0, r.1], "vrmse": v}));
        line.push_str(&format!(" {v:>12.4}"));
    }
    let all = (1, horizon);
    let mean_ae = mean(all, &|x| x.ae_vrmse);
    let mean_ss = has_spread.then(|| mean(all, &|x| x.spread_skill));
    line.push_str(&format!(" {mean_ae:>12.4}{}", ss_cell(mean_ss)));
    println!("{line}");
    let mut mean_summary = serde_json::json!({
        "vrmse": mean_vrmse,
        "ae_vrmse": mean_ae,
        "spread_skill": mean_ss,
        "spread_skill_ranges": null,
    });
    if has_spread {
        // The ratio per lead range, and past the first range as one figure (the paper's
        // calibration is judged once the ensemble has had time to spread).
        let mut spans = ranges.clone();
        if ranges.len() > 1 {
            spans.push((ranges[1].0, horizon));
        }
        println!("spread-skill (the ensemble's spread over its mean's error; 1 = calibrated)");
        let mut header = format!("{:<14}", "field");
        for (a, b) in &spans {
            header.push_str(&format!(" {:>12}", format!("leads {a}-{b}")));
        }
        println!("{header}");
        // Prints one row and returns it for summary.json.
        let row = |label: &str, f: &dyn Fn((usize, usize)) -> f64| {
            let mut line = format!("{label:<14}");
            let mut ratios = Vec::new();
            for &r in &spans {
                let v = f(r);
                line.push_str(&format!(" {v:>12.4}"));
                ratios.push(serde_json::json!({"leads": [r.0, r.1], "ratio": v}));
            }
            println!("{line}");
            serde_json::Value::from(ratios)
        };
        for (c, name) in channels.iter().enumerate() {
            summary_fields[name]["spread_skill_ranges"] =
                row(name, &|r| avg(c, r, &|x| x.spread_skill));
        }
        mean_summary["spread_skill_ranges"] = row("mean", &|r| mean(r, &|x| x.spread_skill));
    }
    for (c, name) in channels.iter().enumerate() {
        if let Some((lead, r)) = collapsed_variance(&m, c, 0.1) {
            println!(
                "note: the truth's spatial std of {name} falls to {:.1}% of lead 1's by lead {lead}: \
                 VRMSE divides by it, so it grows there even at a constant error (see the rmse \
                 and truth_std columns of metrics.csv)",
                100.0 * r
            );
        }
    }
    println!(
        "timings over {k} trajectories: encode {enc:.3} s, emulate {emu:.3} s, decode {dec:.3} s"
    );
    let summary = serde_json::json!({
        "run": args.run,
        "kind": em.kind.to_string(),
        "data": root,
        "split": args.split,
        "trajectories": k,
        "ensemble": members,
        "horizon": horizon,
        "stride": stride,
        "context": context,
        "overlap": opts.overlap,
        "sampler": opts.sampler.method.to_string(),
        "steps": opts.sampler.steps,
        "fields": summary_fields,
        "mean": mean_summary,
        "timings_s": {"encode": enc, "emulate": emu, "decode": dec},
    });
    write_file(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    println!(
        "wrote metrics.csv, summary.json, vrmse.png, spread_skill.png, spectrum.png to {}",
        out.display()
    );
    Ok(())
}

/// `--out`, else `RUN/eval-<split>`, else `lemur-eval-<split>` for an embedded run.
fn out_dir(args: &EvalArgs) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        if super::pretrained::is_pretrained(&args.run) {
            PathBuf::from(format!("lemur-eval-{}", args.split))
        } else {
            args.run.join(format!("eval-{}", args.split))
        }
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    lemur_tensor::params::write_atomic(path, bytes)?;
    Ok(())
}

fn plots(
    out: &Path,
    channels: &[String],
    m: &[Vec<LeadMetrics>],
    acc: &Accumulator,
    stride: usize,
) -> Result<()> {
    let lead_series =
        |c: usize, name: String, dashed: bool, f: &dyn Fn(&LeadMetrics) -> f64| Series {
            name,
            points: m
                .iter()
                .enumerate()
                .map(|(l, row)| ((l + 1) as f64, f(&row[c])))
                .collect(),
            colour: palette(c),
            dashed,
        };
    let x_label = format!("lead time (frames of {stride} steps)");
    let mut vrmse = LinePlot {
        title: "VRMSE against lead time (dashed: autoencoder floor)".into(),
        x_label: x_label.clone(),
        y_label: "VRMSE".into(),
        log_y: true,
        ..Default::default()
    };
    let mut skill = LinePlot {
        title: "spread-skill ratio against lead time (1 = calibrated)".into(),
        x_label,
        y_label: "spread/skill".into(),
        ..Default::default()
    };
    for (c, name) in channels.iter().enumerate() {
        vrmse
            .series
            .push(lead_series(c, name.clone(), false, &|x| x.vrmse));
        vrmse
            .series
            .push(lead_series(c, format!("{name} (ae)"), true, &|x| {
                x.ae_vrmse
            }));
        skill
            .series
            .push(lead_series(c, name.clone(), false, &|x| x.spread_skill));
    }
    skill.series.push(Series {
        name: "ideal".into(),
        points: vec![(1.0, 1.0), (m.len().max(2) as f64, 1.0)],
        colour: [120, 120, 120, 255],
        dashed: true,
    });
    write_png(&out.join("vrmse.png"), &vrmse.render(720, 420))?;
    write_png(&out.join("spread_skill.png"), &skill.render(720, 420))?;
    let mut spec = LinePlot {
        title: format!(
            "isotropic power spectra at lead {} (solid: truth, dashed: prediction)",
            acc.spectrum_lead
        ),
        x_label: "wavenumber k (cycles per cell)".into(),
        y_label: "power".into(),
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    for (c, name) in channels.iter().enumerate() {
        let (pu, pv) = acc.spectra(c);
        let pts = |p: &[f64]| {
            acc.spectrum_k
                .iter()
                .copied()
                .zip(p.iter().copied())
                .collect()
        };
        spec.series.push(Series {
            name: name.clone(),
            points: pts(&pu),
            colour: palette(c),
            dashed: false,
        });
        spec.series.push(Series {
            name: format!("{name} (pred)"),
            points: pts(&pv),
            colour: palette(c),
            dashed: true,
        });
    }
    write_png(&out.join("spectrum.png"), &spec.render(720, 420))?;
    Ok(())
}
