//! `lemur experiment compression`: the paper's comparison on the built-in data. From one
//! dataset it trains autoencoders at three compression rates (80x, 320x, 1280x), a diffusion
//! emulator and a surrogate on each rate's latents, evaluates all nine runs on the test split,
//! and writes one table (`compression.md`) and one plot (`compression.png`).
//!
//! The experiment is a list of ordinary `lemur` commands (written to `commands.sh`, so that it
//! can be repeated by hand), run in this process. Every stage is skipped when its output is
//! complete and resumed when it is partial (training runs continue from their last
//! checkpoint), so an interrupted experiment continues where it stopped. Outputs are keyed by
//! the step of what they were made from (`latents/80x-ae4000`), so training an autoencoder
//! further never mixes its new latents with emulators trained on the old ones.
//!
//! The rates: a DCAE with a spatial factor of 16 (five levels) maps `H x W x 5` fields to
//! `H/16 x W/16 x c` latents, so `c` = 16, 4 and 1 latent channels give 80x, 320x and 1280x at
//! any grid size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use lemur_models::dcae::Periodic;
use lemur_plot::{LinePlot, Series, palette, write_png};
use lemur_train::evaluation::lead_ranges;
use serde_json::Value;

#[derive(clap::Subcommand, Debug)]
pub enum ExperimentCommand {
    /// Autoencoders at 80x, 320x and 1280x compression, a diffusion emulator and a surrogate on
    /// each, evaluated on the test split: one table and one plot (resumable: run it again to
    /// continue).
    Compression(CompressionArgs),
}

#[derive(clap::Args, Debug)]
pub struct CompressionArgs {
    /// Experiment directory (data, configurations, runs, evaluations, table, plot); running
    /// again with the same directory continues the experiment.
    #[arg(long, default_value = "lemur-experiment")]
    pub out: PathBuf,
    /// Dataset directory; by default one is generated into OUT/data with the built-in Euler
    /// solver (--trajectories, --frames, --size).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Trajectories of the generated dataset.
    #[arg(long, default_value_t = 40)]
    pub trajectories: usize,
    /// Frames per generated trajectory.
    #[arg(long, default_value_t = 101)]
    pub frames: usize,
    /// Grid of the generated dataset (a multiple of 16).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Boundaries of the generated dataset: periodic, or open (the waves leave the domain and
    /// late frames vary ~100x less than early ones, which inflates late-lead VRMSE).
    #[arg(long, default_value = "periodic", value_parser = ["periodic", "open"])]
    pub boundaries: String,
    /// Model sizes: the `tiny` or `small` presets, made five levels deep (spatial factor 16).
    #[arg(long, default_value = "small")]
    pub preset: String,
    /// Optimizer steps of each autoencoder [default: tiny 300, small 4000].
    #[arg(long)]
    pub ae_steps: Option<u32>,
    /// Optimizer steps of each emulator (diffusion and surrogate) [default: tiny 200, small 1500].
    #[arg(long)]
    pub emulator_steps: Option<u32>,
    /// Samples per batch for every training run.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Peak learning rate of every training run.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Optimizer of every training run: adamw or soap.
    #[arg(long, default_value = "adamw")]
    pub optimizer: String,
    /// Compression rates to run (of 80, 320, 1280).
    #[arg(long, value_delimiter = ',', default_value = "80,320,1280")]
    pub rates: Vec<u32>,
    /// Test trajectories each run is evaluated on.
    #[arg(long, default_value_t = 4)]
    pub eval_trajectories: usize,
    /// Ensemble members of the diffusion evaluations (spread-skill needs more than one).
    #[arg(long, default_value_t = 8)]
    pub ensemble: usize,
    /// Denoising steps per window of the diffusion evaluations (sampler ab, order 3).
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Backend: gpu, cpu or auto [default: $LEMUR_BACKEND, else auto].
    #[arg(long)]
    pub backend: Option<String>,
}

/// Physical frames between consecutive latent frames: the emulators' training stride, used
/// to score the autoencoders on the same frames.
const STRIDE: usize = 4;

pub fn run(command: ExperimentCommand) -> Result<()> {
    match command {
        ExperimentCommand::Compression(args) => compression(&args),
    }
}

/// Latent channels for a rate (the DCAE's spatial factor is 16: 256 x 5 / c = rate).
fn latent_channels(rate: u32) -> Result<usize> {
    match rate {
        80 => Ok(16),
        320 => Ok(4),
        1280 => Ok(1),
        r => bail!("--rates {r}: the rates are 80, 320 and 1280"),
    }
}

struct Defaults {
    ae_steps: u32,
    emulator_steps: u32,
}

fn defaults(preset: &str) -> Result<Defaults> {
    match preset {
        "tiny" => Ok(Defaults {
            ae_steps: 300,
            emulator_steps: 200,
        }),
        "small" => Ok(Defaults {
            ae_steps: 4000,
            emulator_steps: 1500,
        }),
        p => bail!("--preset {p}: the experiment takes tiny or small"),
    }
}

/// The autoencoder preset made five levels deep (the last level repeated) with `c` latent
/// channels, padding circularly on periodic data (as `lemur train autoencoder` fits a preset).
fn ae_config(preset: &str, c: usize, rate: u32, periodic: Periodic) -> Result<Value> {
    let text = super::presets::resolve("--preset", "autoencoder", preset)?;
    let mut v: Value = serde_json::from_str(&text)?;
    for key in ["hid_channels", "hid_blocks"] {
        let list = v[key]
            .as_array_mut()
            .with_context(|| format!("the {preset} autoencoder preset has no list {key}"))?;
        let last = list.last().cloned().context("an empty list")?;
        list.resize(5, last);
    }
    v["lat_channels"] = c.into();
    v["periodic"] = serde_json::to_value(periodic)?;
    v["name"] = format!("dcae_f16c{c}_{preset}_{rate}x").into();
    Ok(v)
}

fn emulator_config(kind: &str, preset: &str, c: usize) -> Result<Value> {
    let text = super::presets::resolve("--preset", kind, preset)?;
    let mut v: Value = serde_json::from_str(&text)?;
    v["channels"] = c.into();
    Ok(v)
}

/// A stage's command line, run in this process as `lemur ARGS` would run it.
struct Stage {
    label: String,
    args: Vec<String>,
}

fn quote(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=,:".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// The (step, total steps) of a training run's latest checkpoint, if it has one.
fn progress(run: &Path) -> Result<Option<(u64, u64)>> {
    let meta = run.join("checkpoint.json");
    if !meta.is_file() {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(
        &std::fs::read(&meta).with_context(|| format!("reading {}", meta.display()))?,
    )
    .with_context(|| format!("{}", meta.display()))?;
    let step = v["step"].as_u64();
    let total = v["options"]["steps"].as_u64();
    match (step, total) {
        (Some(s), Some(t)) => Ok(Some((s, t))),
        _ => bail!("{}: no step or options.steps", meta.display()),
    }
}

struct Experiment<'a> {
    args: &'a CompressionArgs,
    out: PathBuf,
    backend: Vec<String>,
    /// Every command of the experiment, in order (written to commands.sh).
    plan: Vec<String>,
    timings: serde_json::Map<String, Value>,
}

impl Experiment<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.out.join(rel)
    }

    fn s(p: &Path) -> String {
        p.to_string_lossy().into_owned()
    }

    /// Records the stage in the plan and runs it unless `done`.
    fn stage(&mut self, stage: Stage, done: bool) -> Result<()> {
        let line = std::iter::once("lemur".to_string())
            .chain(stage.args.iter().cloned())
            .map(|a| quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        self.plan.push(line.clone());
        self.write_plan()?;
        if done {
            eprintln!("lemur experiment: {} is done", stage.label);
            return Ok(());
        }
        eprintln!("lemur experiment: {}\n  {line}", stage.label);
        let start = Instant::now();
        let cli =
            crate::Cli::try_parse_from(std::iter::once("lemur".to_string()).chain(stage.args))
                .map_err(|e| anyhow::anyhow!("{}: {e}", stage.label))?;
        let result = crate::dispatch(cli.command);
        let spent = start.elapsed().as_secs_f64();
        let before = self.timings.get(&stage.label).and_then(Value::as_f64);
        self.timings
            .insert(stage.label.clone(), (before.unwrap_or(0.0) + spent).into());
        self.write_timings()?;
        result.with_context(|| format!("lemur experiment: {}", stage.label))
    }

    fn write_plan(&self) -> Result<()> {
        let mut text = String::from(
            "#!/bin/sh\n# The commands of this experiment (`lemur experiment compression`), in order.\nset -e\n",
        );
        for line in &self.plan {
            text.push_str(line);
            text.push('\n');
        }
        write(&self.path("commands.sh"), text.as_bytes())
    }

    fn write_timings(&self) -> Result<()> {
        write(
            &self.path("timings.json"),
            &serde_json::to_vec_pretty(&Value::Object(self.timings.clone()))?,
        )
    }

    /// A training stage: new, resumed (with the requested total steps) or done.
    fn train(
        &mut self,
        kind: &str,
        run: &Path,
        config: &Path,
        source: (&str, &Path),
        steps: u32,
    ) -> Result<u64> {
        let label = format!("train {}", run.file_name().unwrap().to_string_lossy());
        let common = [
            "--steps".to_string(),
            steps.to_string(),
            "--batch".into(),
            self.args.batch.to_string(),
            "--lr".into(),
            self.args.lr.to_string(),
            "--warmup".into(),
            (steps / 20).to_string(),
            "--checkpoint-every".into(),
            (steps / 10).max(1).to_string(),
            "--log-every".into(),
            (steps / 20).max(1).to_string(),
            "--optimizer".into(),
            self.args.optimizer.clone(),
        ];
        let fresh: Vec<String> = ["train", kind, source.0, &Self::s(source.1)]
            .iter()
            .map(|s| s.to_string())
            .chain(["--config".into(), Self::s(config)])
            .chain(["--out".into(), Self::s(run)])
            .chain(common.iter().cloned())
            .chain(self.backend.iter().cloned())
            .collect();
        match progress(run)? {
            Some((step, _)) if step >= u64::from(steps) => {
                self.stage(Stage { label, args: fresh }, true)?;
                return Ok(step);
            }
            Some(_) => {
                // Continue the run to the requested total (the plan keeps the fresh command).
                self.plan.push(format!(
                    "# resumed: lemur train {kind} --resume {}",
                    Self::s(run)
                ));
                let args: Vec<String> = ["train", kind, "--resume", &Self::s(run)]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(["--steps".into(), steps.to_string()])
                    .chain(self.backend.iter().cloned())
                    .collect();
                self.stage(Stage { label, args }, false)?;
            }
            None => {
                if run.exists() {
                    // Stopped before its first checkpoint: nothing to keep.
                    std::fs::remove_dir_all(run)
                        .with_context(|| format!("removing the unfinished {}", run.display()))?;
                }
                self.stage(Stage { label, args: fresh }, false)?;
            }
        }
        Ok(progress(run)?
            .with_context(|| format!("{}: no checkpoint after training", run.display()))?
            .0)
    }

    fn eval(&mut self, run: &Path, name: &str, data: &Path, extra: &[String]) -> Result<PathBuf> {
        let step = progress(run)?.map_or(0, |p| p.0);
        let out = self.path(&format!("eval/{name}-step{step}"));
        let args: Vec<String> = [
            "eval",
            "--run",
            &Self::s(run),
            "--data",
            &Self::s(data),
            "--trajectories",
            &self.args.eval_trajectories.to_string(),
            "--out",
            &Self::s(&out),
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .chain(self.backend.iter().cloned())
        .collect();
        let done = out.join("summary.json").is_file();
        self.stage(
            Stage {
                label: format!("eval {name}"),
                args,
            },
            done,
        )?;
        Ok(out)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    lemur_tensor::params::write_atomic(path, bytes).map_err(Into::into)
}

/// One evaluation read back from its `metrics.csv`: per lead, the mean over fields of VRMSE
/// and of the spread-skill ratio.
struct Scores {
    vrmse: Vec<f64>,
    spread_skill: Vec<f64>,
}

fn scores(eval: &Path) -> Result<Scores> {
    let path = eval.join("metrics.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("{}: no column {name}", path.display()))
    };
    let (lead_c, vrmse_c, ss_c) = (col("lead")?, col("vrmse")?, col("spread_skill")?);
    let mut per_lead: Vec<(f64, f64, usize)> = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let num = |c: usize| -> Result<f64> {
            cells
                .get(c)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{}: line {}: column {c}", path.display(), i + 2))
        };
        let lead = num(lead_c)? as usize;
        if lead == 0 {
            bail!("{}: line {}: lead 0", path.display(), i + 2);
        }
        if per_lead.len() < lead {
            per_lead.resize(lead, (0.0, 0.0, 0));
        }
        let e = &mut per_lead[lead - 1];
        *e = (e.0 + num(vrmse_c)?, e.1 + num(ss_c)?, e.2 + 1);
    }
    if per_lead.is_empty() || per_lead.iter().any(|e| e.2 == 0) {
        bail!("{}: no scores for some lead", path.display());
    }
    Ok(Scores {
        vrmse: per_lead.iter().map(|e| e.0 / e.2 as f64).collect(),
        spread_skill: per_lead.iter().map(|e| e.1 / e.2 as f64).collect(),
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn compression(args: &CompressionArgs) -> Result<()> {
    let d = defaults(&args.preset)?;
    let (ae_steps, emu_steps) = (
        args.ae_steps.unwrap_or(d.ae_steps),
        args.emulator_steps.unwrap_or(d.emulator_steps),
    );
    if ae_steps == 0 || emu_steps == 0 {
        bail!("--ae-steps and --emulator-steps must be positive");
    }
    if args.rates.is_empty() {
        bail!("--rates: give at least one of 80, 320, 1280");
    }
    let channels: Vec<(u32, usize)> = args
        .rates
        .iter()
        .map(|&r| latent_channels(r).map(|c| (r, c)))
        .collect::<Result<_>>()?;
    if args.data.is_none() && (args.size == 0 || !args.size.is_multiple_of(16)) {
        bail!(
            "--size {}: the autoencoders downsample by 16, so the grid must be a positive multiple of 16",
            args.size
        );
    }
    if !["adamw", "soap"].contains(&args.optimizer.as_str()) {
        bail!("--optimizer {}: expected adamw or soap", args.optimizer);
    }
    if args.ensemble == 0 || args.eval_trajectories == 0 {
        bail!("--ensemble and --eval-trajectories must be positive");
    }
    super::common::check_out_dir(&args.out)?;
    std::fs::create_dir_all(args.out.join("configs"))
        .with_context(|| format!("creating {}", args.out.display()))?;
    let backend = match &args.backend {
        Some(b) => vec!["--backend".to_string(), b.clone()],
        None => vec![],
    };
    let timings = match std::fs::read(args.out.join("timings.json")) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        },
        Err(_) => serde_json::Map::new(),
    };
    let mut ex = Experiment {
        args,
        out: args.out.clone(),
        backend,
        plan: Vec::new(),
        timings,
    };
    let started = Instant::now();

    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let data = ex.path("data");
            let done = data.join("stats.json").is_file();
            let mut gen_args = vec![
                "generate".to_string(),
                "euler".into(),
                "--trajectories".into(),
                args.trajectories.to_string(),
                "--frames".into(),
                args.frames.to_string(),
                "--size".into(),
                format!("{0}x{0}", args.size),
                "--seed".into(),
                "0".into(),
                "--out".into(),
                Experiment::s(&data),
            ];
            if args.boundaries == "periodic" {
                gen_args.push("--periodic".into());
            }
            ex.stage(
                Stage {
                    label: "generate the data".into(),
                    args: gen_args,
                },
                done,
            )?;
            data
        }
    };

    // Runs of another optimizer are other runs: they never resume or stand in for these.
    let tag = match args.optimizer.as_str() {
        "adamw" => String::new(),
        o => format!("-{o}"),
    };
    let periodic = match &args.data {
        Some(d) => lemur_train::autoencoder::data_periodic(d).unwrap_or_default(),
        None => Periodic::from(args.boundaries == "periodic"),
    };
    let mut rows = Vec::new();
    for &(rate, c) in &channels {
        let configs: Vec<(String, Value)> = vec![
            (
                format!("ae-{rate}x"),
                ae_config(&args.preset, c, rate, periodic)?,
            ),
            (
                format!("denoiser-{rate}x"),
                emulator_config("denoiser", &args.preset, c)?,
            ),
            (
                format!("surrogate-{rate}x"),
                emulator_config("surrogate", &args.preset, c)?,
            ),
        ];
        for (name, v) in &configs {
            write(
                &ex.path(&format!("configs/{name}.json")),
                &serde_json::to_vec_pretty(v)?,
            )?;
        }
        let cfg = |name: &str| ex.path(&format!("configs/{name}-{rate}x.json"));
        let (ae_cfg, den_cfg, sur_cfg) = (cfg("ae"), cfg("denoiser"), cfg("surrogate"));

        let ae = ex.path(&format!("runs/ae-{rate}x{tag}"));
        let ae_step = ex.train("autoencoder", &ae, &ae_cfg, ("--data", &data), ae_steps)?;

        let latents = ex.path(&format!("latents/{rate}x{tag}-ae{ae_step}"));
        let done = latents.join("latents.json").is_file();
        let enc = [
            "encode",
            "--autoencoder",
            &Experiment::s(&ae),
            "--data",
            &Experiment::s(&data),
            "--out",
            &Experiment::s(&latents),
            "--augment",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(ex.backend.iter().cloned())
        .collect();
        ex.stage(
            Stage {
                label: format!("encode {rate}x"),
                args: enc,
            },
            done,
        )?;

        let dif = ex.path(&format!("runs/diffusion-{rate}x{tag}-ae{ae_step}"));
        let sur = ex.path(&format!("runs/surrogate-{rate}x{tag}-ae{ae_step}"));
        ex.train(
            "diffusion",
            &dif,
            &den_cfg,
            ("--latents", &latents),
            emu_steps,
        )?;
        ex.train(
            "surrogate",
            &sur,
            &sur_cfg,
            ("--latents", &latents),
            emu_steps,
        )?;

        let stride = ["--stride".to_string(), STRIDE.to_string()];
        let ae_eval = ex.eval(&ae, &format!("ae-{rate}x{tag}"), &data, &stride)?;
        let diffusion = [
            "--ensemble".to_string(),
            args.ensemble.to_string(),
            "--steps".into(),
            args.steps.to_string(),
            "--sampler".into(),
            "ab".into(),
        ];
        let dif_eval = ex.eval(
            &dif,
            &format!("diffusion-{rate}x{tag}-ae{ae_step}"),
            &data,
            &diffusion,
        )?;
        let sur_eval = ex.eval(
            &sur,
            &format!("surrogate-{rate}x{tag}-ae{ae_step}"),
            &data,
            &[],
        )?;
        rows.push((
            rate,
            c,
            scores(&ae_eval)?,
            scores(&dif_eval)?,
            scores(&sur_eval)?,
        ));
    }

    // The table.
    let leads = rows
        .iter()
        .map(|r| r.3.vrmse.len().min(r.4.vrmse.len()))
        .min()
        .unwrap_or(0);
    let ranges = lead_ranges(leads);
    let range_mean = |v: &[f64], (a, b): (usize, usize)| mean(&v[a - 1..b.min(v.len())]);
    let mut md = String::new();
    md.push_str(&format!(
        "# Compression experiment (`lemur experiment compression --preset {} --optimizer {}`)\n\n",
        args.preset, args.optimizer
    ));
    md.push_str(&format!(
        "VRMSE on the test split ({} trajectories, physical units, mean over fields), by latent \
         lead (one latent frame = {STRIDE} solver frames). Autoencoders: {ae_steps} steps; \
         emulators: {emu_steps} steps; diffusion: {} members, AB3 x {} steps. Spread-skill: \
         diffusion, leads > {}.\n\n",
        args.eval_trajectories, args.ensemble, args.steps, ranges[0].1
    ));
    let mut header = "| rate | latent channels | autoencoder |".to_string();
    let mut rule = "| --- | --- | --- |".to_string();
    for who in ["diffusion", "surrogate"] {
        for (a, b) in &ranges {
            header.push_str(&format!(" {who} {a}-{b} |"));
            rule.push_str(" --- |");
        }
    }
    header.push_str(" spread-skill |");
    rule.push_str(" --- |");
    md.push_str(&format!("{header}\n{rule}\n"));
    for (rate, c, ae, dif, sur) in &rows {
        let mut line = format!(
            "| {rate}x | {c} | {:.3} |",
            mean(&ae.vrmse[..leads.min(ae.vrmse.len())])
        );
        for s in [dif, sur] {
            for &r in &ranges {
                line.push_str(&format!(" {:.3} |", range_mean(&s.vrmse, r)));
            }
        }
        let late = &dif.spread_skill[ranges[0].1.min(leads - 1)..leads];
        let ss = if args.ensemble > 1 && !late.is_empty() {
            format!("{:.2}", mean(late))
        } else {
            "n/a".into()
        };
        line.push_str(&format!(" {ss} |"));
        md.push_str(&line);
        md.push('\n');
    }
    let total: f64 = ex.timings.values().filter_map(Value::as_f64).sum();
    md.push_str(&format!(
        "\nTime spent on the stages (all sittings, `timings.json`): {:.0} s. The commands: \
         `commands.sh`.\n",
        total
    ));
    write(&ex.path("compression.md"), md.as_bytes())?;

    // The plot: mean VRMSE against lead, one colour per rate; diffusion solid, surrogate
    // dashed, the autoencoder's reconstruction dashed in a lighter shade.
    let lighter = |c: [u8; 4]| [c[0] / 2 + 127, c[1] / 2 + 127, c[2] / 2 + 127, 255];
    let mut series = Vec::new();
    for (i, (rate, _, ae, dif, sur)) in rows.iter().enumerate() {
        let points = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(l, &y)| ((l + 1) as f64, y))
                .collect()
        };
        series.push(Series {
            name: format!("diffusion {rate}x"),
            points: points(&dif.vrmse),
            colour: palette(i),
            dashed: false,
        });
        series.push(Series {
            name: format!("surrogate {rate}x"),
            points: points(&sur.vrmse),
            colour: palette(i),
            dashed: true,
        });
        series.push(Series {
            name: format!("autoencoder {rate}x"),
            points: points(&ae.vrmse),
            colour: lighter(palette(i)),
            dashed: true,
        });
    }
    let plot = LinePlot {
        title: "VRMSE against lead time, by compression rate".into(),
        x_label: format!("lead (latent frames of {STRIDE} steps)"),
        y_label: "VRMSE".into(),
        log_y: true,
        series,
        ..Default::default()
    };
    write_png(&ex.path("compression.png"), &plot.render(760, 440))?;

    print!("{md}");
    eprintln!(
        "lemur experiment: wrote compression.md, compression.png, commands.sh and timings.json \
         to {} ({:.0} s in this sitting)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_give_their_compression_at_any_grid() {
        for (rate, size) in [
            (80u32, 64usize),
            (320, 64),
            (1280, 64),
            (80, 16),
            (1280, 32),
        ] {
            let c = latent_channels(rate).unwrap();
            let pixels = size * size * 5;
            let latent = (size / 16) * (size / 16) * c;
            assert_eq!(pixels / latent, rate as usize, "{rate}x at {size}");
            let v = ae_config("tiny", c, rate, true.into()).unwrap();
            assert_eq!(v["periodic"], true);
            assert_eq!(v["hid_channels"].as_array().unwrap().len(), 5);
            assert_eq!(v["hid_blocks"].as_array().unwrap().len(), 5);
            assert_eq!(v["lat_channels"], c);
        }
        assert!(latent_channels(100).is_err());
    }

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("runs/ae-80x"), "runs/ae-80x");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
