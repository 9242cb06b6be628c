//! The article's "rule order matters": the router's forward chain evaluates 60 rules that
//! never match before the ESTABLISHED,RELATED accept, while almost every packet belongs to
//! an established connection. Nothing is dropped; every packet pays for 60 useless
//! comparisons. The nft counters show the mix (established vs new), `nft -j list table`
//! the position.
use super::{Info, NFT_TABLE, Name, Scenario, healthy, rises};
use crate::lab::{
    change::Recorder,
    evidence::{Source, Witness},
    topology::Node,
    traffic::Traffic,
};

pub struct RuleOrder;

/// Rules before the ESTABLISHED,RELATED accept.
pub const RULES_BEFORE: usize = 60;

/// The forward chain: 30 source blocklist drops (TEST-NET-1), 30 accepts for service ports
/// the lab never uses, then established, then new (each with a counter and a comment).
pub fn ruleset() -> String {
    let mut rules = String::new();
    for i in 1..=30 {
        rules.push_str(&format!(
            "        ip saddr 192.0.2.{i} counter drop comment \"blocklist {i}\"\n"
        ));
    }
    for i in 0..30 {
        rules.push_str(&format!(
            "        tcp dport {} counter accept comment \"service {i}\"\n",
            20000 + i
        ));
    }
    format!(
        "table inet {NFT_TABLE} {{\n    chain forward {{\n        type filter hook forward priority filter; policy accept;\n{rules}        ct state established,related counter accept comment \"established\"\n        ct state new counter accept comment \"new\"\n    }}\n}}\n"
    )
}

impl Scenario for RuleOrder {
    fn info(&self) -> Info {
        Info {
            name: Name::RuleOrder,
            pitfall: "iptables/nft rule order: the ESTABLISHED,RELATED accept comes after 60 other rules while most traffic is established",
            changes: &[
                "router: nft table inet netpost_lab, forward chain with the ESTABLISHED,RELATED accept at position 61",
            ],
            host_changes: false,
            traffic: "the healthy mix with more established traffic: 2 new connections/s per family, one long-lived connection at 200 exchanges/s, UDP echo",
            witnesses: vec![
                Witness::new(
                    Node::Router,
                    Source::NftRule {
                        comment: "established",
                    },
                    rises(500),
                    "packets accepted by the ESTABLISHED,RELATED rule, each after 60 comparisons",
                ),
                Witness::new(
                    Node::Router,
                    Source::NftRule { comment: "new" },
                    rises(4),
                    "packets of new connections (a small share)",
                ),
            ],
        }
    }

    fn apply(&self, rec: &mut Recorder) -> anyhow::Result<()> {
        rec.nft(Node::Router, &format!("inet {NFT_TABLE}"), &ruleset())
    }

    fn traffic(&self, t: &mut Traffic) {
        healthy::mix(t, 2.0, 200.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ruleset_puts_established_after_the_others() {
        let r = super::ruleset();
        let lines: Vec<&str> = r.lines().filter(|l| l.contains("counter")).collect();
        assert_eq!(lines.len(), super::RULES_BEFORE + 2);
        assert!(lines[super::RULES_BEFORE].contains("established,related"));
    }
}
