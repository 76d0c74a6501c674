//! Exports: the current panels as a PNG (drawn by `lemur-plot`, with colour bars) and the
//! rollout as safetensors in the layout `lemur rollout` writes (`prediction` [N, T, C, H, W],
//! `mean`, `spread` and `truth` [T, C, H, W], physical units). Device data is read back
//! asynchronously; the file is saved natively (next to the working directory) or offered as a
//! download in the browser.

use std::collections::HashMap;

use lemur_plot::{Colormap, Panel, encode_png, panels};
use lemur_tensor::Tensor;

use crate::app::Sim;
use crate::display::{Orientation, PANELS};
use crate::engine::{Compute, Pending, poll_now};
use crate::error::{AppError, Result};
use crate::platform;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    Png,
    Safetensors,
}

/// Read-back values by slot.
type Slots = Vec<(usize, Vec<f32>)>;

/// An export waiting for its readbacks.
pub struct Export {
    kind: ExportKind,
    parts: Vec<Option<Vec<f32>>>,
    /// One readback after another (slot, values), so that a large export never has dozens
    /// of staging buffers mapped at once.
    pending: Option<Pending<lemur_tensor::Result<Slots>>>,
    /// PNG: titles, maps and ranges of the five panels, field and grid.
    panels: Vec<(String, Colormap, (f32, f32))>,
    field: usize,
    grid: [usize; 2],
    /// The PNG shows the panels as the window does.
    orientation: Orientation,
    /// Safetensors: N, T, C, D and the metadata.
    dims: [usize; 4],
    meta: HashMap<String, String>,
    name: String,
    dir: Option<String>,
}

fn read_all<B: Compute>(parts: Vec<(usize, Tensor<B>)>) -> Pending<lemur_tensor::Result<Slots>> {
    Box::pin(async move {
        let mut out = Vec::with_capacity(parts.len());
        for (slot, t) in parts {
            out.push((slot, t.to_vec_async().await?));
        }
        Ok(out)
    })
}

impl Export {
    pub fn start<B: Compute>(
        dir: Option<String>,
        kind: ExportKind,
        s: &Sim<B>,
        time: usize,
        field: usize,
        member: usize,
        ranges: [(f32, f32); 5],
        maps: [Colormap; 5],
    ) -> Result<Self> {
        let frames = &s.job.frames;
        let [h, w] = s.models.grid;
        let d = s.models.layout.len();
        let c = s.models.stats.channels.len();
        let n = s.job.settings.members();
        let mut pending = Vec::new();
        let none = || AppError::Export {
            path: "-".into(),
            detail: "no emulated frame yet".into(),
        };
        let name = &s.models.layout.names[field];
        let (panels, name) = match kind {
            ExportKind::Png => {
                let fr = frames.get(time).ok_or_else(none)?;
                let srcs = [
                    fr.truth.as_ref(),
                    Some(&fr.mean),
                    Some(&fr.members),
                    fr.error.as_ref(),
                    Some(&fr.spread),
                ];
                for (i, t) in srcs.iter().enumerate() {
                    if let Some(t) = t {
                        let t = if i == 2 {
                            t.slice(0, member, 1)?
                        } else {
                            (*t).clone()
                        };
                        pending.push((i, t));
                    }
                }
                let titles: Vec<(String, Colormap, (f32, f32))> = (0..5)
                    .map(|i| {
                        let t = if i == 2 {
                            format!("member {member}")
                        } else {
                            PANELS[i].to_string()
                        };
                        (t, maps[i], ranges[i])
                    })
                    .collect();
                (titles, format!("lemur-{name}-t{time:03}.png"))
            }
            ExportKind::Safetensors => {
                if frames.is_empty() {
                    return Err(none());
                }
                for (t, fr) in frames.iter().enumerate() {
                    pending.push((4 * t, fr.members.clone()));
                    pending.push((4 * t + 1, fr.mean.clone()));
                    pending.push((4 * t + 2, fr.spread.clone()));
                    if let Some(tr) = &fr.truth {
                        pending.push((4 * t + 3, tr.clone()));
                    }
                }
                (Vec::new(), "lemur-rollout.safetensors".to_string())
            }
        };
        let st = s.job.settings;
        let mut meta = HashMap::new();
        meta.insert("channels".to_string(), s.models.stats.channels.join(","));
        meta.insert("initial".to_string(), st.initial.label());
        meta.insert(
            "model".to_string(),
            format!("{:?}", st.model).to_lowercase(),
        );
        meta.insert(
            "sampler".to_string(),
            format!(
                "{} steps {}",
                crate::engine::method_name(&st.method),
                st.steps
            ),
        );
        meta.insert("seed".to_string(), st.seed.to_string());
        meta.insert("stride".to_string(), s.models.stride.to_string());
        meta.insert("context".to_string(), st.context.to_string());
        let slots = match kind {
            ExportKind::Png => 5,
            ExportKind::Safetensors => 4 * frames.len(),
        };
        Ok(Self {
            kind,
            parts: vec![None; slots],
            pending: Some(read_all(pending)),
            panels,
            field,
            grid: [h, w],
            orientation: Orientation::of(s.models.system),
            dims: [n, frames.len(), c, d],
            meta,
            name,
            dir,
        })
    }

    pub fn describe(&self) -> String {
        format!("exporting {}", self.name)
    }

    /// Collects finished readbacks; once all are in, writes the file and says where.
    pub fn poll(&mut self) -> Option<Result<String>> {
        if let Some(f) = &mut self.pending {
            match poll_now(f)? {
                Err(e) => return Some(Err(e.into())),
                Ok(parts) => {
                    for (slot, v) in parts {
                        self.parts[slot] = Some(v);
                    }
                    self.pending = None;
                }
            }
        }
        let bytes = match self.kind {
            ExportKind::Png => self.png(),
            ExportKind::Safetensors => self.safetensors(),
        };
        Some(bytes.and_then(|(b, mime)| platform::save(self.dir.as_deref(), &self.name, &b, mime)))
    }

    fn png(&self) -> Result<(Vec<u8>, &'static str)> {
        let [h, w] = self.grid;
        let plane = h * w;
        let f = self.field;
        let empty = vec![f32::NAN; plane];
        let shown: Vec<(Vec<f32>, [usize; 2])> = (0..self.panels.len())
            .map(|i| {
                let data = self.parts[i]
                    .as_ref()
                    .map_or(&empty[..], |v| &v[f * plane..(f + 1) * plane]);
                self.orientation.plane(data, self.grid)
            })
            .collect();
        let [w, h] = self.orientation.screen(self.grid);
        let row: Vec<Panel<'_>> = self
            .panels
            .iter()
            .zip(&shown)
            .map(|((title, cmap, range), (data, _))| Panel {
                title: title.clone(),
                data,
                cmap: *cmap,
                range: *range,
                colour_bar: true,
            })
            .collect();
        let scale = (256 / h.max(w)).max(1);
        let img = panels(&self.name, &row, h, w, scale);
        let png = encode_png(&img).map_err(|e| AppError::Export {
            path: self.name.clone(),
            detail: e.to_string(),
        })?;
        Ok((png, "image/png"))
    }

    fn safetensors(&self) -> Result<(Vec<u8>, &'static str)> {
        let [n, t, c, d] = self.dims;
        let [h, w] = self.grid;
        let plane = h * w;
        // Display fields [.., D, H, W] keep the stored channels [.., C, H, W] first.
        let stored = |v: &[f32], k: usize| -> Vec<f32> {
            (0..k)
                .flat_map(|m| v[m * d * plane..(m * d + c) * plane].to_vec())
                .collect()
        };
        let mut prediction = vec![0.0f32; n * t * c * plane];
        let (mut mean, mut spread, mut truth) = (Vec::new(), Vec::new(), Vec::new());
        let mut truth_frames = 0;
        for ti in 0..t {
            let members = stored(self.parts[4 * ti].as_deref().unwrap_or_default(), n);
            for m in 0..n {
                let dst = (m * t + ti) * c * plane;
                prediction[dst..dst + c * plane]
                    .copy_from_slice(&members[m * c * plane..(m + 1) * c * plane]);
            }
            mean.extend(stored(
                self.parts[4 * ti + 1].as_deref().unwrap_or_default(),
                1,
            ));
            spread.extend(stored(
                self.parts[4 * ti + 2].as_deref().unwrap_or_default(),
                1,
            ));
            if truth_frames == ti
                && let Some(tr) = &self.parts[4 * ti + 3]
            {
                truth.extend(stored(tr, 1));
                truth_frames += 1;
            }
        }
        let to_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let mut owned = vec![
            ("prediction", vec![n, t, c, h, w], to_bytes(&prediction)),
            ("mean", vec![t, c, h, w], to_bytes(&mean)),
            ("spread", vec![t, c, h, w], to_bytes(&spread)),
        ];
        if truth_frames > 0 {
            owned.push(("truth", vec![truth_frames, c, h, w], to_bytes(&truth)));
        }
        let err = |e: safetensors::SafeTensorError| AppError::Export {
            path: self.name.clone(),
            detail: e.to_string(),
        };
        let views = owned
            .iter()
            .map(|(name, shape, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .map(|v| (name.to_string(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let bytes = safetensors::serialize(views, Some(self.meta.clone())).map_err(err)?;
        Ok((bytes, "application/octet-stream"))
    }
}
