//! `closed-port`: traffic to ports nobody listens on. The kernel drops it with NO_SOCKET
//! (and answers with a TCP reset or an ICMP port unreachable); the drop samples name the
//! ports and the senders.
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{evidence, netns, round};
use crate::doctor::{Finding, Severity, config::ClosedPort, fix, window::View};

pub fn closed_port(v: &View<'_>, c: &ClosedPort) -> Option<Finding> {
    let dropped = v.reason("NO_SOCKET");
    if dropped < c.min_packets || v.per_s(dropped) < c.min_per_s {
        return None;
    }
    // (proto, port) -> (samples, destinations, senders)
    type Seen = (u64, Vec<String>, Vec<String>);
    let mut ports: BTreeMap<(String, u16), Seen> = BTreeMap::new();
    for s in v.samples(&["NO_SOCKET"]) {
        let Some(port) = s.dst.as_deref().and_then(fix::port_of) else {
            continue;
        };
        let e = ports.entry((s.proto.clone(), port)).or_default();
        e.0 += 1;
        for (list, ep) in [(&mut e.1, &s.dst), (&mut e.2, &s.src)] {
            if let Some(ip) = ep.as_deref().and_then(fix::ip_of).map(|i| i.to_string())
                && !list.contains(&ip)
            {
                list.push(ip);
            }
        }
    }
    let mut ranked: Vec<(&(String, u16), &Seen)> = ports.iter().collect();
    ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let listed: Vec<Value> = ranked
        .iter()
        .take(5)
        .map(|((proto, port), (n, dsts, srcs))| {
            json!({"port": port, "proto": proto, "samples": n, "destinations": dsts, "sources": srcs})
        })
        .collect();
    let names: Vec<String> = ranked
        .iter()
        .take(3)
        .map(|((p, port), _)| format!("{p} {port}"))
        .collect();
    let top = ranked.first();
    Some(Finding {
        id: "closed-port",
        severity: Severity::Info,
        summary: format!(
            "{}/s packets to ports nobody listens on{}",
            round(v.per_s(dropped), 1),
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        ),
        evidence: evidence(
            v,
            vec![
                ("dropped", dropped.into()),
                ("per_s", round(v.per_s(dropped), 1).into()),
                ("drop_reasons", json!({"NO_SOCKET": dropped})),
                (
                    "UdpNoPorts",
                    (v.mib("UdpNoPorts") + v.mib("Udp6NoPorts")).into(),
                ),
                ("ports", listed.into()),
            ],
        ),
        fix: match top {
            Some(((proto, port), _)) => fix::in_netns(
                netns(v),
                &format!(
                    "ss -l{}np 'sport = :{port}'",
                    if proto == "udp" { "u" } else { "t" }
                ),
            ),
            None => fix::in_netns(netns(v), "ss -ltunp"),
        },
        note: Some(format!(
            "nothing listens there (ss lists no socket): start the service{}, or point the clients{} elsewhere",
            top.map(|((p, port), _)| format!(" on {p} port {port}"))
                .unwrap_or_default(),
            top.and_then(|(_, (_, _, srcs))| srcs.first().map(|s| format!(" ({s}...)")))
                .unwrap_or_default()
        )),
    })
}
