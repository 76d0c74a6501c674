//! A reference run's `config.yaml`: the composed configuration the reference saves beside its
//! weights (OmegaConf, so names may still hold `${...}` interpolations, kept as text).
//!
//! What is read: the model block (`ae`, `denoiser` or `surrogate`, which also says the kind of
//! run), the dataset's fields, per-field transforms and statistics (the normalisation, applied
//! as the reference's `field_preprocess`: transform, then `(x - mean) / std`), the trajectory
//! window and stride of emulators, `ae_run`, and the optimisation settings as defaults for
//! fine-tuning. Every model option is either converted to lemur's configuration, ignored
//! because it cannot change the model's outputs (`checkpointing`, `name`), or refused by name.

use std::path::{Path, PathBuf};

use lemur_train::{ModelKind, TrainOptions};
use lemur_well::dataset::{Stats, Transform};
use serde_json::{Value as Json, json};
use serde_yaml_ng::Value as Yaml;

use crate::error::{LolaError, Result, io_err};

/// The configuration file of a run directory.
pub const CONFIG_FILE: &str = "config.yaml";

/// A reference configuration, converted.
#[derive(Clone, Debug)]
pub struct LolaConfig {
    pub path: PathBuf,
    pub kind: ModelKind,
    /// `ae`, `denoiser` or `surrogate`.
    pub model_key: &'static str,
    /// lemur's model configuration (the JSON `lemur train` stores), not yet validated.
    pub model: Json,
    /// Normalisation statistics of the physical fields.
    pub stats: Stats,
    /// Latent frames per window and physical steps between them (1 and 1 for autoencoders).
    pub window: usize,
    pub stride: usize,
    /// `ae_run`: absent (`None`), null (`Some(None)`: a pixel-space emulator), or a path.
    pub ae_run: Option<Option<PathBuf>>,
    /// Optimisation settings for fine-tuning, from `optim` and `train`.
    pub options: TrainOptions,
    /// What was converted or left out, for the user.
    pub notes: Vec<String>,
    /// The reference's record of the run (update steps, optimizer, physics), kept in the
    /// imported checkpoint's `extra`.
    pub record: Json,
}

/// Typed access to the YAML tree with errors naming the file and the dotted key.
struct Doc<'a> {
    path: &'a Path,
}

impl Doc<'_> {
    fn err(&self, key: &str, detail: impl Into<String>) -> LolaError {
        LolaError::Config {
            path: self.path.into(),
            key: key.into(),
            detail: detail.into(),
        }
    }

    fn unsupported(&self, key: &str, detail: impl Into<String>) -> LolaError {
        LolaError::Unsupported {
            path: self.path.into(),
            key: key.into(),
            detail: detail.into(),
        }
    }

    fn describe(v: &Yaml) -> String {
        match v {
            Yaml::String(s) if s.contains("${") => {
                format!("the unresolved interpolation {s:?}")
            }
            Yaml::String(s) => format!("the string {s:?}"),
            Yaml::Null => "null".into(),
            Yaml::Bool(b) => format!("{b}"),
            Yaml::Number(n) => format!("{n}"),
            Yaml::Sequence(_) => "a list".into(),
            Yaml::Mapping(_) => "a mapping".into(),
            Yaml::Tagged(_) => "a tagged value".into(),
        }
    }

    fn usize(&self, v: &Yaml, key: &str) -> Result<usize> {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "expected a non-negative integer, found {}",
                        Self::describe(v)
                    ),
                )
            })
    }

    fn f64(&self, v: &Yaml, key: &str) -> Result<f64> {
        v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            self.err(
                key,
                format!("expected a number, found {}", Self::describe(v)),
            )
        })
    }

    fn bool(&self, v: &Yaml, key: &str) -> Result<bool> {
        v.as_bool().ok_or_else(|| {
            self.err(
                key,
                format!("expected true or false, found {}", Self::describe(v)),
            )
        })
    }

    fn str<'v>(&self, v: &'v Yaml, key: &str) -> Result<&'v str> {
        v.as_str().ok_or_else(|| {
            self.err(
                key,
                format!("expected a string, found {}", Self::describe(v)),
            )
        })
    }

    fn list<'v>(&self, v: &'v Yaml, key: &str) -> Result<&'v [Yaml]> {
        v.as_sequence()
            .map(|s| s.as_slice())
            .ok_or_else(|| self.err(key, format!("expected a list, found {}", Self::describe(v))))
    }

    fn usizes(&self, v: &Yaml, key: &str) -> Result<Vec<usize>> {
        self.list(v, key)?
            .iter()
            .enumerate()
            .map(|(i, x)| self.usize(x, &format!("{key}[{i}]")))
            .collect()
    }

    fn f64s(&self, v: &Yaml, key: &str) -> Result<Vec<f64>> {
        self.list(v, key)?
            .iter()
            .enumerate()
            .map(|(i, x)| self.f64(x, &format!("{key}[{i}]")))
            .collect()
    }

    /// One integer for every axis, given as one number or as a list of equal numbers.
    fn uniform(&self, v: &Yaml, key: &str, axes: usize) -> Result<usize> {
        if v.is_sequence() {
            let l = self.usizes(v, key)?;
            if l.len() != axes {
                return Err(self.err(key, format!("a list of {} for {axes} axes", l.len())));
            }
            if l.iter().any(|&x| x != l[0]) {
                return Err(self.unsupported(key, format!("a different value per axis ({l:?})")));
            }
            Ok(l[0])
        } else {
            self.usize(v, key)
        }
    }

    fn map<'v>(&self, v: &'v Yaml, key: &str) -> Result<&'v serde_yaml_ng::Mapping> {
        v.as_mapping().ok_or_else(|| {
            self.err(
                key,
                format!("expected a mapping, found {}", Self::describe(v)),
            )
        })
    }

    fn get<'v>(&self, m: &'v serde_yaml_ng::Mapping, parent: &str, key: &str) -> Result<&'v Yaml> {
        m.get(key)
            .ok_or_else(|| self.err(&join(parent, key), "missing"))
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.into()
    } else {
        format!("{parent}.{key}")
    }
}

/// Entries of a mapping with string keys.
fn entries<'v>(
    doc: &Doc<'_>,
    m: &'v serde_yaml_ng::Mapping,
    parent: &str,
) -> Result<Vec<(String, &'v Yaml)>> {
    m.iter()
        .map(|(k, v)| match k {
            Yaml::String(s) => Ok((s.clone(), v)),
            other => Err(doc.err(
                parent,
                format!("a key {} that is not a string", Doc::describe(other)),
            )),
        })
        .collect()
}

/// Reads `config.yaml` of a run directory (or the file itself).
pub fn read_config(path: &Path) -> Result<LolaConfig> {
    let file = if path.is_dir() {
        path.join(CONFIG_FILE)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(io_err(&file))?;
    parse_config(&text, &file)
}

/// Parses the text of a `config.yaml` (`path` names it in errors).
pub fn parse_config(text: &str, path: &Path) -> Result<LolaConfig> {
    let root: Yaml = serde_yaml_ng::from_str(text).map_err(|e| LolaError::Yaml {
        path: path.into(),
        detail: e.to_string(),
    })?;
    let doc = Doc { path };
    let top = doc.map(&root, "(top level)")?;
    let blocks: Vec<(&'static str, ModelKind)> = [
        ("ae", ModelKind::Autoencoder),
        ("denoiser", ModelKind::Diffusion),
        ("surrogate", ModelKind::Surrogate),
    ]
    .into_iter()
    .filter(|(k, _)| top.get(*k).is_some_and(|v| !v.is_null()))
    .collect();
    let (model_key, kind) = match blocks[..] {
        [one] => one,
        [] => {
            return Err(doc.err(
                "ae | denoiser | surrogate",
                "no model block: a reference run's configuration has one of `ae` (autoencoder), \
                 `denoiser` (diffusion) or `surrogate`",
            ));
        }
        _ => {
            return Err(doc.err(
                &blocks.iter().map(|b| b.0).collect::<Vec<_>>().join(", "),
                "more than one model block: a run trains one model",
            ));
        }
    };
    let mut notes = Vec::new();
    let dataset = doc.map(doc.get(top, "", "dataset")?, "dataset")?;
    let stats = read_stats(&doc, dataset)?;
    let dims = doc.list(
        doc.get(dataset, "dataset", "dimensions")?,
        "dataset.dimensions",
    )?;
    if dims.len() != 2 {
        return Err(doc.unsupported(
            "dataset.dimensions",
            format!(
                "{} spatial dimensions (lemur emulates 2-D fields)",
                dims.len()
            ),
        ));
    }
    let block = doc.map(doc.get(top, "", model_key)?, model_key)?;
    let mut options = TrainOptions::defaults();
    let model = match kind {
        ModelKind::Autoencoder => {
            let m = dcae_config(&doc, block, &mut notes, &mut options)?;
            let pix = m["pix_channels"].as_u64().unwrap_or(0) as usize;
            if pix != stats.channels.len() {
                return Err(doc.err(
                    "ae.pix_channels",
                    format!(
                        "{pix} channels, but dataset.fields lists {}",
                        stats.channels.len()
                    ),
                ));
            }
            m
        }
        _ => vit_config(&doc, block, model_key, kind, &mut notes)?,
    };
    let (window, stride) = match kind {
        ModelKind::Autoencoder => (1, 1),
        _ => read_trajectory(&doc, top)?,
    };
    options.window = window;
    options.stride = stride;
    if kind == ModelKind::Autoencoder {
        let augment = dataset.get("augment");
        options.augment = augment.is_some_and(|a| a.as_sequence().is_some_and(|s| !s.is_empty()));
    } else {
        options.augment = false;
        options.loss = if kind == ModelKind::Diffusion {
            "edm".into()
        } else {
            "mse".into()
        };
    }
    let record = read_optim(&doc, top, &mut options, &mut notes)?;
    let ae_run = match top.get("ae_run") {
        None => None,
        Some(Yaml::Null) => Some(None),
        Some(v) => Some(Some(PathBuf::from(doc.str(v, "ae_run")?))),
    };
    let physics: Vec<String> = dataset
        .get("physics")
        .and_then(|p| p.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // Emulators are conditioned on labels. lemur's Rayleigh-Benard labels are the natural logs
    // of the Rayleigh and Prandtl numbers, as the reference's `log_scalars` augmentation makes
    // them; a run trained without it saw the raw numbers and would be conditioned wrongly.
    let log_scalars = dataset
        .get("augment")
        .and_then(|a| a.as_sequence())
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some("log_scalars")));
    if kind != ModelKind::Autoencoder
        && physics.iter().any(|p| p.starts_with("rayleigh_benard"))
        && !log_scalars
    {
        return Err(doc.unsupported(
            "dataset.augment",
            "no log_scalars: the run was conditioned on the raw Rayleigh and Prandtl numbers, \
             and lemur's labels are their logs (the reference's log_scalars)",
        ));
    }
    let mut record = record;
    record["physics"] = json!(physics);
    record["reference_path"] = json!(top.get("path").and_then(|p| p.as_str()));
    record["datasets"] = json!(
        top.get("server")
            .and_then(|s| s.get("datasets"))
            .and_then(|d| d.as_str())
    );
    Ok(LolaConfig {
        path: path.into(),
        kind,
        model_key,
        model,
        stats,
        window,
        stride,
        ae_run,
        options,
        notes,
        record,
    })
}

fn read_stats(doc: &Doc<'_>, dataset: &serde_yaml_ng::Mapping) -> Result<Stats> {
    let fields: Vec<String> = doc
        .list(doc.get(dataset, "dataset", "fields")?, "dataset.fields")?
        .iter()
        .enumerate()
        .map(|(i, f)| {
            doc.str(f, &format!("dataset.fields[{i}]"))
                .map(String::from)
        })
        .collect::<Result<_>>()?;
    if fields.is_empty() {
        return Err(doc.err("dataset.fields", "no fields"));
    }
    let n = fields.len();
    let mut transforms = vec![Transform::Identity; n];
    if let Some(t) = dataset.get("transform").filter(|t| !t.is_null()) {
        for (k, v) in doc.map(t, "dataset.transform")? {
            let i = match k {
                Yaml::Number(_) => doc.usize(k, "dataset.transform")?,
                Yaml::String(s) => s.parse().map_err(|_| {
                    doc.err(
                        "dataset.transform",
                        format!("key {s:?} is not a field index"),
                    )
                })?,
                other => {
                    return Err(doc.err(
                        "dataset.transform",
                        format!("key {} is not a field index", Doc::describe(other)),
                    ));
                }
            };
            let key = format!("dataset.transform.{i}");
            if i >= n {
                return Err(doc.err(&key, format!("field index {i}, but there are {n} fields")));
            }
            transforms[i] = match doc.str(v, &key)? {
                "log1p" => Transform::Log1p,
                other @ ("log" | "log_eps" | "arcsinh") => {
                    return Err(doc.unsupported(
                        &key,
                        format!("the transform {other:?} (lemur has log1p and the identity)"),
                    ));
                }
                other => return Err(doc.err(&key, format!("unknown transform {other:?}"))),
            };
        }
    }
    let stats = doc.map(doc.get(dataset, "dataset", "stats")?, "dataset.stats")?;
    let mean = doc.f64s(
        doc.get(stats, "dataset.stats", "mean")?,
        "dataset.stats.mean",
    )?;
    let std = doc.f64s(doc.get(stats, "dataset.stats", "std")?, "dataset.stats.std")?;
    for (key, v) in [("dataset.stats.mean", &mean), ("dataset.stats.std", &std)] {
        if v.len() != n {
            return Err(doc.err(key, format!("{} values for {n} fields", v.len())));
        }
    }
    if let Some(i) = std.iter().position(|&s| s <= 0.0) {
        return Err(doc.err(
            &format!("dataset.stats.std[{i}]"),
            format!("{} is not a positive scale", std[i]),
        ));
    }
    let name = match dataset.get("name") {
        Some(v) => doc.str(v, "dataset.name")?.to_string(),
        None => "lola".into(),
    };
    Ok(Stats {
        dataset_name: name,
        channels: fields,
        transforms,
        mean,
        std,
        frames: 0,
    })
}

/// The DCAE block (`get_autoencoder` with `arch: dcae`) as lemur's `DcaeConfig` JSON.
fn dcae_config(
    doc: &Doc<'_>,
    block: &serde_yaml_ng::Mapping,
    notes: &mut Vec<String>,
    options: &mut TrainOptions,
) -> Result<Json> {
    let mut out = serde_json::Map::new();
    for (k, v) in entries(doc, block, "ae")? {
        let key = format!("ae.{k}");
        match k.as_str() {
            "name" => {
                out.insert("name".into(), json!(doc.str(v, &key)?));
            }
            "arch" => match v {
                Yaml::Null => {}
                _ => match doc.str(v, &key)? {
                    "dcae" => {}
                    other => {
                        return Err(doc.unsupported(
                            &key,
                            format!("the {other:?} autoencoder (lemur's is the DCAE)"),
                        ));
                    }
                },
            },
            "saturation" => {
                let s = match v {
                    Yaml::Null => Json::Null,
                    _ => match doc.str(v, &key)? {
                        s @ ("softclip" | "softclip2" | "rmsnorm") => json!(s),
                        s @ ("tanh" | "arcsinh") => {
                            return Err(doc.unsupported(&key, format!("the saturation {s:?}")));
                        }
                        s => return Err(doc.err(&key, format!("unknown saturation {s:?}"))),
                    },
                };
                out.insert("saturation".into(), s);
            }
            "latent_noise" => {
                let noise = doc.f64(v, &key)?;
                if noise != 0.0 {
                    // The reference's training path decodes without it (AutoEncoder.forward
                    // calls the decoder directly), so lemur's run keeps it off too.
                    notes.push(format!(
                        "{key} {noise} is not applied, as in the reference's training path"
                    ));
                }
            }
            "lat_channels" | "pix_channels" | "ffn_factor" => {
                out.insert(k.clone(), json!(doc.usize(v, &key)?));
            }
            "spatial" => {
                let s = doc.usize(v, &key)?;
                if s != 2 {
                    return Err(doc.unsupported(&key, format!("{s} spatial dimensions")));
                }
                out.insert(k.clone(), json!(s));
            }
            "hid_channels" | "hid_blocks" => {
                out.insert(k.clone(), json!(doc.usizes(v, &key)?));
            }
            "pixel_shuffle" | "identity_init" | "periodic" => {
                out.insert(k.clone(), json!(doc.bool(v, &key)?));
            }
            "norm" => {
                let norm = doc.str(v, &key)?;
                if norm != "layer" {
                    return Err(doc.unsupported(&key, format!("the {norm:?} normalisation")));
                }
                out.insert(k.clone(), json!(norm));
            }
            // Only read by group normalisation, which is refused above.
            "groups" => {
                doc.usize(v, &key)?;
            }
            "attention_heads" => {
                let empty = match v {
                    Yaml::Null => true,
                    Yaml::Mapping(m) => m.is_empty(),
                    _ => false,
                };
                if !empty {
                    return Err(doc.unsupported(
                        &key,
                        "self-attention in the DCAE's blocks (attention_heads must be {})",
                    ));
                }
            }
            "dropout" => {
                let p = match v {
                    Yaml::Null => Json::Null,
                    _ => json!(doc.f64(v, &key)?),
                };
                out.insert(k.clone(), p);
            }
            // Recomputes activations in the backward pass: memory only, same outputs.
            "checkpointing" => {
                doc.bool(v, &key)?;
            }
            "kernel_size" => {
                out.insert(k.clone(), json!(doc.uniform(v, &key, 2)?));
            }
            "patch_size" => {
                out.insert(k.clone(), json!(doc.uniform(v, &key, 2)?));
            }
            "stride" => {
                let s = doc.uniform(v, &key, 2)?;
                if s != 2 {
                    return Err(doc.unsupported(&key, format!("resampling by {s} (lemur's is 2)")));
                }
            }
            "encoder_only" | "decoder_only" => {
                let empty = match v {
                    Yaml::Null => true,
                    Yaml::Mapping(m) => m.is_empty(),
                    _ => false,
                };
                if !empty {
                    return Err(
                        doc.unsupported(&key, "an encoder and a decoder with different options")
                    );
                }
            }
            "loss" => {
                options.loss = ae_loss(doc, v)?;
            }
            _ => {
                return Err(doc.unsupported(&key, "this option (unknown to lemur's importer)"));
            }
        }
    }
    for key in ["lat_channels", "pix_channels", "hid_channels", "hid_blocks"] {
        if !out.contains_key(key) {
            return Err(doc.err(&format!("ae.{key}"), "missing"));
        }
    }
    out.insert("arch".into(), json!("dcae"));
    Ok(Json::Object(out))
}

/// `ae.loss` (`AutoEncoderLoss`): one of lemur's losses.
fn ae_loss(doc: &Doc<'_>, v: &Yaml) -> Result<String> {
    let m = doc.map(v, "ae.loss")?;
    let losses = match m.get("losses") {
        Some(l) => doc
            .list(l, "ae.loss.losses")?
            .iter()
            .enumerate()
            .map(|(i, x)| {
                doc.str(x, &format!("ae.loss.losses[{i}]"))
                    .map(String::from)
            })
            .collect::<Result<Vec<_>>>()?,
        None => vec!["mse".into()],
    };
    match &losses[..] {
        [one] if matches!(one.as_str(), "vrmse" | "mse" | "mae") => Ok(one.clone()),
        [one] => Err(doc.unsupported("ae.loss.losses", format!("the loss {one:?}"))),
        _ => Err(doc.unsupported(
            "ae.loss.losses",
            format!("a weighted sum of losses {losses:?} (lemur trains with one)"),
        )),
    }
}

/// The ViT block of a denoiser (`get_denoiser`) or surrogate (`get_surrogate`) as lemur's
/// `VitConfig` JSON.
fn vit_config(
    doc: &Doc<'_>,
    block: &serde_yaml_ng::Mapping,
    parent: &str,
    kind: ModelKind,
    notes: &mut Vec<String>,
) -> Result<Json> {
    let mut out = serde_json::Map::new();
    let diffusion = kind == ModelKind::Diffusion;
    let mut patch: Option<Json> = None;
    let mut unpatch: Option<(String, Json)> = None;
    for (k, v) in entries(doc, block, parent)? {
        let key = format!("{parent}.{k}");
        match k.as_str() {
            "name" => {
                out.insert("name".into(), json!(doc.str(v, &key)?));
            }
            "arch" => match v {
                Yaml::Null => {}
                _ => match doc.str(v, &key)? {
                    "vit" | "dit" => {}
                    other => {
                        return Err(doc.unsupported(
                            &key,
                            format!("the {other:?} backbone (lemur's is the ViT)"),
                        ));
                    }
                },
            },
            "channels" | "emb_features" | "label_features" | "hid_channels" | "hid_blocks"
            | "ffn_factor" | "attention_heads" | "spatial" => {
                out.insert(k.clone(), json!(doc.usize(v, &key)?));
            }
            "qk_norm" | "rope" => {
                out.insert(k.clone(), json!(doc.bool(v, &key)?));
            }
            "masked" if diffusion => {
                out.insert(k.clone(), json!(doc.bool(v, &key)?));
            }
            "patch_size" => {
                let p = if v.is_sequence() {
                    let l = doc.usizes(v, &key)?;
                    if l.len() != 3 {
                        return Err(doc.err(
                            &key,
                            format!("{} entries; the ViT's patch is over (L, H, W): 3", l.len()),
                        ));
                    }
                    json!(l)
                } else {
                    json!(doc.usize(v, &key)?)
                };
                patch = Some(p.clone());
                out.insert(k.clone(), p);
            }
            "unpatch_size" => {
                if !v.is_null() {
                    let p = if v.is_sequence() {
                        json!(doc.usizes(v, &key)?)
                    } else {
                        json!(doc.usize(v, &key)?)
                    };
                    unpatch = Some((key.clone(), p));
                }
            }
            "window_size" => {
                if !v.is_null() {
                    return Err(
                        doc.unsupported(&key, "local attention windows (window_size must be null)")
                    );
                }
            }
            "dropout" => {
                let p = match v {
                    Yaml::Null => Json::Null,
                    _ => json!(doc.f64(v, &key)?),
                };
                out.insert(k.clone(), p);
            }
            "checkpointing" => {
                doc.bool(v, &key)?;
            }
            "schedule" if diffusion => {
                out.insert("schedule".into(), schedule(doc, v, &key)?);
            }
            "loss" if diffusion => denoiser_loss(doc, v, &key)?,
            // `get_denoiser` accepts and ignores it.
            "precondition" if diffusion => {
                notes.push(format!("{key} is ignored, as the reference ignores it"));
            }
            _ => {
                return Err(doc.unsupported(&key, "this option (unknown to lemur's importer)"));
            }
        }
    }
    if let Some((key, u)) = unpatch {
        let same = |p: &Json, u: &Json| {
            let expand = |j: &Json| -> Option<Vec<u64>> {
                match j {
                    Json::Number(n) => n.as_u64().map(|x| vec![x; 3]),
                    Json::Array(a) => a.iter().map(|x| x.as_u64()).collect(),
                    _ => None,
                }
            };
            expand(p) == expand(u)
        };
        if !same(patch.as_ref().unwrap_or(&json!(1)), &u) {
            return Err(doc.unsupported(
                &key,
                format!("an unpatch size {u} other than the patch size"),
            ));
        }
    }
    for key in ["channels", "hid_channels", "hid_blocks"] {
        if !out.contains_key(key) {
            return Err(doc.err(&format!("{parent}.{key}"), "missing"));
        }
    }
    if diffusion && !out.contains_key("schedule") {
        return Err(doc.err(&format!("{parent}.schedule"), "missing"));
    }
    out.insert("arch".into(), json!("vit"));
    Ok(Json::Object(out))
}

fn schedule(doc: &Doc<'_>, v: &Yaml, parent: &str) -> Result<Json> {
    let m = doc.map(v, parent)?;
    let mut out = serde_json::Map::new();
    for (k, v) in entries(doc, m, parent)? {
        let key = format!("{parent}.{k}");
        match k.as_str() {
            "name" => match doc.str(v, &key)? {
                s @ ("log_linear" | "log_logit") => {
                    out.insert("name".into(), json!(s));
                }
                s => return Err(doc.unsupported(&key, format!("the schedule {s:?}"))),
            },
            "sigma_min" | "sigma_max" | "scale" | "shift" => {
                out.insert(k.clone(), json!(doc.f64(v, &key)?));
            }
            _ => return Err(doc.unsupported(&key, "this schedule option")),
        }
    }
    if !out.contains_key("name") {
        return Err(doc.err(&format!("{parent}.name"), "missing"));
    }
    Ok(Json::Object(out))
}

/// `denoiser.loss` (`DenoiserLoss`): lemur trains with t ~ U(0, 1), the reference's default.
fn denoiser_loss(doc: &Doc<'_>, v: &Yaml, parent: &str) -> Result<()> {
    if v.is_null() {
        return Ok(());
    }
    let m = doc.map(v, parent)?;
    let mut uniform = true;
    let (mut a, mut b) = (0.0, 1.0);
    for (k, v) in entries(doc, m, parent)? {
        let key = format!("{parent}.{k}");
        match k.as_str() {
            "distribution" => uniform = doc.str(v, &key)? == "uniform",
            "a" => a = doc.f64(v, &key)?,
            "b" => b = doc.f64(v, &key)?,
            _ => return Err(doc.unsupported(&key, "this loss option")),
        }
    }
    if !uniform || a != 0.0 || b != 1.0 {
        return Err(doc.unsupported(
            parent,
            "a noise-level distribution other than uniform on [0, 1]",
        ));
    }
    Ok(())
}

fn read_trajectory(doc: &Doc<'_>, top: &serde_yaml_ng::Mapping) -> Result<(usize, usize)> {
    let t = doc.map(doc.get(top, "", "trajectory")?, "trajectory")?;
    let window = doc.usize(doc.get(t, "trajectory", "length")?, "trajectory.length")?;
    let stride = doc.usize(doc.get(t, "trajectory", "stride")?, "trajectory.stride")?;
    if window < 2 || stride == 0 {
        return Err(doc.err(
            "trajectory",
            format!("length {window} and stride {stride}: a window needs 2 frames or more"),
        ));
    }
    // lemur's context masks are the reference's with its emulation settings: Poisson(1)
    // frames, at least one, at the start with probability 0.66.
    if let Some(c) = t.get("context").filter(|c| !c.is_null()) {
        let c = doc.map(c, "trajectory.context")?;
        for (k, v) in entries(doc, c, "trajectory.context")? {
            let key = format!("trajectory.context.{k}");
            let want = match k.as_str() {
                "lmbda" => 1.0,
                "rho" => 0.66,
                "atleast" => 1.0,
                _ => return Err(doc.unsupported(&key, "this context option")),
            };
            let got = doc.f64(v, &key)?;
            if (got - want).abs() > 1e-9 {
                return Err(
                    doc.unsupported(&key, format!("{got} (lemur's context masks use {want})"))
                );
            }
        }
    }
    Ok((window, stride))
}

/// `optim` and `train`: defaults for fine-tuning, and the record of the reference's run.
fn read_optim(
    doc: &Doc<'_>,
    top: &serde_yaml_ng::Mapping,
    options: &mut TrainOptions,
    notes: &mut Vec<String>,
) -> Result<Json> {
    let mut record = json!({});
    if let Some(o) = top.get("optim").filter(|o| !o.is_null()) {
        let o = doc.map(o, "optim")?;
        if let Some(v) = o.get("optimizer") {
            let name = doc.str(v, "optim.optimizer")?;
            record["optimizer"] = json!(name);
            if matches!(name, "adamw" | "soap") {
                options.optimizer = name.into();
            } else {
                notes.push(format!(
                    "optim.optimizer is {name}; fine-tuning in lemur uses AdamW (or --optimizer soap)"
                ));
            }
        }
        if let Some(v) = o.get("learning_rate") {
            options.lr = doc.f64(v, "optim.learning_rate")? as f32;
        }
        if let Some(v) = o.get("weight_decay") {
            options.weight_decay = doc.f64(v, "optim.weight_decay")? as f32;
        }
        if let Some(v) = o.get("warmup") {
            options.warmup = doc.usize(v, "optim.warmup")? as u32;
        }
        if let Some(v) = o.get("grad_clip").filter(|v| !v.is_null()) {
            options.clip = doc.f64(v, "optim.grad_clip")? as f32;
        }
        if let Some(v) = o.get("betas") {
            let b = doc.f64s(v, "optim.betas")?;
            if let [b1, b2] = b[..] {
                options.betas = (b1 as f32, b2 as f32);
            } else {
                return Err(doc.err("optim.betas", format!("{} values, not 2", b.len())));
            }
        }
        if let Some(v) = o.get("scheduler") {
            let s = doc.str(v, "optim.scheduler")?;
            if s != "cosine" {
                notes.push(format!(
                    "optim.scheduler is {s}; fine-tuning in lemur uses a cosine schedule"
                ));
            }
        }
    }
    if let Some(t) = top.get("train").filter(|t| !t.is_null()) {
        let t = doc.map(t, "train")?;
        let get = |k: &str| -> Result<Option<usize>> {
            t.get(k)
                .map(|v| doc.usize(v, &format!("train.{k}")))
                .transpose()
        };
        let accum = get("accumulation")?.unwrap_or(1).max(1);
        if let Some(batch) = get("batch_size")? {
            options.batch = (batch / accum).max(1);
            options.accum = accum;
        }
        if let (Some(e), Some(s), Some(b)) =
            (get("epochs")?, get("epoch_size")?, get("batch_size")?)
            && b > 0
        {
            record["update_steps"] = json!(e.saturating_mul(s / b));
        }
    }
    Ok(record)
}
