//! Line plots: axes with nice ticks and grid lines, linear or logarithmic scales, several
//! solid or dashed series, and a legend.

use crate::colour::Rgba;
use crate::image::{Image, clip_segment_rect, text_height, text_width};
use crate::ticks::{
    format_ticks, log_minor_ticks, log_ticks, nice_bounds, nice_ticks, widen_range,
};

/// A colour cycle for series that tells lines apart on white (matplotlib's "tab10").
pub const COLOUR_CYCLE: [Rgba; 10] = [
    Rgba::rgb(0x1f, 0x77, 0xb4),
    Rgba::rgb(0xff, 0x7f, 0x0e),
    Rgba::rgb(0x2c, 0xa0, 0x2c),
    Rgba::rgb(0xd6, 0x27, 0x28),
    Rgba::rgb(0x94, 0x67, 0xbd),
    Rgba::rgb(0x8c, 0x56, 0x4b),
    Rgba::rgb(0xe3, 0x77, 0xc2),
    Rgba::rgb(0x7f, 0x7f, 0x7f),
    Rgba::rgb(0xbc, 0xbd, 0x22),
    Rgba::rgb(0x17, 0xbe, 0xcf),
];

/// The `i`-th colour of [`COLOUR_CYCLE`], wrapping around.
pub fn default_colour(i: usize) -> Rgba {
    COLOUR_CYCLE[i % COLOUR_CYCLE.len()]
}

/// One line of a [`LinePlot`]. Points are joined in the given order; a point that cannot be
/// drawn (non-finite, or not positive on a logarithmic axis) is skipped and breaks the line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: Rgba,
    pub dashed: bool,
}

impl Series {
    /// A solid series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, colour: Rgba) -> Self {
        Self {
            name: name.into(),
            points,
            colour,
            dashed: false,
        }
    }

    /// A solid series from `y` values at `x = 0, 1, 2, ...`.
    pub fn from_values(name: impl Into<String>, ys: &[f64], colour: Rgba) -> Self {
        Self::new(
            name,
            ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
            colour,
        )
    }

    /// The same series, dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A line plot: title, axis labels, linear or log axes, series and a legend.
///
/// ```
/// use lemur_viz::{LinePlot, Series, default_colour};
/// let img = LinePlot::new("VRMSE against lead time")
///     .x_label("lead time")
///     .y_label("VRMSE")
///     .log_y(true)
///     .series(Series::from_values("diffusion", &[0.05, 0.1, 0.2, 0.4], default_colour(0)))
///     .series(Series::new("autoencoder floor", vec![(0.0, 0.03), (3.0, 0.03)], default_colour(1)).dashed())
///     .render(480, 320);
/// assert_eq!((img.width, img.height), (480, 320));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    /// Fixed axis ranges; `None` fits the data (widened to nice tick values on linear axes,
    /// to whole decades on log axes).
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
    /// Draw a legend of the named series (default true).
    pub legend: bool,
    /// Scale of all text (default 1; the title is drawn at twice this).
    pub text_scale: usize,
}

/// The plotting area inside a rendered [`LinePlot`], in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Rect {
    /// Whether `(x, y)` lies inside.
    pub fn contains(&self, x: usize, y: usize) -> bool {
        x >= self.x && x < self.x + self.width && y >= self.y && y < self.y + self.height
    }
}

/// One axis: its range (in data units) and scale.
#[derive(Clone, Copy, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// Position of `v` as a fraction of the axis, `None` if it cannot be drawn.
    fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() || (self.log && v <= 0.0) {
            return None;
        }
        let f = if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        f.is_finite().then_some(f)
    }

    /// The axis for `values`, or `fixed` when it is a valid range. A fitted linear axis is
    /// widened to nice tick values, after `pad` (a fraction of the span on each side) so
    /// that lines do not run along the frame; a fitted log axis spans whole decades.
    fn fit(
        values: impl Iterator<Item = f64>,
        log: bool,
        fixed: Option<(f64, f64)>,
        pad: f64,
    ) -> Axis {
        if let Some((lo, hi)) = fixed {
            let ok = lo.is_finite() && hi.is_finite() && lo < hi && (!log || lo > 0.0);
            if ok {
                return Axis { lo, hi, log };
            }
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if log {
            if !(lo.is_finite() && hi.is_finite()) {
                return Axis {
                    lo: 1.0,
                    hi: 10.0,
                    log,
                };
            }
            let mut e0 = (lo.log10() + 1e-9).floor();
            let mut e1 = (hi.log10() - 1e-9).ceil();
            if e1 <= e0 {
                // A constant power of ten: centre it in two decades.
                e0 -= 1.0;
                e1 = e0 + 2.0;
            }
            if e1 - e0 > 300.0 {
                e0 = e1 - 300.0;
            }
            Axis {
                lo: 10f64.powf(e0),
                hi: 10f64.powf(e1),
                log,
            }
        } else {
            let (lo, hi) = if lo.is_finite() {
                widen_range(lo, hi)
            } else {
                (0.0, 1.0)
            };
            let margin = (hi - lo) * pad;
            let (lo, hi) = nice_bounds(lo - margin, hi + margin, 6);
            Axis { lo, hi, log }
        }
    }

    /// Major ticks, minor ticks.
    fn ticks(&self, target: usize) -> (Vec<f64>, Vec<f64>) {
        if self.log {
            let major = log_ticks(self.lo, self.hi, target);
            let minor = if major.len() >= 2
                && major.windows(2).all(|w| (w[1] / w[0] - 10.0).abs() < 1e-6)
            {
                log_minor_ticks(self.lo, self.hi)
            } else {
                Vec::new()
            };
            (major, minor)
        } else {
            (nice_ticks(self.lo, self.hi, target), Vec::new())
        }
    }
}

/// Where things go in a rendered plot: the plotting area, the axes, and the labelled ticks.
struct Layout {
    rect: Rect,
    xa: Axis,
    ya: Axis,
    xt: Vec<(f64, String)>,
    yt: Vec<(f64, String)>,
}

const LEGEND_SAMPLE: usize = 20;

impl LinePlot {
    /// An empty plot with a title; linear axes, legend on, text scale 1.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            x_range: None,
            y_range: None,
            series: Vec::new(),
            legend: true,
            text_scale: 1,
        }
    }

    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    pub fn log_x(mut self, log: bool) -> Self {
        self.log_x = log;
        self
    }

    pub fn log_y(mut self, log: bool) -> Self {
        self.log_y = log;
        self
    }

    pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
        self.x_range = Some((lo, hi));
        self
    }

    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }

    pub fn legend(mut self, legend: bool) -> Self {
        self.legend = legend;
        self
    }

    pub fn text_scale(mut self, scale: usize) -> Self {
        self.text_scale = scale.max(1);
        self
    }

    /// Appends a series.
    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The axes' ranges and ticks: (x axis, y axis).
    fn axes(&self) -> (Axis, Axis) {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| p.1.is_finite()).map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| p.0.is_finite()).map(|p| p.1));
        // On a log axis, points whose other coordinate is unplottable still count here; that
        // only widens the range a little.
        (
            Axis::fit(xs, self.log_x, self.x_range, 0.0),
            Axis::fit(ys, self.log_y, self.y_range, 0.03),
        )
    }

    /// Where [`LinePlot::render`] puts the plotting area (inside the axes' frame) for an
    /// image of this size.
    pub fn plot_area(&self, width: usize, height: usize) -> Rect {
        self.layout(width, height).rect
    }

    fn layout(&self, width: usize, height: usize) -> Layout {
        let s = self.text_scale.max(1);
        let th = text_height(s);
        let (xa, ya) = self.axes();
        let y_target = (height / (th * 5)).clamp(2, 8);
        let x_target = (width / 90).clamp(2, 10);
        let label = |ticks: Vec<f64>| -> Vec<(f64, String)> {
            let labels = format_ticks(&ticks);
            ticks.into_iter().zip(labels).collect()
        };
        let yt = label(ya.ticks(y_target).0);
        let xt = label(xa.ticks(x_target).0);
        let y_label_w = yt.iter().map(|(_, l)| text_width(l, s)).max().unwrap_or(0);
        let pad = 6;
        let left = pad + if self.y_label.is_empty() { 0 } else { th + pad } + y_label_w + 6;
        let top = pad
            + if self.title.is_empty() {
                th / 2
            } else {
                text_height(2 * s) + pad
            };
        let bottom = 6 + th + pad + if self.x_label.is_empty() { 0 } else { th + pad };
        // Leave room for the last x tick label to overhang the frame.
        let right = pad + xt.last().map_or(0, |(_, l)| text_width(l, s) / 2);
        let rect = Rect {
            x: left,
            y: top,
            width: width.saturating_sub(left + right).max(2),
            height: height.saturating_sub(top + bottom).max(2),
        };
        Layout {
            rect,
            xa,
            ya,
            xt,
            yt,
        }
    }

    /// Draws the plot into a `width` x `height` image (white background).
    pub fn render(&self, width: usize, height: usize) -> Image {
        let s = self.text_scale.max(1);
        let th = text_height(s) as i64;
        let Layout {
            rect,
            xa,
            ya,
            xt,
            yt,
        } = self.layout(width, height);
        let mut img = Image::new(width, height, Rgba::WHITE);
        let (rx, ry, rw, rh) = (
            rect.x as f64,
            rect.y as f64,
            rect.width as f64,
            rect.height as f64,
        );
        // Data to pixel positions (continuous; pixel centres at integers).
        let px = |v: f64| xa.frac(v).map(|f| rx + f * (rw - 1.0));
        let py = |v: f64| ya.frac(v).map(|f| ry + (1.0 - f) * (rh - 1.0));
        let (x0, y0) = (rect.x as i64, rect.y as i64);
        let y1 = y0 + rect.height as i64 - 1;
        let on_x = |p: f64| p >= rx - 0.5 && p <= rx + rw - 0.5;
        let on_y = |p: f64| p >= ry - 0.5 && p <= ry + rh - 0.5;

        // Grid lines.
        let minor_grey = Rgba::rgb(240, 240, 240);
        let (_, x_minor) = xa.ticks(2);
        let (_, y_minor) = ya.ticks(2);
        for p in x_minor.iter().filter_map(|&v| px(v)).filter(|&p| on_x(p)) {
            img.fill_rect(p.round() as i64, y0, 1, rect.height, minor_grey);
        }
        for p in y_minor.iter().filter_map(|&v| py(v)).filter(|&p| on_y(p)) {
            img.fill_rect(x0, p.round() as i64, rect.width, 1, minor_grey);
        }
        for p in xt.iter().filter_map(|(v, _)| px(*v)).filter(|&p| on_x(p)) {
            img.fill_rect(p.round() as i64, y0, 1, rect.height, Rgba::LIGHT_GREY);
        }
        for p in yt.iter().filter_map(|(v, _)| py(*v)).filter(|&p| on_y(p)) {
            img.fill_rect(x0, p.round() as i64, rect.width, 1, Rgba::LIGHT_GREY);
        }

        // Series, clipped to the plotting area.
        let clip = (rx, ry, rx + rw - 1.0, ry + rh - 1.0);
        for series in &self.series {
            let mut phase = 0usize;
            let mut prev: Option<(f64, f64)> = None;
            for &(x, y) in &series.points {
                let Some(cur) = px(x).zip(py(y)) else {
                    prev = None;
                    continue;
                };
                match prev {
                    None => {
                        if on_x(cur.0) && on_y(cur.1) {
                            img.set(cur.0.round() as i64, cur.1.round() as i64, series.colour);
                        }
                    }
                    Some(p) => {
                        if let Some((a, b, c, d)) = clip_segment_rect(p.0, p.1, cur.0, cur.1, clip)
                        {
                            let dash = if series.dashed {
                                Some(&mut phase)
                            } else {
                                None
                            };
                            let r = |v: f64| v.round() as i64;
                            img.line_with_phase(r(a), r(b), r(c), r(d), series.colour, dash);
                        }
                    }
                }
                prev = Some(cur);
            }
        }

        // Frame, tick marks and labels.
        img.stroke_rect(x0 - 1, y0 - 1, rect.width + 2, rect.height + 2, Rgba::BLACK);
        for (v, label) in &xt {
            let Some(p) = px(*v).filter(|&p| on_x(p)) else {
                continue;
            };
            let p = p.round() as i64;
            img.fill_rect(p, y1 + 2, 1, 4, Rgba::BLACK);
            let w = text_width(label, s) as i64;
            let lx = (p - w / 2).clamp(0, (width as i64 - w).max(0));
            img.draw_text(lx, y1 + 7, label, Rgba::BLACK, s);
        }
        for (v, label) in &yt {
            let Some(p) = py(*v).filter(|&p| on_y(p)) else {
                continue;
            };
            let p = p.round() as i64;
            img.fill_rect(x0 - 5, p, 4, 1, Rgba::BLACK);
            let w = text_width(label, s) as i64;
            img.draw_text(x0 - 7 - w, p - th / 2, label, Rgba::BLACK, s);
        }

        // Title, axis labels.
        let centre = |w: usize| x0 + (rect.width as i64 - w as i64) / 2;
        if !self.title.is_empty() {
            let w = text_width(&self.title, 2 * s);
            img.draw_text(centre(w).max(0), 6, &self.title, Rgba::BLACK, 2 * s);
        }
        if !self.x_label.is_empty() {
            let w = text_width(&self.x_label, s);
            img.draw_text(centre(w), y1 + 7 + th + 6, &self.x_label, Rgba::BLACK, s);
        }
        if !self.y_label.is_empty() {
            let w = text_width(&self.y_label, s);
            let mut label = Image::new(w, th as usize, Rgba::WHITE);
            label.draw_text(0, 0, &self.y_label, Rgba::BLACK, s);
            let label = label.rotated_ccw();
            let ly = y0 + (rect.height as i64 - label.height as i64) / 2;
            img.blit(&label, 6, ly.max(0));
        }

        if self.legend {
            self.draw_legend(&mut img, rect, &px, &py);
        }
        img
    }

    /// Draws the legend in whichever inner corner of the plotting area covers the fewest
    /// data points.
    fn draw_legend(
        &self,
        img: &mut Image,
        rect: Rect,
        px: &dyn Fn(f64) -> Option<f64>,
        py: &dyn Fn(f64) -> Option<f64>,
    ) {
        let named: Vec<&Series> = self.series.iter().filter(|s| !s.name.is_empty()).collect();
        if named.is_empty() {
            return;
        }
        let s = self.text_scale.max(1);
        let th = text_height(s);
        let row_h = th + 4;
        let name_w = named
            .iter()
            .map(|n| text_width(&n.name, s))
            .max()
            .unwrap_or(0);
        let w = 4 + LEGEND_SAMPLE + 4 + name_w + 4;
        let h = 4 + row_h * named.len();
        if w + 8 > rect.width || h + 8 > rect.height {
            return;
        }
        let (l, r) = (rect.x + 4, rect.x + rect.width - 4 - w);
        let (t, b) = (rect.y + 4, rect.y + rect.height - 4 - h);
        let corners = [(r, t), (l, t), (r, b), (l, b)];
        let covered = |(cx, cy): (usize, usize)| {
            let mut n = 0;
            for series in &self.series {
                // Sample along segments so that lines crossing the box count too.
                for pair in series.points.windows(2) {
                    let (Some(a), Some(b)) = (
                        px(pair[0].0).zip(py(pair[0].1)),
                        px(pair[1].0).zip(py(pair[1].1)),
                    ) else {
                        continue;
                    };
                    for k in 0..=8 {
                        let f = f64::from(k) / 8.0;
                        let (x, y) = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
                        if x >= cx as f64
                            && x < (cx + w) as f64
                            && y >= cy as f64
                            && y < (cy + h) as f64
                        {
                            n += 1;
                        }
                    }
                }
            }
            n
        };
        let (cx, cy) = corners
            .into_iter()
            .min_by_key(|&c| covered(c))
            .unwrap_or(corners[0]);
        let (cx, cy) = (cx as i64, cy as i64);
        img.fill_rect(cx, cy, w, h, Rgba::WHITE);
        img.stroke_rect(cx, cy, w, h, Rgba::GREY);
        for (i, series) in named.iter().enumerate() {
            let y = cy + 4 + (i * row_h) as i64;
            let mid = y + th as i64 / 2;
            img.draw_line(
                cx + 4,
                mid,
                cx + 4 + LEGEND_SAMPLE as i64 - 1,
                mid,
                series.colour,
                series.dashed,
            );
            img.draw_text(
                cx + 8 + LEGEND_SAMPLE as i64,
                y,
                &series.name,
                Rgba::BLACK,
                s,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgba = Rgba::rgb(230, 0, 0);

    fn pixels_of(img: &Image, c: Rgba) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for y in 0..img.height {
            for x in 0..img.width {
                if img.get(x, y) == Some(c) {
                    out.push((x, y));
                }
            }
        }
        out
    }

    #[test]
    fn series_pixels_lie_in_the_plot_area() {
        let plot = LinePlot::new("VRMSE against lead time")
            .x_label("lead time")
            .y_label("VRMSE")
            .series(Series::new(
                "model",
                vec![(0.0, 0.1), (5.0, 0.6), (10.0, 0.9)],
                RED,
            ));
        let (w, h) = (400, 300);
        let img = plot.render(w, h);
        let area = plot.plot_area(w, h);
        assert!(area.width > 250 && area.height > 180, "{area:?}");
        let red = pixels_of(&img, RED);
        assert!(red.len() > 200, "{}", red.len());
        assert!(red.iter().all(|&(x, y)| area.contains(x, y)), "{area:?}");
        // The line spans the axis: x from 0 to 10 fills the area's width (the axis is fitted
        // to nice bounds 0..10).
        let min_x = red.iter().map(|p| p.0).min().unwrap();
        let max_x = red.iter().map(|p| p.0).max().unwrap();
        assert_eq!((min_x, max_x), (area.x, area.x + area.width - 1));
        // The first point (0, 0.1) is at the left edge, 10% up a 0..1 axis.
        let expect_y = area.y as f64 + 0.9 * (area.height - 1) as f64;
        let at_left: Vec<usize> = red.iter().filter(|p| p.0 == area.x).map(|p| p.1).collect();
        assert!(
            at_left.iter().any(|&y| (y as f64 - expect_y).abs() <= 1.0),
            "{at_left:?} vs {expect_y}"
        );
        // Frame around the area, grid inside it.
        assert_eq!(img.get(area.x - 1, area.y + 5), Some(Rgba::BLACK));
        assert!(
            pixels_of(&img, Rgba::LIGHT_GREY)
                .iter()
                .all(|&(x, y)| area.contains(x, y))
        );
    }

    #[test]
    fn log_axes_skip_non_positive_values() {
        let plot = LinePlot::new("power spectra")
            .x_label("wavenumber")
            .y_label("power")
            .log_x(true)
            .log_y(true)
            .series(Series::new(
                "truth",
                vec![
                    (0.0, 5.0),
                    (1.0, 1.0),
                    (2.0, 0.0),
                    (4.0, -1.0),
                    (8.0, 1e-3),
                    (16.0, f64::NAN),
                    (32.0, 1e-5),
                ],
                RED,
            ))
            .series(
                Series::new(
                    "prediction",
                    vec![(1.0, 2.0), (8.0, 2e-3), (32.0, 3e-5)],
                    default_colour(0),
                )
                .dashed(),
            );
        let (xa, ya) = plot.axes();
        assert_eq!((xa.lo, xa.hi), (1.0, 100.0));
        assert_eq!((ya.lo, ya.hi), (1e-5, 10.0));
        let img = plot.render(500, 350);
        let area = plot.plot_area(500, 350);
        let red = pixels_of(&img, RED);
        assert!(!red.is_empty() && red.iter().all(|&(x, y)| area.contains(x, y)));
        // Only the point (1, 1), the segment (8, 1e-3)..(32, 1e-5) and the legend sample are
        // drawn: nothing left of x = 1 (the frame's left edge) except the lone point there.
        let blue = pixels_of(&img, default_colour(0));
        assert!(blue.len() > 50 && blue.iter().all(|&(x, y)| area.contains(x, y)));
        // Everything non-positive: an empty but valid plot.
        let empty = LinePlot::new("nothing")
            .log_y(true)
            .series(Series::from_values("zeros", &[0.0, -1.0], RED));
        let img = empty.render(200, 150);
        assert_eq!((img.width, img.height), (200, 150));
        assert!(
            pixels_of(&img, RED)
                .iter()
                .all(|&(x, y)| empty.plot_area(200, 150).contains(x, y))
        );
    }

    #[test]
    fn constant_and_degenerate_series_render() {
        let plot = LinePlot::new("spread-skill against lead time")
            .series(Series::from_values("calibrated", &[1.0; 6], RED))
            .series(Series::new("empty", vec![], default_colour(1)))
            .series(Series::new("single", vec![(2.0, 1.0)], default_colour(2)));
        let (_, ya) = plot.axes();
        assert!(ya.lo < 1.0 && ya.hi > 1.0, "{ya:?}");
        let img = plot.render(320, 200);
        let area = plot.plot_area(320, 200);
        // The constant line is horizontal, in the middle of the y range.
        let rows: std::collections::BTreeSet<usize> = pixels_of(&img, RED)
            .into_iter()
            .filter(|p| p.0 < area.x + area.width / 2)
            .map(|p| p.1)
            .collect();
        assert_eq!(rows.len(), 1, "{rows:?}");
        // Tiny images do not panic.
        plot.render(10, 10);
        plot.render(1, 1);
        LinePlot::new("").legend(false).render(50, 40);
    }

    #[test]
    fn dashed_series_and_legend() {
        let floor = Series::new("autoencoder floor", vec![(0.0, 0.5), (10.0, 0.5)], RED).dashed();
        let plot = LinePlot::new("")
            .series(floor)
            .y_range(0.0, 1.0)
            .x_range(0.0, 10.0);
        let img = plot.render(300, 200);
        let area = plot.plot_area(300, 200);
        let y = (area.y as f64 + 0.5 * (area.height - 1) as f64).round() as usize;
        let row: Vec<bool> = (area.x..area.x + area.width)
            .map(|x| img.get(x, y) == Some(RED))
            .collect();
        let on = row.iter().filter(|&&b| b).count();
        assert!(
            on > area.width / 2 && on < area.width * 3 / 4,
            "{on} of {}",
            area.width
        );
        assert_eq!(default_colour(0), default_colour(10));
        assert_ne!(default_colour(0), default_colour(1));
    }
}
