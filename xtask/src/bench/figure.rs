//! A figure measured against a baseline, and when its spread makes it inconclusive.
//!
//! Each run with netpost is divided by the baseline run just before it (a paired ratio: the
//! machine's drift between rounds cancels out); the figure is the median of those ratios with
//! their interquartile range. The baseline's own spread is what the same pairing gives with no
//! netpost at all: the IQR width of each baseline run divided by the one before it.
use serde_json::{Value, json};

use super::stats::{iqr, median, paired_ratios, round};

/// Pairs a figure needs before it can say anything (the issue asks for at least five).
pub const MIN_PAIRS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cmp {
    AtLeast,
    AtMost,
}

/// What a figure is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub cmp: Cmp,
    pub threshold: f64,
}

impl Target {
    pub const fn at_least(threshold: f64) -> Target {
        Target {
            cmp: Cmp::AtLeast,
            threshold,
        }
    }

    pub const fn at_most(threshold: f64) -> Target {
        Target {
            cmp: Cmp::AtMost,
            threshold,
        }
    }

    pub fn met(&self, v: f64) -> bool {
        match self.cmp {
            Cmp::AtLeast => v >= self.threshold,
            Cmp::AtMost => v <= self.threshold,
        }
    }

    pub fn describe(&self) -> String {
        let op = match self.cmp {
            Cmp::AtLeast => ">=",
            Cmp::AtMost => "<=",
        };
        format!("{op} {}", self.threshold)
    }
}

/// A summary of samples of one figure: median, IQR, count.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: Option<f64>,
    pub iqr: Option<(f64, f64)>,
    pub n: usize,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Spread {
        Spread {
            median: median(samples),
            iqr: iqr(samples),
            n: samples.iter().filter(|v| v.is_finite()).count(),
        }
    }
}

/// Why a figure cannot be trusted, empty when it can: too few samples; an IQR that straddles
/// the target (the middle half of the samples says both met and missed); or, where the noise
/// of one sample is known (`noise`, the baseline's own spread), a distance from the reference
/// (the target, or "costs nothing" when there is none) smaller than that noise.
pub fn inconclusive(
    s: &Spread,
    min_n: usize,
    target: Option<Target>,
    noise: Option<f64>,
    reference: f64,
) -> Vec<String> {
    let Some(median) = s.median else {
        return vec!["not measured".to_owned()];
    };
    let mut why = Vec::new();
    if s.n < min_n {
        why.push(format!("only {} samples (at least {min_n} needed)", s.n));
    }
    if let (Some(t), Some((q1, q3))) = (target, s.iqr)
        && q1 < t.threshold
        && t.threshold < q3
    {
        why.push(format!(
            "the IQR [{}, {}] straddles the target {}",
            round(q1, 3),
            round(q3, 3),
            t.threshold
        ));
    }
    let reference = target.map_or(reference, |t| t.threshold);
    let diff = (median - reference).abs();
    if let Some(noise) = noise
        && noise > diff
    {
        why.push(format!(
            "the baseline's own spread ({}) exceeds the difference from {} ({})",
            round(noise, 3),
            if target.is_some() {
                format!("the target {reference}")
            } else {
                format!("{reference}")
            },
            round(diff, 3)
        ));
    }
    why
}

/// Baseline-to-baseline ratios in run order: what a paired ratio looks like without netpost.
pub fn baseline_noise(baselines: &[f64]) -> Option<f64> {
    let aa = paired_ratios(&baselines[baselines.len().min(1)..], baselines);
    iqr(&aa).map(|(q1, q3)| q3 - q1)
}

/// The paired-ratio figure: `with[i]` ran right after `before[i]`; `baselines` are all the
/// baseline runs in order (for their own spread).
pub fn paired(with: &[f64], before: &[f64], baselines: &[f64], target: Option<Target>) -> Value {
    let ratios = paired_ratios(with, before);
    let s = Spread::of(&ratios);
    let noise = baseline_noise(baselines);
    let why = inconclusive(&s, MIN_PAIRS, target, noise, 1.0);
    json!({
        "value": s.median.map(|v| round(v, 3)),
        "iqr": iqr_json(s.iqr, 3),
        "pairs": s.n,
        "paired_ratios": ratios.iter().map(|r| round(*r, 3)).collect::<Vec<_>>(),
        "baseline_spread": noise.map(|v| round(v, 3)),
        "inconclusive": !why.is_empty(),
        "inconclusive_why": why_json(&why),
    })
}

pub fn iqr_json(iqr: Option<(f64, f64)>, digits: i32) -> Value {
    iqr.map_or(Value::Null, |(q1, q3)| {
        json!([round(q1, digits), round(q3, digits)])
    })
}

/// The reasons joined into one sentence, or null.
pub fn why_json(why: &[String]) -> Value {
    if why.is_empty() {
        Value::Null
    } else {
        json!(why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(samples: &[f64]) -> Spread {
        Spread::of(samples)
    }

    #[test]
    fn a_tight_figure_clear_of_its_target_is_conclusive() {
        let s = spread(&[0.95, 0.96, 0.94, 0.95, 0.97]);
        assert!(inconclusive(&s, 5, Some(Target::at_least(0.90)), Some(0.02), 1.0).is_empty());
    }

    #[test]
    fn too_few_pairs_are_inconclusive() {
        let why = inconclusive(&spread(&[0.5, 0.5, 0.5]), 5, None, None, 1.0);
        assert_eq!(why, ["only 3 samples (at least 5 needed)"]);
    }

    #[test]
    fn an_iqr_across_the_target_is_inconclusive() {
        // Median 0.91 meets >= 0.90, but the middle half runs from 0.88 to 0.93.
        let s = spread(&[0.80, 0.88, 0.91, 0.93, 0.99]);
        assert_eq!(s.iqr, Some((0.88, 0.93)));
        let why = inconclusive(&s, 5, Some(Target::at_least(0.90)), None, 1.0);
        assert_eq!(why, ["the IQR [0.88, 0.93] straddles the target 0.9"]);
        // An IQR that only touches the target does not straddle it.
        let s = spread(&[0.90, 0.90, 0.92, 0.93, 0.95]);
        assert!(inconclusive(&s, 5, Some(Target::at_least(0.90)), None, 1.0).is_empty());
    }

    #[test]
    fn noise_wider_than_the_difference_is_inconclusive() {
        let s = spread(&[0.97, 0.98, 0.98, 0.98, 0.99]);
        // No target: 0.98 is 0.02 from "no cost", the baseline alone moves 0.05.
        let why = inconclusive(&s, 5, None, Some(0.05), 1.0);
        assert_eq!(
            why,
            ["the baseline's own spread (0.05) exceeds the difference from 1 (0.02)"]
        );
        // Against a target 0.90 the same figure is 0.08 clear: conclusive.
        assert!(inconclusive(&s, 5, Some(Target::at_least(0.90)), Some(0.05), 1.0).is_empty());
        // Ratios far below 1 are conclusive even with the same noise.
        assert!(inconclusive(&spread(&[0.7; 5]), 5, None, Some(0.05), 1.0).is_empty());
    }

    #[test]
    fn nothing_measured_says_so() {
        assert_eq!(
            inconclusive(&spread(&[]), 5, None, None, 1.0),
            ["not measured"]
        );
    }

    #[test]
    fn baseline_noise_is_the_iqr_width_of_consecutive_baseline_ratios() {
        let b = [100.0, 110.0, 110.0, 99.0, 99.0, 108.9];
        // b[i+1]/b[i] = 1.1, 1.0, 0.9, 1.0, 1.1 -> quartiles 1.0 and 1.1.
        let noise = baseline_noise(&b).unwrap();
        assert!((noise - 0.1).abs() < 1e-9, "{noise}");
        assert_eq!(baseline_noise(&[100.0]), None);
        assert_eq!(baseline_noise(&[]), None);
    }

    #[test]
    fn paired_figure_is_the_median_of_the_pairs_with_its_iqr() {
        let before = [100.0, 120.0, 80.0, 100.0, 110.0];
        let with = [90.0, 114.0, 64.0, 95.0, 99.0];
        // Ratios 0.9, 0.95, 0.8, 0.95, 0.9.
        let f = paired(&with, &before, &before, Some(Target::at_least(0.97)));
        assert_eq!(f["value"], 0.9);
        assert_eq!(f["iqr"], json!([0.9, 0.95]));
        assert_eq!(f["pairs"], 5);
        assert_eq!(f["paired_ratios"], json!([0.9, 0.95, 0.8, 0.95, 0.9]));
        // Baseline over baseline 1.2, 0.667, 1.25, 1.1: IQR width 0.221 > 0.07 from the target.
        assert_eq!(f["inconclusive"], true);
        assert!(
            f["inconclusive_why"]
                .as_str()
                .unwrap()
                .starts_with("the baseline's own spread (0.221)"),
            "{f}"
        );
        let steady = [100.0; 6];
        let f = paired(&with, &before, &steady, Some(Target::at_least(0.97)));
        assert_eq!(f["baseline_spread"], 0.0);
        assert_eq!(f["inconclusive"], false);
        assert_eq!(f["inconclusive_why"], Value::Null);
    }
}
