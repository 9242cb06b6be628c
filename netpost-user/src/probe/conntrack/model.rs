//! Conntrack table pressure in the namespace netpost runs in: the kernel's own counters (what
//! `conntrack -S` and `sysctl net.netfilter` show) turned into the Snapshot's `conntrack`
//! object, with the entries netpost's netfilter programs saw being created. Pure.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::delta::rate;

pub const NAME: &str = "conntrack";

/// The kernel's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConntrackRaw {
    pub count: u64,
    pub max: u64,
    pub buckets: u64,
    /// /proc/net/stat/nf_conntrack columns, summed over CPUs.
    pub stat: BTreeMap<String, u64>,
}

impl ConntrackRaw {
    /// Half full or more: the top sources of new entries are worth a map walk.
    pub fn filling(&self) -> bool {
        self.max > 0 && self.count as f64 * 100.0 / self.max as f64 >= HIGH_FILL_PCT
    }
}

/// Sums the per-CPU rows of /proc/net/stat/nf_conntrack (hex). `entries` is the table size
/// repeated on every row, so it is taken once.
pub fn parse_stat(text: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (row, line) in lines.enumerate() {
        for (name, value) in names.iter().zip(line.split_whitespace()) {
            let value = u64::from_str_radix(value, 16).unwrap_or(0);
            if *name == "entries" && row > 0 {
                continue;
            }
            *out.entry(name.to_string()).or_default() += value;
        }
    }
    out
}

/// A source address and the conntrack entries it created since netpost started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopSource {
    pub src: String,
    pub new: u64,
}

/// Table pressure, as in the JSON's `conntrack` object. Failure counters are the kernel's
/// (since conntrack started in this namespace); rates are over the last interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConntrackStats {
    pub count: u64,
    pub max: u64,
    pub buckets: u64,
    pub fill_pct: f64,
    pub insert_failed: u64,
    pub drop: u64,
    pub early_drop: u64,
    pub invalid: u64,
    pub search_restart: u64,
    pub clash_resolve: u64,
    pub chaintoolong: u64,
    pub icmp_error: u64,
    /// Entries created since netpost started, as its netfilter programs saw them (null
    /// without netfilter links).
    pub new: Option<u64>,
    pub new_per_s: Option<f64>,
    pub drop_per_s: f64,
    pub early_drop_per_s: f64,
    pub insert_failed_per_s: f64,
    /// Seconds until the table is full at the last interval's net growth; null when it is
    /// not growing.
    pub time_to_full_s: Option<f64>,
    /// The sources that created the most entries; filled when the table is half full or more.
    pub top_sources: Vec<TopSource>,
}

/// Share of the table in use at which netpost names the top sources.
pub const HIGH_FILL_PCT: f64 = 50.0;

/// Builds the stats from two readings `interval_ms` apart; `created` is (now, before) of
/// the entries netfilter saw created.
pub fn stats(
    now: &ConntrackRaw,
    prev: Option<&ConntrackRaw>,
    created: Option<(u64, u64)>,
    interval_ms: u64,
    top_sources: Vec<TopSource>,
) -> ConntrackStats {
    let stat = |name: &str| now.stat.get(name).copied().unwrap_or(0);
    let per_s = |name: &str| match prev {
        Some(p) => rate(
            stat(name),
            p.stat.get(name).copied().unwrap_or(0),
            interval_ms,
        ),
        None => 0.0,
    };
    let fill_pct = if now.max == 0 {
        0.0
    } else {
        now.count as f64 * 100.0 / now.max as f64
    };
    let growth = prev
        .map(|p| rate(now.count, p.count, interval_ms))
        .unwrap_or(0.0);
    ConntrackStats {
        count: now.count,
        max: now.max,
        buckets: now.buckets,
        fill_pct,
        insert_failed: stat("insert_failed"),
        drop: stat("drop"),
        early_drop: stat("early_drop"),
        invalid: stat("invalid"),
        search_restart: stat("search_restart"),
        clash_resolve: stat("clashres"),
        chaintoolong: stat("chaintoolong"),
        icmp_error: stat("icmp_error"),
        new: created.map(|(n, _)| n),
        new_per_s: created.map(|(n, before)| rate(n, before, interval_ms)),
        drop_per_s: per_s("drop"),
        early_drop_per_s: per_s("early_drop"),
        insert_failed_per_s: per_s("insert_failed"),
        time_to_full_s: (growth > 0.0 && now.max > now.count)
            .then(|| (now.max - now.count) as f64 / growth),
        top_sources: if fill_pct >= HIGH_FILL_PCT {
            top_sources
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
00000007  00000001 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000002 00000003 00000004 00000000  00000000 00000000 00000000 00000005\n\
00000007  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000001 00000010 00000000  00000000 00000000 00000000 00000000\n";

    #[test]
    fn stat_rows_are_summed_and_entries_taken_once() {
        let s = parse_stat(STAT);
        assert_eq!(s["entries"], 7);
        assert_eq!(s["invalid"], 11);
        assert_eq!(s["drop"], 4);
        assert_eq!(s["early_drop"], 20);
        assert_eq!(s["insert_failed"], 2);
        assert_eq!(s["search_restart"], 5);
        assert_eq!(s["clashres"], 1);
    }

    #[test]
    fn fill_rates_and_time_to_full() {
        let prev = ConntrackRaw {
            count: 100,
            max: 1000,
            buckets: 256,
            stat: parse_stat(STAT),
        };
        let mut now = prev.clone();
        now.count = 600;
        *now.stat.get_mut("drop").unwrap() += 10;
        let s = stats(&now, Some(&prev), Some((700, 200)), 2000, vec![]);
        assert_eq!(s.fill_pct, 60.0);
        assert_eq!(s.drop, 14);
        assert_eq!(s.drop_per_s, 5.0);
        assert_eq!(s.new, Some(700));
        assert_eq!(s.new_per_s, Some(250.0));
        // 400 free entries at 250/s net growth.
        assert_eq!(s.time_to_full_s, Some(1.6));
    }

    #[test]
    fn top_sources_only_when_the_table_is_filling() {
        let raw = ConntrackRaw {
            count: 10,
            max: 100,
            ..Default::default()
        };
        let top = vec![TopSource {
            src: "10.0.0.1".into(),
            new: 9,
        }];
        assert!(
            stats(&raw, None, None, 1000, top.clone())
                .top_sources
                .is_empty()
        );
        let full = ConntrackRaw { count: 60, ..raw };
        let s = stats(&full, None, None, 1000, top.clone());
        assert_eq!(s.top_sources, top);
        assert_eq!(s.time_to_full_s, None, "no growth measured yet");
        assert_eq!(s.new, None, "unknown without netfilter links");
    }
}
