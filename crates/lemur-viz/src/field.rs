//! Colour-mapped fields, colour bars and rows of titled panels.

use crate::colour::{Colormap, Rgba, normalise};
use crate::image::{Image, text_height, text_width};
use crate::ticks::{format_tick, format_ticks, nice_ticks};

/// Draws a `h` x `w` field (row-major, row 0 at the top) with `cmap` over `vmin..vmax`,
/// each value a `pixel_scale` x `pixel_scale` square (nearest-neighbour upscaling; 0 counts
/// as 1). Values outside the range take the end colours; NaN and infinities are grey
/// ([`crate::NAN_COLOUR`]); a zero-width range draws every finite value in the middle colour.
///
/// # Panics
/// If `data.len() != h * w`.
pub fn field_image(
    data: &[f32],
    h: usize,
    w: usize,
    cmap: Colormap,
    vmin: f32,
    vmax: f32,
    pixel_scale: usize,
) -> Image {
    assert_eq!(
        data.len(),
        h * w,
        "field_image: data has {} values, not {h} x {w}",
        data.len()
    );
    let s = pixel_scale.max(1);
    let mut img = Image::new(w * s, h * s, Rgba::BLACK);
    let row_bytes = 4 * w * s;
    let mut row = vec![0u8; row_bytes];
    for y in 0..h {
        for x in 0..w {
            let t = normalise(f64::from(data[y * w + x]), f64::from(vmin), f64::from(vmax));
            let [r, g, b] = cmap.map(t);
            for px in row[4 * x * s..4 * (x + 1) * s].chunks_exact_mut(4) {
                px.copy_from_slice(&[r, g, b, 255]);
            }
        }
        for k in 0..s {
            let start = (y * s + k) * row_bytes;
            img.pixels[start..start + row_bytes].copy_from_slice(&row);
        }
    }
    img
}

/// The smallest and largest finite values, `None` if there are none.
pub fn finite_range(data: &[f32]) -> Option<(f32, f32)> {
    let mut range: Option<(f32, f32)> = None;
    for &v in data.iter().filter(|v| v.is_finite()) {
        range = Some(match range {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
    range
}

/// `(-m, m)` with `m` the largest finite `|value|` (for diverging colour maps), `None` if no
/// value is finite.
pub fn symmetric_range(data: &[f32]) -> Option<(f32, f32)> {
    finite_range(data).map(|(lo, hi)| {
        let m = lo.abs().max(hi.abs());
        (-m, m)
    })
}

/// Width of the colour strip of a [`colour_bar`] at `text_scale`.
fn bar_strip_width(text_scale: usize) -> usize {
    10 + 2 * text_scale.max(1)
}

/// A vertical colour bar `height` pixels tall: `vmax` at the top, `vmin` at the bottom,
/// outlined, with tick marks and labels on its right: the two ends (three significant
/// digits) and nice values in between that do not crowd them. Text is `text_colour` at
/// `text_scale`, on `background`; the image is exactly `height` tall so that it lines up
/// with a panel of that height.
pub fn colour_bar(
    cmap: Colormap,
    vmin: f32,
    vmax: f32,
    height: usize,
    text_scale: usize,
    text_colour: Rgba,
    background: Rgba,
) -> Image {
    let scale = text_scale.max(1);
    let height = height.max(2);
    let (lo, hi) = (f64::from(vmin), f64::from(vmax));
    let th = text_height(scale) as i64;
    // Labels are placed with their tops in 0..=max_top, so that they stay inside the image.
    let max_top = (height as i64 - th).max(0);
    let y_of = |v: f64| -> i64 {
        let t = normalise(v, lo, hi);
        ((1.0 - t) * (height - 1) as f64).round() as i64
    };
    // Labels: (y of the tick, text); the ends first.
    let mut labels: Vec<(i64, String)> = vec![(0, format_tick(hi))];
    if lo != hi || !lo.is_finite() {
        labels.push((height as i64 - 1, format_tick(lo)));
    }
    if lo.is_finite() && hi.is_finite() && lo != hi {
        let target = (height as i64 / (3 * th)).clamp(2, 6) as usize;
        let inner: Vec<f64> = nice_ticks(lo, hi, target)
            .into_iter()
            .filter(|&v| v > lo.min(hi) && v < lo.max(hi))
            .collect();
        for (v, text) in inner.iter().zip(format_ticks(&inner)) {
            let y = y_of(*v);
            // Keep labels at least 3 px apart from the ends (which hug the bar's edges) and
            // from each other.
            let top = (y - th / 2).clamp(0, max_top);
            let clear = labels.iter().all(|(ly, _)| {
                let ltop = (ly - th / 2).clamp(0, max_top);
                (ltop - top).abs() >= th + 3
            });
            if clear {
                labels.push((y, text));
            }
        }
    }
    let bar_w = bar_strip_width(scale);
    let tick_len = 3;
    let label_x = bar_w + tick_len + 2;
    let label_w = labels
        .iter()
        .map(|(_, t)| text_width(t, scale))
        .max()
        .unwrap_or(0);
    let mut img = Image::new(label_x + label_w, height, background);
    for row in 0..height {
        let t = 1.0 - row as f64 / (height - 1) as f64;
        img.fill_rect(0, row as i64, bar_w, 1, Rgba::from_rgb(cmap.map(t)));
    }
    img.stroke_rect(0, 0, bar_w, height, text_colour);
    for (y, text) in &labels {
        img.fill_rect(bar_w as i64, *y, tick_len, 1, text_colour);
        let top = (y - th / 2).clamp(0, max_top);
        img.draw_text(label_x as i64, top, text, text_colour, scale);
    }
    img
}

/// One field to show in a [`Figure`]: a title and `rows` x `cols` values (row-major, row 0
/// at the top).
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> Panel<'a> {
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn new(title: impl Into<String>, data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "Panel: data has {} values, not {rows} x {cols}",
            data.len()
        );
        Self {
            title: title.into(),
            data,
            rows,
            cols,
        }
    }
}

/// Adjacent panels drawn with one colour map and range, and optionally one colour bar
/// after the last of them. A panel with a bar of its own is a group of one.
#[derive(Clone, Debug)]
pub struct PanelGroup<'a> {
    pub panels: Vec<Panel<'a>>,
    pub colormap: Colormap,
    pub vmin: f32,
    pub vmax: f32,
    pub colour_bar: bool,
}

impl<'a> PanelGroup<'a> {
    /// A group over an explicit range.
    pub fn new(
        panels: Vec<Panel<'a>>,
        colormap: Colormap,
        vmin: f32,
        vmax: f32,
        colour_bar: bool,
    ) -> Self {
        Self {
            panels,
            colormap,
            vmin,
            vmax,
            colour_bar,
        }
    }

    /// A group over the finite range of all its panels' data, symmetric about zero for a
    /// diverging map; `0..1` (or `-1..1`) when nothing is finite.
    pub fn auto(panels: Vec<Panel<'a>>, colormap: Colormap, colour_bar: bool) -> Self {
        let mut range: Option<(f32, f32)> = None;
        for p in &panels {
            if let Some((lo, hi)) = finite_range(p.data) {
                range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        let (vmin, vmax) = if colormap.is_diverging() {
            let m = range.map_or(1.0, |(lo, hi)| lo.abs().max(hi.abs()));
            (-m, m)
        } else {
            range.unwrap_or((0.0, 1.0))
        };
        Self::new(panels, colormap, vmin, vmax, colour_bar)
    }
}

/// A figure: a title line over a row of titled panels, in groups that share a colour map,
/// range and colour bar. For example `truth | mean | member [bar] | error [bar] | spread [bar]`.
/// Colour-bar labels set the bars' widths, so frames of an animation keep one layout when
/// their groups keep fixed ranges.
///
///
/// ```
/// use lemur_viz::{Colormap, Figure, Panel, PanelGroup};
/// let (h, w) = (4, 6);
/// let truth = vec![0.5f32; h * w];
/// let error = vec![0.01f32; h * w];
/// let image = Figure::new("density  t = 12")
///     .group(PanelGroup::new(vec![Panel::new("truth", &truth, h, w)], Colormap::Viridis, 0.0, 1.0, true))
///     .group(PanelGroup::auto(vec![Panel::new("error", &error, h, w)], Colormap::RdBuR, true))
///     .pixel_scale(8)
///     .render();
/// assert!(image.width > 2 * 8 * w);
/// ```
#[derive(Clone, Debug)]
pub struct Figure<'a> {
    pub title: String,
    pub groups: Vec<PanelGroup<'a>>,
    /// Nearest-neighbour upscaling of every field (default 1).
    pub pixel_scale: usize,
    /// Scale of panel titles and colour-bar labels (default 1).
    pub text_scale: usize,
    /// Scale of the figure title (default 2).
    pub title_scale: usize,
    pub background: Rgba,
    pub text_colour: Rgba,
}

/// Outer margin, gap between panels, and gap between a panel and its colour bar, in pixels.
const MARGIN: usize = 8;
const PANEL_GAP: usize = 10;
const BAR_GAP: usize = 5;

impl<'a> Figure<'a> {
    /// An empty figure with the given title line, white background and black text.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            groups: Vec::new(),
            pixel_scale: 1,
            text_scale: 1,
            title_scale: 2,
            background: Rgba::WHITE,
            text_colour: Rgba::BLACK,
        }
    }

    /// Appends a group of panels.
    pub fn group(mut self, group: PanelGroup<'a>) -> Self {
        self.groups.push(group);
        self
    }

    /// Appends one panel with its own colour map, range and (optionally) colour bar.
    pub fn panel(
        self,
        panel: Panel<'a>,
        colormap: Colormap,
        vmin: f32,
        vmax: f32,
        colour_bar: bool,
    ) -> Self {
        self.group(PanelGroup::new(
            vec![panel],
            colormap,
            vmin,
            vmax,
            colour_bar,
        ))
    }

    pub fn pixel_scale(mut self, scale: usize) -> Self {
        self.pixel_scale = scale.max(1);
        self
    }

    pub fn text_scale(mut self, scale: usize) -> Self {
        self.text_scale = scale.max(1);
        self
    }

    pub fn title_scale(mut self, scale: usize) -> Self {
        self.title_scale = scale.max(1);
        self
    }

    /// Draws the figure. Panels are top-aligned, each centred under its title; a panel's
    /// column is as wide as the wider of its image and its title.
    pub fn render(&self) -> Image {
        let ps = self.pixel_scale.max(1);
        let ts = self.text_scale.max(1);
        // Pieces laid out left to right: (image, title, gap before it).
        let mut items: Vec<(Image, Option<&str>, usize)> = Vec::new();
        for group in &self.groups {
            let mut group_h = 0;
            for panel in &group.panels {
                let img = field_image(
                    panel.data,
                    panel.rows,
                    panel.cols,
                    group.colormap,
                    group.vmin,
                    group.vmax,
                    ps,
                );
                group_h = group_h.max(img.height);
                let gap = if items.is_empty() { 0 } else { PANEL_GAP };
                items.push((img, Some(panel.title.as_str()), gap));
            }
            if group.colour_bar && group_h > 0 {
                let bar = colour_bar(
                    group.colormap,
                    group.vmin,
                    group.vmax,
                    group_h,
                    ts,
                    self.text_colour,
                    self.background,
                );
                let gap = if items.is_empty() { 0 } else { BAR_GAP };
                items.push((bar, None, gap));
            }
        }
        let title_h = if self.title.is_empty() {
            0
        } else {
            text_height(self.title_scale) + 8
        };
        let panel_title_h = if items
            .iter()
            .any(|(_, t, _)| t.is_some_and(|t| !t.is_empty()))
        {
            text_height(ts) + 4
        } else {
            0
        };
        let column = |(img, title, _): &(Image, Option<&str>, usize)| {
            img.width.max(title.map_or(0, |t| text_width(t, ts)))
        };
        let body_w: usize = items.iter().map(|it| column(it) + it.2).sum();
        let body_h = items.iter().map(|it| it.0.height).max().unwrap_or(0);
        let width =
            (2 * MARGIN + body_w).max(2 * MARGIN + text_width(&self.title, self.title_scale));
        let height = 2 * MARGIN + title_h + panel_title_h + body_h;
        let mut out = Image::new(width, height, self.background);
        out.draw_text(
            MARGIN as i64,
            MARGIN as i64,
            &self.title,
            self.text_colour,
            self.title_scale,
        );
        let top = (MARGIN + title_h) as i64;
        let mut x = MARGIN;
        for item in &items {
            x += item.2;
            let col_w = column(item);
            let (img, title, _) = item;
            if let Some(title) = title {
                let tx = x + (col_w - text_width(title, ts)) / 2;
                out.draw_text(tx as i64, top, title, self.text_colour, ts);
            }
            let ix = if title.is_some() {
                x + (col_w - img.width) / 2
            } else {
                x
            };
            out.blit(img, ix as i64, top + panel_title_h as i64);
            x += col_w;
        }
        out
    }
}

/// A figure with one row of panel groups: `Figure::new(title)` with `groups`, rendered.
pub fn panels(title: &str, groups: &[PanelGroup<'_>], pixel_scale: usize) -> Image {
    let mut figure = Figure::new(title).pixel_scale(pixel_scale);
    figure.groups = groups.to_vec();
    figure.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NAN_COLOUR;

    fn rgb(img: &Image, x: usize, y: usize) -> [u8; 3] {
        let c = img.get(x, y).unwrap();
        [c.r, c.g, c.b]
    }

    #[test]
    fn field_image_orientation_and_scale() {
        // 2 rows x 3 columns: row 0 = [0, 0.5, 1], row 1 = [NaN, 2, -1].
        let data = [0.0, 0.5, 1.0, f32::NAN, 2.0, -1.0];
        let img = field_image(&data, 2, 3, Colormap::Viridis, 0.0, 1.0, 4);
        assert_eq!((img.width, img.height), (12, 8));
        let v = |t: f64| Colormap::Viridis.map(t);
        // Row 0 at the top, column 0 at the left, every 4x4 block uniform.
        for (i, expect) in [v(0.0), v(0.5), v(1.0), NAN_COLOUR, v(1.0), v(0.0)]
            .iter()
            .enumerate()
        {
            let (r, c) = (i / 3, i % 3);
            for dy in 0..4 {
                for dx in 0..4 {
                    assert_eq!(
                        &rgb(&img, 4 * c + dx, 4 * r + dy),
                        expect,
                        "value {i} at +({dx},{dy})"
                    );
                }
            }
        }
        assert_eq!(rgb(&img, 0, 0), [68, 1, 84]);
        assert_eq!(rgb(&img, 11, 0), [253, 231, 37]);
        assert_eq!(img.get(11, 7).unwrap().a, 255);
        // pixel_scale 0 behaves as 1.
        let img = field_image(&data, 2, 3, Colormap::Viridis, 0.0, 1.0, 0);
        assert_eq!((img.width, img.height), (3, 2));
        assert_eq!(rgb(&img, 2, 0), v(1.0));
    }

    #[test]
    #[should_panic(expected = "not 2 x 2")]
    fn field_image_checks_shape() {
        field_image(&[0.0; 3], 2, 2, Colormap::Viridis, 0.0, 1.0, 1);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            finite_range(&[f32::NAN, 2.0, -1.0, f32::INFINITY]),
            Some((-1.0, 2.0))
        );
        assert_eq!(finite_range(&[f32::NAN]), None);
        assert_eq!(symmetric_range(&[0.5, -2.0]), Some((-2.0, 2.0)));
    }

    #[test]
    fn colour_bar_layout() {
        let bar = colour_bar(
            Colormap::Magma,
            -1.5e-3,
            0.25,
            100,
            1,
            Rgba::BLACK,
            Rgba::WHITE,
        );
        assert_eq!(bar.height, 100);
        // Top of the strip is vmax's colour, bottom vmin's (inside the 1 px outline).
        assert_eq!(rgb(&bar, 5, 1), Colormap::Magma.map(1.0 - 1.0 / 99.0));
        assert_eq!(rgb(&bar, 5, 98), Colormap::Magma.map(1.0 / 99.0));
        assert_eq!(rgb(&bar, 0, 50), [0, 0, 0]);
        // Wide enough for the longest end label.
        assert!(bar.width >= bar_strip_width(1) + 5 + text_width("-1.5e-3", 1));
        // Some text right of the strip, in the top and bottom label rows.
        let has_ink = |y0: usize, y1: usize| {
            (y0..y1)
                .any(|y| (bar_strip_width(1) + 5..bar.width).any(|x| rgb(&bar, x, y) == [0, 0, 0]))
        };
        assert!(has_ink(0, 7) && has_ink(93, 100) && has_ink(20, 80));
        // Degenerate ranges do not panic.
        let bar = colour_bar(Colormap::Viridis, 3.0, 3.0, 50, 2, Rgba::BLACK, Rgba::WHITE);
        assert_eq!(bar.height, 50);
        colour_bar(
            Colormap::Viridis,
            f32::NAN,
            1.0,
            1,
            1,
            Rgba::BLACK,
            Rgba::WHITE,
        );
    }

    #[test]
    fn figure_layout() {
        let (h, w) = (16, 16);
        let truth: Vec<f32> = (0..h * w).map(|i| i as f32 / 255.0).collect();
        let error: Vec<f32> = truth.iter().map(|v| v - 0.5).collect();
        let fig = Figure::new("density  t = 12")
            .group(PanelGroup::new(
                vec![
                    Panel::new("truth", &truth, h, w),
                    Panel::new("ensemble mean", &truth, h, w),
                ],
                Colormap::Viridis,
                0.0,
                1.0,
                true,
            ))
            .group(PanelGroup::auto(
                vec![Panel::new("error", &error, h, w)],
                Colormap::RdBuR,
                true,
            ))
            .panel(
                Panel::new("spread", &truth, h, w),
                Colormap::Magma,
                0.0,
                1.0,
                false,
            )
            .pixel_scale(4);
        let img = fig.render();
        let top = MARGIN + text_height(2) + 8 + text_height(1) + 4;
        assert_eq!(img.height, top + 64 + MARGIN);
        // The first panel's top-left value (0) sits at (MARGIN + centring, top).
        let col_w = 64usize.max(text_width("ensemble mean", 1));
        assert_eq!(col_w, 77);
        assert_eq!(rgb(&img, MARGIN, top), Colormap::Viridis.map(0.0));
        assert_eq!(rgb(&img, MARGIN + 63, top + 63), Colormap::Viridis.map(1.0));
        let x2 = MARGIN + 64 + PANEL_GAP + (col_w - 64) / 2;
        assert_eq!(rgb(&img, x2, top), Colormap::Viridis.map(0.0));
        // The error panel uses a symmetric range: -0.5 maps to the blue end.
        assert_eq!(
            PanelGroup::auto(vec![Panel::new("e", &error, h, w)], Colormap::RdBuR, true).vmin,
            -0.5
        );
        // The title is drawn in the top margin.
        assert!(
            (MARGIN..MARGIN + 14)
                .any(|y| (MARGIN..MARGIN + 20).any(|x| rgb(&img, x, y) == [0, 0, 0]))
        );
        // The free-function form gives the same image.
        assert_eq!(panels(&fig.title, &fig.groups, 4), img);
    }
}
