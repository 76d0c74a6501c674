//! Isotropic power spectra and cross-correlations.
//!
//! Conventions (they reproduce the reference implementation, checked against
//! `fixtures/reference/metrics.safetensors`):
//!
//! - The transform is the N-dimensional DFT with orthonormal scaling (`1/sqrt(n)` with n the
//!   number of grid points), so a field's power sums to its sum of squares.
//! - Frequencies are `fftfreq(n)` per axis, in cycles per grid point, and
//!   `|k| = sqrt(sum_i k_i^2)`.
//! - There are `B = floor(sqrt(D) * min(shape) / 2)` bins over `[0, max|k|]`, with edges
//!   `e_j = j * max|k| / B`. A point goes to bin `j` when `e_{j-1} < |k| <= e_j`; the
//!   constant mode alone falls in bin 0 (`|k| = 0 <= e_0`), which is dropped, leaving `B` bins
//!   labelled by their upper edges `e_1..=e_B`.
//! - A bin's value is the mean (not the sum) over its points of `|F(u)|^2` (power) or of
//!   `|F(u) conj(F(v))|` (cross-correlation, unnormalised: normalise by
//!   `sqrt(P_u P_v)` to get a coefficient, as [`crate::FieldMetrics`] does).

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// The isotropic binning of a grid's frequency domain.
#[derive(Clone, Debug)]
pub struct Binning {
    /// Upper edge of each kept bin (`B` values), in cycles per grid point.
    pub k: Vec<f64>,
    /// Bin of each grid point in row-major order, `0` (the dropped bin) to `B`.
    index: Vec<usize>,
    /// Points per bin, `B + 1` values including the dropped bin 0.
    counts: Vec<usize>,
}

impl Binning {
    /// The binning of a grid of the given shape (any number of dimensions).
    pub fn new(shape: &[usize]) -> Self {
        let freqs: Vec<Vec<f64>> = shape.iter().map(|&n| fftfreq(n)).collect();
        let points: usize = shape.iter().product();
        let mut k2 = vec![0.0f64; points];
        let mut stride = points;
        for (axis, &n) in shape.iter().enumerate() {
            stride /= n;
            for (i, v) in k2.iter_mut().enumerate() {
                let f = freqs[axis][(i / stride) % n];
                *v += f * f;
            }
        }
        let kmag: Vec<f64> = k2.iter().map(|v| v.sqrt()).collect();
        let kmax = kmag.iter().cloned().fold(0.0, f64::max);
        let min = shape.iter().copied().min().unwrap_or(0);
        let bins = (((shape.len() as f64).sqrt() * min as f64 / 2.0).floor() as usize).max(1);
        let edges: Vec<f64> = (0..=bins)
            .map(|j| {
                if j == bins {
                    kmax
                } else {
                    j as f64 * kmax / bins as f64
                }
            })
            .collect();
        let index: Vec<usize> = kmag
            .iter()
            .map(|&k| edges.partition_point(|&e| e < k))
            .collect();
        let mut counts = vec![0usize; bins + 1];
        for &j in &index {
            counts[j] += 1;
        }
        Binning {
            k: edges[1..].to_vec(),
            index,
            counts,
        }
    }

    pub fn bins(&self) -> usize {
        self.k.len()
    }

    /// Mean of `values` (one per grid point) over each kept bin.
    fn reduce(&self, values: impl Iterator<Item = f64>) -> Vec<f64> {
        let mut sums = vec![0.0f64; self.counts.len()];
        for (&j, v) in self.index.iter().zip(values) {
            sums[j] += v;
        }
        sums.iter()
            .zip(&self.counts)
            .skip(1)
            .map(|(s, &c)| s / c.max(1) as f64)
            .collect()
    }
}

/// `numpy.fft.fftfreq(n)`: `0, 1/n, ..., -1/n`, with the Nyquist term negative for even `n`.
fn fftfreq(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let i = if i < n.div_ceil(2) {
                i as f64
            } else {
                i as f64 - n as f64
            };
            i / n as f64
        })
        .collect()
}

/// Orthonormal N-dimensional DFT of a real row-major field.
pub fn fft(field: &[f32], shape: &[usize]) -> Vec<Complex<f64>> {
    let points: usize = shape.iter().product();
    assert_eq!(field.len(), points, "field does not match shape {shape:?}");
    let mut data: Vec<Complex<f64>> = field
        .iter()
        .map(|&v| Complex::new(f64::from(v), 0.0))
        .collect();
    let mut planner = FftPlanner::new();
    let mut inner = points;
    let mut line = Vec::new();
    for &n in shape {
        let outer = points / inner;
        inner /= n;
        let plan = planner.plan_fft_forward(n);
        line.resize(n, Complex::default());
        // Gather each line along this axis, transform it, scatter it back.
        for o in 0..outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                for j in 0..n {
                    line[j] = data[base + j * inner];
                }
                plan.process(&mut line);
                for j in 0..n {
                    data[base + j * inner] = line[j];
                }
            }
        }
    }
    let scale = 1.0 / (points as f64).sqrt();
    data.iter_mut().for_each(|c| *c *= scale);
    data
}

/// Isotropic power spectrum of one field: `B` values, see the module docs.
pub fn power_spectrum(field: &[f32], shape: &[usize], binning: &Binning) -> Vec<f64> {
    binning.reduce(fft(field, shape).iter().map(|c| c.norm_sqr()))
}

/// Isotropic cross-correlation of two fields: the bin means of `|F(a) conj(F(b))|`.
pub fn cross_correlation(a: &[f32], b: &[f32], shape: &[usize], binning: &Binning) -> Vec<f64> {
    let (fa, fb) = (fft(a, shape), fft(b, shape));
    binning.reduce(fa.iter().zip(&fb).map(|(x, y)| (x * y.conj()).norm()))
}
