//! `small-buffers`: a TCP flow of this host whose bytes in flight (its rate x its RTT) reach
//! most of what the socket buffer allows: its window is the limit, not the path (the
//! article's bandwidth-delay product). The receiver's cap is `tcp_rmem`'s maximum, the
//! sender's `tcp_wmem`'s (`rmem_max`/`wmem_max` cap buffers set with SO_RCVBUF/SO_SNDBUF).
use serde_json::{Value, json};

use super::{evidence, netns, round};
use crate::{
    doctor::{Finding, Severity, config::SmallBuffers, fix, window::View},
    model::FlowSummary,
};

/// The largest window a buffer of `max` bytes allows: about half of it (the default
/// `tcp_adv_win_scale`/`scaling_ratio` keep the rest for the kernel's overhead).
fn window(max: u64) -> f64 {
    max as f64 / 2.0
}

/// 6 MiB: Linux's default `tcp_rmem` maximum, the least a fix proposes.
const DEFAULT_MAX: u64 = 6 << 20;

pub fn small_buffers(v: &View<'_>, c: &SmallBuffers) -> Option<Finding> {
    let k = v.kernel();
    let mut found: Vec<(f64, Value, &'static str, u64)> = Vec::new();
    for f in v.last().flows_merged.iter().filter(|f| f.proto == "tcp") {
        let Some(rtt_us) = f.rtt_us else { continue };
        let rtt = rtt_us as f64 / 1e6;
        if rtt * 1000.0 < c.min_rtt_ms {
            continue;
        }
        // Its rate since the window's base, or since it first showed in the window (a flow
        // that started within it would look slower over the whole window).
        let same = |b: &&FlowSummary| b.src == f.src && b.dst == f.dst && b.proto == f.proto;
        let start = match v.base_snap.and_then(|b| b.flows_merged.iter().find(same)) {
            Some(b) => Some((b, v.base_snap.map_or(0, |s| s.elapsed_ms))),
            None => v
                .within
                .iter()
                .find_map(|e| Some((e.snap.flows_merged.iter().find(same)?, e.snap.elapsed_ms))),
        };
        let Some((before, since_ms)) = start else {
            continue;
        };
        let secs = v.last().elapsed_ms.saturating_sub(since_ms) as f64 / 1000.0;
        if secs <= 0.0 {
            continue;
        }
        let sent = |x: &FlowSummary| (x.from_src.bytes, x.from_dst.bytes);
        let ((s0, d0), (s1, d1)) = (sent(before), sent(f));
        let (up, down) = (s1.saturating_sub(s0), d1.saturating_sub(d0));
        // The busier direction: its receiver's window is what may hold it back.
        let (bytes, sender, receiver) = if up >= down {
            (up, &f.src, &f.dst)
        } else {
            (down, &f.dst, &f.src)
        };
        let rate = bytes as f64 / secs;
        if rate < c.min_bytes_per_s {
            continue;
        }
        let local = |e: &str| fix::ip_of(e).is_some_and(|ip| k.is_local(ip));
        let (key, limit) = if local(receiver) {
            ("net.ipv4.tcp_rmem", k.sysctl_last("net.ipv4.tcp_rmem"))
        } else if local(sender) {
            ("net.ipv4.tcp_wmem", k.sysctl_last("net.ipv4.tcp_wmem"))
        } else {
            continue;
        };
        let Some(limit) = limit.filter(|l| *l > 0) else {
            continue;
        };
        let in_flight = rate * rtt;
        let share = in_flight / window(limit);
        if share < c.min_window_share {
            continue;
        }
        found.push((
            share,
            json!({
                "flow": format!("{sender} → {receiver}"), "rtt_ms": round(rtt * 1000.0, 1),
                "bytes_per_s": round(rate, 0), "in_flight_bytes": round(in_flight, 0),
                "buffer": key, "buffer_max_bytes": limit, "window_max_bytes": window(limit),
                "share": round(share, 2),
            }),
            key,
            limit,
        ));
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (_, worst, key, limit) = found.first()?.clone();
    let current = k.sysctl.get(key).cloned().unwrap_or_default();
    let mut parts: Vec<String> = current.split_whitespace().map(String::from).collect();
    let new_max = (limit * 4).max(DEFAULT_MAX);
    if parts.len() == 3 {
        parts[2] = new_max.to_string();
    } else {
        parts = vec!["4096".into(), "131072".into(), new_max.to_string()];
    }
    let core = if key.contains("rmem") {
        "net.core.rmem_max"
    } else {
        "net.core.wmem_max"
    };
    Some(Finding {
        id: "small-buffers",
        severity: Severity::Warning,
        summary: format!(
            "flow {} keeps {} bytes in flight ({} ms x {}/s): {}% of the window {key} ({limit}) allows, so the buffer, not the path, sets its rate",
            worst["flow"].as_str().unwrap_or("?"),
            worst["in_flight_bytes"],
            worst["rtt_ms"],
            crate::fmt::bytes(worst["bytes_per_s"].as_f64().unwrap_or(0.0) as u64),
            round(worst["share"].as_f64().unwrap_or(0.0) * 100.0, 0)
        ),
        evidence: evidence(
            v,
            vec![
                ("flows", found.iter().map(|f| f.1.clone()).collect()),
                (
                    "net.ipv4.tcp_rmem",
                    json!(k.sysctl.get("net.ipv4.tcp_rmem")),
                ),
                (
                    "net.ipv4.tcp_wmem",
                    json!(k.sysctl.get("net.ipv4.tcp_wmem")),
                ),
                (
                    "net.core.rmem_max",
                    json!(k.sysctl_num("net.core.rmem_max")),
                ),
                (
                    "net.core.wmem_max",
                    json!(k.sysctl_num("net.core.wmem_max")),
                ),
            ],
        ),
        fix: fix::sysctl(netns(v), &[(key, parts.join(" "))]),
        note: Some(format!(
            "buffers grow up to this maximum on their own; an application that sets SO_RCVBUF/SO_SNDBUF is capped by {core} instead"
        )),
    })
}
