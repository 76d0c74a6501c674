//! Colour maps built from control points, linearly interpolated in sRGB.

/// A colour map over [0, 1]; values outside are clamped, non-finite values are grey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Sequential, perceptually ordered (fields, ensemble means).
    Viridis,
    /// Sequential, dark to bright (ensemble spread).
    Magma,
    /// Diverging blue-white-red (signed errors), centred at 0.5.
    RdBu,
}

/// The colour of non-finite values.
pub const NAN_COLOUR: [u8; 3] = [128, 128, 128];

const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

const MAGMA: [[u8; 3]; 9] = [
    [0, 0, 4],
    [28, 16, 68],
    [79, 18, 123],
    [129, 37, 129],
    [181, 54, 122],
    [229, 80, 100],
    [251, 135, 97],
    [254, 194, 135],
    [252, 253, 191],
];

const RDBU: [[u8; 3]; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

impl Colormap {
    fn points(self) -> &'static [[u8; 3]] {
        match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Magma => &MAGMA,
            Colormap::RdBu => &RDBU,
        }
    }

    /// The colour at `t` in [0, 1].
    pub fn map(self, t: f32) -> [u8; 3] {
        if !t.is_finite() {
            return NAN_COLOUR;
        }
        let p = self.points();
        let x = t.clamp(0.0, 1.0) * (p.len() - 1) as f32;
        let i = (x.floor() as usize).min(p.len() - 2);
        let f = x - i as f32;
        std::array::from_fn(|c| {
            (p[i][c] as f32 + f * (p[i + 1][c] as f32 - p[i][c] as f32)).round() as u8
        })
    }

    /// The colour of `v` on the range [lo, hi] (a degenerate range maps to the middle).
    pub fn map_range(self, v: f32, lo: f32, hi: f32) -> [u8; 3] {
        if !v.is_finite() {
            return NAN_COLOUR;
        }
        let span = hi - lo;
        let t = if span > 0.0 && span.is_finite() {
            (v - lo) / span
        } else {
            0.5
        };
        self.map(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luminance(c: [u8; 3]) -> f32 {
        0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32
    }

    #[test]
    fn endpoints_clamping_and_nan() {
        assert_eq!(Colormap::Viridis.map(0.0), VIRIDIS[0]);
        assert_eq!(Colormap::Viridis.map(1.0), VIRIDIS[8]);
        assert_eq!(Colormap::Viridis.map(-3.0), VIRIDIS[0]);
        assert_eq!(Colormap::Magma.map(7.0), MAGMA[8]);
        assert_eq!(Colormap::RdBu.map(0.5), [247, 247, 247]);
        assert_eq!(Colormap::Viridis.map(f32::NAN), NAN_COLOUR);
        assert_eq!(
            Colormap::RdBu.map_range(f32::INFINITY, 0.0, 1.0),
            NAN_COLOUR
        );
        assert_eq!(Colormap::RdBu.map_range(3.0, 3.0, 3.0), [247, 247, 247]);
    }

    #[test]
    fn sequential_maps_brighten_monotonically() {
        for cmap in [Colormap::Viridis, Colormap::Magma] {
            let l: Vec<f32> = (0..=100)
                .map(|i| luminance(cmap.map(i as f32 / 100.0)))
                .collect();
            assert!(l.windows(2).all(|w| w[1] >= w[0] - 0.5), "{cmap:?}: {l:?}");
            assert!(l[100] > l[0] + 100.0);
        }
    }
}
