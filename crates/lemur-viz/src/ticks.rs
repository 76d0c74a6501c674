//! "Nice" axis ticks and compact number labels.

/// The smallest of 1, 2 or 5 times a power of ten that is at least `raw` (> 0).
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0] {
        if m * mag >= raw * (1.0 - 1e-9) {
            return m * mag;
        }
    }
    10.0 * mag
}

/// `(lo, hi)` ordered, with a zero-width range widened (by 10% of the value, or by 1 around
/// zero) and non-finite ends replaced by `0..1`.
pub fn widen_range(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if hi - lo > lo.abs().max(hi.abs()) * 1e-12 {
        return (lo, hi);
    }
    let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - d, hi + d)
}

/// The step [`nice_ticks`] uses for `lo..hi` and about `target` ticks.
pub fn tick_step(lo: f64, hi: f64, target: usize) -> f64 {
    let (lo, hi) = widen_range(lo, hi);
    nice_step((hi - lo) / (target.max(2) - 1) as f64)
}

/// Ticks at multiples of a nice step (1, 2 or 5 times a power of ten) inside `lo..=hi`,
/// about `target` of them (at least 2 for a non-degenerate range). A constant range is
/// widened first ([`widen_range`]); non-finite ends give no ticks. Values within a
/// rounding error of zero are exactly zero.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let (lo, hi) = widen_range(lo, hi);
    let step = tick_step(lo, hi, target);
    let k0 = (lo / step - 1e-9).ceil();
    let k1 = (hi / step + 1e-9).floor();
    if !(k1 >= k0 && k1 - k0 < 1000.0) {
        return vec![lo, hi];
    }
    // For steps below 1, dividing by the integer 1/step rounds better than multiplying
    // (3 rather than 15 * 0.2 = 3.0000000000000004).
    let inv = (1.0 / step).round();
    let divide = step < 1.0 && (inv * step - 1.0).abs() < 1e-12;
    (0..=(k1 - k0) as i64)
        .map(|i| {
            let k = k0 + i as f64;
            let v = if divide { k / inv } else { k * step };
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect()
}

/// `lo..hi` widened outwards to multiples of its nice tick step, for axis ranges.
pub fn nice_bounds(lo: f64, hi: f64, target: usize) -> (f64, f64) {
    let (lo, hi) = widen_range(lo, hi);
    let step = tick_step(lo, hi, target);
    (
        (lo / step + 1e-9).floor() * step,
        (hi / step - 1e-9).ceil() * step,
    )
}

/// Major ticks of a logarithmic axis over `lo..=hi` (both must be > 0, else no ticks):
/// powers of ten, thinned to at most about `max_ticks`; within less than two decades, the
/// 1-2-5 multiples; within less than that, linear nice ticks.
pub fn log_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > 0.0) {
        return Vec::new();
    }
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let e0 = (lo.log10() - 1e-9).ceil() as i64;
    let e1 = (hi.log10() + 1e-9).floor() as i64;
    let decades = e1 - e0 + 1;
    if decades >= 2 {
        let stride = ((decades as f64) / max_ticks.max(2) as f64).ceil().max(1.0) as i64;
        return (e0..=e1).step_by(stride as usize).map(pow10).collect();
    }
    let mut ticks: Vec<f64> = (e0 - 1..=e1)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| times_pow10(m, e)))
        .filter(|&v| inside(v))
        .collect();
    if ticks.len() < 2 {
        ticks = nice_ticks(lo, hi, 4)
            .into_iter()
            .filter(|&v| v > 0.0)
            .collect();
    }
    ticks
}

/// Minor ticks of a logarithmic axis: 2..9 times each power of ten inside `lo..=hi`, when
/// the range spans at most 8 decades (none otherwise).
pub fn log_minor_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo) || hi / lo > 1e8 {
        return Vec::new();
    }
    let e0 = lo.log10().floor() as i64;
    let e1 = hi.log10().ceil() as i64;
    (e0..=e1)
        .flat_map(|e| (2..=9).map(move |m| times_pow10(f64::from(m), e)))
        .filter(|&v| v > lo && v < hi)
        .collect()
}

/// `m * 10^e`, correctly rounded for small integers `m`.
fn times_pow10(m: f64, e: i64) -> f64 {
    if e >= 0 { m * pow10(e) } else { m / pow10(-e) }
}

/// `10^e`, exact for the decimal powers that `f64` can hold exactly.
fn pow10(e: i64) -> f64 {
    format!("1e{e}").parse().unwrap_or(f64::NAN)
}

/// `v` with `sig` significant digits, compactly: fixed notation for `1e-2 <= |v| < 1e5`
/// (`0.25`, `1200`, `-3.5`), scientific otherwise (`-1.5e-3`, `2e6`), trailing zeros
/// dropped, and never `-0`.
pub fn format_sig(v: f64, sig: usize) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let sig = sig.clamp(1, 17);
    let a = v.abs();
    let s = if !(1e-2..1e5).contains(&a) {
        let s = format!("{:.*e}", sig - 1, v);
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
            None => s,
        }
    } else {
        let e = a.log10().floor() as i64;
        let decimals = (sig as i64 - 1 - e).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    };
    if s == "-0" { "0".into() } else { s }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A compact label for an arbitrary value (three significant digits): `0.25`, `-1.5e-3`,
/// `1200`, `3.14`.
pub fn format_tick(v: f64) -> String {
    format_sig(v, 3)
}

/// Labels for a set of ticks with the fewest significant digits that tell them apart and
/// represent each tick to within a millionth of the smallest gap between ticks.
pub fn format_ticks(ticks: &[f64]) -> Vec<String> {
    let mut gap = f64::INFINITY;
    for w in ticks.windows(2) {
        let d = (w[1] - w[0]).abs();
        if d > 0.0 {
            gap = gap.min(d);
        }
    }
    let scale = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = if gap.is_finite() {
        gap * 1e-6
    } else {
        scale * 1e-6
    };
    for sig in 1..=17 {
        let labels: Vec<String> = ticks.iter().map(|&v| format_sig(v, sig)).collect();
        let exact = labels
            .iter()
            .zip(ticks)
            .all(|(l, &v)| !v.is_finite() || l.parse::<f64>().is_ok_and(|p| (p - v).abs() <= tol));
        let mut sorted = labels.clone();
        sorted.sort();
        sorted.dedup();
        if exact && sorted.len() == labels.len() {
            return labels;
        }
    }
    ticks.iter().map(|&v| format_sig(v, 17)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs()))
    }

    #[test]
    fn nice_ticks_unit_range() {
        let t = nice_ticks(0.0, 1.0, 6);
        assert!(close(&t, &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), "{t:?}");
        assert_eq!(format_ticks(&t), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        let t = nice_ticks(0.0, 1.0, 3);
        assert!(close(&t, &[0.0, 0.5, 1.0]), "{t:?}");
        assert_eq!(nice_bounds(0.03, 0.97, 6), (0.0, 1.0));
    }

    #[test]
    fn nice_ticks_negative_and_offset_ranges() {
        let t = nice_ticks(-5.0, -1.0, 5);
        assert!(close(&t, &[-5.0, -4.0, -3.0, -2.0, -1.0]), "{t:?}");
        let t = nice_ticks(-0.013, 0.007, 5);
        assert!(close(&t, &[-0.01, -0.005, 0.0, 0.005]), "{t:?}");
        assert_eq!(t[2], 0.0);
        assert_eq!(format_ticks(&t), ["-0.01", "-5e-3", "0", "5e-3"]);
        // Reversed ends are fine.
        assert!(close(
            &nice_ticks(1.0, -1.0, 5),
            &[-1.0, -0.5, 0.0, 0.5, 1.0]
        ));
        // Large offset, small span: labels keep enough digits.
        let t = nice_ticks(1000.0, 1001.0, 3);
        assert_eq!(format_ticks(&t), ["1000", "1000.5", "1001"]);
    }

    #[test]
    fn nice_ticks_constant_and_degenerate() {
        let t = nice_ticks(3.0, 3.0, 5);
        assert!(t.len() >= 2 && t.iter().all(|v| v.is_finite()));
        assert!(t[0] <= 3.0 && *t.last().unwrap() >= 3.0);
        assert!(t.contains(&3.0), "{t:?}");
        let t = nice_ticks(0.0, 0.0, 5);
        assert!(close(&t, &[-1.0, -0.5, 0.0, 0.5, 1.0]), "{t:?}");
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
        assert!(nice_ticks(0.0, f64::INFINITY, 5).is_empty());
    }

    #[test]
    fn log_ticks_decades() {
        let t = log_ticks(1e-3, 1e2, 8);
        assert_eq!(t, vec![1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]);
        assert_eq!(format_ticks(&t), ["1e-3", "0.01", "0.1", "1", "10", "100"]);
        // Thinned to about max_ticks.
        let t = log_ticks(1e-10, 1e10, 6);
        assert!(t.len() <= 7 && t.len() >= 4, "{t:?}");
        assert_eq!(t[0], 1e-10);
        // Within one decade: 1-2-5.
        assert_eq!(log_ticks(0.15, 3.0, 6), vec![0.2, 0.5, 1.0, 2.0]);
        // Non-positive ends: nothing, no panic.
        assert!(log_ticks(0.0, 10.0, 6).is_empty());
        assert!(log_ticks(-1.0, -0.1, 6).is_empty());
        let minor = log_minor_ticks(1.0, 100.0);
        assert_eq!(minor.len(), 16);
        assert!(minor.contains(&2.0) && minor.contains(&90.0));
    }

    #[test]
    fn compact_labels() {
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(-1.5e-3), "-1.5e-3");
        assert_eq!(format_tick(1200.0), "1200");
        assert_eq!(format_tick(123456.0), "1.23e5");
        assert_eq!(format_tick(std::f64::consts::PI), "3.14");
        assert_eq!(format_tick(-0.0), "0");
        assert_eq!(format_tick(1.0), "1");
        assert_eq!(format_tick(0.1 + 0.2), "0.3");
        assert_eq!(format_tick(f64::NAN), "nan");
        assert_eq!(format_sig(-2.0e-9, 3), "-2e-9");
    }
}
