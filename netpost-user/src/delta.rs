//! Counter arithmetic every probe shares: what changed since a baseline, and per-second rates
//! over an interval. Pure, at the bottom of the module graph.
use std::collections::BTreeMap;

/// Per-second rate of a cumulative counter; 0 when the interval is empty or the counter
/// went backwards (it never should: maps are only created, never reset, by netpost).
pub fn rate(now: u64, before: u64, interval_ms: u64) -> f64 {
    if interval_ms == 0 || now < before {
        return 0.0;
    }
    (now - before) as f64 * 1000.0 / interval_ms as f64
}

/// `now - baseline` per key (keys the baseline lacks count from zero).
pub fn since<K: Ord + Copy>(
    now: &BTreeMap<K, u64>,
    baseline: &BTreeMap<K, u64>,
) -> BTreeMap<K, u64> {
    now.iter()
        .map(|(k, v)| (*k, v.saturating_sub(baseline.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}
