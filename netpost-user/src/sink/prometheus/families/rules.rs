//! Drops attributed to netfilter rules: `{family, hook, backend, table, chain, rule}`, a
//! bounded label set. Per hook, the first [`RULES_PER_HOOK`] rules seen dropping keep their
//! own series for the whole run (a rule that left the top would otherwise turn its series
//! into a reset of another); every other rule's drops add up in `rule="other"`.
use std::{collections::BTreeMap, fmt};

use netpost_common::netfilter::NfHook;
use prometheus_client::encoding::DescriptorEncoder;

use super::counter;
use crate::model::{RuleDrops, Snapshot};

/// Rules with a series of their own, per family and hook.
pub const RULES_PER_HOOK: usize = 10;
/// Longest rule text in a label.
const RULE_LABEL_CHARS: usize = 120;

/// A rule as its labels name it: (backend, table, chain, rule).
type RuleLabels = (String, String, String, String);

fn labels_of(r: &RuleDrops) -> RuleLabels {
    let mut rule: String = r.rule.chars().take(RULE_LABEL_CHARS).collect();
    if rule.len() < r.rule.len() {
        rule.push('…');
    }
    (
        r.backend.to_string(),
        format!("{} {}", r.family, r.table),
        r.chain.clone(),
        rule,
    )
}

/// The rules that own a series, per (family, hook), in the order they got it.
#[derive(Debug, Default)]
pub struct RuleSeries(BTreeMap<(String, NfHook), Vec<RuleLabels>>);

pub fn encode(enc: &mut DescriptorEncoder, snap: &Snapshot, slots: &mut RuleSeries) -> fmt::Result {
    let mut rows = Vec::new();
    for (family, stats) in &snap.netfilter {
        for hook in NfHook::ALL {
            let h = stats.hook(hook);
            let Some(attributed) = h.attributed_drops.filter(|&n| n > 0) else {
                continue;
            };
            let owned = slots.0.entry((family.clone(), hook)).or_default();
            let mut values: BTreeMap<RuleLabels, u64> = BTreeMap::new();
            // Ranked busiest first: the busiest new rules take the free series.
            for r in h.rules.iter().filter(|r| r.packets.is_some_and(|n| n > 0)) {
                let l = labels_of(r);
                if !owned.contains(&l) && owned.len() < RULES_PER_HOOK && r.backend != "other" {
                    owned.push(l.clone());
                }
                if owned.contains(&l) {
                    *values.entry(l).or_default() += r.packets.unwrap_or(0);
                }
            }
            let named: u64 = values.values().sum();
            let base = [
                ("family", family.clone()),
                ("hook", hook.name().to_string()),
            ];
            for ((backend, table, chain, rule), n) in values {
                let mut l = base.to_vec();
                l.extend([
                    ("backend", backend),
                    ("table", table),
                    ("chain", chain),
                    ("rule", rule),
                ]);
                rows.push((l, n));
            }
            let other = attributed.saturating_sub(named);
            if other > 0 {
                let mut l = base.to_vec();
                l.extend([
                    ("backend", String::new()),
                    ("table", String::new()),
                    ("chain", String::new()),
                    ("rule", "other".to_string()),
                ]);
                rows.push((l, other));
            }
        }
    }
    counter(
        enc,
        "netpost_netfilter_rule_drops",
        "Packets dropped at the hook that a drop, reject or queue rule's counter accounts for (rule=\"other\": the rules without a series of their own).",
        None,
        rows,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prometheus_client::registry::Registry;
    use tokio::sync::watch;

    use super::*;
    use crate::{model::NfFamilyStats, sink::prometheus::families::SnapshotCollector};

    fn rule(chain: &str, packets: u64) -> RuleDrops {
        RuleDrops {
            backend: "nft",
            family: "inet",
            table: "t".into(),
            chain: chain.into(),
            handle_or_index: Some(3),
            rule: format!("udp dport 9 counter drop in {chain}"),
            verdict: "drop",
            packets: Some(packets),
            per_s: Some(0.0),
            shared_packets: 0,
            note: None,
        }
    }

    fn snapshot(rules: Vec<RuleDrops>) -> Snapshot {
        let mut f = NfFamilyStats::default();
        f.forward.attributed_drops = Some(rules.iter().filter_map(|r| r.packets).sum());
        f.forward.rules = rules;
        Snapshot {
            netfilter: [("ipv4".to_string(), f)].into(),
            ..Default::default()
        }
    }

    /// Scrapes each snapshot in turn from one collector (its series assignment carries
    /// over); returns the family's samples of the last scrape as (labels, value).
    fn scrape(snaps: Vec<Snapshot>) -> Vec<(String, u64)> {
        let mut snaps = snaps.into_iter().map(|mut s| {
            s.ts_ms = 1;
            Arc::new(s)
        });
        let (tx, rx) = watch::channel(snaps.next().unwrap());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector::new(rx)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for snap in snaps {
            tx.send_replace(snap);
            out.clear();
            prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        }
        out.lines()
            .filter(|l| l.starts_with("netpost_netfilter_rule_drops_total{"))
            .map(|l| {
                let (labels, v) = l.rsplit_once(' ').unwrap();
                (labels.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn top_rules_keep_their_series_and_the_rest_add_up_in_other() {
        let rules: Vec<_> = (0..RULES_PER_HOOK as u64 + 3)
            .map(|i| rule(&format!("c{i:02}"), 100 - i))
            .collect();
        let total: u64 = rules.iter().filter_map(|r| r.packets).sum();
        let got = scrape(vec![snapshot(rules.clone())]);
        assert_eq!(got.len(), RULES_PER_HOOK + 1, "{got:#?}");
        assert_eq!(got.iter().map(|(_, v)| v).sum::<u64>(), total);
        let other = got
            .iter()
            .find(|(l, _)| l.contains("rule=\"other\""))
            .unwrap();
        assert_eq!(other.1, 90 + 89 + 88);
        assert!(got[0].0.contains("table=\"inet t\""), "{}", got[0].0);
        // A later rule that overtakes them all still adds up in `other`: series stay put.
        let mut more = rules.clone();
        more.insert(0, rule("late", 1000));
        let got = scrape(vec![snapshot(rules), snapshot(more)]);
        assert_eq!(got.len(), RULES_PER_HOOK + 1);
        let other = got
            .iter()
            .find(|(l, _)| l.contains("rule=\"other\""))
            .unwrap();
        assert_eq!(other.1, 1000 + 90 + 89 + 88);
    }
}
