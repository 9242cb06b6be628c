//! A bounded history of rates for the sparklines: one point per snapshot, the oldest
//! dropped past the capacity, so memory stays flat however long netpost runs, and however
//! many interfaces come and go (each point holds the interfaces of its snapshot only).
use std::{collections::VecDeque, sync::Arc};

use crate::model::Snapshot;

/// 600 points: ten minutes at the default one-second interval.
pub const DEFAULT_CAPACITY: usize = 600;

/// Receive and transmit rates of one interface at one point in time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IfaceRates {
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
}

#[derive(Clone, Debug, PartialEq)]
struct Point {
    elapsed_ms: u64,
    /// The snapshot's interfaces (names shared with the points before).
    ifaces: Vec<(Arc<str>, IfaceRates)>,
    nf_drop_pps: f64,
}

/// What a sparkline plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    RxPps,
    TxPps,
    RxBps,
    TxBps,
    /// Packets per second dropped at any netfilter hook (whole namespace).
    NfDrops,
}

#[derive(Clone, Debug)]
pub struct History {
    capacity: usize,
    points: VecDeque<Point>,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            capacity: capacity.max(1),
            points: VecDeque::new(),
        }
    }

    /// Distinct interface names held.
    #[cfg(test)]
    fn names_held(&self) -> usize {
        let mut names: Vec<&Arc<str>> = self
            .points
            .iter()
            .flat_map(|p| p.ifaces.iter().map(|(n, _)| n))
            .collect();
        names.sort();
        names.dedup_by(|a, b| Arc::ptr_eq(a, b));
        names.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn push(&mut self, snap: &Snapshot) {
        let prev = self.points.back();
        let ifaces = snap
            .interfaces
            .iter()
            .map(|(name, s)| {
                let name = prev
                    .and_then(|p| p.ifaces.iter().find(|(n, _)| **n == **name))
                    .map_or_else(|| Arc::from(name.as_str()), |(n, _)| n.clone());
                let rates = IfaceRates {
                    // With XDP off the XDP counters stay at zero; tc ingress sees the same
                    // traffic, so the larger of the two is what arrived.
                    rx_pps: s.xdp.pps.max(s.tc_ingress.pps),
                    tx_pps: s.tc_egress.pps,
                    rx_bps: s.xdp.bps.max(s.tc_ingress.bps),
                    tx_bps: s.tc_egress.bps,
                };
                (name, rates)
            })
            .collect();
        let nf_drop_pps = snap
            .netfilter
            .values()
            .flat_map(|f| netpost_common::netfilter::NfHook::ALL.map(|h| f.hook(h).dropped_pps))
            .sum();
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(Point {
            elapsed_ms: snap.elapsed_ms,
            ifaces,
            nf_drop_pps,
        });
    }

    /// The last `n` values of `series`, oldest first, summed over the interfaces
    /// `keep` accepts.
    pub fn series(&self, series: Series, n: usize, keep: impl Fn(&str) -> bool) -> Vec<f64> {
        let skip = self.points.len().saturating_sub(n);
        self.points
            .iter()
            .skip(skip)
            .map(|p| match series {
                Series::NfDrops => p.nf_drop_pps,
                _ => p
                    .ifaces
                    .iter()
                    .filter(|(name, _)| keep(name))
                    .map(|(_, r)| match series {
                        Series::RxPps => r.rx_pps,
                        Series::TxPps => r.tx_pps,
                        Series::RxBps => r.rx_bps,
                        Series::TxBps => r.tx_bps,
                        Series::NfDrops => unreachable!("handled above"),
                    })
                    // Not sum(): an empty f64 sum is -0.0, which prints as "-0".
                    .fold(0.0, |a, b| a + b),
            })
            .collect()
    }

    /// How much time the last `n` points cover.
    pub fn span_ms(&self, n: usize) -> u64 {
        let skip = self.points.len().saturating_sub(n);
        match (self.points.get(skip), self.points.back()) {
            (Some(first), Some(last)) => last.elapsed_ms - first.elapsed_ms,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IfaceStats;

    fn snap(elapsed_ms: u64, rates: &[(&str, f64)]) -> Snapshot {
        Snapshot {
            elapsed_ms,
            interfaces: rates
                .iter()
                .map(|(name, pps)| {
                    let mut s = IfaceStats::default();
                    s.xdp.pps = *pps;
                    s.tc_ingress.pps = *pps;
                    s.tc_egress.pps = pps / 2.0;
                    (name.to_string(), s)
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut h = History::new(3);
        for i in 1..=5 {
            h.push(&snap(i * 1000, &[("a", i as f64)]));
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.series(Series::RxPps, 10, |_| true), [3.0, 4.0, 5.0]);
        assert_eq!(h.series(Series::RxPps, 2, |_| true), [4.0, 5.0]);
        assert_eq!(h.span_ms(10), 2000);
        assert_eq!(h.span_ms(2), 1000);
    }

    #[test]
    fn series_sum_the_interfaces_the_filter_keeps() {
        let mut h = History::new(10);
        h.push(&snap(1000, &[("a", 10.0)]));
        h.push(&snap(2000, &[("a", 10.0), ("b", 100.0)]));
        assert_eq!(h.series(Series::RxPps, 10, |_| true), [10.0, 110.0]);
        assert_eq!(h.series(Series::RxPps, 10, |n| n == "b"), [0.0, 100.0]);
        assert_eq!(h.series(Series::TxPps, 10, |_| true), [5.0, 55.0]);
    }

    #[test]
    fn interfaces_that_come_and_go_are_not_held_past_the_capacity() {
        let mut h = History::new(5);
        for i in 0..1000u64 {
            let name = format!("veth{i}");
            h.push(&snap(i * 1000, &[("eth0", 1.0), (&name, 2.0)]));
        }
        assert_eq!(h.names_held(), 1 + 5, "eth0, shared, and one pod per point");
        assert_eq!(h.series(Series::RxPps, 10, |n| n == "eth0"), [1.0; 5]);
        assert_eq!(h.series(Series::RxPps, 10, |_| true), [3.0; 5]);
    }
}
