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

impl LinePlot {
    pub fn render(&self, width: usize, height: usize) -> Image {
        let mut img = Image::new(width, height, WHITE);
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
        let y_ticks = y.ticks();
        let tick_w = y_ticks
            .iter()
            .map(|&t| text_width(&format_tick(t), 1))
            .max()
            .unwrap_or(8);
        let left = (GLYPH + 6 + tick_w + 6) as i64;
        let top = (GLYPH + 10) as i64;
        let right = width as i64 - 10;
        let bottom = height as i64 - (2 * GLYPH + 14) as i64;
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

        // Legend in the top-right corner of the plot area.
        let lw = self
            .series
            .iter()
            .map(|s| text_width(&s.name, 1))
            .max()
            .unwrap_or(0) as i64;
        let lx = right - lw - 30;
        for (i, s) in self.series.iter().enumerate() {
            let ly = top + 4 + (i * (GLYPH + 3)) as i64;
            img.fill_rect(lx - 2, ly - 1, (lw + 30) as usize, GLYPH + 3, WHITE);
            img.draw_line(lx, ly + 4, lx + 18, ly + 4, s.colour, s.dashed.then_some(4));
            img.draw_line(lx, ly + 5, lx + 18, ly + 5, s.colour, s.dashed.then_some(4));
            img.draw_text(lx + 24, ly, &s.name, BLACK, 1);
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
}
