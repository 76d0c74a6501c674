//! The RGBA canvas, text, colour-mapped fields, colour bars and rows of panels.

use crate::colormap::Colormap;

/// An RGBA colour.
pub type Rgba = [u8; 4];

pub const WHITE: Rgba = [255, 255, 255, 255];
pub const BLACK: Rgba = [0, 0, 0, 255];
pub const GREY: Rgba = [200, 200, 200, 255];

/// Glyph cell of the embedded font, in pixels at scale 1.
pub const GLYPH: usize = 8;

/// An RGBA8 image, row-major from the top-left corner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Image {
    pub fn new(width: usize, height: usize, background: Rgba) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 4);
        for _ in 0..width * height {
            pixels.extend_from_slice(&background);
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgba {
        let i = (y * self.width + x) * 4;
        [
            self.pixels[i],
            self.pixels[i + 1],
            self.pixels[i + 2],
            self.pixels[i + 3],
        ]
    }

    /// Sets a pixel; coordinates outside the image are ignored (drawing clips).
    pub fn set(&mut self, x: i64, y: i64, c: Rgba) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 4;
            self.pixels[i..i + 4].copy_from_slice(&c);
        }
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, c: Rgba) {
        for dy in 0..h as i64 {
            for dx in 0..w as i64 {
                self.set(x + dx, y + dy, c);
            }
        }
    }

    /// A 1-pixel line from (x0, y0) to (x1, y1); `dash` = Some(n) draws n pixels on, n off.
    pub fn draw_line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgba, dash: Option<usize>) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let mut k = 0usize;
        loop {
            if dash.is_none_or(|n| (k / n.max(1)).is_multiple_of(2)) {
                self.set(x, y, c);
            }
            k += 1;
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Copies `src` with its top-left corner at (x, y), clipped.
    pub fn blit(&mut self, src: &Image, x: i64, y: i64) {
        for sy in 0..src.height {
            for sx in 0..src.width {
                self.set(x + sx as i64, y + sy as i64, src.get(sx, sy));
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y), glyphs `8 * scale` pixels square.
    /// Characters outside printable ASCII draw as `?`.
    pub fn draw_text(&mut self, x: i64, y: i64, text: &str, c: Rgba, scale: usize) {
        let scale = scale.max(1);
        for (i, ch) in text.chars().enumerate() {
            let code = if (' '..='~').contains(&ch) {
                ch as usize
            } else {
                '?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let ox = x + (i * GLYPH * scale) as i64;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH {
                    if bits >> col & 1 == 1 {
                        self.fill_rect(
                            ox + (col * scale) as i64,
                            y + (row * scale) as i64,
                            scale,
                            scale,
                            c,
                        );
                    }
                }
            }
        }
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * GLYPH * scale.max(1)
}

/// A row-major (h, w) field, colour-mapped on [lo, hi], each cell `scale` pixels square, row 0
/// at the top.
pub fn field_image(
    data: &[f32],
    h: usize,
    w: usize,
    cmap: Colormap,
    lo: f32,
    hi: f32,
    scale: usize,
) -> Image {
    let scale = scale.max(1);
    let mut img = Image::new(w * scale, h * scale, BLACK);
    for i in 0..h {
        for j in 0..w {
            let [r, g, b] = cmap.map_range(data[i * w + j], lo, hi);
            img.fill_rect(
                (j * scale) as i64,
                (i * scale) as i64,
                scale,
                scale,
                [r, g, b, 255],
            );
        }
    }
    img
}

/// Up to about `n` "nice" values (1, 2 or 5 times a power of ten apart) within [lo, hi].
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    if hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // Kill the -0 and 1e-17 residues of k * step.
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect()
}

/// A compact label: `0.25`, `-1.5e-3`, `1200`, `3e+05`.
pub fn format_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-2..1e4).contains(&a) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    }
}

/// Width of a colour bar's colour strip, in pixels.
const BAR_W: usize = 12;
/// Where a colour bar's tick labels start: a blank gap after the strip. The tick marks are
/// drawn inside the strip, so nothing dash-like stands before a label (a mark next to `4`
/// read as `-4`, and next to `-2` as `--2`).
const BAR_LABEL_X: usize = BAR_W + 4;

/// A vertical colour bar `height` pixels tall with tick labels on its right.
pub fn colour_bar(cmap: Colormap, lo: f32, hi: f32, height: usize) -> Image {
    let bar_w = BAR_W;
    let ticks = nice_ticks(lo as f64, hi as f64, 4);
    let label_w = ticks
        .iter()
        .map(|&t| text_width(&format_tick(t), 1))
        .max()
        .unwrap_or(0)
        .max(text_width(&format_tick(hi as f64), 1));
    let mut img = Image::new(BAR_LABEL_X + label_w + 2, height + GLYPH, WHITE);
    let top = GLYPH as i64 / 2;
    for y in 0..height {
        let t = 1.0 - y as f32 / (height.max(2) - 1) as f32;
        let [r, g, b] = cmap.map(t);
        img.fill_rect(0, top + y as i64, bar_w, 1, [r, g, b, 255]);
    }
    let span = (hi - lo) as f64;
    for &t in &ticks {
        let f = if span > 0.0 {
            (t - lo as f64) / span
        } else {
            0.5
        };
        let y = top + ((1.0 - f) * (height.max(2) - 1) as f64).round() as i64;
        // The mark sits inside the strip, in whichever of black and white shows on it.
        let [r, g, b, _] = img.get(bar_w - 1, y.clamp(0, img.height as i64 - 1) as usize);
        let light = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32 > 128.0;
        let mark = if light { BLACK } else { WHITE };
        img.draw_line(bar_w as i64 - 4, y, bar_w as i64 - 1, y, mark, None);
        img.draw_text(
            BAR_LABEL_X as i64,
            y - GLYPH as i64 / 2,
            &format_tick(t),
            BLACK,
            1,
        );
    }
    img
}

/// One panel of a figure row: a field with a title, its colour map and range, and whether to
/// draw a colour bar beside it.
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub data: &'a [f32],
    pub cmap: Colormap,
    pub range: (f32, f32),
    pub colour_bar: bool,
}

/// A row of panels of (h, w) fields under a title line, each cell `scale` pixels square.
pub fn panels(title: &str, row: &[Panel<'_>], h: usize, w: usize, scale: usize) -> Image {
    let pad = 6usize;
    let (pw, ph) = (w * scale.max(1), h * scale.max(1));
    let bars: Vec<Option<Image>> = row
        .iter()
        .map(|p| {
            p.colour_bar
                .then(|| colour_bar(p.cmap, p.range.0, p.range.1, ph))
        })
        .collect();
    let widths: Vec<usize> = row
        .iter()
        .zip(&bars)
        .map(|(p, b)| (pw + b.as_ref().map_or(0, |b| b.width + 2)).max(text_width(&p.title, 1)))
        .collect();
    let total_w = pad + widths.iter().map(|w| w + pad).sum::<usize>();
    let title_h = GLYPH + 2 * pad;
    let total_w = total_w.max(text_width(title, 1) + 2 * pad);
    let mut img = Image::new(total_w, title_h + GLYPH + 4 + ph + GLYPH + pad, WHITE);
    img.draw_text(pad as i64, pad as i64, title, BLACK, 1);
    let mut x = pad;
    for ((p, bar), wdt) in row.iter().zip(&bars).zip(&widths) {
        let y = title_h as i64;
        img.draw_text(x as i64, y, &p.title, BLACK, 1);
        let fy = y + GLYPH as i64 + 4;
        img.blit(
            &field_image(p.data, h, w, p.cmap, p.range.0, p.range.1, scale),
            x as i64,
            fy,
        );
        if let Some(bar) = bar {
            img.blit(bar, (x + pw + 2) as i64, fy - GLYPH as i64 / 2);
        }
        x += wdt + pad;
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_image_orientation_and_scale() {
        // 2 x 3 field, values 0..5: (0, 0) is the darkest, (1, 2) the brightest.
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let img = field_image(&data, 2, 3, Colormap::Viridis, 0.0, 5.0, 2);
        assert_eq!((img.width, img.height), (6, 4));
        let lo = Colormap::Viridis.map(0.0);
        let hi = Colormap::Viridis.map(1.0);
        assert_eq!(img.get(0, 0), [lo[0], lo[1], lo[2], 255]);
        assert_eq!(img.get(1, 1), [lo[0], lo[1], lo[2], 255]);
        assert_eq!(img.get(5, 3), [hi[0], hi[1], hi[2], 255]);
        // Row 0, column 2 holds value 2.
        let c = Colormap::Viridis.map(0.4);
        assert_eq!(img.get(4, 0), [c[0], c[1], c[2], 255]);
    }

    #[test]
    fn text_stays_in_its_box() {
        let mut img = Image::new(60, 30, WHITE);
        img.draw_text(5, 7, "Ag1", BLACK, 2);
        assert_eq!(text_width("Ag1", 2), 48);
        let mut inked = 0;
        for y in 0..30 {
            for x in 0..60 {
                if img.get(x, y) == BLACK {
                    inked += 1;
                    assert!(
                        (5..53).contains(&x) && (7..23).contains(&y),
                        "ink at ({x}, {y})"
                    );
                }
            }
        }
        assert!(inked > 30, "{inked} pixels inked");
    }

    #[test]
    fn colour_bar_labels_read_as_their_numbers() {
        let img = colour_bar(Colormap::Viridis, -4.0, 4.0, 120);
        let ticks = nice_ticks(-4.0, 4.0, 4);
        assert!(ticks.contains(&-2.0) && ticks.contains(&4.0), "{ticks:?}");
        // Nothing is drawn between the strip and the labels: a tick mark there reads as a
        // minus sign glued to the number.
        for y in 0..img.height {
            for x in BAR_W..BAR_LABEL_X {
                assert_eq!(img.get(x, y), WHITE, "ink at ({x}, {y}) before the labels");
            }
        }
        // Right of the gap the image holds exactly the labels, one minus sign for each
        // negative number and none for the others.
        let mut labels = Image::new(img.width, img.height, WHITE);
        let mut minus = 0;
        for &t in &ticks {
            let f = (t + 4.0) / 8.0;
            let y = (GLYPH as i64 / 2) + ((1.0 - f) * 119.0).round() as i64;
            let label = format_tick(t);
            assert_eq!(label.matches('-').count(), usize::from(t < 0.0), "{label}");
            minus += label.matches('-').count();
            labels.draw_text(BAR_LABEL_X as i64, y - GLYPH as i64 / 2, &label, BLACK, 1);
        }
        assert_eq!(minus, ticks.iter().filter(|&&t| t < 0.0).count());
        for y in 0..img.height {
            for x in BAR_LABEL_X..img.width {
                assert_eq!(img.get(x, y), labels.get(x, y), "({x}, {y})");
            }
        }
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(nice_ticks(-3.0, 7.0, 5), vec![-2.0, 0.0, 2.0, 4.0, 6.0]);
        assert_eq!(nice_ticks(-3.0, 7.0, 4), vec![0.0, 5.0]);
        assert_eq!(nice_ticks(2.0, 2.0, 4), vec![2.0]);
        assert!(nice_ticks(f64::NAN, 1.0, 4).is_empty());
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(-0.0015), "-1.5e-3");
        assert_eq!(format_tick(1200.0), "1200");
        assert_eq!(format_tick(300000.0), "3e5");
    }

    #[test]
    fn panel_rows_lay_out_titles_fields_and_bars() {
        let a = vec![0.0f32; 16];
        let b: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let row = [
            Panel {
                title: "truth".into(),
                data: &a,
                cmap: Colormap::Viridis,
                range: (0.0, 1.0),
                colour_bar: false,
            },
            Panel {
                title: "error".into(),
                data: &b,
                cmap: Colormap::RdBu,
                range: (-15.0, 15.0),
                colour_bar: true,
            },
        ];
        let img = panels("density  t = 3", &row, 4, 4, 8);
        assert!(img.width > 2 * 32 + 12 && img.height > 32 + 16);
        // The first panel's field (value 0 on [0, 1]) starts below the two text lines.
        let c = Colormap::Viridis.map(0.0);
        let fy = GLYPH + 12 + GLYPH + 4;
        assert_eq!(img.get(6, fy), [c[0], c[1], c[2], 255]);
        assert_eq!(img.get(6, fy - 1), WHITE);
    }
}
