//! `forwarding-disabled`: packets for other hosts arrive and die because the host does not
//! forward. IPv4 drops them with IP_INADDRERRORS (`Ip: InAddrErrors`), IPv6 counts
//! `Ip6InAddrErrors`; the sysctl says why.
use serde_json::json;

use super::{evidence, netns, round};
use crate::doctor::{Finding, Severity, config::Forwarding, fix, window::View};

const REASON: &str = "IP_INADDRERRORS";

pub fn forwarding_disabled(v: &View<'_>, c: &Forwarding) -> Option<Finding> {
    let k = v.kernel();
    let off4 = k.sysctl_num("net.ipv4.ip_forward") == Some(0);
    let off6 = k.sysctl_num("net.ipv6.conf.all.forwarding") == Some(0);
    // The MIB counts per family (the drop reason is in the evidence).
    let reason = v.reason(REASON);
    let dropped4 = v.mib("IpInAddrErrors");
    let dropped6 = v.mib("Ip6InAddrErrors");
    let fires4 = off4 && dropped4 >= c.min_packets;
    let fires6 = off6 && dropped6 >= c.min_packets;
    if !fires4 && !fires6 {
        return None;
    }
    let dropped = if fires4 { dropped4 } else { 0 } + if fires6 { dropped6 } else { 0 };
    let destinations: Vec<String> = {
        let mut d: Vec<String> = v
            .samples(&[REASON])
            .iter()
            .filter_map(|s| s.dst.as_deref().and_then(fix::ip_of))
            .map(|ip| ip.to_string())
            .collect();
        d.sort();
        d.dedup();
        d
    };
    // Routes exist for them: the packets were for other hosts, not lost.
    let routes: Vec<String> = v
        .last()
        .routing
        .iter()
        .flat_map(|r| r.by_result.iter())
        .filter(|r| r.dev.is_some() && !r.result.starts_with("local"))
        .filter(|r| r.destinations.keys().any(|d| destinations.contains(d)))
        .map(|r| {
            format!(
                "{} ({})",
                r.result,
                r.destinations
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let mut family = serde_json::Map::new();
    if fires4 {
        family.insert(
            "ipv4".into(),
            json!({"net.ipv4.ip_forward": 0, "dropped": dropped4, "per_s": round(v.per_s(dropped4), 1)}),
        );
    }
    if fires6 {
        family.insert(
            "ipv6".into(),
            json!({"net.ipv6.conf.all.forwarding": 0, "dropped": dropped6, "per_s": round(v.per_s(dropped6), 1)}),
        );
    }
    let mut keys: Vec<(&str, String)> = Vec::new();
    if fires4 {
        keys.push(("net.ipv4.ip_forward", "1".into()));
    }
    if fires6 {
        keys.push(("net.ipv6.conf.all.forwarding", "1".into()));
    }
    let what = keys
        .iter()
        .map(|(k, _)| format!("{k} is 0"))
        .collect::<Vec<_>>()
        .join(" and ");
    Some(Finding {
        id: "forwarding-disabled",
        severity: Severity::Critical,
        summary: format!(
            "{} packets/s for other hosts are dropped: {what}",
            round(v.per_s(dropped), 1)
        ),
        evidence: evidence(
            v,
            vec![
                ("families", family.into()),
                ("drop_reasons", json!({ REASON: reason })),
                ("destinations", json!(destinations)),
                ("routes", json!(routes)),
            ],
        ),
        fix: fix::sysctl(netns(v), &keys),
        note: Some(
            "this host is asked to route: turn forwarding on if it is a router (and make it \
             last with a file in /etc/sysctl.d/), else fix the hosts that send their traffic here"
                .into(),
        ),
    })
}
