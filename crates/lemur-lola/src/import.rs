//! A reference run converted to an ordinary lemur run (`lemur import lola RUN_DIR --out RUN`).
//!
//! The result has the layout `lemur train` writes (`checkpoint.json` pointing at
//! `step-00000000/` with `model.safetensors`, an empty `optimizer.safetensors` and the
//! metadata), so `rollout`, `eval`, `encode`, the app and `train --resume` take it:
//!
//! - weights: the state dict as is (lemur's models use the reference's parameter names), every
//!   name and shape checked against the model the configuration describes, in f32;
//! - model configuration: the reference's block converted option by option ([`crate::config`]);
//! - statistics: the dataset's fields, transforms, means and standard deviations;
//! - options: window and stride from `trajectory`, optimisation settings from `optim`/`train`;
//! - `extra.imported`: where it came from; `extra` of emulators also names the autoencoder run
//!   (itself imported, or trained by lemur) whose latents the emulator works on.
//!
//! The run is assembled in a hidden temporary directory beside `--out` and renamed into place
//! only when complete, so `--out` never holds half a run.

use std::path::{Path, PathBuf};

use lemur_models::dcae::{Dcae, DcaeConfig};
use lemur_models::diffusion::Denoiser;
use lemur_models::nn::Builder;
use lemur_models::surrogate::Surrogate;
use lemur_models::vit::VitConfig;
use lemur_tensor::{CpuBackend, ParamStore};
use lemur_train::ModelKind;
use lemur_train::provenance::{DataProvenance, FileEntry, absolute, git_revision};
use lemur_train::run::{self, CheckpointMeta, FORMAT, HostTensors, META_FILE, RunDir};
use serde_json::{Value as Json, json};

use crate::config::{CONFIG_FILE, LolaConfig, read_config};
use crate::error::{LolaError, Result, io_err};
use crate::pth::{StateDict, read_state};

/// The name under which an emulator's reference autoencoder is imported beside `--out`.
pub const AUTOENCODER_DIR: &str = "autoencoder";

/// What `lemur import lola` takes.
#[derive(Clone, Debug)]
pub struct ImportArgs {
    /// The reference run directory (`config.yaml` + `state.pth` or `state_best.pth`).
    pub src: PathBuf,
    /// The new lemur run directory.
    pub out: PathBuf,
    /// The autoencoder of an emulator run: a lemur run or a reference autoencoder run.
    pub autoencoder: Option<PathBuf>,
    /// The physical grid `[H, W]` of the data (the reference's configuration does not record
    /// it); for autoencoders, defaults to The Well's grid of known datasets.
    pub grid: Option<[usize; 2]>,
}

/// What was imported.
#[derive(Clone, Debug)]
pub struct Imported {
    pub kind: ModelKind,
    pub out: PathBuf,
    /// The state file read (`state.pth` or `state_best.pth`).
    pub state: PathBuf,
    pub tensors: usize,
    pub params: usize,
    /// The autoencoder run of an emulator and how it was found.
    pub autoencoder: Option<(PathBuf, String)>,
    /// The reference autoencoder imported on the way, if any.
    pub imported_autoencoder: Option<Box<Imported>>,
    /// Conversions and omissions worth telling the user.
    pub notes: Vec<String>,
}

/// The Well's grid of the datasets the reference's configurations name, `[H, W]`.
fn well_grid(physics: &[String]) -> Option<[usize; 2]> {
    let grid = |p: &str| -> Option<[usize; 2]> {
        if p.starts_with("euler_multi_quadrants") {
            Some([512, 512])
        } else if p.starts_with("rayleigh_benard") {
            Some([512, 128])
        } else {
            None
        }
    };
    let grids: Vec<_> = physics.iter().map(|p| grid(p)).collect();
    match grids.first() {
        Some(Some(g)) if grids.iter().all(|x| *x == Some(*g)) => Some(*g),
        _ => None,
    }
}

fn model_file_err(path: &Path, e: impl std::fmt::Display) -> LolaError {
    LolaError::Weights {
        path: path.into(),
        detail: e.to_string(),
    }
}

/// The model the configuration describes, built on the CPU: its parameters by name.
struct Built {
    params: ParamStore<CpuBackend>,
    count: usize,
    /// The normalised configuration stored in the checkpoint.
    config: Json,
}

fn build(cfg: &LolaConfig) -> Result<Built> {
    let config_err = |e: String| LolaError::Config {
        path: cfg.path.clone(),
        key: cfg.model_key.into(),
        detail: e,
    };
    let mut params = ParamStore::new();
    let b = &CpuBackend;
    match cfg.kind {
        ModelKind::Autoencoder => {
            let dcae: DcaeConfig = serde_json::from_value(cfg.model.clone())
                .map_err(|e| config_err(format!("{e}")))?;
            dcae.validate().map_err(|e| config_err(e.to_string()))?;
            let model = Dcae::new(&dcae, &mut Builder::new(b, &mut params, 0))
                .map_err(|e| config_err(e.to_string()))?;
            Ok(Built {
                count: model.param_count(),
                params,
                config: serde_json::to_value(&dcae).expect("a parsed configuration serialises"),
            })
        }
        kind => {
            let vit: VitConfig = serde_json::from_value(cfg.model.clone())
                .map_err(|e| config_err(format!("{e}")))?;
            vit.validate().map_err(|e| config_err(e.to_string()))?;
            let mut builder = Builder::new(b, &mut params, 0);
            let count = if kind == ModelKind::Diffusion {
                if !vit.masked {
                    return Err(LolaError::Unsupported {
                        path: cfg.path.clone(),
                        key: format!("{}.masked", cfg.model_key),
                        detail: "a denoiser without the context mask as condition".into(),
                    });
                }
                Denoiser::new(&vit, &mut builder).map_err(|e| config_err(e.to_string()))?;
                Denoiser::<CpuBackend>::param_count(&vit)
            } else {
                Surrogate::new(&vit, &mut builder).map_err(|e| config_err(e.to_string()))?;
                Surrogate::<CpuBackend>::param_count(&vit)
            };
            Ok(Built {
                count,
                params,
                config: serde_json::to_value(&vit).expect("a parsed configuration serialises"),
            })
        }
    }
}

/// Checks the state dict against the model: the same names, each with the same shape.
fn check_weights(state: &StateDict, built: &Built, cfg: &LolaConfig) -> Result<HostTensors> {
    let mut out = HostTensors::new();
    for (name, t) in built.params.iter() {
        let (shape, values) = state.tensors.get(name).ok_or_else(|| LolaError::Weights {
            path: state.path.clone(),
            detail: format!(
                "tensor `{name}` is missing, and the model {} describes has it (shape {:?})",
                cfg.path.display(),
                t.shape()
            ),
        })?;
        if shape[..] != *t.shape() {
            return Err(LolaError::Weights {
                path: state.path.clone(),
                detail: format!(
                    "tensor `{name}` has shape {shape:?}, and the configuration {} (`{}`) gives \
                     it shape {:?}",
                    cfg.path.display(),
                    cfg.model_key,
                    t.shape()
                ),
            });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(LolaError::Weights {
                path: state.path.clone(),
                detail: format!("tensor `{name}` holds a non-finite value at {i}"),
            });
        }
        out.insert(name.to_string(), (shape.clone(), values.clone()));
    }
    if let Some(extra) = state.tensors.keys().find(|k| !out.contains_key(*k)) {
        return Err(LolaError::Weights {
            path: state.path.clone(),
            detail: format!(
                "tensor `{extra}` is not a parameter of the model {} describes (`{}`)",
                cfg.path.display(),
                cfg.model_key
            ),
        });
    }
    Ok(out)
}

/// `src` holds a lemur run (its pointer file).
fn is_lemur_run(p: &Path) -> bool {
    p.join(META_FILE).is_file()
}

/// `src` holds a reference run.
fn is_reference_run(p: &Path) -> bool {
    p.join(CONFIG_FILE).is_file()
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| absolute(p))
}

/// Autoencoder runs already in `dir` (lemur runs of that kind), with the reference run each
/// was imported from, if any.
fn autoencoders_in(dir: &Path) -> Vec<(PathBuf, Option<PathBuf>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && is_lemur_run(p))
        .filter_map(|p| {
            // Read-only: opening a RunDir would take the run's training lock.
            let (_, meta) = run::locate(&p).ok()?;
            (meta.kind == ModelKind::Autoencoder).then(|| {
                let from = meta
                    .extra
                    .pointer("/imported/source")
                    .and_then(|s| s.as_str())
                    .map(PathBuf::from);
                (p, from)
            })
        })
        .collect();
    out.sort();
    out
}

/// The autoencoder of an emulator run, in the documented order: `--autoencoder`, an
/// autoencoder run already imported next to `--out`, the `autoencoder` link the reference
/// leaves in the run, then `ae_run`. A reference autoencoder run found this way is imported
/// first, to `<parent of --out>/autoencoder`.
fn resolve_autoencoder(
    args: &ImportArgs,
    cfg: &LolaConfig,
) -> Result<(PathBuf, String, Option<Box<Imported>>)> {
    let parent = out_parent(&args.out);
    let take = |p: &Path, how: String| -> Result<(PathBuf, String, Option<Box<Imported>>)> {
        if is_lemur_run(p) {
            return Ok((p.to_path_buf(), how, None));
        }
        if is_reference_run(p) {
            let dest = parent.join(AUTOENCODER_DIR);
            // Imported from this very run before (an earlier emulator of the same autoencoder).
            if autoencoders_in(&parent)
                .iter()
                .any(|(run, from)| *run == dest && from.as_deref() == Some(&*canonical(p)))
            {
                return Ok((dest, format!("{how}, imported before"), None));
            }
            if dest.exists() {
                return Err(LolaError::Usage(format!(
                    "{how} is the reference autoencoder run {}, to be imported to {}, which \
                     already exists and is not an autoencoder run imported from it; pass \
                     --autoencoder with an imported autoencoder run",
                    p.display(),
                    dest.display()
                )));
            }
            let sub = import(&ImportArgs {
                src: p.to_path_buf(),
                out: dest.clone(),
                autoencoder: None,
                grid: args.grid,
            })?;
            if sub.kind != ModelKind::Autoencoder {
                return Err(LolaError::Usage(format!(
                    "{how}: {} is a {} run, not an autoencoder",
                    p.display(),
                    sub.kind
                )));
            }
            return Ok((dest, format!("{how} (imported)"), Some(Box::new(sub))));
        }
        Err(LolaError::Missing {
            path: p.into(),
            hint: format!(
                " ({how}: expected a lemur run with {META_FILE} or a reference run with \
                 {CONFIG_FILE})"
            ),
        })
    };
    if let Some(p) = &args.autoencoder {
        return take(p, format!("--autoencoder {}", p.display()));
    }
    if cfg.ae_run == Some(None) {
        return Err(LolaError::Unsupported {
            path: cfg.path.clone(),
            key: "ae_run".into(),
            detail: "an emulator trained on physical fields (ae_run: null; lemur emulates in \
                     an autoencoder's latent space)"
                .into(),
        });
    }
    let link = args.src.join("autoencoder");
    let link_target = std::fs::read_link(&link).ok();
    let reference_ae: Vec<PathBuf> = [
        link_target.clone().map(|t| args.src.join(t)),
        cfg.ae_run.clone().flatten(),
    ]
    .into_iter()
    .flatten()
    .map(|p| canonical(&p))
    .collect();
    let near = autoencoders_in(&parent);
    // The reference names runs uniquely (`{runid}_{dataset}_{ae name}`), so a run imported on
    // this machine from a copy of the autoencoder `ae_run` names matches by its last component.
    let same_run =
        |f: &Path, r: &Path| canonical(f) == *r || f == r || f.file_name() == r.file_name();
    let matching: Vec<_> = near
        .iter()
        .filter(|(_, from)| {
            from.as_ref()
                .is_some_and(|f| reference_ae.iter().any(|r| same_run(f, r)))
        })
        .collect();
    let pick = match (&matching[..], &near[..]) {
        ([one], _) => Some(one.0.clone()),
        ([], [one]) => Some(one.0.clone()),
        _ => None,
    };
    if let Some(p) = pick {
        let mut how = format!("the autoencoder run next to --out, {}", p.display());
        if matching.is_empty()
            && let (Some((_, Some(from))), Some(r)) = (near.first(), reference_ae.first())
        {
            // The only candidate, but imported from another run than the one recorded: say so.
            how.push_str(&format!(
                "; note: it was imported from {}, and this run was trained on {}",
                from.display(),
                r.display()
            ));
        }
        return Ok((p.clone(), how, None));
    }
    if near.len() > 1 {
        return Err(LolaError::Usage(format!(
            "several autoencoder runs next to {} ({}); choose one with --autoencoder",
            args.out.display(),
            near.iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if link.is_dir() {
        return take(&link, format!("the link {}", link.display()));
    }
    if let Some(Some(ae)) = &cfg.ae_run
        && ae.is_dir()
    {
        return take(ae, format!("ae_run {}", ae.display()));
    }
    Err(LolaError::Usage(format!(
        "{}: no autoencoder for this {} run: no --autoencoder, no autoencoder run next to {} \
         (in {}), {}, and ae_run {}. Import the reference autoencoder first \
         (lemur import lola AE_RUN --out {}) or pass --autoencoder RUN",
        args.src.display(),
        cfg.kind,
        args.out.display(),
        parent.display(),
        match &link_target {
            Some(t) => format!(
                "the link {} points at the missing {}",
                link.display(),
                t.display()
            ),
            None => format!("no link {}", link.display()),
        },
        match &cfg.ae_run {
            Some(Some(p)) => format!("{} does not exist here", p.display()),
            _ => "is not set".into(),
        },
        parent.join(AUTOENCODER_DIR).display()
    )))
}

fn out_parent(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Imports one reference run (and, for an emulator, its autoencoder when needed).
pub fn import(args: &ImportArgs) -> Result<Imported> {
    if !args.src.is_dir() {
        return Err(LolaError::Missing {
            path: args.src.clone(),
            hint: " (expected a reference run directory with config.yaml and state.pth)".into(),
        });
    }
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(LolaError::Usage(format!(
            "--out {}: already exists; choose a new directory",
            args.out.display()
        )));
    }
    let cfg = read_config(&args.src)?;
    let state = read_state(&args.src)?;
    let built = build(&cfg)?;
    let weights = check_weights(&state, &built, &cfg)?;
    let mut notes = cfg.notes.clone();
    let files = vec![FileEntry::of(&cfg.path)?, FileEntry::of(&state.path)?];
    let mut record = cfg.record.clone();
    record["format"] = json!("lola");
    record["source"] = json!(canonical(&args.src));
    record["state"] = json!(state.path.file_name().map(|n| n.to_string_lossy()));
    let half: Vec<&String> = state
        .dtypes
        .iter()
        .filter(|(_, d)| **d != crate::pth::Dtype::F32)
        .map(|(k, _)| k)
        .collect();
    if !half.is_empty() {
        notes.push(format!(
            "{} tensors stored in 16-bit floats were converted to f32",
            half.len()
        ));
    }
    let datasets_root = record
        .get("datasets")
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("lola:{}", cfg.stats.dataset_name)));
    let (stats, data, extra, autoencoder, imported_autoencoder) = match cfg.kind {
        ModelKind::Autoencoder => {
            let dcae: DcaeConfig =
                serde_json::from_value(built.config.clone()).expect("validated above");
            let physics: Vec<String> =
                serde_json::from_value(record["physics"].clone()).unwrap_or_default();
            let grid = args.grid.or_else(|| well_grid(&physics)).ok_or_else(|| {
                LolaError::Usage(format!(
                    "{}: the configuration does not record the grid of dataset.physics {physics:?}; \
                     give it with --grid HxW",
                    cfg.path.display()
                ))
            })?;
            let latent = dcae
                .latent_shape(grid[0], grid[1])
                .map_err(|e| LolaError::Usage(format!("--grid {}x{}: {e}", grid[0], grid[1])))?;
            let data = DataProvenance {
                kind: "lola".into(),
                root: datasets_root,
                files,
                channels: cfg.stats.channels.clone(),
                grid,
            };
            let extra = json!({ "latent_shape": latent, "imported": record });
            (cfg.stats.clone(), data, extra, None, None)
        }
        _ => {
            let (ae_path, how, sub) = resolve_autoencoder(args, &cfg)?;
            let (ae_dir, ae_meta) = run::locate(&ae_path)?;
            if ae_meta.kind != ModelKind::Autoencoder {
                return Err(LolaError::Usage(format!(
                    "{how}: {} is a {} run, not an autoencoder",
                    ae_dir.display(),
                    ae_meta.kind
                )));
            }
            let dcae: DcaeConfig = serde_json::from_value(ae_meta.model_config.clone())
                .map_err(|e| LolaError::Usage(format!("{}: {e}", ae_dir.display())))?;
            let channels = built.config["channels"].as_u64().unwrap_or(0) as usize;
            if channels != dcae.lat_channels {
                return Err(LolaError::Config {
                    path: cfg.path.clone(),
                    key: format!("{}.channels", cfg.model_key),
                    detail: format!(
                        "{channels} latent channels, but the autoencoder {} has {}",
                        ae_dir.display(),
                        dcae.lat_channels
                    ),
                });
            }
            if ae_meta.stats.channels != cfg.stats.channels {
                return Err(LolaError::Config {
                    path: cfg.path.clone(),
                    key: "dataset.fields".into(),
                    detail: format!(
                        "{:?}, but the autoencoder {} encodes {:?}",
                        cfg.stats.channels,
                        ae_dir.display(),
                        ae_meta.stats.channels
                    ),
                });
            }
            if ae_meta.stats.mean != cfg.stats.mean || ae_meta.stats.std != cfg.stats.std {
                notes.push(
                    "dataset.stats differ from the autoencoder's; the autoencoder's normalisation \
                     is used (it defines the latents), as in the reference"
                        .into(),
                );
            }
            let physical = ae_meta.data.clone();
            let [h, w] = physical.grid;
            if let Some(g) = args.grid
                && g != [h, w]
            {
                notes.push(format!(
                    "--grid {}x{} is not used: an emulator works on its autoencoder's grid, {h}x{w}",
                    g[0], g[1]
                ));
            }
            let latent = dcae
                .latent_shape(h, w)
                .map_err(|e| LolaError::Usage(format!("{}: {e}", ae_dir.display())))?;
            let labels = built.config["label_features"].as_u64().unwrap_or(0);
            let data = DataProvenance {
                kind: "lola".into(),
                root: datasets_root,
                files,
                channels: (0..latent[0]).map(|i| format!("latent.{i}")).collect(),
                grid: [latent[1], latent[2]],
            };
            let ae_run = absolute(&ae_path);
            let extra = json!({
                "latent_shape": latent,
                "label_count": labels,
                "autoencoder_path": ae_run,
                "autoencoder_step": ae_meta.step,
                "autoencoder_config": ae_meta.model_config,
                "autoencoder_git_revision": ae_meta.git_revision,
                "physical_data": physical,
                "imported": record,
            });
            (ae_meta.stats.clone(), data, extra, Some((ae_run, how)), sub)
        }
    };
    let mut options = cfg.options.clone();
    options.validate().map_err(|e| LolaError::Config {
        path: cfg.path.clone(),
        key: "optim | train".into(),
        detail: e.to_string(),
    })?;
    // A fresh schedule for fine-tuning: lemur's default length, changed with --steps.
    options.steps = lemur_train::TrainOptions::defaults().steps;
    notes.push(
        "the reference saves weights only: fine-tuning (train --resume) starts the optimizer \
         from fresh moments"
            .into(),
    );
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let meta = CheckpointMeta {
        format: FORMAT.into(),
        kind: cfg.kind,
        step: 0,
        dir: String::new(),
        model_config: built.config.clone(),
        options,
        backend: "pytorch (reference implementation)".into(),
        stats,
        data,
        extra,
        git_revision: git_revision(),
        loss: None,
        val_loss: None,
        params: built.count,
        elapsed_s: 0.0,
        created_unix: created,
    };
    write_run(&args.out, &meta, &weights)?;
    Ok(Imported {
        kind: cfg.kind,
        out: args.out.clone(),
        state: state.path.clone(),
        tensors: weights.len(),
        params: built.count,
        autoencoder,
        imported_autoencoder,
        notes,
    })
}

/// Writes the run into a temporary directory beside `out`, then renames it into place.
fn write_run(out: &Path, meta: &CheckpointMeta, weights: &HostTensors) -> Result<()> {
    let parent = out_parent(out);
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            LolaError::Usage(format!("--out {}: not a directory name", out.display()))
        })?;
    let tmp = parent.join(format!(".{name}.import-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    let result = (|| -> Result<()> {
        let run = RunDir::create(&tmp)?;
        run.write_checkpoint(meta, weights, &HostTensors::new())
            .map_err(|e| model_file_err(&tmp, e))?;
        // An empty directory given as --out is replaced (rename(2) allows it).
        if out.exists() {
            std::fs::remove_dir(out).map_err(io_err(out))?;
        }
        std::fs::rename(&tmp, out).map_err(io_err(out))?;
        Ok(())
    })();
    if result.is_err() && tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
