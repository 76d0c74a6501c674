//! Colours and colour maps.

/// An 8-bit sRGB colour with alpha. Drawing overwrites pixels (no blending); alpha is kept
/// in the image and written to PNG, and ignored by GIF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgba {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Rgba {
    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b, a: 255 }
    }

    /// A colour with alpha.
    pub const fn new(r: u8, g: u8, b: u8, a: u8) -> Self {
        Self { r, g, b, a }
    }

    /// An opaque colour from `[r, g, b]`, e.g. [`Colormap::map`]'s output.
    pub const fn from_rgb(c: [u8; 3]) -> Self {
        Self::rgb(c[0], c[1], c[2])
    }

    /// The colour as `[r, g, b, a]`.
    pub const fn to_array(self) -> [u8; 4] {
        [self.r, self.g, self.b, self.a]
    }

    pub const BLACK: Rgba = Rgba::rgb(0, 0, 0);
    pub const WHITE: Rgba = Rgba::rgb(255, 255, 255);
    /// Grid lines and other light decorations.
    pub const LIGHT_GREY: Rgba = Rgba::rgb(222, 222, 222);
    pub const GREY: Rgba = Rgba::rgb(128, 128, 128);
    pub const TRANSPARENT: Rgba = Rgba::new(0, 0, 0, 0);
}

impl From<[u8; 3]> for Rgba {
    /// An opaque colour.
    fn from(c: [u8; 3]) -> Self {
        Rgba::from_rgb(c)
    }
}

/// The colour of NaN and infinite values in every colour map: a mid grey that none of the
/// maps contains (the diverging maps' centre is near-white, not grey).
pub const NAN_COLOUR: [u8; 3] = [150, 150, 150];

/// Colour maps, each built from evenly spaced control points (sampled from matplotlib's
/// maps) with linear interpolation in sRGB between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Colormap {
    /// Perceptually uniform sequential dark purple -> yellow; luminance increases
    /// monotonically. For fields and ensemble means.
    Viridis,
    /// Sequential black -> purple -> pale yellow. For ensemble spread and other magnitudes.
    Magma,
    /// Sequential black -> red -> pale yellow.
    Inferno,
    /// Diverging red (t = 0) -> white -> blue (t = 1), as matplotlib's `RdBu`.
    RdBu,
    /// Diverging blue (t = 0) -> white -> red (t = 1), as matplotlib's `RdBu_r`: negative
    /// errors blue, positive red. For signed errors with a symmetric range.
    RdBuR,
    /// Sequential black -> white.
    Greys,
}

const VIRIDIS: [[u8; 3]; 9] = [
    [0x44, 0x01, 0x54],
    [0x47, 0x2c, 0x7a],
    [0x3b, 0x51, 0x8b],
    [0x2c, 0x71, 0x8e],
    [0x21, 0x90, 0x8d],
    [0x27, 0xad, 0x81],
    [0x5c, 0xc8, 0x63],
    [0xaa, 0xdc, 0x32],
    [0xfd, 0xe7, 0x25],
];

const MAGMA: [[u8; 3]; 9] = [
    [0x00, 0x00, 0x04],
    [0x1c, 0x10, 0x44],
    [0x4f, 0x12, 0x7b],
    [0x81, 0x25, 0x81],
    [0xb5, 0x36, 0x7a],
    [0xe5, 0x50, 0x64],
    [0xfb, 0x87, 0x61],
    [0xfe, 0xc2, 0x87],
    [0xfc, 0xfd, 0xbf],
];

const INFERNO: [[u8; 3]; 9] = [
    [0x00, 0x00, 0x04],
    [0x1f, 0x0c, 0x48],
    [0x55, 0x0f, 0x6d],
    [0x88, 0x22, 0x6a],
    [0xba, 0x36, 0x55],
    [0xe3, 0x59, 0x33],
    [0xf9, 0x8e, 0x09],
    [0xf9, 0xcb, 0x35],
    [0xfc, 0xff, 0xa4],
];

const RDBU: [[u8; 3]; 11] = [
    [0x67, 0x00, 0x1f],
    [0xb2, 0x18, 0x2b],
    [0xd6, 0x60, 0x4d],
    [0xf4, 0xa5, 0x82],
    [0xfd, 0xdb, 0xc7],
    [0xf7, 0xf7, 0xf7],
    [0xd1, 0xe5, 0xf0],
    [0x92, 0xc5, 0xde],
    [0x43, 0x93, 0xc3],
    [0x21, 0x66, 0xac],
    [0x05, 0x30, 0x61],
];

const GREYS: [[u8; 3]; 2] = [[0, 0, 0], [255, 255, 255]];

impl Colormap {
    /// Every colour map, for iteration in tests and pickers.
    pub const ALL: [Colormap; 6] = [
        Colormap::Viridis,
        Colormap::Magma,
        Colormap::Inferno,
        Colormap::RdBu,
        Colormap::RdBuR,
        Colormap::Greys,
    ];

    /// The control points, evenly spaced over `[0, 1]`, and whether they run in reverse.
    fn stops(self) -> (&'static [[u8; 3]], bool) {
        match self {
            Colormap::Viridis => (&VIRIDIS, false),
            Colormap::Magma => (&MAGMA, false),
            Colormap::Inferno => (&INFERNO, false),
            Colormap::RdBu => (&RDBU, false),
            Colormap::RdBuR => (&RDBU, true),
            Colormap::Greys => (&GREYS, false),
        }
    }

    /// Whether the map is diverging (meant for a range symmetric about zero).
    pub fn is_diverging(self) -> bool {
        matches!(self, Colormap::RdBu | Colormap::RdBuR)
    }

    /// The colour at `t` in `[0, 1]`; `t` outside is clamped, NaN and infinities give
    /// [`NAN_COLOUR`].
    pub fn map(self, t: f64) -> [u8; 3] {
        if !t.is_finite() {
            return NAN_COLOUR;
        }
        let (stops, reversed) = self.stops();
        let t = t.clamp(0.0, 1.0);
        let t = if reversed { 1.0 - t } else { t };
        let pos = t * (stops.len() - 1) as f64;
        let i = (pos.floor() as usize).min(stops.len() - 2);
        let f = pos - i as f64;
        let (a, b) = (stops[i], stops[i + 1]);
        let mut out = [0u8; 3];
        for k in 0..3 {
            let v = f64::from(a[k]) + (f64::from(b[k]) - f64::from(a[k])) * f;
            out[k] = v.round().clamp(0.0, 255.0) as u8;
        }
        out
    }

    /// The colour of `value` on the scale `vmin..vmax` (`t = (value - vmin) / (vmax - vmin)`).
    /// A zero-width or non-finite range maps every finite value to the middle colour.
    pub fn map_value(self, value: f64, vmin: f64, vmax: f64) -> [u8; 3] {
        self.map(normalise(value, vmin, vmax))
    }

    /// A 256-entry lookup table of [`Colormap::map`] at `i / 255`.
    pub fn lut(self) -> [[u8; 3]; 256] {
        let mut lut = [[0u8; 3]; 256];
        for (i, c) in lut.iter_mut().enumerate() {
            *c = self.map(i as f64 / 255.0);
        }
        lut
    }
}

/// `(value - vmin) / (vmax - vmin)`, 0.5 for a degenerate range, non-finite for a non-finite value.
pub(crate) fn normalise(value: f64, vmin: f64, vmax: f64) -> f64 {
    if !value.is_finite() {
        return f64::NAN;
    }
    let span = vmax - vmin;
    if !span.is_finite() || span == 0.0 || !vmin.is_finite() {
        0.5
    } else {
        (value - vmin) / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luminance(c: [u8; 3]) -> f64 {
        0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])
    }

    #[test]
    fn endpoints_match_matplotlib() {
        assert_eq!(Colormap::Viridis.map(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.map(1.0), [253, 231, 37]);
        assert_eq!(Colormap::Viridis.map(-3.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.map(7.0), [253, 231, 37]);
        assert_eq!(Colormap::Viridis.map(0.5), [0x21, 0x90, 0x8d]);
        assert_eq!(Colormap::Magma.map(0.0), [0, 0, 4]);
        assert_eq!(Colormap::Magma.map(1.0), [252, 253, 191]);
        assert_eq!(Colormap::RdBu.map(0.0), [0x67, 0x00, 0x1f]);
        assert_eq!(Colormap::RdBuR.map(0.0), [0x05, 0x30, 0x61]);
        assert_eq!(Colormap::RdBuR.map(0.5), [0xf7, 0xf7, 0xf7]);
        assert_eq!(Colormap::Greys.map(0.5), [128, 128, 128]);
        // Halfway between two stops is their mean.
        let c = Colormap::Viridis.map(1.0 / 16.0);
        assert_eq!(c, [70, 23, 103]); // (0x44+0x47)/2, (0x01+0x2c)/2, (0x54+0x7a)/2, rounded
    }

    #[test]
    fn viridis_luminance_increases() {
        let mut prev = -1.0;
        for i in 0..=1000 {
            let l = luminance(Colormap::Viridis.map(i as f64 / 1000.0));
            assert!(l >= prev - 0.75, "luminance dips at {i}: {l} < {prev}");
            prev = prev.max(l);
        }
        // Strictly increasing at the control points.
        let at: Vec<f64> = (0..9)
            .map(|i| luminance(Colormap::Viridis.map(i as f64 / 8.0)))
            .collect();
        assert!(at.windows(2).all(|w| w[1] > w[0]), "{at:?}");
        // Magma and Inferno too.
        for cmap in [Colormap::Magma, Colormap::Inferno] {
            let at: Vec<f64> = (0..9)
                .map(|i| luminance(cmap.map(i as f64 / 8.0)))
                .collect();
            assert!(at.windows(2).all(|w| w[1] > w[0]), "{cmap:?} {at:?}");
        }
    }

    #[test]
    fn non_finite_is_grey_and_distinct() {
        for cmap in Colormap::ALL {
            assert_eq!(cmap.map(f64::NAN), NAN_COLOUR);
            assert_eq!(cmap.map(f64::INFINITY), NAN_COLOUR);
            assert_eq!(cmap.map_value(f64::NEG_INFINITY, 0.0, 1.0), NAN_COLOUR);
            if cmap != Colormap::Greys {
                assert!(cmap.lut().iter().all(|&c| c != NAN_COLOUR), "{cmap:?}");
            }
        }
        // A degenerate range maps finite values to the middle.
        assert_eq!(
            Colormap::Viridis.map_value(3.0, 3.0, 3.0),
            Colormap::Viridis.map(0.5)
        );
    }
}
