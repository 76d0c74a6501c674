//! Line plots with axes, ticks, labels and a legend (metrics against lead time, spectra).

use crate::image::{BLACK, GLYPH, GREY, Image, Rgba, WHITE, format_tick, nice_ticks, text_width};

/// A default colour cycle (distinguishable on white).
pub fn palette(i: usize) -> Rgba {
    const C: [Rgba; 8] = [
        [31, 119, 180, 255],
        [255, 127, 14, 255],
        [44, 160, 44, 255],
        [214, 39, 40, 255],
        [148, 103, 189, 255],
        [140, 86, 75, 255],
        [227, 119, 194, 255],
        [23, 190, 207, 255],
    ];
    C[i % C.len()]
}

/// One line: points in data coordinates (non-finite points, and non-positive ones on a log
/// axis, break the line).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: Rgba,
    pub dashed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// One axis: data range and the map to pixels.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

/// The plot area in pixels and its axes.
struct Layout {
    x: Axis,
    y: Axis,
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

impl Layout {
    fn px(&self, f: f64) -> i64 {
        self.left + (f * (self.right - self.left).max(1) as f64).round() as i64
    }

    fn py(&self, f: f64) -> i64 {
        self.bottom - (f * (self.bottom - self.top).max(1) as f64).round() as i64
    }

    /// Every pixel the curves pass through (segments sampled once per pixel).
    fn curve_pixels(&self, plot: &LinePlot) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for s in &plot.series {
            let mut prev: Option<(i64, i64)> = None;
            for &(a, b) in &s.points {
                let pt = match (self.x.frac(a), self.y.frac(b)) {
                    (Some(fx), Some(fy)) => Some((self.px(fx), self.py(fy))),
                    _ => None,
                };
                if let Some(q) = pt {
                    let p = prev.unwrap_or(q);
                    let n = (q.0 - p.0).abs().max((q.1 - p.1).abs()).max(1);
                    for k in 0..=n {
                        out.push((p.0 + (q.0 - p.0) * k / n, p.1 + (q.1 - p.1) * k / n));
                    }
                }
                prev = pt;
            }
        }
        out
    }
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            let v = if log { v.log10() } else { v };
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo, hi) = (lo - pad, hi + pad);
        } else if !log {
            let pad = 0.05 * (hi - lo);
            (lo, hi) = (lo - pad, hi + pad);
        }
        Axis { log, lo, hi }
    }

    /// Position in [0, 1], or None when the value cannot be shown.
    fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() || (self.log && v <= 0.0) {
            return None;
        }
        let v = if self.log { v.log10() } else { v };
        Some((v - self.lo) / (self.hi - self.lo))
    }

    /// Tick values (data coordinates).
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.floor() as i64, self.hi.ceil() as i64);
            let inside = |v: &f64| {
                self.frac(*v)
                    .is_some_and(|f| (-1e-9..=1.0 + 1e-9).contains(&f))
            };
            let decades: Vec<f64> = (a..=b)
                .step_by(((b - a) / 6).max(1) as usize)
                .map(|e| 10f64.powi(e as i32))
                .filter(inside)
                .collect();
            if decades.len() >= 3 {
                return decades;
            }
            // Less than a few decades: 1-2-5 steps, or plain ticks within one decade.
            let steps: Vec<f64> = (a..=b)
                .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e as i32)))
                .filter(inside)
                .collect();
            if steps.len() >= 2 {
                steps
            } else {
                nice_ticks(10f64.powf(self.lo), 10f64.powf(self.hi), 4)
            }
        } else {
            nice_ticks(self.lo, self.hi, 5)
        }
    }
}

/// Where the legend goes: `(x, y, w, h)` of its box in pixels.
type Rect = (i64, i64, i64, i64);

impl LinePlot {
    /// Legend box size: one line per series, a swatch and the name.
    fn legend_size(&self) -> (i64, i64) {
        let lw = self
            .series
            .iter()
            .map(|s| text_width(&s.name, 1))
            .max()
            .unwrap_or(0) as i64;
        (lw + 30, (self.series.len() * (GLYPH + 3)) as i64 + 2)
    }

    /// The plot area `(left, top, right, bottom)` with `legend_margin` pixels kept free on the
    /// right, and the points of every series in pixels, sampled every pixel along each segment.
    fn layout(&self, width: usize, height: usize, legend_margin: i64) -> Layout {
        let x = Axis::fit(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
            self.log_x,
        );
        let y = Axis::fit(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1)),
            self.log_y,
        );
        let tick_w = y
            .ticks()
            .iter()
            .map(|&t| text_width(&format_tick(t), 1))
            .max()
            .unwrap_or(8);
        let left = (GLYPH + 6 + tick_w + 6) as i64;
        let top = (GLYPH + 10) as i64;
        let right = width as i64 - 10 - legend_margin;
        let bottom = height as i64 - (2 * GLYPH + 14) as i64;
        Layout {
            x,
            y,
            left,
            top,
            right,
            bottom,
        }
    }

    /// The legend's box: the first corner of the plot area (top right, top left, bottom right,
    /// bottom left) that no curve passes through, else beside the plot area on the right, so
    /// that the legend never hides data (late leads, where error curves end high on the right,
    /// used to run under a fixed top-right legend). Returns the layout to draw with.
    fn place_legend(&self, width: usize, height: usize) -> (Layout, Rect) {
        let (w, h) = self.legend_size();
        let inside = self.layout(width, height, 0);
        let pixels = inside.curve_pixels(self);
        let (l, t, r, b) = (inside.left, inside.top, inside.right, inside.bottom);
        let corners = [
            (r - w - 2, t + 2),
            (l + 2, t + 2),
            (r - w - 2, b - h - 2),
            (l + 2, b - h - 2),
        ];
        for (cx, cy) in corners {
            let clear = !pixels.iter().any(|&(px, py)| {
                // One pixel of slack: lines are drawn two pixels thick.
                px >= cx - 1 && px <= cx + w && py >= cy - 2 && py <= cy + h
            });
            if clear && cx >= l && cy >= t {
                return (inside, (cx, cy, w, h));
            }
        }
        let beside = self.layout(width, height, w + 6);
        let top = beside.top;
        let x = beside.right + 6;
        (beside, (x, top, w, h))
    }

    pub fn render(&self, width: usize, height: usize) -> Image {
        let mut img = Image::new(width, height, WHITE);
        let (layout, legend) = self.place_legend(width, height);
        let Layout {
            x,
            y,
            left,
            top,
            right,
            bottom,
        } = layout;
        let y_ticks = y.ticks();
        let (pw, ph) = ((right - left).max(1), (bottom - top).max(1));
        let px = |f: f64| left + (f * pw as f64).round() as i64;
        let py = |f: f64| bottom - (f * ph as f64).round() as i64;

        img.draw_text(
            (width as i64 - text_width(&self.title, 1) as i64) / 2,
            3,
            &self.title,
            BLACK,
            1,
        );
        for t in x.ticks() {
            if let Some(f) = x.frac(t) {
                let xx = px(f);
                img.draw_line(xx, top, xx, bottom, GREY, Some(2));
                let label = format_tick(t);
                img.draw_text(
                    xx - text_width(&label, 1) as i64 / 2,
                    bottom + 4,
                    &label,
                    BLACK,
                    1,
                );
            }
        }
        for &t in &y_ticks {
            if let Some(f) = y.frac(t) {
                let yy = py(f);
                img.draw_line(left, yy, right, yy, GREY, Some(2));
                let label = format_tick(t);
                img.draw_text(
                    left - 4 - text_width(&label, 1) as i64,
                    yy - GLYPH as i64 / 2,
                    &label,
                    BLACK,
                    1,
                );
            }
        }
        img.draw_line(left, top, left, bottom, BLACK, None);
        img.draw_line(left, bottom, right, bottom, BLACK, None);
        img.draw_text(
            (left + right) / 2 - text_width(&self.x_label, 1) as i64 / 2,
            bottom + GLYPH as i64 + 8,
            &self.x_label,
            BLACK,
            1,
        );
        // The y label reads top to bottom, one character per line, at the far left.
        let yl: Vec<char> = self.y_label.chars().collect();
        let y0 = (top + bottom) / 2 - (yl.len() * GLYPH) as i64 / 2;
        for (i, c) in yl.iter().enumerate() {
            img.draw_text(2, y0 + (i * GLYPH) as i64, &c.to_string(), BLACK, 1);
        }

        for s in &self.series {
            let mut prev: Option<(i64, i64)> = None;
            for &(a, b) in &s.points {
                let pt = match (x.frac(a), y.frac(b)) {
                    (Some(fx), Some(fy)) => Some((px(fx), py(fy))),
                    _ => None,
                };
                match (prev, pt) {
                    (Some(p), Some(q)) => {
                        let dash = s.dashed.then_some(4);
                        img.draw_line(p.0, p.1, q.0, q.1, s.colour, dash);
                        img.draw_line(p.0, p.1 + 1, q.0, q.1 + 1, s.colour, dash);
                    }
                    (None, Some(q)) => img.fill_rect(q.0, q.1, 2, 2, s.colour),
                    _ => {}
                }
                prev = pt;
            }
        }

        let (lx, ly, lw, _) = legend;
        for (i, s) in self.series.iter().enumerate() {
            let ly = ly + 1 + (i * (GLYPH + 3)) as i64;
            img.fill_rect(lx, ly - 1, lw as usize, GLYPH + 3, WHITE);
            let dash = s.dashed.then_some(4);
            img.draw_line(lx + 2, ly + 4, lx + 20, ly + 4, s.colour, dash);
            img.draw_line(lx + 2, ly + 5, lx + 20, ly + 5, s.colour, dash);
            img.draw_text(lx + 26, ly, &s.name, BLACK, 1);
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(img: &Image, c: Rgba) -> usize {
        img.pixels.chunks_exact(4).filter(|p| *p == c).count()
    }

    #[test]
    fn series_are_drawn_inside_the_plot_area() {
        let red = [214, 39, 40, 255];
        let plot = LinePlot {
            title: "VRMSE".into(),
            x_label: "lead time".into(),
            y_label: "vrmse".into(),
            series: vec![Series {
                name: "density".into(),
                points: (1..=20).map(|i| (i as f64, (i as f64).sqrt())).collect(),
                colour: red,
                dashed: false,
            }],
            ..Default::default()
        };
        let img = plot.render(320, 200);
        assert_eq!((img.width, img.height), (320, 200));
        let n = count(&img, red);
        assert!(n > 200, "{n} line pixels");
        // Nothing red in the margins (outside the axes box).
        for y in 0..200 {
            for x in 0..320 {
                if img.get(x, y) == red {
                    assert!(x > 20 && y > 10 && y < 200 - 20, "red at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn log_axes_skip_what_they_cannot_show() {
        let blue = palette(0);
        let plot = LinePlot {
            log_x: true,
            log_y: true,
            series: vec![Series {
                name: "P(k)".into(),
                points: vec![
                    (0.0, 1.0),
                    (0.1, 1.0),
                    (0.2, -1.0),
                    (0.3, 1e-3),
                    (0.5, f64::NAN),
                ],
                colour: blue,
                dashed: true,
            }],
            ..Default::default()
        };
        let img = plot.render(200, 150);
        assert!(count(&img, blue) > 0);
        // A constant and an empty series render without panicking.
        let flat = LinePlot {
            series: vec![
                Series {
                    name: "c".into(),
                    points: vec![(0.0, 2.0), (1.0, 2.0)],
                    colour: blue,
                    dashed: false,
                },
                Series {
                    name: "e".into(),
                    points: vec![],
                    colour: blue,
                    dashed: false,
                },
            ],
            ..Default::default()
        };
        assert!(count(&flat.render(100, 80), blue) > 0);
    }

    /// The legend never covers a curve: error curves that end high on the right (late leads)
    /// push it to a free corner, and curves through every corner push it beside the plot.
    #[test]
    fn the_legend_never_covers_a_curve() {
        let series = |name: &str, i: usize, f: &dyn Fn(f64) -> f64| Series {
            name: name.into(),
            points: (1..=25).map(|k| (k as f64, f(k as f64))).collect(),
            colour: palette(i),
            dashed: false,
        };
        let rising = LinePlot {
            series: vec![
                series("energy", 0, &|t| 0.01 * t * t),
                series("density", 1, &|t| 0.008 * t * t),
                series("momentum_x", 2, &|t| 0.2 * t),
            ],
            ..Default::default()
        };
        let everywhere = LinePlot {
            series: vec![
                series("high", 0, &|_| 10.0),
                series("low", 1, &|_| 0.0),
                series("rising", 2, &|t| t / 2.5),
            ],
            ..Default::default()
        };
        for (plot, beside) in [(rising, false), (everywhere, true)] {
            let (layout, (lx, ly, lw, lh)) = plot.place_legend(720, 420);
            assert_eq!(
                lx > layout.right,
                beside,
                "legend at {lx}, plot ends {}",
                layout.right
            );
            for (px, py) in layout.curve_pixels(&plot) {
                assert!(
                    !(px >= lx && px < lx + lw && py >= ly && py < ly + lh),
                    "curve pixel ({px}, {py}) under the legend {:?}",
                    (lx, ly, lw, lh)
                );
            }
            // Every series is drawn in full: its colour appears beyond the legend swatch.
            let img = plot.render(720, 420);
            for s in &plot.series {
                assert!(count(&img, s.colour) > 200, "{} hidden", s.name);
            }
        }
    }
}
