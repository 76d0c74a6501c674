//! The pretrained runs the app emulates with: an autoencoder, a diffusion run and a surrogate
//! run, each as the two files of a lemur checkpoint (`checkpoint.json` and
//! `model.safetensors`). There is one stored copy per [`PretrainedSet`], in
//! `web/pretrained/<set>` (F16, converted to f32 on load): natively it is embedded in the
//! binary, the browser fetches the same files.

use std::path::Path;

use lemur_models::dcae::DcaeConfig;
use lemur_models::vit::VitConfig;
use lemur_well::dataset::Stats;
use serde_json::Value;

use crate::error::{AppError, Result};

/// The three runs, by the names of their directories.
pub const RUNS: [&str; 3] = ["autoencoder", "diffusion", "surrogate"];

/// The embedded sets of pretrained runs, each in `web/pretrained/<dir>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PretrainedSet {
    /// Euler, periodic boundaries, 64x64 (`euler_multi_quadrants_periodicBC`).
    #[default]
    Euler64,
    /// Rayleigh-Bénard convection, 128x32 (`rayleigh_benard`).
    Rb128x32,
}

impl PretrainedSet {
    pub const ALL: [PretrainedSet; 2] = [PretrainedSet::Euler64, PretrainedSet::Rb128x32];

    /// The directory under `web/pretrained` (and the value of `--set` and `set=`).
    pub fn dir(self) -> &'static str {
        match self {
            PretrainedSet::Euler64 => "euler64",
            PretrainedSet::Rb128x32 => "rb128x32",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PretrainedSet::Euler64 => "Euler, periodic 64x64",
            PretrainedSet::Rb128x32 => "Rayleigh-Bénard 128x32",
        }
    }

    /// The set named `name` (its directory); the error names the accepted values.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.dir() == name)
            .ok_or_else(|| AppError::Setting {
                name: "set",
                value: name.into(),
                detail: format!("expected one of {}", Self::ALL.map(Self::dir).join(", ")),
            })
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn files(self) -> [RunFiles; 3] {
        macro_rules! run {
            ($set:literal, $name:literal) => {
                RunFiles {
                    source: concat!("web/pretrained/", $set, "/", $name).into(),
                    checkpoint: include_bytes!(concat!(
                        "../../../web/pretrained/",
                        $set,
                        "/",
                        $name,
                        "/checkpoint.json"
                    ))
                    .to_vec(),
                    weights: include_bytes!(concat!(
                        "../../../web/pretrained/",
                        $set,
                        "/",
                        $name,
                        "/model.safetensors"
                    ))
                    .to_vec(),
                }
            };
        }
        macro_rules! set {
            ($set:literal) => {
                [
                    run!($set, "autoencoder"),
                    run!($set, "diffusion"),
                    run!($set, "surrogate"),
                ]
            };
        }
        match self {
            PretrainedSet::Euler64 => set!("euler64"),
            PretrainedSet::Rb128x32 => set!("rb128x32"),
        }
    }
}

/// One run's two files.
#[derive(Clone)]
pub struct RunFiles {
    /// Where the files came from (a path or URL), for error messages.
    pub source: String,
    pub checkpoint: Vec<u8>,
    pub weights: Vec<u8>,
}

impl std::fmt::Debug for RunFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RunFiles({}, {} + {} bytes)",
            self.source,
            self.checkpoint.len(),
            self.weights.len()
        )
    }
}

/// Host tensors by parameter name: (shape, values).
pub use lemur_tensor::HostTensors;

/// A run's checkpoint, parsed.
#[derive(Clone, Debug)]
pub struct Run<C> {
    pub config: C,
    pub weights: HostTensors,
    pub source: String,
}

/// Everything the emulator needs, parsed and checked.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub autoencoder: Run<DcaeConfig>,
    pub diffusion: Run<VitConfig>,
    pub surrogate: Run<VitConfig>,
    /// Physical statistics (normalisation and transforms) of the autoencoder.
    pub stats: Stats,
    /// Latent frames per window and solver frames between latent frames.
    pub window: usize,
    pub stride: usize,
    /// The physical grid [H, W] the autoencoder was trained on.
    pub grid: [usize; 2],
    pub dataset_name: String,
    /// Frames each diffusion window takes from the previous one: the run's recommendation
    /// (`extra.rollout.overlap`), else 1.
    pub overlap: usize,
}

fn field<'a>(v: &'a Value, file: &str, name: &'static str) -> Result<&'a Value> {
    v.get(name).ok_or_else(|| AppError::Checkpoint {
        file: file.into(),
        field: name,
        detail: "missing".into(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(v: &Value, file: &str, name: &'static str) -> Result<T> {
    serde_json::from_value(field(v, file, name)?.clone()).map_err(|e| AppError::Checkpoint {
        file: file.into(),
        field: name,
        detail: e.to_string(),
    })
}

fn usize_at(v: &Value, file: &str, name: &'static str, key: &str) -> Result<usize> {
    field(v, file, name)?
        .get(key)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| AppError::Checkpoint {
            file: file.into(),
            field: name,
            detail: format!("no unsigned integer `{key}`"),
        })
}

impl RunFiles {
    fn json(&self) -> Result<(String, Value)> {
        let file = format!("{}/checkpoint.json", self.source);
        let v: Value = serde_json::from_slice(&self.checkpoint).map_err(|e| AppError::Weights {
            file: file.clone(),
            detail: format!("not a JSON checkpoint: {e}"),
        })?;
        Ok((file, v))
    }

    fn kind(&self) -> Result<(String, Value, String)> {
        let (file, v) = self.json()?;
        let kind: String = parse(&v, &file, "kind")?;
        Ok((file, v, kind))
    }

    fn tensors(&self) -> Result<HostTensors> {
        let path = format!("{}/model.safetensors", self.source);
        lemur_tensor::params::read_safetensors(&self.weights, Path::new(&path)).map_err(|e| {
            AppError::Weights {
                file: path,
                detail: e.to_string(),
            }
        })
    }
}

fn expect_kind(run: &RunFiles, want: &str) -> Result<(String, Value)> {
    let (file, v, kind) = run.kind()?;
    if kind != want {
        return Err(AppError::Checkpoint {
            file,
            field: "kind",
            detail: format!("`{kind}` where a {want} run was expected"),
        });
    }
    Ok((file, v))
}

fn vit_run(run: &RunFiles, kind: &str) -> Result<(Run<VitConfig>, Value, String)> {
    let (file, v) = expect_kind(run, kind)?;
    let config: VitConfig = parse(&v, &file, "model_config")?;
    config.validate().map_err(|e| AppError::Checkpoint {
        file: file.clone(),
        field: "model_config",
        detail: e.to_string(),
    })?;
    Ok((
        Run {
            config,
            weights: run.tensors()?,
            source: run.source.clone(),
        },
        v,
        file,
    ))
}

impl Bundle {
    /// Parses and cross-checks the three runs (autoencoder, diffusion, surrogate).
    pub fn parse(files: &[RunFiles; 3]) -> Result<Self> {
        let [ae, dif, sur] = files;
        let (ae_file, ae_v) = expect_kind(ae, "autoencoder")?;
        let ae_config: DcaeConfig = parse(&ae_v, &ae_file, "model_config")?;
        ae_config.validate().map_err(|e| AppError::Checkpoint {
            file: ae_file.clone(),
            field: "model_config",
            detail: e.to_string(),
        })?;
        let stats: Stats = parse(&ae_v, &ae_file, "stats")?;
        let c = stats.channels.len();
        if stats.mean.len() != c || stats.std.len() != c || stats.transforms.len() != c {
            return Err(AppError::Checkpoint {
                file: ae_file,
                field: "stats",
                detail: format!(
                    "{c} channels but {} means, {} stds and {} transforms",
                    stats.mean.len(),
                    stats.std.len(),
                    stats.transforms.len()
                ),
            });
        }
        let (diffusion, dif_v, dif_file) = vit_run(dif, "diffusion")?;
        if diffusion.config.schedule.is_none() || !diffusion.config.masked {
            return Err(AppError::Checkpoint {
                file: dif_file,
                field: "model_config",
                detail: "a diffusion emulator needs a `schedule` and `masked: true`".into(),
            });
        }
        let (surrogate, sur_v, sur_file) = vit_run(sur, "surrogate")?;
        let window = usize_at(&dif_v, &dif_file, "options", "window")?;
        let stride = usize_at(&dif_v, &dif_file, "options", "stride")?;
        let (w, s) = (
            usize_at(&sur_v, &sur_file, "options", "window")?,
            usize_at(&sur_v, &sur_file, "options", "stride")?,
        );
        if (w, s) != (window, stride) {
            return Err(AppError::Checkpoint {
                file: sur_file.clone(),
                field: "options",
                detail: format!(
                    "window {w} and stride {s} differ from the diffusion run's {window} and {stride}"
                ),
            });
        }
        for (run, v, file) in [
            (&diffusion, &dif_v, &dif_file),
            (&surrogate, &sur_v, &sur_file),
        ] {
            let lat = ae_config.lat_channels;
            if run.config.channels != lat {
                return Err(AppError::Checkpoint {
                    file: file.clone(),
                    field: "model_config",
                    detail: format!(
                        "{} latent channels, the autoencoder has {lat}",
                        run.config.channels
                    ),
                });
            }
            let step = v.pointer("/extra/autoencoder_step").and_then(Value::as_u64);
            let ae_step = ae_v
                .get("step")
                .and_then(Value::as_u64)
                .map(|s| lemur_models::dcae::latent_step(s, &ae_v["extra"]));
            if step.is_some() && step != ae_step {
                return Err(AppError::Checkpoint {
                    file: file.clone(),
                    field: "extra",
                    detail: format!(
                        "trained on latents of autoencoder step {step:?}, the autoencoder encodes as step {ae_step:?}"
                    ),
                });
            }
        }
        let overlap = lemur_models::rollout::recommended_overlap(&dif_v["extra"], window)
            .map_err(|detail| AppError::Checkpoint {
                file: dif_file.clone(),
                field: "extra",
                detail,
            })?
            .unwrap_or(1);
        let grid: [usize; 2] = dif_v
            .pointer("/extra/physical_data/grid")
            .or_else(|| ae_v.pointer("/data/grid"))
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .ok_or_else(|| AppError::Checkpoint {
                file: dif_file.clone(),
                field: "extra",
                detail: "no physical grid (`extra.physical_data.grid`)".into(),
            })?;
        Ok(Self {
            autoencoder: Run {
                config: ae_config,
                weights: ae.tensors()?,
                source: ae.source.clone(),
            },
            diffusion,
            surrogate,
            dataset_name: stats.dataset_name.clone(),
            stats,
            window,
            stride,
            grid,
            overlap,
        })
    }

    /// The runs of `set` embedded in the binary (`web/pretrained/<set>`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embedded_files(set: PretrainedSet) -> [RunFiles; 3] {
        set.files()
    }

    /// Reads the runs from a directory holding `autoencoder/`, `diffusion/` and `surrogate/`:
    /// packed runs (the two files side by side, e.g. `web/pretrained/euler64`) or run
    /// directories as `lemur train` and `lemur import` write them (the
    /// pointer `checkpoint.json` naming the checkpoint directory that holds the weights).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_dir(dir: &Path) -> Result<[RunFiles; 3]> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| AppError::Weights {
                file: p.display().to_string(),
                detail: e.to_string(),
            })
        };
        let one = |run: &str| -> Result<RunFiles> {
            let root = dir.join(run);
            let checkpoint = read(&root.join("checkpoint.json"))?;
            let packed = root.join("model.safetensors");
            let source = if packed.is_file() {
                root
            } else {
                let file = root.join("checkpoint.json");
                root.join(checkpoint_dir(&file.display().to_string(), &checkpoint)?)
            };
            Ok(RunFiles {
                weights: read(&source.join("model.safetensors"))?,
                source: source.display().to_string(),
                checkpoint,
            })
        };
        Ok([one(RUNS[0])?, one(RUNS[1])?, one(RUNS[2])?])
    }
}

/// The checkpoint directory a run's pointer `checkpoint.json` (`file`) names, where its weights
/// are: one plain name inside the run, never a path out of it.
pub fn checkpoint_dir(file: &str, checkpoint: &[u8]) -> Result<String> {
    let v: Value = serde_json::from_slice(checkpoint).map_err(|e| AppError::Weights {
        file: file.into(),
        detail: format!("not a JSON checkpoint: {e}"),
    })?;
    v.get("dir")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty() && !d.contains(['/', '\\']) && !matches!(*d, "." | ".."))
        .map(str::to_string)
        .ok_or_else(|| AppError::Checkpoint {
            file: file.into(),
            field: "dir",
            detail: "no model.safetensors beside it and no checkpoint directory named".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::checkpoint_dir;

    #[test]
    fn checkpoint_dirs_stay_inside_the_run() {
        let dir = |json: &str| checkpoint_dir("run/checkpoint.json", json.as_bytes());
        assert_eq!(dir(r#"{"dir": "step-00000010"}"#).unwrap(), "step-00000010");
        for bad in [r#"{"dir": "../x"}"#, r#"{"dir": "a/b"}"#, r#"{"dir": ""}"#] {
            let err = dir(bad).unwrap_err().to_string();
            assert!(
                err.contains("run/checkpoint.json") && err.contains("`dir`"),
                "{err}"
            );
        }
        for bad in [r#"{"dir": "."}"#, r#"{"dir": ".."}"#, r#"{"step": 3}"#] {
            assert!(dir(bad).is_err(), "{bad}");
        }
        let err = dir("{").unwrap_err().to_string();
        assert!(err.contains("not a JSON checkpoint"), "{err}");
    }
}
