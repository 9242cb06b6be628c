//! The local TCP stack under strain: `listen-overflow` (a listener's queue is full: SYNs
//! and completed connections dropped), `syn-flood` (half-open handshakes pile up, the
//! server retransmits SYN-ACKs nobody acknowledges) and `reset-storm` (established
//! connections reset by one peer or one port).
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{evidence, netns, round};
use crate::{
    doctor::{
        Finding, Severity,
        config::{ListenOverflow, ResetStorm, SynFlood},
        fix,
        window::View,
    },
    model::Snapshot,
};

pub fn listen_overflow(v: &View<'_>, c: &ListenOverflow) -> Option<Finding> {
    let overflows = v.mib("TcpExtListenOverflows");
    let drops = v.mib("TcpExtListenDrops");
    let dropped = overflows.max(drops);
    if dropped < c.min_drops {
        return None;
    }
    // The full listeners, as read when the overflows were seen.
    let mut full: Vec<&crate::doctor::kernel::Listener> = Vec::new();
    for e in &v.within {
        for l in e.kernel.full_listeners.iter().flatten() {
            if !full.iter().any(|f| f.local == l.local) {
                full.push(l);
            }
        }
    }
    let somaxconn = v.kernel().sysctl_num("net.core.somaxconn").unwrap_or(4096);
    let listeners: Vec<Value> = full
        .iter()
        .map(|l| json!({"listener": l.local, "waiting": l.queued}))
        .collect();
    let first = full.first();
    Some(Finding {
        id: "listen-overflow",
        severity: Severity::Critical,
        summary: format!(
            "{}/s connections are dropped by a full listen queue{}",
            round(v.per_s(dropped), 1),
            first
                .map(|l| format!(
                    " ({} has {} waiting: its server does not accept() them fast enough)",
                    l.local, l.queued
                ))
                .unwrap_or_default()
        ),
        evidence: evidence(
            v,
            vec![
                ("TcpExtListenOverflows", overflows.into()),
                ("TcpExtListenDrops", drops.into()),
                ("per_s", round(v.per_s(dropped), 1).into()),
                ("listeners_with_waiting_connections", listeners.into()),
                ("net.core.somaxconn", somaxconn.into()),
            ],
        ),
        fix: match first {
            Some(l) => fix::in_netns(netns(v), &format!("ss -ltnp 'sport = :{}'", l.port)),
            None => fix::in_netns(netns(v), "ss -ltnp"),
        },
        note: Some(format!(
            "ss shows the listener's backlog (Send-Q) and its process: it must accept() faster, or listen() with a larger backlog (capped by net.core.somaxconn, {somaxconn} here){}",
            first
                .map(|l| format!("; port {}", l.port))
                .unwrap_or_default()
        )),
    })
}

pub fn syn_flood(v: &View<'_>, c: &SynFlood) -> Option<Finding> {
    let last = v.last();
    let hs = last.handshake.as_ref()?;
    // SYN-ACKs sent again: the local stack's count, else what crossed the wire.
    let local = v.delta(|s| Some(s.sockets.as_ref()?.synack_retransmits));
    let wire = v.delta(|s| Some(s.handshake.as_ref()?.synack_retransmits));
    let retransmits = local.max(wire);
    if hs.half_open < c.min_half_open || retransmits < c.min_synack_retransmits {
        return None;
    }
    let from: &Snapshot = v.base_snap.unwrap_or(v.first());
    let before = from.handshake.as_ref().map_or(0, |h| h.half_open);
    let cookies = v.mib("TcpExtSyncookiesSent");
    let queue_full = v.mib("TcpExtTCPReqQFullDoCookies") + v.mib("TcpExtTCPReqQFullDrop");
    let sources: Vec<Value> = hs
        .half_open_sources
        .iter()
        .map(|s| json!({"src": s.src, "half_open": s.half_open}))
        .collect();
    let top = hs.half_open_sources.first().map(|s| s.src.clone());
    let syncookies = v.kernel().sysctl_num("net.ipv4.tcp_syncookies");
    let fix = match (&top, syncookies) {
        (_, Some(0)) => fix::sysctl(netns(v), &[("net.ipv4.tcp_syncookies", "1".into())]),
        (Some(src), _) => {
            let tool = if src.contains(':') {
                "ip6tables"
            } else {
                "iptables"
            };
            fix::in_netns(
                netns(v),
                &format!("{tool} -I INPUT -s {src} -p tcp --syn -j DROP"),
            )
        }
        (None, _) => fix::sysctl(netns(v), &[("net.ipv4.tcp_max_syn_backlog", "4096".into())]),
    };
    Some(Finding {
        id: "syn-flood",
        severity: Severity::Critical,
        summary: format!(
            "{} half-open handshakes ({:+} in {} s), {} SYN-ACKs sent again unanswered{}",
            hs.half_open,
            hs.half_open as i64 - before as i64,
            v.window_s(),
            retransmits,
            top.as_ref()
                .map(|t| format!(", most from {t}"))
                .unwrap_or_default()
        ),
        evidence: evidence(
            v,
            vec![
                ("half_open", hs.half_open.into()),
                (
                    "half_open_growth",
                    (hs.half_open as i64 - before as i64).into(),
                ),
                ("synack_retransmits", retransmits.into()),
                ("TcpExtSyncookiesSent", cookies.into()),
                ("syn_queue_full", queue_full.into()),
                ("net.ipv4.tcp_syncookies", json!(syncookies)),
                ("sources", sources.into()),
            ],
        ),
        fix,
        note: Some(format!(
            "if {} is not a real client, block it (SYN cookies keep the server answering others); if it is, its ACKs never arrive: look at the path back to it",
            top.unwrap_or_else(|| "the source".into())
        )),
    })
}

pub fn reset_storm(v: &View<'_>, c: &ResetStorm) -> Option<Finding> {
    let last = v.last();
    let hs = last.handshake.as_ref()?;
    // Resets counted since start: the base's count of the same row (0 at start).
    let before = |r: &crate::model::ResetsBy| {
        v.base_snap
            .and_then(|s| {
                s.handshake.as_ref()?.resets_by.iter().find(|b| {
                    (
                        b.server.as_str(),
                        b.client.as_str(),
                        b.reset_by,
                        b.established,
                    ) == (
                        r.server.as_str(),
                        r.client.as_str(),
                        r.reset_by,
                        r.established,
                    )
                })
            })
            .map_or(0, |b| b.resets)
    };
    // Resets of established connections in the window, by server port and by client.
    let mut by_port: BTreeMap<u16, (u64, Vec<String>)> = BTreeMap::new();
    let mut by_client: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows: Vec<(u64, &crate::model::ResetsBy)> = Vec::new();
    for r in hs.resets_by.iter().filter(|r| r.established) {
        let n = r.resets.saturating_sub(before(r));
        if n == 0 {
            continue;
        }
        let port = by_port
            .entry(fix::port_of(&r.server).unwrap_or(0))
            .or_default();
        port.0 += n;
        if let Some(ip) = fix::ip_of(&r.server).map(|i| i.to_string())
            && !port.1.contains(&ip)
        {
            port.1.push(ip);
        }
        *by_client.entry(r.client.clone()).or_default() += n;
        rows.push((n, r));
    }
    let top_port = by_port.iter().max_by_key(|x| x.1.0)?;
    let top_client = by_client.iter().max_by_key(|x| x.1)?;
    let (what, n) = if top_port.1.0 >= *top_client.1 {
        (
            format!("port {} ({})", top_port.0, top_port.1.1.join(", ")),
            top_port.1.0,
        )
    } else {
        (format!("client {}", top_client.0), *top_client.1)
    };
    if n < c.min_resets || v.per_s(n) < c.min_per_s {
        return None;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let by_server = rows
        .iter()
        .filter(|(_, r)| r.reset_by == "server")
        .map(|x| x.0)
        .sum::<u64>();
    let who = if by_server * 2 >= n {
        "server"
    } else {
        "client"
    };
    let port = *top_port.0;
    Some(Finding {
        id: "reset-storm",
        severity: Severity::Warning,
        summary: format!(
            "{}/s established connections reset at {what}, mostly by the {who}",
            round(v.per_s(n), 1)
        ),
        evidence: evidence(
            v,
            vec![
                ("resets", n.into()),
                ("per_s", round(v.per_s(n), 1).into()),
                (
                    "by",
                    rows.iter()
                        .take(5)
                        .map(|(n, r)| {
                            json!({"server": r.server, "client": r.client, "reset_by": r.reset_by, "resets": n})
                        })
                        .collect(),
                ),
                ("resets_sent", v.delta(|s| Some(s.sockets.as_ref()?.resets_sent)).into()),
                ("resets_received", v.delta(|s| Some(s.sockets.as_ref()?.resets_received)).into()),
                ("TcpExtTCPAbortOnData", v.mib("TcpExtTCPAbortOnData").into()),
            ],
        ),
        fix: fix::in_netns(netns(v), &format!("ss -tnpi '( sport = :{port} or dport = :{port} )'")),
        note: Some(format!(
            "the {who} side ends these connections with a reset: a server that closes with unread data or SO_LINGER 0 (TcpExtTCPAbortOnData), a crash loop, or a middlebox; ss names the process on port {port}"
        )),
    })
}
