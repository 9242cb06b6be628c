//! `conntrack-pressure`: the table is nearly full, or filling fast, or already refusing
//! entries (`drop`: table full; `early_drop`: an entry evicted to make room;
//! `insert_failed`). The top sources come from the conntrack probe once half full.
use serde_json::json;

use super::{evidence, round};
use crate::doctor::{Finding, Severity, config::ConntrackPressure, window::View};

pub fn pressure(v: &View<'_>, c: &ConntrackPressure) -> Option<Finding> {
    let ct = v.last().conntrack.as_ref()?;
    if ct.max == 0 {
        return None;
    }
    let d = |f: fn(&crate::model::ConntrackStats) -> u64| {
        v.kernel_delta(|s| s.conntrack.as_ref().map(f))
    };
    let (drop, early, failed) = (d(|c| c.drop), d(|c| c.early_drop), d(|c| c.insert_failed));
    let refused = drop + early + failed;
    // Net growth over the window (count is a level: first to last).
    let from = v.base_snap.unwrap_or(v.first());
    let before = from.conntrack.as_ref().map_or(ct.count, |b| b.count);
    let secs = v.last().elapsed_ms.saturating_sub(from.elapsed_ms) as f64 / 1000.0;
    let growth = if secs > 0.0 {
        (ct.count as f64 - before as f64) / secs
    } else {
        0.0
    };
    let time_to_full = (growth > 0.0).then(|| ct.max.saturating_sub(ct.count) as f64 / growth);
    let full = ct.fill_pct >= c.fill_pct;
    let filling = time_to_full.is_some_and(|t| t <= c.time_to_full_s)
        && ct.fill_pct >= c.time_to_full_min_fill_pct;
    let refusing = refused >= c.min_drops;
    if !(full || filling || refusing) {
        return None;
    }
    let sources: Vec<_> = ct
        .top_sources
        .iter()
        .map(|s| json!({"src": s.src, "new": s.new}))
        .collect();
    let summary = if refusing {
        format!(
            "the conntrack table ({}/{}, {}%) refuses new connections: {} dropped in {} s",
            ct.count,
            ct.max,
            round(ct.fill_pct, 1),
            refused,
            v.window_s()
        )
    } else if full {
        format!(
            "the conntrack table is {}% full ({}/{})",
            round(ct.fill_pct, 1),
            ct.count,
            ct.max
        )
    } else {
        format!(
            "the conntrack table fills up: {}% full, full in {} s at {}/s",
            round(ct.fill_pct, 1),
            round(time_to_full.unwrap_or(0.0), 0),
            round(growth, 1)
        )
    };
    let new_max = (ct.max * 2).max(65_536);
    let top = ct.top_sources.first().map(|s| s.src.clone());
    Some(Finding {
        id: "conntrack-pressure",
        severity: if refusing {
            Severity::Critical
        } else {
            Severity::Warning
        },
        summary,
        evidence: evidence(
            v,
            vec![
                ("count", ct.count.into()),
                ("max", ct.max.into()),
                ("fill_pct", round(ct.fill_pct, 1).into()),
                ("growth_per_s", round(growth, 1).into()),
                ("time_to_full_s", time_to_full.map(|t| round(t, 0)).into()),
                ("drop", drop.into()),
                ("early_drop", early.into()),
                ("insert_failed", failed.into()),
                ("new_per_s", ct.new_per_s.map(|n| round(n, 1)).into()),
                ("top_sources", sources.into()),
            ],
        ),
        // The limit can only be set in the initial namespace and holds for all of them.
        fix: format!("sysctl -w net.netfilter.nf_conntrack_max={new_max}"),
        note: Some(format!(
            "run on the host (the limit is global: every namespace's table counts against it); or shorten the timeouts of idle entries (net.netfilter.nf_conntrack_tcp_timeout_established){}",
            top.map(|t| format!("; the most entries come from {t}"))
                .unwrap_or_default()
        )),
    })
}
