//! Field panels: colour maps, their tables and ranges, and the textures egui shows. On the GPU
//! backend the colour-map kernel (`shaders/colormap.wgsl`) writes straight from the decoder's
//! storage buffers into textures registered with egui's renderer, so fields never come back
//! to the host; on the CPU backend the same mapping ([`colormap_cpu`]) fills egui images.

use egui::{Color32, TextureHandle, TextureId, TextureOptions};
use lemur_plot::Colormap;
use lemur_tensor::gpu::{ColormapParams, colormap_cpu};

use crate::fields::Sign;
use crate::truth::System;

/// The five panels, left to right.
pub const PANELS: [&str; 5] = [
    "truth (solver)",
    "ensemble mean",
    "member",
    "error (mean - truth)",
    "ensemble spread (std)",
];

/// Colour maps the picker offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapChoice {
    /// Sequential for positive fields, diverging for signed ones.
    Auto,
    Viridis,
    Magma,
    RdBu,
}

impl MapChoice {
    pub const ALL: [MapChoice; 4] = [
        MapChoice::Auto,
        MapChoice::Viridis,
        MapChoice::Magma,
        MapChoice::RdBu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MapChoice::Auto => "auto (by sign)",
            MapChoice::Viridis => "viridis",
            MapChoice::Magma => "magma",
            MapChoice::RdBu => "RdBu (diverging)",
        }
    }

    /// The map of a field panel (truth, mean, member) of a field of `sign`.
    pub fn for_field(self, sign: Sign) -> Colormap {
        match (self, sign) {
            (MapChoice::Auto, Sign::Positive) => Colormap::Viridis,
            (MapChoice::Auto, Sign::Signed) => Colormap::RdBu,
            (MapChoice::Viridis, _) => Colormap::Viridis,
            (MapChoice::Magma, _) => Colormap::Magma,
            (MapChoice::RdBu, _) => Colormap::RdBu,
        }
    }
}

/// The map of each panel: errors are signed (diverging), spread is positive (magma).
pub fn panel_map(panel: usize, field_map: Colormap) -> Colormap {
    match panel {
        3 => Colormap::RdBu,
        4 => Colormap::Magma,
        _ => field_map,
    }
}

/// 256 packed RGBA8 entries (r in the low byte) of `cmap` over [0, 1].
pub fn lut(cmap: Colormap) -> [u32; 256] {
    std::array::from_fn(|i| {
        let [r, g, b] = cmap.map(i as f32 / 255.0);
        u32::from_le_bytes([r, g, b, 255])
    })
}

pub fn unpack(c: u32) -> Color32 {
    let [r, g, b, a] = c.to_le_bytes();
    Color32::from_rgba_unmultiplied(r, g, b, a)
}

/// How a field's `[H, W]` grid (H along x) is laid on the screen. The textures always hold
/// H rows of W texels (as the colour-map kernel writes them); the panel's texture
/// coordinates turn them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orientation {
    /// H down the screen, W across: the Euler panels (a square, periodic domain).
    Rows,
    /// H (x) across, W (z) up: Rayleigh-Bénard with its hot wall at the bottom and its
    /// wide periodic direction across.
    Upright,
}

impl Orientation {
    pub fn of(system: System) -> Self {
        match system {
            System::Euler { .. } => Orientation::Rows,
            System::RayleighBenard => Orientation::Upright,
        }
    }

    /// Texels across and down the screen of an `[h, w]` grid.
    pub fn screen(self, [h, w]: [usize; 2]) -> [usize; 2] {
        match self {
            Orientation::Rows => [w, h],
            Orientation::Upright => [h, w],
        }
    }

    /// Width over height of a panel.
    pub fn aspect(self, grid: [usize; 2]) -> f32 {
        let [across, down] = self.screen(grid);
        across as f32 / down.max(1) as f32
    }

    /// Texture coordinates at the panel's top-left, top-right, bottom-right and bottom-left.
    fn uvs(self) -> [egui::Pos2; 4] {
        let p = egui::pos2;
        match self {
            Orientation::Rows => [p(0.0, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0)],
            // Across the screen walks the texture's rows; up walks its columns.
            Orientation::Upright => [p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0), p(0.0, 0.0)],
        }
    }

    /// Paints texture `id` into `rect`, turned to this orientation.
    pub fn paint(self, ui: &egui::Ui, id: TextureId, rect: egui::Rect) {
        let corners = [
            rect.left_top(),
            rect.right_top(),
            rect.right_bottom(),
            rect.left_bottom(),
        ];
        let mut mesh = egui::Mesh::with_texture(id);
        for (pos, uv) in corners.into_iter().zip(self.uvs()) {
            mesh.vertices.push(egui::epaint::Vertex {
                pos,
                uv,
                color: Color32::WHITE,
            });
        }
        mesh.indices = vec![0, 1, 2, 0, 2, 3];
        ui.painter().add(egui::Shape::mesh(mesh));
    }

    /// An `[h, w]` plane as the screen shows it, row-major, and its (rows, columns).
    pub fn plane(self, data: &[f32], [h, w]: [usize; 2]) -> (Vec<f32>, [usize; 2]) {
        match self {
            Orientation::Rows => (data.to_vec(), [h, w]),
            Orientation::Upright => {
                let out = (0..w)
                    .flat_map(|r| (0..h).map(move |c| data[c * w + (w - 1 - r)]))
                    .collect();
                (out, [w, h])
            }
        }
    }
}

/// Panels per row and each panel's size (points) for `n` panels of aspect `aspect` (width
/// over height) in `avail` points: the layout with the largest panels, leaving `extra`
/// points beside (colour bar) and below (title, note) each panel.
pub fn panel_layout(
    n: usize,
    aspect: f32,
    avail: egui::Vec2,
    extra: egui::Vec2,
) -> (usize, egui::Vec2) {
    let width_for = |per_row: usize| {
        let rows = n.div_ceil(per_row);
        let by_width = avail.x / per_row as f32 - extra.x;
        let by_height = (avail.y / rows as f32 - extra.y) * aspect;
        by_width.min(by_height)
    };
    // Ties go to fewer panels per row (3 + 2 rather than 4 + 1).
    let per_row = (1..=n)
        .max_by(|&a, &b| width_for(a).total_cmp(&width_for(b)).then(b.cmp(&a)))
        .unwrap_or(n);
    // Between 96 and 480 points square in area: legible, and never a poster.
    let root = aspect.sqrt();
    let width = width_for(per_row).clamp(96.0 * root, 480.0 * root);
    (per_row, egui::vec2(width, width / aspect))
}

/// What one panel shows: a channel of a buffer, an offset into it, a range and a map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PanelView {
    pub params: ColormapParams,
    pub cmap: Colormap,
}

/// The panels' textures on the CPU backend.
#[derive(Default)]
pub struct HostTextures {
    handles: Vec<Option<TextureHandle>>,
}

impl HostTextures {
    /// Maps `field` through `view` into panel `i`'s texture; returns its id.
    pub fn draw(
        &mut self,
        ctx: &egui::Context,
        i: usize,
        field: &[f32],
        view: &PanelView,
    ) -> TextureId {
        let texels = colormap_cpu(field, &view.params, &lut(view.cmap));
        let (h, w) = (view.params.height as usize, view.params.width as usize);
        let image = egui::ColorImage::new([w, h], texels.into_iter().map(unpack).collect());
        if self.handles.len() <= i {
            self.handles.resize(i + 1, None);
        }
        match &mut self.handles[i] {
            Some(t) => {
                t.set(image, TextureOptions::NEAREST);
                t.id()
            }
            slot => {
                let t =
                    ctx.load_texture(format!("lemur panel {i}"), image, TextureOptions::NEAREST);
                let id = t.id();
                *slot = Some(t);
                id
            }
        }
    }
}

/// The panels' textures on the GPU backend: written by the colour-map kernel, shown through
/// egui's wgpu renderer.
#[derive(Default)]
pub struct DeviceTextures {
    panels: Vec<Option<(wgpu::Texture, TextureId, [u32; 2])>>,
}

impl DeviceTextures {
    /// The texture of panel `i` at (w, h), created (and registered with egui) on first use
    /// or when the grid changes.
    pub fn target(
        &mut self,
        rs: &egui_wgpu::RenderState,
        i: usize,
        w: u32,
        h: u32,
    ) -> (wgpu::TextureView, TextureId) {
        if self.panels.len() <= i {
            self.panels.resize_with(i + 1, || None);
        }
        if let Some((tex, id, size)) = &self.panels[i]
            && *size == [w, h]
        {
            return (tex.create_view(&Default::default()), *id);
        }
        let tex = rs.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("lemur panel texture"),
            size: wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = tex.create_view(&Default::default());
        let mut renderer = rs.renderer.write();
        let id = match self.panels[i].take() {
            Some((_, id, _)) => {
                renderer.update_egui_texture_from_wgpu_texture(
                    &rs.device,
                    &view,
                    wgpu::FilterMode::Nearest,
                    id,
                );
                id
            }
            None => renderer.register_native_texture(&rs.device, &view, wgpu::FilterMode::Nearest),
        };
        self.panels[i] = Some((tex, id, [w, h]));
        (view, id)
    }
}

/// A colour bar: the map from `lo` (bottom) to `hi` (top) with three labels.
pub fn colour_bar(ui: &mut egui::Ui, cmap: Colormap, lo: f32, hi: f32, height: f32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, height), egui::Sense::hover());
    let painter = ui.painter_at(rect.expand(2.0));
    let n = 64;
    for k in 0..n {
        let t0 = k as f32 / n as f32;
        let y1 = rect.bottom() - t0 * rect.height();
        let y0 = rect.bottom() - (k + 1) as f32 / n as f32 * rect.height();
        let [r, g, b] = cmap.map((k as f32 + 0.5) / n as f32);
        painter.rect_filled(
            egui::Rect::from_x_y_ranges(rect.x_range(), y0..=y1),
            0.0,
            Color32::from_rgb(r, g, b),
        );
    }
    // Labels are painted, not laid out, so they never wrap in a narrow column.
    let (labels, _) = ui.allocate_exact_size(egui::vec2(52.0, height), egui::Sense::hover());
    let font = egui::FontId::proportional(11.0);
    let colour = ui.visuals().text_color();
    let p = ui.painter();
    for (v, y, align) in [
        (hi, labels.top(), egui::Align2::LEFT_TOP),
        (
            0.5 * (lo + hi),
            labels.center().y,
            egui::Align2::LEFT_CENTER,
        ),
        (lo, labels.bottom(), egui::Align2::LEFT_BOTTOM),
    ] {
        p.text(
            egui::pos2(labels.left() + 2.0, y),
            align,
            fmt_tick(v),
            font.clone(),
            colour,
        );
    }
}

/// A short tick label with a real minus sign, never glued to a dash.
pub fn fmt_tick(v: f32) -> String {
    let a = v.abs();
    let s = if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{a:.1e}")
    } else if a >= 100.0 {
        format!("{a:.0}")
    } else if a >= 1.0 {
        format!("{a:.2}")
    } else {
        format!("{a:.3}")
    };
    if v < 0.0 { format!("\u{2212}{s}") } else { s }
}

/// The three grid steps of a score plot (fine, labelled, coarse), from egui_plot's smallest
/// step worth drawing (`base`, the value 8 points span). egui_plot's default decade grid labels
/// marks 10x apart: a range such as 0.22-0.40 then showed one label. Here the labelled step is
/// the smallest of 1, 2, 5 x 10^k spanning 4 `base` (32 points); the fine and coarse steps
/// divide it and are its multiples, so every mark falls on the finest grid.
pub fn score_steps(base: f64) -> [f64; 3] {
    let want = 4.0 * base.abs();
    if !(want.is_finite() && want > 0.0) {
        return [0.2, 1.0, 5.0];
    }
    let decade = 10f64.powf(want.log10().floor());
    let m = want / decade;
    // A mantissa past 5 rounds up to the next decade's 1.
    let (label, fine, coarse) = if m <= 1.0 {
        (1.0, 0.2, 5.0)
    } else if m <= 2.0 {
        (2.0, 0.5, 10.0)
    } else if m <= 5.0 {
        (5.0, 1.0, 10.0)
    } else {
        (10.0, 2.0, 50.0)
    };
    [fine * decade, label * decade, coarse * decade]
}

/// A score axis label: as many decimals as the mark's step needs (0.25 on a 0.05 grid, 0.5 on
/// a 0.5 one; egui_plot's default rounds the step's digits, which printed 0.5 as "0").
pub fn score_label(value: f64, step: f64) -> String {
    let decimals = (-step.abs().log10()).ceil().clamp(0.0, 12.0) as usize;
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f64; 3], b: [f64; 3]) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs())
    }

    #[test]
    fn score_grids_label_several_values_on_narrow_ranges() {
        // 0.22-0.40 over 250 points: base 0.0058, labels every 0.05 (43 points).
        let base = 0.18 / 250.0 * 8.0;
        let steps = score_steps(base);
        assert!(close(steps, [0.01, 0.05, 0.1]), "{steps:?}");
        // 0-1 over 250 points: labels every 0.2; 0-40 over 100: every 20.
        assert!(close(score_steps(0.032), [0.05, 0.2, 1.0]));
        assert!(close(score_steps(3.2), [5.0, 20.0, 100.0]));
        assert!(close(score_steps(0.25), [0.2, 1.0, 5.0]));
        for base in [1e-5, 3.3e-3, 0.07, 0.9, 4.0, 123.0] {
            let [fine, label, coarse] = score_steps(base);
            // Labels 32 to 80 points apart: the labelled step is at most 2.5 times 4 base.
            assert!(
                label >= 4.0 * base && label <= 10.0 * base,
                "{base} {label}"
            );
            for multiple in [label / fine, coarse / label] {
                assert!(
                    (multiple - multiple.round()).abs() < 1e-9,
                    "{base}: {multiple}"
                );
            }
        }
        assert!(close(score_steps(0.0), [0.2, 1.0, 5.0]));
        assert_eq!(score_label(0.5, 0.5), "0.5");
        assert_eq!(score_label(0.25, 0.05), "0.25");
        assert_eq!(score_label(0.3, 0.1), "0.3");
        assert_eq!(score_label(20.0, 20.0), "20");
        assert_eq!(score_label(1.0, 1.0), "1");
    }

    #[test]
    fn orientations_turn_the_grid() {
        // x (H) = 3 across, z (W) = 2 up: the top row is z = 1, the bottom row z = 0.
        let data = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
        assert_eq!(
            Orientation::Upright.plane(&data, [3, 2]),
            (vec![1.0, 11.0, 21.0, 0.0, 10.0, 20.0], [2, 3])
        );
        assert_eq!(Orientation::Rows.plane(&data, [3, 2]).1, [3, 2]);
        assert_eq!(Orientation::Upright.aspect([128, 32]), 4.0);
        assert_eq!(Orientation::Rows.aspect([64, 64]), 1.0);
    }

    #[test]
    fn panels_keep_their_aspect_and_fill_the_space() {
        let extra = egui::vec2(92.0, 48.0);
        let (per_row, size) = panel_layout(5, 1.0, egui::vec2(1100.0, 700.0), extra);
        assert_eq!(size.x, size.y);
        assert!(per_row == 3 || per_row == 5, "{per_row}");
        // Wide panels stack: two or fewer per row, four times wider than high.
        let (per_row, size) = panel_layout(5, 4.0, egui::vec2(1100.0, 700.0), extra);
        assert!(per_row <= 2, "{per_row}");
        assert!((size.x / size.y - 4.0).abs() < 1e-4, "{size:?}");
        assert!(size.x * per_row as f32 <= 1100.0);
    }

    #[test]
    fn lut_matches_the_plot_colours_and_ticks_read_well() {
        let l = lut(Colormap::Viridis);
        assert_eq!(l[0].to_le_bytes(), [68, 1, 84, 255]);
        assert_eq!(l[255].to_le_bytes(), [253, 231, 37, 255]);
        assert_eq!(fmt_tick(-2.0), "\u{2212}2.00");
        assert_eq!(fmt_tick(0.25), "0.250");
        assert_eq!(fmt_tick(12345.0), "1.2e4");
    }
}
