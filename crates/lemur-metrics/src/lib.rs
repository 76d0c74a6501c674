//! Evaluation metrics for lemur, per field and lead time (DESIGN.md section 7).
//!
//! [`field_metrics`] compares one truth field `u` with an ensemble `v_1..v_N` of predictions
//! of it (N = 1 for a deterministic model). [`evaluate`] does that for every channel and lead
//! time of a trajectory. The formulas and the spectral binning follow the reference
//! implementation of "Lost in Latent Space" and reproduce its outputs
//! (`fixtures/reference/metrics.safetensors`); [`spectrum`] documents the binning.

pub mod spectrum;

pub use spectrum::{Binning, cross_correlation, fft, power_spectrum};

/// Metrics of one field at one lead time. All statistics are over the grid points.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMetrics {
    /// `sqrt(mean((u - mean_ens v)^2))`: the error of the ensemble mean.
    pub rmse: f64,
    /// `sqrt(mean((u - mean_ens v)^2) / (mean(u^2) + 1e-6))`.
    pub nrmse: f64,
    /// `sqrt(mean((u - mean_ens v)^2) / (var(u) + 1e-6))`, `var` unbiased.
    pub vrmse: f64,
    /// `sqrt((N+1)/(N-1) * mean((v - mean_ens v)^2))`, mean over members and points; 0 for N = 1.
    /// The `(N+1)/(N-1)` factor makes spread comparable to RMSE for a finite ensemble
    /// (Fortin et al. 2014, doi:10.1175/JHM-D-14-0008.1).
    pub spread: f64,
    /// `(spread + 1e-3) / (rmse + 1e-3)`: 1 for a calibrated ensemble.
    pub spread_skill: f64,
    /// `1 - sum(mean_ens v) / sum(u)`: the relative error of the field's total, meaningful for
    /// conserved quantities (mass, energy); signed, positive when the prediction loses some.
    pub total_rel_error: f64,
    /// Relative error of the ensemble-mean power spectrum in four frequency bands (low, mid,
    /// high, highest): `sqrt(mean_band((1 - (P_v + 1e-6)/(P_u + 1e-6))^2))`. `None` for a band
    /// with no bins (tiny grids).
    pub power_rel_error: [Option<f64>; 4],
    /// Same for the cross-correlation coefficient `C_uv / sqrt(P_u P_v)`:
    /// `sqrt(mean_band((1 - (C_uv + 1e-6)/sqrt(P_u P_v + 1e-12))^2))`, with `C_uv` and `P_v`
    /// averaged over members.
    pub cross_rel_error: [Option<f64>; 4],
}

/// The four frequency bands: edges `2^linspace(log2 k_1, -1, 4)` (k_1 the first kept bin, 0.5
/// the Nyquist frequency), bands `[b0, b1]`, `[b1, b2]`, `[b2, b3]` (inclusive, so a bin on a
/// boundary counts in both) and `k >= b3` (the corners beyond Nyquist along the axes).
pub fn band_edges(k: &[f64]) -> [f64; 4] {
    let lo = k.first().copied().unwrap_or(0.5).log2();
    let hi = -1.0f64;
    let mut b: [f64; 4] = std::array::from_fn(|i| 2f64.powf(lo + (hi - lo) * i as f64 / 3.0));
    // 2^log2(x) can round to just above x and silently drop the first bin from the low band.
    b[0] = k.first().copied().unwrap_or(0.5);
    b[3] = 0.5;
    b
}

fn band_rms(k: &[f64], se: &[f64]) -> [Option<f64>; 4] {
    let b = band_edges(k);
    std::array::from_fn(|i| {
        let vals: Vec<f64> = k
            .iter()
            .zip(se)
            .filter(|&(&k, _)| {
                if i < 3 {
                    b[i] <= k && k <= b[i + 1]
                } else {
                    b[3] <= k
                }
            })
            .map(|(_, &s)| s)
            .collect();
        (!vals.is_empty()).then(|| (vals.iter().sum::<f64>() / vals.len() as f64).sqrt())
    })
}

/// Metrics of a truth field `u` against `members` ensemble members, all on a grid of `shape`
/// (row-major). `ensemble` holds the members one after another.
pub fn field_metrics(
    u: &[f32],
    ensemble: &[f32],
    shape: &[usize],
    binning: &Binning,
) -> FieldMetrics {
    let n: usize = shape.iter().product();
    assert_eq!(u.len(), n, "truth does not match shape {shape:?}");
    assert!(
        n > 1 && !ensemble.is_empty() && ensemble.len().is_multiple_of(n),
        "ensemble does not match shape {shape:?}"
    );
    let members = ensemble.len() / n;
    let mean: Vec<f64> = (0..n)
        .map(|i| {
            (0..members)
                .map(|m| f64::from(ensemble[m * n + i]))
                .sum::<f64>()
                / members as f64
        })
        .collect();
    let mse = u
        .iter()
        .zip(&mean)
        .map(|(&a, b)| (f64::from(a) - b).powi(2))
        .sum::<f64>()
        / n as f64;
    let u_mean = u.iter().map(|&a| f64::from(a)).sum::<f64>() / n as f64;
    let u_sq = u.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() / n as f64;
    let u_var = u
        .iter()
        .map(|&a| (f64::from(a) - u_mean).powi(2))
        .sum::<f64>()
        / (n - 1) as f64;
    let spread = if members > 1 {
        let dev = ensemble
            .chunks_exact(n)
            .flat_map(|m| {
                m.iter()
                    .zip(&mean)
                    .map(|(&a, b)| (f64::from(a) - b).powi(2))
            })
            .sum::<f64>()
            / (members * n) as f64;
        ((members + 1) as f64 / (members - 1) as f64 * dev).sqrt()
    } else {
        0.0
    };
    let rmse = mse.sqrt();

    let p_u = power_spectrum(u, shape, binning);
    let mut p_v = vec![0.0; binning.bins()];
    let mut c_uv = vec![0.0; binning.bins()];
    for m in ensemble.chunks_exact(n) {
        for (acc, p) in p_v.iter_mut().zip(power_spectrum(m, shape, binning)) {
            *acc += p / members as f64;
        }
        for (acc, c) in c_uv.iter_mut().zip(cross_correlation(u, m, shape, binning)) {
            *acc += c / members as f64;
        }
    }
    let se_p: Vec<f64> = p_u
        .iter()
        .zip(&p_v)
        .map(|(pu, pv)| (1.0 - (pv + 1e-6) / (pu + 1e-6)).powi(2))
        .collect();
    let se_c: Vec<f64> = (0..binning.bins())
        .map(|j| (1.0 - (c_uv[j] + 1e-6) / (p_u[j] * p_v[j] + 1e-12).sqrt()).powi(2))
        .collect();

    FieldMetrics {
        rmse,
        nrmse: (mse / (u_sq + 1e-6)).sqrt(),
        vrmse: (mse / (u_var + 1e-6)).sqrt(),
        spread,
        spread_skill: (spread + 1e-3) / (rmse + 1e-3),
        total_rel_error: 1.0 - mean.iter().sum::<f64>() / (u_mean * n as f64),
        power_rel_error: band_rms(&binning.k, &se_p),
        cross_rel_error: band_rms(&binning.k, &se_c),
    }
}

/// Metrics for every lead time and channel: `truth` is `[T, C, H, W]`, `ensemble` is
/// `[N, T, C, H, W]`; the result is indexed `[t][c]`.
pub fn evaluate(
    truth: &[f32],
    ensemble: &[f32],
    steps: usize,
    channels: usize,
    shape: [usize; 2],
) -> Vec<Vec<FieldMetrics>> {
    let plane = shape[0] * shape[1];
    let per_member = steps * channels * plane;
    assert_eq!(truth.len(), per_member, "truth is not [T, C, H, W]");
    assert!(
        ensemble.len().is_multiple_of(per_member) && !ensemble.is_empty(),
        "ensemble is not [N, T, C, H, W]"
    );
    let members = ensemble.len() / per_member;
    let binning = Binning::new(&shape);
    let mut planes = vec![0.0f32; members * plane];
    (0..steps)
        .map(|t| {
            (0..channels)
                .map(|c| {
                    let off = (t * channels + c) * plane;
                    for m in 0..members {
                        let src = m * per_member + off;
                        planes[m * plane..(m + 1) * plane]
                            .copy_from_slice(&ensemble[src..src + plane]);
                    }
                    field_metrics(&truth[off..off + plane], &planes, &shape, &binning)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(shape: [usize; 2], kx: f64, ky: f64, amp: f64) -> Vec<f32> {
        let (h, w) = (shape[0], shape[1]);
        (0..h * w)
            .map(|i| {
                let (x, y) = ((i / w) as f64 / h as f64, (i % w) as f64 / w as f64);
                (1.0 + amp * (2.0 * std::f64::consts::PI * (kx * x + ky * y)).cos()) as f32
            })
            .collect()
    }

    #[test]
    fn power_is_parseval_and_lands_in_the_wave_bin() {
        let shape = [16, 12];
        let b = Binning::new(&shape);
        // floor(sqrt(2) * 12 / 2) = 8 bins up to |k| = sqrt(0.5^2 + 0.5^2).
        assert_eq!(b.bins(), 8);
        assert!((b.k[7] - 0.5f64.hypot(0.5)).abs() < 1e-12);
        let f = wave(shape, 4.0, 0.0, 0.5);
        let p = power_spectrum(&f, &shape, &b);
        // A cosine of 4 cycles over 16 points sits at |k| = 0.25: bin (0.176, 0.265], index 2.
        let peak = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(peak, 2);
        // Orthonormal DFT: the two +-k coefficients carry sum(u'^2) = N * 0.5^2 / 2.
        let spec = fft(&f, &shape);
        let total: f64 = spec.iter().skip(1).map(|c| c.norm_sqr()).sum();
        assert!((total - 16.0 * 12.0 * 0.125).abs() < 1e-9, "{total}");
        assert!((spec[0].re - (16.0f64 * 12.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn perfect_and_deterministic_predictions() {
        let shape = [8, 8];
        let b = Binning::new(&shape);
        let u = wave(shape, 1.0, 2.0, 0.3);
        let m = field_metrics(&u, &u, &shape, &b);
        assert_eq!(
            (m.rmse, m.vrmse, m.spread, m.total_rel_error),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(m.spread_skill, 1.0);
        for band in m.power_rel_error {
            assert_eq!(band, Some(0.0));
        }
        // The cross term's regularisers (1e-6 above, 1e-12 under the root) differ, so even a
        // perfect prediction shows a relative error of order 1e-6 / P in weak bins.
        for band in m.cross_rel_error {
            assert!(band.unwrap() < 1e-4, "{:?}", m.cross_rel_error);
        }
        // A deterministic prediction off by a constant 0.1: RMSE 0.1, zero spread.
        let v: Vec<f32> = u.iter().map(|x| x + 0.1).collect();
        let m = field_metrics(&u, &v, &shape, &b);
        assert!((m.rmse - 0.1).abs() < 1e-6);
        assert_eq!(m.spread, 0.0);
        assert!((m.spread_skill - 1e-3 / (m.rmse + 1e-3)).abs() < 1e-12);
        // The mean of u is 1, so the total is 10% too high.
        assert!(
            (m.total_rel_error + 0.1).abs() < 1e-5,
            "{}",
            m.total_rel_error
        );
    }

    #[test]
    fn spread_of_a_two_member_ensemble() {
        let shape = [4, 4];
        let b = Binning::new(&shape);
        let u = vec![0.0f32; 16];
        let mut ens = vec![1.0f32; 16];
        ens.extend(vec![-1.0f32; 16]);
        let m = field_metrics(&u, &ens, &shape, &b);
        // Members deviate by 1 from their mean, 0: spread = sqrt(3/1 * 1).
        assert!((m.spread - 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(m.rmse, 0.0);
        // NRMSE and VRMSE use the 1e-6 floor when u is constant and zero.
        assert_eq!((m.nrmse, m.vrmse), (0.0, 0.0));
    }

    #[test]
    fn evaluate_indexes_time_then_channel() {
        let shape = [6, 6];
        let plane = 36;
        let truth: Vec<f32> = (0..2 * 3 * plane).map(|i| (i % 7) as f32).collect();
        let mut ens = truth.clone();
        // Perturb only t = 1, c = 2 of the single member.
        for v in &mut ens[(3 + 2) * plane..(3 + 3) * plane] {
            *v += 0.5;
        }
        let all = evaluate(&truth, &ens, 2, 3, shape);
        assert_eq!((all.len(), all[0].len()), (2, 3));
        for (t, row) in all.iter().enumerate() {
            for (c, m) in row.iter().enumerate() {
                let expected = if (t, c) == (1, 2) { 0.5 } else { 0.0 };
                assert!((m.rmse - expected).abs() < 1e-6, "t {t} c {c}: {}", m.rmse);
            }
        }
    }

    #[test]
    fn bands_span_first_bin_to_nyquist() {
        let b = band_edges(&[0.03125, 0.0625]);
        assert!((b[0] - 0.03125).abs() < 1e-12 && (b[3] - 0.5).abs() < 1e-12);
        assert!((b[1] - 0.078_745).abs() < 1e-5 && (b[2] - 0.198_425).abs() < 1e-5);
    }
}
