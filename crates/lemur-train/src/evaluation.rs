//! `lemur eval`: the metrics of DESIGN.md section 7 per field and lead time, averaged over
//! trajectories, for a diffusion run, a surrogate run or an autoencoder alone, with the
//! autoencoder's own reconstruction error of the same frames as the floor.
//!
//! Lead time k >= 1 is the k-th predicted frame after the context (frames are one training
//! stride apart); the context frames are not scored.

use lemur_metrics::{Binning, FieldMetrics, evaluate, power_spectrum};

/// Metrics of one field at one lead time, averaged over trajectories.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadMetrics {
    pub rmse: f64,
    pub nrmse: f64,
    pub vrmse: f64,
    pub spread: f64,
    pub spread_skill: f64,
    pub total_rel_error: f64,
    /// Band means over the trajectories where the band exists (NaN when it never does).
    pub power_rel_error: [f64; 4],
    pub cross_rel_error: [f64; 4],
    /// The autoencoder's reconstruction VRMSE of the same truth frames.
    pub ae_vrmse: f64,
    /// The truth's spatial standard deviation (VRMSE's denominator, unbiased as there).
    /// Where it collapses (flow leaving an open domain) VRMSE grows at a constant RMSE.
    pub truth_std: f64,
}

/// Running sums over trajectories: `[lead][channel]`, plus spectra per channel.
#[derive(Clone, Debug)]
pub struct Accumulator {
    pub channels: usize,
    pub leads: usize,
    sums: Vec<Vec<FieldSums>>,
    /// Isotropic power spectra of the truth and of the ensemble mean at `spectrum_lead`,
    /// summed over trajectories: `[channel][bin]`.
    pub spectrum_lead: usize,
    pub spectrum_k: Vec<f64>,
    spectrum_truth: Vec<Vec<f64>>,
    spectrum_pred: Vec<Vec<f64>>,
    pub trajectories: usize,
}

#[derive(Clone, Debug, Default)]
struct FieldSums {
    n: f64,
    m: [f64; 8],
    power: [(f64, f64); 4],
    cross: [(f64, f64); 4],
}

impl Accumulator {
    /// `leads` scored frames, spectra at lead `spectrum_lead` (1-based).
    pub fn new(channels: usize, leads: usize, grid: [usize; 2], spectrum_lead: usize) -> Self {
        let k = Binning::new(&grid).k.clone();
        Self {
            channels,
            leads,
            sums: vec![vec![FieldSums::default(); channels]; leads],
            spectrum_lead,
            spectrum_truth: vec![vec![0.0; k.len()]; channels],
            spectrum_pred: vec![vec![0.0; k.len()]; channels],
            spectrum_k: k,
            trajectories: 0,
        }
    }

    /// Adds one trajectory: `truth` `[T, C, H, W]` and `ensemble` `[N, T, C, H, W]` over the
    /// scored frames only (T = leads), and the autoencoder's reconstruction `[T, C, H, W]` of
    /// the same truth frames (`None` scores the floor as 0).
    pub fn add(
        &mut self,
        truth: &[f32],
        ensemble: &[f32],
        reconstruction: Option<&[f32]>,
        grid: [usize; 2],
    ) {
        let (t, c) = (self.leads, self.channels);
        let m = evaluate(truth, ensemble, t, c, grid);
        let floor = reconstruction.map(|r| evaluate(truth, r, t, c, grid));
        for (lead, row) in m.iter().enumerate() {
            for (ch, f) in row.iter().enumerate() {
                let s = &mut self.sums[lead][ch];
                let ae = floor.as_ref().map_or(0.0, |fl| fl[lead][ch].vrmse);
                let plane = grid[0] * grid[1];
                let off = (lead * c + ch) * plane;
                add_field(s, f, ae, spatial_std(&truth[off..off + plane]));
            }
        }
        let plane = grid[0] * grid[1];
        let members = ensemble.len() / truth.len();
        let binning = Binning::new(&grid);
        let lead = self.spectrum_lead.clamp(1, t) - 1;
        for ch in 0..c {
            let off = (lead * c + ch) * plane;
            let u = &truth[off..off + plane];
            let mut mean = vec![0.0f32; plane];
            for n in 0..members {
                let v = &ensemble[n * truth.len() + off..n * truth.len() + off + plane];
                for (m, &x) in mean.iter_mut().zip(v) {
                    *m += x / members as f32;
                }
            }
            for (acc, p) in self.spectrum_truth[ch]
                .iter_mut()
                .zip(power_spectrum(u, &grid, &binning))
            {
                *acc += p;
            }
            for (acc, p) in self.spectrum_pred[ch]
                .iter_mut()
                .zip(power_spectrum(&mean, &grid, &binning))
            {
                *acc += p;
            }
        }
        self.trajectories += 1;
    }

    /// The averages, `[lead][channel]`.
    pub fn finish(&self) -> Vec<Vec<LeadMetrics>> {
        self.sums
            .iter()
            .map(|row| {
                row.iter()
                    .map(|s| {
                        let n = s.n.max(1.0);
                        let band = |b: &[(f64, f64); 4]| -> [f64; 4] {
                            std::array::from_fn(|i| {
                                if b[i].1 > 0.0 {
                                    b[i].0 / b[i].1
                                } else {
                                    f64::NAN
                                }
                            })
                        };
                        LeadMetrics {
                            rmse: s.m[0] / n,
                            nrmse: s.m[1] / n,
                            vrmse: s.m[2] / n,
                            spread: s.m[3] / n,
                            spread_skill: s.m[4] / n,
                            total_rel_error: s.m[5] / n,
                            ae_vrmse: s.m[6] / n,
                            truth_std: s.m[7] / n,
                            power_rel_error: band(&s.power),
                            cross_rel_error: band(&s.cross),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Mean spectra `(truth, prediction)` of channel `ch` at the spectrum lead.
    pub fn spectra(&self, ch: usize) -> (Vec<f64>, Vec<f64>) {
        let n = self.trajectories.max(1) as f64;
        (
            self.spectrum_truth[ch].iter().map(|v| v / n).collect(),
            self.spectrum_pred[ch].iter().map(|v| v / n).collect(),
        )
    }
}

/// The unbiased standard deviation of one field's values, in f64.
fn spatial_std(u: &[f32]) -> f64 {
    let n = u.len() as f64;
    let mean = u.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let ss = u
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>();
    (ss / (n - 1.0).max(1.0)).sqrt()
}

/// Where a field's truth varies far less than at lead 1: the lead (1-based) at which its
/// spatial standard deviation is smallest, and that std over lead 1's, when below `ratio`.
/// VRMSE divides by this variance, so beyond such a lead it measures the collapse (an open
/// domain emptying) as much as the error.
pub fn collapsed_variance(m: &[Vec<LeadMetrics>], ch: usize, ratio: f64) -> Option<(usize, f64)> {
    let first = m.first()?.get(ch)?.truth_std;
    if first <= 0.0 {
        return None;
    }
    let (lead, low) = m
        .iter()
        .enumerate()
        .map(|(l, row)| (l + 1, row[ch].truth_std / first))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    (low < ratio).then_some((lead, low))
}

fn add_field(s: &mut FieldSums, f: &FieldMetrics, ae: f64, truth_std: f64) {
    s.n += 1.0;
    for (acc, v) in s.m.iter_mut().zip([
        f.rmse,
        f.nrmse,
        f.vrmse,
        f.spread,
        f.spread_skill,
        f.total_rel_error,
        ae,
        truth_std,
    ]) {
        *acc += v;
    }
    for i in 0..4 {
        if let Some(v) = f.power_rel_error[i] {
            s.power[i].0 += v;
            s.power[i].1 += 1.0;
        }
        if let Some(v) = f.cross_rel_error[i] {
            s.cross[i].0 += v;
            s.cross[i].1 += 1.0;
        }
    }
}

/// Lead-time ranges for the summary: the paper's 1-20, 21-60, 61-100 when the horizon reaches
/// 100, else the available horizon in thirds. Returns inclusive 1-based `(from, to)`.
pub fn lead_ranges(leads: usize) -> Vec<(usize, usize)> {
    if leads >= 100 {
        return vec![(1, 20), (21, 60), (61, 100)];
    }
    if leads < 3 {
        return vec![(1, leads.max(1))];
    }
    let a = leads / 3;
    let b = 2 * leads / 3;
    vec![(1, a), (a + 1, b), (b + 1, leads)]
}

/// The CSV header of [`csv_row`].
pub const CSV_HEADER: &str = "field,lead,vrmse,nrmse,rmse,spread,spread_skill,total_rel_error,\
power_err_low,power_err_mid,power_err_high,power_err_highest,\
cross_err_low,cross_err_mid,cross_err_high,cross_err_highest,truth_std,ae_vrmse";

/// One CSV line (NaN bands are left empty).
pub fn csv_row(field: &str, lead: usize, m: &LeadMetrics) -> String {
    let f = |v: f64| {
        if v.is_finite() {
            format!("{v:.6e}")
        } else {
            String::new()
        }
    };
    let bands = |b: &[f64; 4]| b.iter().map(|&v| f(v)).collect::<Vec<_>>().join(",");
    format!(
        "{field},{lead},{},{},{},{},{},{},{},{},{},{}",
        f(m.vrmse),
        f(m.nrmse),
        f(m.rmse),
        f(m.spread),
        f(m.spread_skill),
        f(m.total_rel_error),
        bands(&m.power_rel_error),
        bands(&m.cross_rel_error),
        f(m.truth_std),
        f(m.ae_vrmse)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (T, C, H, W) = (3, 2, 8, 8) smooth fields that change with t and c.
    fn truth() -> Vec<f32> {
        let mut v = Vec::new();
        for t in 0..3 {
            for c in 0..2 {
                for i in 0..8 {
                    for j in 0..8 {
                        let (x, y) = (i as f32 / 8.0, j as f32 / 8.0);
                        v.push(
                            1.0 + c as f32
                                + (std::f32::consts::TAU * x + t as f32).sin()
                                    * (std::f32::consts::PI * y * (c + 1) as f32).cos(),
                        );
                    }
                }
            }
        }
        v
    }

    #[test]
    fn a_perfect_prediction_has_no_error() {
        let u = truth();
        let mut acc = Accumulator::new(2, 3, [8, 8], 3);
        let ens: Vec<f32> = u.iter().chain(u.iter()).copied().collect();
        acc.add(&u, &ens, Some(&u), [8, 8]);
        acc.add(&u, &ens, Some(&u), [8, 8]);
        for row in acc.finish() {
            for m in row {
                assert_eq!(
                    (m.rmse, m.vrmse, m.nrmse, m.spread, m.ae_vrmse),
                    (0.0, 0.0, 0.0, 0.0, 0.0)
                );
                assert!((m.spread_skill - 1.0).abs() < 1e-12);
                for b in m.power_rel_error {
                    assert!(b.is_nan() || b.abs() < 1e-9, "{b}");
                }
                // The coherence `(C + 1e-6) / sqrt(P P + 1e-12)` is not 1 where the power is
                // near 1e-6 (the smooth field's high bands), even for identical fields: only
                // finiteness holds there.
                assert!(m.cross_rel_error.iter().all(|b| !b.is_infinite()));
            }
        }
        let (p_u, p_v) = acc.spectra(1);
        assert_eq!(p_u, p_v);
    }

    #[test]
    fn the_spatial_mean_has_vrmse_one() {
        let u = truth();
        let plane = 64;
        // Each frame and channel predicted by the truth's own spatial mean.
        let pred: Vec<f32> = u
            .chunks(plane)
            .flat_map(|p| {
                let m = p.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
                vec![m as f32; plane]
            })
            .collect();
        let mut acc = Accumulator::new(2, 3, [8, 8], 2);
        acc.add(&u, &pred, None, [8, 8]);
        for row in acc.finish() {
            for m in row {
                // sqrt(mean((u - mean u)^2) / var_unbiased(u)) = sqrt((n - 1) / n).
                let want = (63.0f64 / 64.0).sqrt();
                assert!((m.vrmse - want).abs() < 1e-4, "vrmse {}", m.vrmse);
                assert_eq!(m.spread, 0.0);
            }
        }
    }

    #[test]
    fn a_collapsing_truth_is_reported_with_its_lead() {
        // Lead 2 of channel 1 scaled about its mean by 0.05: its std is 5% of lead 1's.
        let mut u = truth();
        let plane = 64;
        let off = 3 * plane; // (lead index 1) * 2 channels + channel 1
        let mean = u[off..off + plane].iter().sum::<f32>() / plane as f32;
        let before = spatial_std(&u[off..off + plane]);
        for v in &mut u[off..off + plane] {
            *v = mean + 0.05 * (*v - mean);
        }
        let mut acc = Accumulator::new(2, 3, [8, 8], 1);
        acc.add(&u, &u, None, [8, 8]);
        let m = acc.finish();
        let want = spatial_std(&u[plane..2 * plane]);
        assert!((m[0][1].truth_std - want).abs() < 1e-12);
        assert!((m[1][1].truth_std - 0.05 * before).abs() < 1e-6 * before);
        let (lead, r) = collapsed_variance(&m, 1, 0.1).expect("channel 1 collapses");
        assert_eq!(lead, 2);
        assert!((r - 0.05 * before / want).abs() < 1e-6, "{r}");
        assert_eq!(collapsed_variance(&m, 0, 0.1), None);
    }

    #[test]
    fn lead_ranges_follow_the_paper_or_thirds() {
        assert_eq!(lead_ranges(100), vec![(1, 20), (21, 60), (61, 100)]);
        assert_eq!(lead_ranges(12), vec![(1, 4), (5, 8), (9, 12)]);
        assert_eq!(lead_ranges(2), vec![(1, 2)]);
        let m = LeadMetrics {
            power_rel_error: [0.5, f64::NAN, 0.25, 1.0],
            ..Default::default()
        };
        let row = csv_row("density", 3, &m);
        assert_eq!(row.split(',').count(), CSV_HEADER.split(',').count());
        assert!(row.starts_with("density,3,0.000000e0,"), "{row}");
        assert!(row.contains("5.000000e-1,,2.500000e-1"), "{row}");
    }
}
