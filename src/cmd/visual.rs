//! Images of a rollout: per field, one PNG per frame with truth, ensemble mean, one member,
//! error and ensemble spread side by side (each with its colour bar), and an animated GIF of
//! the frames.

use std::path::Path;

use anyhow::{Context, Result};
use lemur_plot::{Colormap, Image, Panel, WHITE, panels, write_gif, write_png};
use lemur_train::emulate::Prediction;

fn range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// The `lo` and `hi` quantiles of the finite values.
fn percentiles(mut v: Vec<f32>, lo: f64, hi: f64) -> (f32, f32) {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(lo), at(hi))
}

/// A field `[H, W]` (H along x, W along y, as the Well stores it) as an image `[W, H]` with x
/// to the right and y up, so that Rayleigh-Bénard's hot plate lies at the bottom of its wide
/// box instead of along the left edge of a tall one (the app's `Orientation::Upright`).
fn upright(v: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(h * w);
    for r in 0..w {
        out.extend((0..h).map(|x| v[x * w + (w - 1 - r)]));
    }
    out
}

/// Writes `OUT/frames/<field>/t0000.png ...` and `OUT/<field>.gif`; returns the number of
/// files written. `truth` is `[T', C, H, W]` (T' may be shorter or longer than the prediction).
/// `upright` draws x across and y up; else H runs down the image and W across.
pub fn rollout_images(
    out: &Path,
    channels: &[String],
    truth: Option<&[f32]>,
    pred: &Prediction,
    scale: usize,
    stride: usize,
    upright_frames: bool,
) -> Result<usize> {
    let [c, h, w] = pred.shape;
    let plane = h * w;
    let frame = c * plane;
    let t_pred = pred.steps;
    let t_truth = truth.map_or(0, |t| (t.len() / frame).min(t_pred));
    let mean = pred.mean();
    let spread = pred.spread();
    let member = pred.member(0);
    let mut written = 0;
    for (ci, name) in channels.iter().enumerate() {
        let at = |t: usize| (t * c + ci) * plane..(t * c + ci + 1) * plane;
        let show = |v: &[f32]| {
            if upright_frames {
                upright(v, h, w)
            } else {
                v.to_vec()
            }
        };
        let all =
            |v: &[f32], n: usize| -> Vec<f32> { (0..n).flat_map(|t| v[at(t)].to_vec()).collect() };
        // The truth's range when known, so a prediction that drifts or blows up shows as
        // saturated colour instead of flattening every frame; else the mean's 1-99 percentiles.
        let field_range = match truth {
            Some(tr) if t_truth > 0 => range(all(tr, t_truth).into_iter()),
            _ => percentiles(all(&mean, t_pred), 0.01, 0.99),
        };
        let err: Vec<Vec<f32>> = (0..t_truth)
            .map(|t| {
                let tr = &truth.expect("t_truth > 0 needs truth")[at(t)];
                mean[at(t)].iter().zip(tr).map(|(m, u)| m - u).collect()
            })
            .collect();
        let e = err
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0.0f32, |a, v| a.max(v.abs()))
            .max(1e-12);
        let s_hi = range(all(&spread, t_pred).into_iter()).1.max(1e-12);
        let dir = out.join("frames").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let mut frames = Vec::with_capacity(t_pred);
        for t in 0..t_pred {
            let truth_t = truth.filter(|_| t < t_truth).map(|tr| show(&tr[at(t)]));
            let (mean_t, member_t, spread_t) = (
                show(&mean[at(t)]),
                show(&member[at(t)]),
                show(&spread[at(t)]),
            );
            let err_t = err.get(t).map(|e| show(e));
            let mut row = Vec::new();
            if let Some(tr) = &truth_t {
                row.push(Panel {
                    title: "truth".into(),
                    data: tr,
                    cmap: Colormap::Viridis,
                    range: field_range,
                    colour_bar: false,
                });
            }
            row.push(Panel {
                title: if pred.members > 1 {
                    "ensemble mean"
                } else {
                    "prediction"
                }
                .into(),
                data: &mean_t,
                cmap: Colormap::Viridis,
                range: field_range,
                colour_bar: pred.members == 1,
            });
            if pred.members > 1 {
                row.push(Panel {
                    title: "member 0".into(),
                    data: &member_t,
                    cmap: Colormap::Viridis,
                    range: field_range,
                    colour_bar: true,
                });
            }
            if let Some(e_t) = &err_t {
                row.push(Panel {
                    title: "error (mean - truth)".into(),
                    data: e_t,
                    cmap: Colormap::RdBu,
                    range: (-e, e),
                    colour_bar: true,
                });
            }
            if pred.members > 1 {
                row.push(Panel {
                    title: "ensemble spread".into(),
                    data: &spread_t,
                    cmap: Colormap::Magma,
                    range: (0.0, s_hi),
                    colour_bar: true,
                });
            }
            let title = format!("{name}   frame {t} (step {})", t * stride);
            let (rows, cols) = if upright_frames { (w, h) } else { (h, w) };
            let img = panels(&title, &row, rows, cols, scale);
            write_png(&dir.join(format!("t{t:04}.png")), &img)?;
            written += 1;
            frames.push(img);
        }
        // Frames beyond the truth have fewer panels; the GIF needs one size.
        let (fw, fh) = frames
            .iter()
            .fold((0, 0), |(a, b), f| (a.max(f.width), b.max(f.height)));
        let frames: Vec<Image> = frames
            .into_iter()
            .map(|f| {
                let mut canvas = Image::new(fw, fh, WHITE);
                canvas.blit(&f, 0, 0);
                canvas
            })
            .collect();
        write_gif(&out.join(format!("{name}.gif")), &frames, 25)?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upright_puts_x_across_and_y_up() {
        // [H = 2 (x), W = 3 (y)]: v[x * 3 + y] = 10 x + y.
        let v = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        // Rows from the top are y = 2, 1, 0; columns are x = 0, 1.
        assert_eq!(upright(&v, 2, 3), vec![2.0, 12.0, 1.0, 11.0, 0.0, 10.0]);
    }
}
