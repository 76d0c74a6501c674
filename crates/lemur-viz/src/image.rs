//! The RGBA8 raster and its drawing primitives.

use crate::colour::Rgba;
use crate::font;

/// An RGBA8 image, row-major, row 0 at the top: pixel `(x, y)` is
/// `pixels[4 * (y * width + x)..][..4]`.
///
/// Drawing clips to the image and overwrites pixels (no alpha blending). Positions are `i64`
/// so that shapes may start or end outside the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// `width * height * 4` bytes, RGBA, row-major.
    pub pixels: Vec<u8>,
}

/// Number of "on" pixels then "off" pixels in a dashed line.
const DASH_ON: usize = 5;
const DASH_OFF: usize = 3;

impl Image {
    /// A `width` x `height` image filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgba) -> Self {
        let pixels = background.to_array().repeat(width * height);
        Self {
            width,
            height,
            pixels,
        }
    }

    /// The colour at `(x, y)`, `None` outside the image.
    pub fn get(&self, x: usize, y: usize) -> Option<Rgba> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 4 * (y * self.width + x);
        let p = &self.pixels[i..i + 4];
        Some(Rgba::new(p[0], p[1], p[2], p[3]))
    }

    /// Sets `(x, y)` to `colour`; does nothing outside the image.
    pub fn set(&mut self, x: i64, y: i64, colour: Rgba) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = 4 * (y as usize * self.width + x as usize);
        self.pixels[i..i + 4].copy_from_slice(&colour.to_array());
    }

    /// Fills the `w` x `h` rectangle with top-left corner `(x, y)`, clipped to the image.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, colour: Rgba) {
        let x0 = x.clamp(0, self.width as i64) as usize;
        let y0 = y.clamp(0, self.height as i64) as usize;
        let x1 = x.saturating_add(w as i64).clamp(0, self.width as i64) as usize;
        let y1 = y.saturating_add(h as i64).clamp(0, self.height as i64) as usize;
        if x0 >= x1 {
            return;
        }
        let c = colour.to_array();
        for row in y0..y1 {
            let start = 4 * (row * self.width + x0);
            for px in self.pixels[start..start + 4 * (x1 - x0)].chunks_exact_mut(4) {
                px.copy_from_slice(&c);
            }
        }
    }

    /// Draws the 1 px outline of the `w` x `h` rectangle with top-left corner `(x, y)`.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: usize, h: usize, colour: Rgba) {
        if w == 0 || h == 0 {
            return;
        }
        self.fill_rect(x, y, w, 1, colour);
        self.fill_rect(x, y + h as i64 - 1, w, 1, colour);
        self.fill_rect(x, y, 1, h, colour);
        self.fill_rect(x + w as i64 - 1, y, 1, h, colour);
    }

    /// Draws a 1 px line from `(x0, y0)` to `(x1, y1)`, both ends included (Bresenham).
    /// A dashed line alternates 5 drawn and 3 skipped pixels.
    pub fn draw_line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgba, dashed: bool) {
        let mut phase = 0;
        self.line_with_phase(x0, y0, x1, y1, colour, dashed.then_some(&mut phase));
    }

    /// Draws connected 1 px line segments through `points`; dashes continue across corners.
    pub fn draw_polyline(&mut self, points: &[(i64, i64)], colour: Rgba, dashed: bool) {
        let mut phase = 0;
        if let [(x, y)] = points {
            self.set(*x, *y, colour);
        }
        for w in points.windows(2) {
            let dash = if dashed { Some(&mut phase) } else { None };
            self.line_with_phase(w[0].0, w[0].1, w[1].0, w[1].1, colour, dash);
        }
    }

    /// Bresenham; `dash` counts pixels along a dashed line so that consecutive segments
    /// continue its pattern. The last pixel of a segment is skipped when dashing continues, so
    /// that shared corners are not counted twice.
    pub(crate) fn line_with_phase(
        &mut self,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
        colour: Rgba,
        mut dash: Option<&mut usize>,
    ) {
        // Far-away endpoints are first clipped to a box around the image, so that the loop
        // below stays short and its arithmetic cannot overflow.
        let m = 2 * (self.width + self.height) as i64 + 16;
        let (x0, y0, x1, y1) = if [x0, y0, x1, y1].iter().any(|v| v.abs() > m) {
            match clip_segment(
                x0 as f64, y0 as f64, x1 as f64, y1 as f64, -m as f64, m as f64,
            ) {
                Some((a, b, c, d)) => (
                    a.round() as i64,
                    b.round() as i64,
                    c.round() as i64,
                    d.round() as i64,
                ),
                None => return,
            }
        } else {
            (x0, y0, x1, y1)
        };
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        // Stop early once the line has left the image for good (long clipped lines).
        let (w, h) = (self.width as i64, self.height as i64);
        loop {
            let on = match dash.as_deref_mut() {
                None => true,
                Some(phase) => {
                    let on = *phase % (DASH_ON + DASH_OFF) < DASH_ON;
                    if !(x == x1 && y == y1) {
                        *phase += 1;
                    }
                    on
                }
            };
            if on {
                self.set(x, y, colour);
            }
            if x == x1 && y == y1 {
                break;
            }
            if (x < 0 && sx < 0) || (x >= w && sx > 0) || (y < 0 && sy < 0) || (y >= h && sy > 0) {
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

    /// Copies `src` with its top-left corner at `(x, y)`, clipped; pixels are overwritten,
    /// alpha included.
    pub fn blit(&mut self, src: &Image, x: i64, y: i64) {
        let x0 = x.max(0);
        let x1 = (x + src.width as i64).min(self.width as i64);
        if x0 >= x1 {
            return;
        }
        let n = 4 * (x1 - x0) as usize;
        for sy in 0..src.height {
            let dy = y + sy as i64;
            if dy < 0 || dy >= self.height as i64 {
                continue;
            }
            let s = 4 * (sy * src.width + (x0 - x) as usize);
            let d = 4 * (dy as usize * self.width + x0 as usize);
            self.pixels[d..d + n].copy_from_slice(&src.pixels[s..s + n]);
        }
    }

    /// Draws `text` in the embedded 5x7 font with its top-left corner at `(x, y)`, each font
    /// pixel a `scale` x `scale` square (`scale` 0 is treated as 1). Only the glyphs' own
    /// pixels are set (the background shows through); the marked pixels lie within
    /// [`text_width`]`(text, scale)` x [`text_height`]`(scale)`. Newlines are not
    /// interpreted; characters outside printable ASCII are drawn as `?`.
    pub fn draw_text(&mut self, x: i64, y: i64, text: &str, colour: Rgba, scale: usize) {
        let scale = scale.max(1);
        let s = scale as i64;
        for (i, c) in text.chars().enumerate() {
            let cx = x + (i * font::ADVANCE * scale) as i64;
            if cx >= self.width as i64 {
                break;
            }
            for col in 0..font::GLYPH_W {
                for row in 0..font::GLYPH_H {
                    if font::pixel(c, col, row) {
                        self.fill_rect(
                            cx + col as i64 * s,
                            y + row as i64 * s,
                            scale,
                            scale,
                            colour,
                        );
                    }
                }
            }
        }
    }

    /// The image turned 90 degrees anticlockwise (for vertical axis labels).
    pub fn rotated_ccw(&self) -> Image {
        let mut out = Image::new(self.height, self.width, Rgba::TRANSPARENT);
        for y in 0..self.height {
            for x in 0..self.width {
                let s = 4 * (y * self.width + x);
                // (x, y) -> (y, width - 1 - x)
                let d = 4 * ((self.width - 1 - x) * out.width + y);
                out.pixels[d..d + 4].copy_from_slice(&self.pixels[s..s + 4]);
            }
        }
        out
    }

    /// Number of distinct RGBA colours, counting at most `limit + 1`.
    pub fn count_colours(&self, limit: usize) -> usize {
        let mut seen = std::collections::HashSet::new();
        for px in self.pixels.chunks_exact(4) {
            seen.insert(u32::from_le_bytes([px[0], px[1], px[2], px[3]]));
            if seen.len() > limit {
                break;
            }
        }
        seen.len()
    }
}

/// Clips the segment to the square `[lo, hi]^2` (Liang-Barsky); `None` when it misses.
pub(crate) fn clip_segment(
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    lo: f64,
    hi: f64,
) -> Option<(f64, f64, f64, f64)> {
    clip_segment_rect(x0, y0, x1, y1, (lo, lo, hi, hi))
}

/// Clips the segment to the rectangle `(xmin, ymin, xmax, ymax)` (Liang-Barsky).
pub(crate) fn clip_segment_rect(
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    rect: (f64, f64, f64, f64),
) -> Option<(f64, f64, f64, f64)> {
    let (xmin, ymin, xmax, ymax) = rect;
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, x0 - xmin),
        (dx, xmax - x0),
        (-dy, y0 - ymin),
        (dy, ymax - y0),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    Some((x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy))
}

/// Width in pixels of `text` drawn by [`Image::draw_text`] at `scale`: 6 font pixels per
/// character less the trailing spacing column; 0 for empty text.
pub fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    if n == 0 {
        0
    } else {
        (n * font::ADVANCE - 1) * scale.max(1)
    }
}

/// Height in pixels of a line of text at `scale` (7 font pixels).
pub fn text_height(scale: usize) -> usize {
    font::GLYPH_H * scale.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgba = Rgba::rgb(255, 0, 0);

    fn marked(img: &Image, bg: Rgba) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for y in 0..img.height {
            for x in 0..img.width {
                if img.get(x, y) != Some(bg) {
                    out.push((x, y));
                }
            }
        }
        out
    }

    #[test]
    fn new_fill_and_get() {
        let mut img = Image::new(4, 3, Rgba::WHITE);
        assert_eq!(img.pixels.len(), 48);
        img.fill_rect(1, 1, 10, 10, RED);
        assert_eq!(img.get(0, 0), Some(Rgba::WHITE));
        assert_eq!(img.get(1, 1), Some(RED));
        assert_eq!(img.get(3, 2), Some(RED));
        assert_eq!(img.get(4, 0), None);
        img.fill_rect(-5, -5, 6, 6, Rgba::BLACK);
        assert_eq!(img.get(0, 0), Some(Rgba::BLACK));
        assert_eq!(img.get(1, 1), Some(RED));
    }

    #[test]
    fn lines_solid_and_dashed() {
        let mut img = Image::new(20, 5, Rgba::WHITE);
        img.draw_line(0, 2, 19, 2, RED, false);
        assert_eq!(marked(&img, Rgba::WHITE).len(), 20);
        let mut img = Image::new(20, 5, Rgba::WHITE);
        img.draw_line(0, 2, 19, 2, RED, true);
        let xs: Vec<usize> = marked(&img, Rgba::WHITE).iter().map(|p| p.0).collect();
        assert_eq!(xs, vec![0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19]);
        // Diagonal, clipped on both ends, no panic on huge coordinates.
        let mut img = Image::new(10, 10, Rgba::WHITE);
        img.draw_line(-5, -5, 14, 14, RED, false);
        assert_eq!(marked(&img, Rgba::WHITE).len(), 10);
        img.draw_line(0, 0, 1 << 40, 3, RED, false);
        img.draw_line(i64::MIN / 4, 0, i64::MAX / 4, 9, RED, true);
        img.draw_line(-(1 << 50), 1, 1 << 50, 1, RED, false);
        assert!((0..10).all(|x| img.get(x, 1) == Some(RED)));
        // Dash phase continues across polyline corners.
        let mut img = Image::new(20, 5, Rgba::WHITE);
        img.draw_polyline(&[(0, 0), (3, 0), (19, 0)], RED, true);
        let xs: Vec<usize> = marked(&img, Rgba::WHITE).iter().map(|p| p.0).collect();
        assert_eq!(xs, vec![0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19]);
    }

    #[test]
    fn blit_clips() {
        let mut dst = Image::new(5, 5, Rgba::WHITE);
        let src = Image::new(3, 3, RED);
        dst.blit(&src, 3, -1);
        assert_eq!(
            marked(&dst, Rgba::WHITE),
            vec![(3, 0), (4, 0), (3, 1), (4, 1)]
        );
        dst.blit(&src, 10, 10);
        dst.blit(&src, -3, 0);
        assert_eq!(marked(&dst, Rgba::WHITE).len(), 4);
    }

    #[test]
    fn text_width_and_box() {
        assert_eq!(text_width("", 1), 0);
        assert_eq!(text_width("A", 1), 5);
        assert_eq!(text_width("AB", 1), 11);
        assert_eq!(text_width("t = 12", 2), (6 * 6 - 1) * 2);
        assert_eq!(text_height(3), 21);
        for scale in [1, 2, 3] {
            let text = "Wy|@ -1.5e-3 ~_";
            let (x0, y0) = (7usize, 5usize);
            let mut img = Image::new(300, 40, Rgba::WHITE);
            img.draw_text(x0 as i64, y0 as i64, text, Rgba::BLACK, scale);
            let m = marked(&img, Rgba::WHITE);
            assert!(!m.is_empty());
            let (w, h) = (text_width(text, scale), text_height(scale));
            for &(x, y) in &m {
                assert!(
                    x >= x0 && x < x0 + w && y >= y0 && y < y0 + h,
                    "({x},{y}) outside"
                );
            }
            // The box is tight: the first and last columns and rows are used.
            assert!(m.iter().any(|p| p.0 == x0) && m.iter().any(|p| p.0 == x0 + w - 1));
            assert!(m.iter().any(|p| p.1 == y0) && m.iter().any(|p| p.1 == y0 + h - 1));
            // Every marked pixel is the text colour.
            assert!(m.iter().all(|&(x, y)| img.get(x, y) == Some(Rgba::BLACK)));
        }
        // Partly off-image text does not panic.
        let mut img = Image::new(10, 10, Rgba::WHITE);
        img.draw_text(-8, -3, "Hello", Rgba::BLACK, 2);
    }

    #[test]
    fn rotation() {
        let mut img = Image::new(3, 2, Rgba::WHITE);
        img.set(2, 0, RED); // top right
        let r = img.rotated_ccw();
        assert_eq!((r.width, r.height), (2, 3));
        assert_eq!(r.get(0, 0), Some(RED)); // becomes top left
    }
}
