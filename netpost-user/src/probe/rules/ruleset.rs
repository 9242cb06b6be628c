//! The rules that can end a packet (drop, reject, queue, and drop policies), where they run
//! and how their counters are read: assembled from an nf_tables dump or a legacy iptables
//! table. Pure.
use std::collections::HashMap;

use super::{
    hookmap::is_iptables_nft,
    legacy::{LegacyTable, Target},
    hookmap::legacy_priority,
    model::{Backend, ChainOrder, Counter, EstablishedAccept, RuleId, RuleInfo, RuleKey},
    nft::{self, Chain, Rule, Table, Verdict},
    reach::{Edge, Hooks, reach},
};

/// Where a candidate's counter is read again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An nf_tables rule (by handle) or a base chain's policy (handle None).
    Nft {
        family: u8,
        table: String,
        chain: String,
        handle: Option<u64>,
    },
    /// An entry of a legacy table.
    Legacy,
}

/// A rule or policy that ends packets.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub key: RuleKey,
    pub reach: Hooks,
    pub counter: Counter,
    pub info: RuleInfo,
    pub source: Source,
}

impl Candidate {
    pub fn is_policy(&self) -> bool {
        self.key.id == RuleId::Policy
    }
}

/// The nf_tables ruleset of one generation, reduced to what attribution needs.
#[derive(Debug, Default)]
pub struct NftRuleset {
    pub tables: Vec<Table>,
    /// Base chains registered at a hook (of tables that are not dormant).
    pub base_chains: Vec<Chain>,
    pub candidates: Vec<Candidate>,
    /// Every rule's handle per (family, table, chain), in chain order: iptables numbers
    /// rules by position.
    pub order: HashMap<(u8, String, String), Vec<u64>>,
    /// Rules in the ruleset.
    pub rules: usize,
    /// Base chains at netpost's hooks with their rule order.
    pub chains: Vec<(Hooks, ChainOrder)>,
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Drop => "drop",
        Verdict::Reject => "reject",
        Verdict::Queue => "queue",
        _ => "",
    }
}

/// Placeholder text until the rule's own text is fetched.
pub fn handle_text(handle: u64) -> String {
    format!("handle {handle}")
}

/// Builds the ruleset's candidates from full dumps of tables, chains and rules.
pub fn build_nft(tables: Vec<Table>, chains: Vec<Chain>, rules: &[Rule]) -> NftRuleset {
    let mut out = NftRuleset {
        rules: rules.len(),
        ..Default::default()
    };
    for r in rules {
        out.order
            .entry((r.family, r.table.clone(), r.chain.clone()))
            .or_default()
            .push(r.handle);
    }
    for t in tables.iter().filter(|t| !t.dormant) {
        let in_table = |c: &&Chain| c.family == t.family && c.table == t.name;
        let table_chains: Vec<&Chain> = chains.iter().filter(in_table).collect();
        let bases: Vec<(&str, Hooks)> = table_chains
            .iter()
            .filter_map(|c| {
                let b = c.base.as_ref()?;
                // Netdev-bound chains (inet ingress) are not at netpost's hooks.
                let hooks = if b.device.is_some() {
                    Hooks::NONE
                } else {
                    Hooks::of_base_chain(t.family, b.hooknum)
                };
                Some((c.name.as_str(), hooks))
            })
            .collect();
        let iptables = is_iptables_nft(
            t.family,
            &t.name,
            table_chains
                .iter()
                .filter_map(|c| Some((c.name.as_str(), c.base.as_ref()?.hooknum))),
        );
        let backend = if iptables {
            Backend::IptablesNft
        } else {
            Backend::Nft
        };
        let table_rules: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.family == t.family && r.table == t.name)
            .collect();
        let edges: Vec<Edge> = table_rules
            .iter()
            .filter_map(|r| match &r.verdict {
                Verdict::Jump(to) | Verdict::Goto(to) => Some(Edge {
                    from: r.chain.as_str(),
                    to: to.as_str(),
                    restrict: r.nfproto,
                }),
                _ => None,
            })
            .collect();
        let reached = reach(bases.iter().copied(), &edges);
        let key = |chain: &str, id: RuleId| RuleKey {
            backend,
            family: nft::family_name(t.family),
            table: t.name.clone(),
            chain: chain.to_string(),
            id,
        };
        for r in &table_rules {
            let Some(&hooks) = reached.get(r.chain.as_str()) else {
                continue;
            };
            if !r.verdict.ends_packet() && !r.verdict_map {
                continue;
            }
            let counter = match (r.counter, r.counter_before_match, r.verdict_map) {
                (_, _, true) => Counter::VerdictMap,
                (Some(n), _, _) => Counter::Packets(n),
                (None, true, _) => Counter::BeforeMatch,
                (None, false, _) => Counter::Missing,
            };
            let index = out.order[&(r.family, r.table.clone(), r.chain.clone())]
                .iter()
                .position(|&h| h == r.handle)
                .map(|i| i as u64 + 1);
            out.candidates.push(Candidate {
                key: key(
                    &r.chain,
                    RuleId::Handle {
                        table_handle: t.handle,
                        handle: r.handle,
                    },
                ),
                reach: hooks.restrict(r.nfproto),
                counter,
                info: RuleInfo {
                    handle_or_index: if iptables { index } else { Some(r.handle) },
                    text: handle_text(r.handle),
                    verdict: if r.verdict_map {
                        "vmap"
                    } else {
                        verdict_word(&r.verdict)
                    },
                },
                source: Source::Nft {
                    family: r.family,
                    table: r.table.clone(),
                    chain: r.chain.clone(),
                    handle: Some(r.handle),
                },
            });
        }
        for c in &table_chains {
            let Some(b) = &c.base else { continue };
            let hooks = Hooks::of_base_chain(t.family, b.hooknum);
            if b.device.is_none() && !hooks.is_empty() {
                let rules: Vec<&&Rule> = table_rules.iter().filter(|r| r.chain == c.name).collect();
                let first = rules.iter().position(|r| r.established_accept);
                out.chains.push((
                    hooks,
                    ChainOrder {
                        backend: backend.name(),
                        family: nft::family_name(t.family),
                        table: t.name.clone(),
                        chain: c.name.clone(),
                        priority: b.priority,
                        rules: rules.len() as u64,
                        established_accept: first.map(|i| EstablishedAccept {
                            position: i as u64 + 1,
                            handle_or_index: if iptables {
                                i as u64 + 1
                            } else {
                                rules[i].handle
                            },
                        }),
                    },
                ));
            }
            if b.policy != 0 {
                continue;
            }
            let Some(&hooks) = reached.get(c.name.as_str()) else {
                continue;
            };
            out.candidates.push(Candidate {
                key: key(&c.name, RuleId::Policy),
                reach: hooks,
                counter: b.policy_packets.map_or(Counter::Missing, Counter::Packets),
                info: RuleInfo {
                    handle_or_index: None,
                    text: if iptables {
                        format!("-P {} DROP", c.name)
                    } else {
                        "policy drop".into()
                    },
                    verdict: "drop",
                },
                source: Source::Nft {
                    family: c.family,
                    table: c.table.clone(),
                    chain: c.name.clone(),
                    handle: None,
                },
            });
        }
        out.base_chains
            .extend(table_chains.iter().filter(|c| c.base.is_some()).map(|c| (*c).clone()));
    }
    out.tables = tables;
    out
}

/// The built-in chains of a legacy table at its hooks, with their rule order.
pub fn legacy_chains(t: &LegacyTable) -> Vec<(Hooks, ChainOrder)> {
    let pf = match t.family {
        netpost_common::netfilter::NfFamily::Ipv4 => nft::FAMILY_IPV4,
        netpost_common::netfilter::NfFamily::Ipv6 => nft::FAMILY_IPV6,
    };
    t.hooks
        .iter()
        .map(|(h, chain)| {
            let rules: Vec<_> = t
                .entries
                .iter()
                .filter(|e| e.chain == *chain && !e.policy)
                .collect();
            let first = rules.iter().find(|e| e.established_accept);
            (
                Hooks::of_base_chain(pf, *h),
                ChainOrder {
                    backend: Backend::IptablesLegacy.name(),
                    family: nft::family_name(pf),
                    table: t.name.clone(),
                    chain: chain.clone(),
                    priority: legacy_priority(&t.name, *h).unwrap_or(0),
                    rules: rules.len() as u64,
                    established_accept: first.map(|e| EstablishedAccept {
                        position: e.index as u64,
                        handle_or_index: e.index as u64,
                    }),
                },
            )
        })
        .collect()
}

/// The candidates of a legacy table, with their counters (every x_tables entry has one).
pub fn legacy_candidates(t: &LegacyTable) -> Vec<Candidate> {
    let family = t.family;
    let bases: Vec<(&str, Hooks)> = t
        .hooks
        .iter()
        .map(|(h, chain)| {
            let pf = match family {
                netpost_common::netfilter::NfFamily::Ipv4 => nft::FAMILY_IPV4,
                netpost_common::netfilter::NfFamily::Ipv6 => nft::FAMILY_IPV6,
            };
            (chain.as_str(), Hooks::of_base_chain(pf, *h))
        })
        .collect();
    let edges: Vec<Edge> = t
        .entries
        .iter()
        .filter_map(|e| match e.target {
            Target::Jump { offset, .. } => Some(Edge {
                from: e.chain.as_str(),
                to: t.chain_at(offset)?,
                restrict: None,
            }),
            _ => None,
        })
        .collect();
    let reached = reach(bases, &edges);
    let family_name = match family {
        netpost_common::netfilter::NfFamily::Ipv4 => "ip",
        netpost_common::netfilter::NfFamily::Ipv6 => "ip6",
    };
    let mut seen: HashMap<(&str, u64), u32> = HashMap::new();
    let mut out = Vec::new();
    for e in &t.entries {
        let occurrence = seen.entry((e.chain.as_str(), e.content)).or_default();
        *occurrence += 1;
        let Some(&hooks) = reached.get(e.chain.as_str()) else {
            continue;
        };
        if !e.target.ends_packet() {
            continue;
        }
        let verdict = match e.target {
            Target::Reject => "reject",
            Target::Queue => "queue",
            _ => "drop",
        };
        out.push(Candidate {
            key: RuleKey {
                backend: Backend::IptablesLegacy,
                family: family_name,
                table: t.name.clone(),
                chain: e.chain.clone(),
                id: if e.policy {
                    RuleId::Policy
                } else {
                    RuleId::Content(e.content, *occurrence)
                },
            },
            reach: hooks,
            counter: Counter::Packets(e.packets),
            info: RuleInfo {
                handle_or_index: (!e.policy).then_some(e.index as u64),
                text: if e.policy {
                    format!("-P {} DROP", e.chain)
                } else {
                    format!("-A {} (rule {})", e.chain, e.index)
                },
                verdict,
            },
            source: Source::Legacy,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use netpost_common::netfilter::{NfFamily::*, NfHook::*};

    use super::*;
    use crate::probe::rules::netlink::{Message, Reply, messages};

    fn decode_all<T>(file: &str, decode: fn(&Message<'_>) -> std::io::Result<T>) -> Vec<T> {
        let path = format!(
            "{}/src/probe/rules/testdata/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        messages(&bytes)
            .filter_map(|m| match m.unwrap().reply {
                Reply::Message(m) => Some(decode(&m).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn captured() -> NftRuleset {
        build_nft(
            decode_all("nft_tables.bin", nft::decode_table),
            decode_all("nft_chains.bin", nft::decode_chain),
            &decode_all("nft_rules.bin", nft::decode_rule),
        )
    }

    #[test]
    fn candidates_of_the_captured_ruleset() {
        let rs = captured();
        assert_eq!(rs.rules, 10);
        let got: Vec<_> = rs
            .candidates
            .iter()
            .map(|c| {
                (
                    c.key.backend,
                    c.key.family,
                    c.key.chain.as_str(),
                    c.info.handle_or_index,
                    c.info.verdict,
                    c.counter,
                    c.reach.iter().collect::<Vec<_>>(),
                )
            })
            .collect();
        let out4 = vec![(Ipv4, LocalOut)];
        let both = vec![(Ipv4, LocalOut), (Ipv6, LocalOut)];
        let out6 = vec![(Ipv6, LocalOut)];
        use Backend::*;
        use Counter::*;
        assert_eq!(
            got,
            [
                // iptables-nft numbers rules by position: handle 2 is rule 1, handle 3 rule 2.
                (IptablesNft, "ip", "OUTPUT", Some(1), "drop", Packets(6), out4.clone()),
                (IptablesNft, "ip", "OUTPUT", Some(2), "reject", Packets(2), out4.clone()),
                (IptablesNft, "ip", "blk", Some(1), "drop", Packets(4), out4.clone()),
                (Nft, "inet", "sub", Some(3), "drop", Packets(7), both.clone()),
                (Nft, "inet", "sub", Some(4), "drop", Missing, both.clone()),
                (Nft, "inet", "out", Some(5), "drop", Packets(5), both.clone()),
                // `ip daddr ...` restricts the inet rule to IPv4.
                (Nft, "inet", "out", Some(6), "reject", Packets(9), out4),
                (Nft, "ip6", "out", Some(2), "drop", Packets(0), out6),
            ]
        );
        assert_eq!(rs.base_chains.len(), 3);
        assert_eq!(rs.order[&(2, "filter".into(), "OUTPUT".into())], [2, 3, 6]);
    }

    #[test]
    fn dormant_tables_and_unreached_chains_have_no_candidates() {
        let mut tables = decode_all("nft_tables.bin", nft::decode_table);
        tables[1].dormant = true;
        let rs = build_nft(
            tables,
            decode_all("nft_chains.bin", nft::decode_chain),
            &decode_all("nft_rules.bin", nft::decode_rule),
        );
        assert!(rs.candidates.iter().all(|c| c.key.family != "inet"));
        // Without the jump from OUTPUT, blk is reached by nothing.
        let rules: Vec<_> = decode_all("nft_rules.bin", nft::decode_rule)
            .into_iter()
            .filter(|r| !matches!(r.verdict, Verdict::Jump(_)))
            .collect();
        let rs = build_nft(
            decode_all("nft_tables.bin", nft::decode_table),
            decode_all("nft_chains.bin", nft::decode_chain),
            &rules,
        );
        assert!(rs.candidates.iter().all(|c| c.key.chain != "blk" && c.key.chain != "sub"));
    }

    #[test]
    fn base_chains_say_where_their_established_accept_is() {
        let table = Table {
            family: nft::FAMILY_INET,
            name: "lab".into(),
            handle: 1,
            dormant: false,
        };
        let chain = |name: &str, hooknum: Option<u32>| Chain {
            family: nft::FAMILY_INET,
            table: "lab".into(),
            name: name.into(),
            handle: 1,
            base: hooknum.map(|hooknum| nft::BaseChain {
                hooknum,
                priority: 0,
                policy: 1,
                kind: "filter".into(),
                device: None,
                policy_packets: None,
            }),
        };
        let rule = |chain: &str, handle: u64, established_accept: bool| Rule {
            family: nft::FAMILY_INET,
            table: "lab".into(),
            chain: chain.into(),
            handle,
            verdict: Verdict::Other,
            counter: None,
            counter_before_match: false,
            nfproto: None,
            verdict_map: false,
            established_accept,
        };
        let rules = [
            rule("forward", 4, false),
            rule("forward", 5, false),
            rule("forward", 9, true),
            rule("forward", 10, false),
            rule("input", 2, false),
        ];
        let rs = build_nft(
            vec![table],
            vec![chain("forward", Some(2)), chain("input", Some(1)), chain("sub", None)],
            &rules,
        );
        let got: Vec<_> = rs
            .chains
            .iter()
            .map(|(h, c)| (c.chain.as_str(), h.len(), c.rules, c.established_accept))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "forward",
                    2,
                    4,
                    Some(EstablishedAccept {
                        position: 3,
                        handle_or_index: 9
                    })
                ),
                ("input", 2, 1, None),
            ],
            "inet chains run for IPv4 and IPv6; user chains are not base chains"
        );
    }

    #[test]
    fn legacy_chains_number_their_rules() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probe/rules/testdata/");
        let info = std::fs::read(format!("{dir}legacy4_ctstate.info")).unwrap();
        let entries = std::fs::read(format!("{dir}legacy4_ctstate.entries")).unwrap();
        let t = crate::probe::rules::legacy::decode(Ipv4, &info, &entries).unwrap();
        let chains = legacy_chains(&t);
        let (hooks, forward) = chains.iter().find(|(_, c)| c.chain == "FORWARD").unwrap();
        assert_eq!(*hooks, Hooks::one(Ipv4, Forward));
        assert_eq!((forward.rules, forward.priority), (5, 0));
        assert_eq!(
            forward.established_accept,
            Some(EstablishedAccept {
                position: 2,
                handle_or_index: 2
            })
        );
    }

    #[test]
    fn legacy_candidates_carry_every_counter_and_policy() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probe/rules/testdata/");
        let read = |name: &str, family| {
            let info = std::fs::read(format!("{dir}{name}.info")).unwrap();
            let entries = std::fs::read(format!("{dir}{name}.entries")).unwrap();
            crate::probe::rules::legacy::decode(family, &info, &entries).unwrap()
        };
        let v4 = legacy_candidates(&read("legacy4_filter", Ipv4));
        let got: Vec<_> = v4
            .iter()
            .map(|c| (c.key.chain.as_str(), c.info.handle_or_index, c.counter, c.reach))
            .collect();
        let out = Hooks::one(Ipv4, LocalOut);
        assert_eq!(
            got,
            [
                ("OUTPUT", Some(1), Counter::Packets(8), out),
                ("lblk", Some(1), Counter::Packets(12), out),
            ]
        );
        let v6 = legacy_candidates(&read("legacy6_filter", Ipv6));
        let got: Vec<_> = v6
            .iter()
            .map(|c| (c.key.chain.as_str(), c.info.text.as_str(), c.info.verdict, c.is_policy()))
            .collect();
        assert_eq!(
            got,
            [
                ("FORWARD", "-P FORWARD DROP", "drop", true),
                ("OUTPUT", "-A OUTPUT (rule 1)", "drop", false),
                ("l6", "-A l6 (rule 1)", "reject", false),
            ]
        );
        assert_eq!(v6[0].reach, Hooks::one(Ipv6, Forward));
        assert_eq!(v6[2].reach, Hooks::one(Ipv6, LocalOut), "reached by the goto");
    }
}
