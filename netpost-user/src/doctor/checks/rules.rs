//! `rule-drops` (a hook's rules drop a large share of what enters it) and `rule-order` (the
//! ESTABLISHED,RELATED accept comes after many rules while most traffic is established).
//! Both read the netfilter probe's per-hook counts and the rules probe's view of the hook:
//! the rules that dropped (`rules[]`) and the chains' order (`chains[]`).
use netpost_common::netfilter::NfHook;
use serde_json::{Value, json};

use super::{evidence, netns, round};
use crate::{
    doctor::{
        Finding, Severity,
        config::{RuleDrops, RuleOrder},
        fix,
        window::View,
    },
    model::{NfHookStats, RuleDrops as Rule, Snapshot},
    probe::rules::model::ChainOrder,
};

fn hook_of<'a>(s: &'a Snapshot, family: &str, hook: NfHook) -> Option<&'a NfHookStats> {
    Some(s.netfilter.get(family)?.hook(hook))
}

/// Rules are the same rule across snapshots when these match.
fn same_rule(a: &Rule, b: &Rule) -> bool {
    (a.backend, a.family, &a.table, &a.chain, a.handle_or_index)
        == (b.backend, b.family, &b.table, &b.chain, b.handle_or_index)
}

/// The iptables command for a rule's backend and family.
fn iptables(backend: &str, family: &str) -> &'static str {
    match (backend, family) {
        ("iptables-legacy", "ip6") => "ip6tables-legacy",
        ("iptables-legacy", _) => "iptables-legacy",
        (_, "ip6") => "ip6tables",
        _ => "iptables",
    }
}

fn table_arg(table: &str) -> String {
    if table == "filter" {
        String::new()
    } else {
        format!("-t {table} ")
    }
}

/// The command that removes a dropping rule (or opens a drop policy).
fn delete(r: &Rule) -> Option<String> {
    match r.backend {
        "nft" => Some(match r.handle_or_index {
            Some(h) => format!(
                "nft delete rule {} {} {} handle {h}",
                r.family, r.table, r.chain
            ),
            None => format!(
                "nft chain {} {} {} '{{ policy accept; }}'",
                r.family, r.table, r.chain
            ),
        }),
        "iptables-nft" | "iptables-legacy" => {
            let tool = iptables(r.backend, r.family);
            let t = table_arg(&r.table);
            if let Some(rest) = r.rule.strip_prefix("-A ")
                && !r.rule.contains(" (rule ")
            {
                return Some(format!("{tool} {t}-D {rest}"));
            }
            match r.handle_or_index {
                _ if r.rule.starts_with("-P ") => Some(format!("{tool} {t}-P {} ACCEPT", r.chain)),
                Some(i) => Some(format!("{tool} {t}-D {} {i}", r.chain)),
                None => None,
            }
        }
        _ => None,
    }
}

pub fn rule_drops(v: &View<'_>, c: &RuleDrops) -> Option<Finding> {
    let last = v.last();
    // (drops per second, evidence, (command, rule)) per dropping hook.
    type Hook = (f64, Value, Option<(String, String)>);
    let mut hooks: Vec<Hook> = Vec::new();
    let ct_refused = v.kernel_delta(|s| Some(s.conntrack.as_ref()?.drop))
        + v.kernel_delta(|s| Some(s.conntrack.as_ref()?.insert_failed));
    for (family, stats) in &last.netfilter {
        for hook in NfHook::ALL {
            let h = stats.hook(hook);
            let at = |f: fn(&NfHookStats) -> Option<u64>| {
                v.delta(|s| hook_of(s, family, hook).and_then(f))
            };
            let entered = at(|h| Some(h.entered));
            let dropped = at(|h| Some(h.dropped));
            let attributed = at(|h| h.attributed_drops);
            if entered == 0 || dropped == 0 {
                continue;
            }
            // Rules without a counter account for nothing, but when drops at this hook are
            // netfilter's own (not conntrack's refusals) and such rules are there, they are
            // the rules' drops.
            let uncounted = h.rules.iter().any(|r| r.packets.is_none());
            let in_rules = v.delta(|s| {
                Some(
                    s.drops
                        .as_ref()?
                        .reasons
                        .get("NETFILTER_DROP")?
                        .hooks
                        .get(hook.name())?
                        .in_rules,
                )
            });
            // A rule several hooks reach (an inet rule) whose hooks dropped in the same
            // period has its packets as `shared_packets` at each: they are rule drops too.
            let base = v.base_snap.and_then(|s| hook_of(s, family, hook));
            let shared: u64 = h
                .rules
                .iter()
                .map(|r| {
                    let before = base
                        .and_then(|b| b.rules.iter().find(|x| same_rule(x, r)))
                        .map_or(0, |x| x.shared_packets);
                    r.shared_packets.saturating_sub(before)
                })
                .sum();
            let counted = (attributed + shared).min(dropped);
            let by_rules = if counted > 0 || !uncounted {
                counted
            } else if ct_refused == 0 && in_rules * 2 >= dropped {
                dropped
            } else {
                0
            };
            let share = by_rules as f64 / entered as f64;
            let per_s = v.per_s(by_rules);
            if share < c.min_share || per_s < c.min_per_s {
                continue;
            }
            let mut rules: Vec<(u64, &Rule)> = h
                .rules
                .iter()
                .map(|r| {
                    let total = |x: &Rule| x.packets.unwrap_or(0) + x.shared_packets;
                    let before = base
                        .and_then(|b| b.rules.iter().find(|x| same_rule(x, r)))
                        .map_or(0, total);
                    (total(r).saturating_sub(before), r)
                })
                .collect();
            rules.sort_by_key(|r| std::cmp::Reverse(r.0));
            let top = rules.first().map(|(_, r)| *r);
            let listed: Vec<Value> = rules
                .iter()
                .take(3)
                .map(|(n, r)| {
                    json!({
                        "rule": r.rule, "backend": r.backend, "family": r.family, "table": r.table,
                        "chain": r.chain, "handle_or_index": r.handle_or_index,
                        "packets": if r.packets.is_some() || r.shared_packets > 0 { Some(*n) } else { None },
                        "note": r.note,
                    })
                })
                .collect();
            let name = format!("{family} {}", hook.name());
            hooks.push((
                per_s,
                json!({
                    "hook": name, "entered": entered, "dropped": dropped, "dropped_by_rules": by_rules,
                    "share": round(share, 3), "per_s": round(per_s, 1), "rules": listed,
                }),
                top.and_then(|r| Some((delete(r)?, format!("{} ({} {} {})", r.rule, r.family, r.table, r.chain)))),
            ));
        }
    }
    hooks.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (per_s, worst, fix) = hooks.first()?.clone();
    let (command, rule) = fix.unwrap_or_else(|| {
        (
            "nft -a list ruleset".to_string(),
            "a rule without a counter".to_string(),
        )
    });
    Some(Finding {
        id: "rule-drops",
        severity: Severity::Warning,
        summary: format!(
            "{} drops {}% of what enters it ({}/s), most by {rule}",
            worst["hook"].as_str().unwrap_or("?"),
            round(worst["share"].as_f64().unwrap_or(0.0) * 100.0, 1),
            round(per_s, 1)
        ),
        evidence: evidence(v, vec![("hooks", hooks.into_iter().map(|h| h.1).collect())]),
        fix: fix::in_netns(netns(v), &command),
        note: Some(
            "if these packets should pass: the rule that drops them goes (or narrows)".into(),
        ),
    })
}

/// A chain as people name it: `inet netpost_lab forward`.
fn chain_name(c: &ChainOrder) -> String {
    format!("{} {} {}", c.family, c.table, c.chain)
}

/// Moves the established accept to the top of its chain: a new one first, then the old
/// one goes (never a moment without it).
fn move_to_top(c: &ChainOrder, handle_or_index: u64) -> Vec<String> {
    let (fam, t, ch) = (c.family, &c.table, &c.chain);
    match c.backend {
        "nft" => vec![
            format!("nft insert rule {fam} {t} {ch} ct state established,related accept"),
            format!("nft delete rule {fam} {t} {ch} handle {handle_or_index}"),
        ],
        backend => {
            let tool = iptables(backend, fam);
            let t = table_arg(t);
            vec![
                format!("{tool} {t}-I {ch} 1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
                format!("{tool} {t}-D {ch} {}", handle_or_index + 1),
            ]
        }
    }
}

pub fn rule_order(v: &View<'_>, c: &RuleOrder) -> Option<Finding> {
    let last = v.last();
    // Per chain (an inet chain runs for both families): its established and new packets.
    let mut chains: Vec<(&ChainOrder, Vec<String>, u64, u64)> = Vec::new();
    for (family, stats) in &last.netfilter {
        for hook in NfHook::ALL {
            let h = stats.hook(hook);
            let ct = |f: fn(&NfHookStats) -> u64| v.delta(|s| hook_of(s, family, hook).map(f));
            let est = ct(|h| h.ct.established + h.ct.related + h.ct.reply);
            let new = ct(|h| h.ct.new);
            for chain in &h.chains {
                let Some(at) = chain.established_accept else {
                    continue;
                };
                if at.position.saturating_sub(1) < c.min_rules_before {
                    continue;
                }
                let key = |x: &ChainOrder| (x.backend, x.family, x.table.clone(), x.chain.clone());
                match chains.iter_mut().find(|x| key(x.0) == key(chain)) {
                    Some(x) => {
                        x.1.push(format!("{family} {}", hook.name()));
                        x.2 += est;
                        x.3 += new;
                    }
                    None => {
                        chains.push((chain, vec![format!("{family} {}", hook.name())], est, new))
                    }
                }
            }
        }
    }
    let (chain, hooks, est, new) = chains
        .into_iter()
        .filter(|(_, _, est, new)| {
            let total = est + new;
            total >= c.min_packets && *est as f64 / total as f64 >= c.min_established_share
        })
        .max_by_key(|(ch, _, est, _)| est * ch.established_accept.map_or(0, |a| a.position))?;
    let at = chain.established_accept?;
    let before = at.position - 1;
    let share = est as f64 / (est + new) as f64;
    Some(Finding {
        id: "rule-order",
        severity: Severity::Info,
        summary: format!(
            "{}% of the packets in chain {} are established, but its ESTABLISHED,RELATED accept is rule {} of {}: each of them is compared with {before} rules first",
            round(share * 100.0, 1),
            chain_name(chain),
            at.position,
            chain.rules
        ),
        evidence: evidence(
            v,
            vec![
                ("chain", chain_name(chain).into()),
                ("backend", chain.backend.into()),
                ("hooks", json!(hooks)),
                ("rules", chain.rules.into()),
                ("established_accept_position", at.position.into()),
                ("rules_before", before.into()),
                ("established_packets", est.into()),
                ("new_packets", new.into()),
                ("established_share", round(share, 3).into()),
                (
                    "wasted_comparisons_per_s",
                    ((v.per_s(est) * before as f64).round() as u64).into(),
                ),
            ],
        ),
        fix: fix::all_in_netns(netns(v), &move_to_top(chain, at.handle_or_index)),
        note: Some(
            "the accept moves to the top of the chain; the rules that were before it still see every new connection"
                .into(),
        ),
    })
}
