//! netpost's own state: what is attached and linked, and how fresh the snapshot is.
use std::{
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{encoding::DescriptorEncoder, registry::Unit};

use super::{NO_LABELS, gauge};
use crate::model::Snapshot;

pub fn encode(enc: &mut DescriptorEncoder, snap: &Snapshot) -> fmt::Result {
    attach_status(enc, snap)?;
    snapshot_times(enc, snap, now_ms())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What netpost attached where, and whether the netfilter hooks are linked.
fn attach_status(enc: &mut DescriptorEncoder, snap: &Snapshot) -> fmt::Result {
    let programs = snap.attached.iter().flat_map(|(iface, info)| {
        let xdp = i64::from(info.xdp_mode != "off");
        [
            ("xdp", info.xdp_mode.as_str(), xdp),
            ("tc_ingress", info.tc_mode.as_str(), 1),
            ("tc_egress", info.tc_mode.as_str(), 1),
        ]
        .map(|(hook, mode, up)| {
            (
                [
                    ("interface", iface.as_str()),
                    ("hook", hook),
                    ("mode", mode),
                ],
                up,
            )
        })
    });
    gauge(
        enc,
        "netpost_program_attached",
        "1 when netpost's program is attached at the hook of the interface, 0 when not (xdp mode=\"off\"); mode: generic or native (XDP), tcx or netlink (tc).",
        None,
        programs,
    )?;
    let linked = snap
        .netfilter_status
        .iter()
        .map(|(family, status)| ([("family", family.as_str())], i64::from(status == "linked")));
    gauge(
        enc,
        "netpost_netfilter_linked",
        "1 when the netfilter programs are linked at all five hooks of the family, 0 when off or unavailable (the reason is in netpost's stderr and JSON).",
        None,
        linked,
    )?;
    let tracepoints = [
        ("kfree_skb", snap.drops_status.as_str()),
        ("fib_table_lookup", snap.routes_status.as_str()),
        ("sockets", snap.sockets_status.as_str()),
    ]
    .map(|(program, status)| ([("program", program)], i64::from(status == "attached")));
    gauge(
        enc,
        "netpost_tracepoint_attached",
        "1 when netpost's tracepoint program is attached (kfree_skb: drop reasons, fib_table_lookup: routing, sockets: TCP socket tracepoints), 0 when unavailable.",
        None,
        tracepoints,
    )?;
    probes(enc, snap)
}

/// Which `--profile` ran and which probes collect (a probe a profile leaves out is `off`).
fn probes(enc: &mut DescriptorEncoder, snap: &Snapshot) -> fmt::Result {
    if !snap.profile.is_empty() {
        gauge(
            enc,
            "netpost_profile",
            "Always 1; the label names the --profile netpost runs with (counters, standard, full).",
            None,
            [([("profile", snap.profile.as_str())], 1)],
        )?;
    }
    let state = |status: &str| {
        if status.starts_with("off") {
            "off"
        } else if status.starts_with("unavailable") {
            "unavailable"
        } else {
            "running"
        }
    };
    gauge(
        enc,
        "netpost_probe_running",
        "1 when the probe collects, 0 when it is off in this profile or unavailable on this kernel (state says which; the reason is in netpost's stderr and the JSON's probes).",
        None,
        snap.probes.iter().map(|(name, status)| {
            let state = state(status);
            (
                [("probe", name.as_str()), ("state", state)],
                i64::from(state == "running"),
            )
        }),
    )
}

/// When the snapshot was taken and the window its counters cover.
fn snapshot_times(enc: &mut DescriptorEncoder, snap: &Snapshot, now_ms: u64) -> fmt::Result {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let gauges = [
        (
            "netpost_snapshot_timestamp",
            "Unix time of the collection these values come from.",
            secs(snap.ts_ms),
        ),
        (
            "netpost_snapshot_age",
            "Seconds since that collection; growing past the interval means collection stalls.",
            secs(now_ms.saturating_sub(snap.ts_ms)),
        ),
        (
            "netpost_start_time",
            "Unix time every hook was attached: the counters count from here.",
            secs(snap.ts_ms.saturating_sub(snap.elapsed_ms)),
        ),
        (
            "netpost_collection_interval",
            "Length of the last collection interval.",
            secs(snap.interval_ms),
        ),
        (
            "netpost_collection_duration",
            "Time the last collection took to read every map and counter.",
            snap.collection_us as f64 / 1e6,
        ),
    ];
    for (name, help, value) in gauges {
        gauge(enc, name, help, Some(&Unit::Seconds), [(NO_LABELS, value)])?;
    }
    Ok(())
}
