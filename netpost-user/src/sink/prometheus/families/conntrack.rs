//! The kernel's conntrack table of the namespace netpost runs in. Top sources are left out:
//! addresses are unbounded label values.
use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{NO_LABELS, counter, gauge};
use crate::model::ConntrackStats;

pub fn encode(enc: &mut DescriptorEncoder, ct: &ConntrackStats) -> fmt::Result {
    let gauges = [
        (
            "netpost_conntrack_entries",
            "Entries in the conntrack table (nf_conntrack_count).",
            ct.count,
        ),
        (
            "netpost_conntrack_entries_limit",
            "Size limit of the conntrack table (nf_conntrack_max).",
            ct.max,
        ),
        (
            "netpost_conntrack_buckets",
            "Hash buckets of the conntrack table (nf_conntrack_buckets).",
            ct.buckets,
        ),
    ];
    for (name, help, value) in gauges {
        gauge(enc, name, help, None, [(NO_LABELS, value as i64)])?;
    }
    let failures = [
        ("insert_failed", ct.insert_failed),
        ("drop", ct.drop),
        ("early_drop", ct.early_drop),
        ("invalid", ct.invalid),
        ("search_restart", ct.search_restart),
        ("clash_resolve", ct.clash_resolve),
        ("chaintoolong", ct.chaintoolong),
        ("icmp_error", ct.icmp_error),
    ];
    counter(
        enc,
        "netpost_conntrack_failures",
        "The kernel's conntrack failure counters (/proc/net/stat/nf_conntrack, since conntrack started in the namespace); kind=\"drop\": packets dropped because the table was full.",
        None,
        failures.map(|(kind, n)| ([("kind", kind)], n)),
    )?;
    counter(
        enc,
        "netpost_conntrack_created",
        "Conntrack entries created since netpost started, as its netfilter programs saw them (state NEW, unconfirmed, at PREROUTING and OUTPUT).",
        None,
        ct.new.map(|n| (NO_LABELS, n)),
    )
}
