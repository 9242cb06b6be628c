//! The only statistics the report uses: medians and quartiles (robust to the outliers a noisy
//! VM produces) and ratios.

/// The median; the mean of the middle two for an even count. None for no samples.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// The `q` quantile (0 <= q <= 1) by linear interpolation between the closest ranks (numpy's
/// default), so with five samples the quartiles are the 2nd and 4th smallest. None for no
/// samples.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// The interquartile range `[q1, q3]`: where the middle half of the samples fall.
pub fn iqr(samples: &[f64]) -> Option<(f64, f64)> {
    Some((quantile(samples, 0.25)?, quantile(samples, 0.75)?))
}

/// `with / without`; None when either is missing or the baseline is not positive.
pub fn ratio(with: Option<f64>, without: Option<f64>) -> Option<f64> {
    match (with, without) {
        (Some(w), Some(b)) if b > 0.0 && w.is_finite() => Some(w / b),
        _ => None,
    }
}

/// `with[i] / without[i]` for each pair measured together (same round, adjacent in time), so
/// drift of the machine between rounds cancels out; pairs without a positive baseline are
/// skipped.
pub fn paired_ratios(with: &[f64], without: &[f64]) -> Vec<f64> {
    with.iter()
        .zip(without)
        .filter_map(|(&w, &b)| ratio(Some(w), Some(b)))
        .collect()
}

pub fn min(samples: &[f64]) -> Option<f64> {
    samples
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f64::min)
}

/// Rounds for the report, so JSON and markdown show the same digits.
pub fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn median_ignores_non_finite_samples() {
        assert_eq!(median(&[f64::NAN, 1.0, 5.0, f64::INFINITY, 3.0]), Some(3.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn median_resists_one_outlier() {
        assert_eq!(median(&[10.0, 11.0, 1000.0]), Some(11.0));
    }

    #[test]
    fn ratio_needs_a_positive_baseline() {
        assert_eq!(ratio(Some(9.0), Some(10.0)), Some(0.9));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
    }

    #[test]
    fn paired_ratios_cancel_drift() {
        // The machine got twice as slow in the second round; the ratio did not change.
        assert_eq!(paired_ratios(&[90.0, 45.0], &[100.0, 50.0]), [0.9, 0.9]);
        assert_eq!(paired_ratios(&[1.0, 2.0], &[0.0, 4.0]), [0.5]);
        assert_eq!(
            paired_ratios(&[1.0, 2.0], &[2.0]),
            [0.5],
            "unpaired samples are dropped"
        );
    }

    #[test]
    fn quartiles_interpolate_between_ranks() {
        let five = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(iqr(&five), Some((2.0, 4.0)));
        assert_eq!(quantile(&five, 0.5), median(&five));
        assert_eq!(quantile(&five, 0.0), Some(1.0));
        assert_eq!(quantile(&five, 1.0), Some(5.0));
        // Four samples: q1 three quarters of the way from the 1st to the 2nd (as numpy).
        assert_eq!(iqr(&[1.0, 2.0, 3.0, 4.0]), Some((1.75, 3.25)));
        assert_eq!(iqr(&[7.0]), Some((7.0, 7.0)));
        assert_eq!(iqr(&[f64::NAN]), None);
        assert_eq!(iqr(&[]), None);
    }

    #[test]
    fn the_iqr_ignores_the_outer_quarters() {
        let (q1, q3) = iqr(&[0.1, 0.9, 0.91, 0.92, 5.0]).unwrap();
        assert_eq!((q1, q3), (0.9, 0.92));
    }

    #[test]
    fn min_of_finite_samples() {
        assert_eq!(min(&[3.0, f64::NAN, 2.0]), Some(2.0));
        assert_eq!(min(&[]), None);
    }

    #[test]
    fn rounds_to_digits() {
        assert_eq!(round(0.97449, 3), 0.974);
        assert_eq!(round(12.5, 0), 13.0);
    }
}
