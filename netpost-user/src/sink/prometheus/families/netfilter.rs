//! Netfilter hook traversal: `{family, hook, proto}` verdicts, IP bytes, conntrack state of
//! accepted packets and TCP handshake classes.
use std::{collections::BTreeMap, fmt};

use netpost_common::netfilter::NfHook;
use prometheus_client::{encoding::DescriptorEncoder, registry::Unit};

use super::{PROTOS, counter};
use crate::model::{ByProtoVerdicts, CtStates, NfHookStats, Snapshot, TcpClasses, Verdicts};

/// Every (family, netfilter hook) of the snapshot, in packet-path order.
fn nf_hooks(snap: &Snapshot) -> impl Iterator<Item = (&str, NfHook, &NfHookStats)> + Clone {
    snap.netfilter.iter().flat_map(|(family, stats)| {
        NfHook::ALL
            .into_iter()
            .map(move |hook| (family.as_str(), hook, stats.hook(hook)))
    })
}

fn verdicts(v: &ByProtoVerdicts) -> [(&'static str, &Verdicts); 5] {
    let [tcp, udp, icmp, icmpv6, other] = PROTOS;
    [
        (tcp, &v.tcp),
        (udp, &v.udp),
        (icmp, &v.icmp),
        (icmpv6, &v.icmpv6),
        (other, &v.other),
    ]
}

/// Conntrack states that partition the accepted packets (`invalid` is a subset of `none`,
/// so it has a family of its own: summing over `state` never double counts).
fn ct_states(ct: &CtStates) -> [(&'static str, u64); 6] {
    [
        ("new", ct.new),
        ("established", ct.established),
        ("related", ct.related),
        ("reply", ct.reply),
        ("untracked", ct.untracked),
        ("none", ct.none),
    ]
}

fn tcp_classes(t: &TcpClasses) -> [(&'static str, u64); 6] {
    [
        ("syn", t.syn),
        ("synack", t.synack),
        ("rst", t.rst),
        ("fin", t.fin),
        ("other", t.other),
        ("unread", t.unread),
    ]
}

/// Highest value exported per series of `netpost_netfilter_dropped_packets_total`.
///
/// `dropped` is entered - accepted at the moment the counters are read, so a packet between
/// the two probes then counts as dropped for one snapshot and not in the next. A counter
/// that goes down reads as a reset to Prometheus (rate() would see a spike of the whole
/// value), so the exported series holds its highest value. Bounded: families x hooks x protos.
#[derive(Debug, Default)]
pub struct HighWater(BTreeMap<(String, NfHook, &'static str), u64>);

impl HighWater {
    fn hold(&mut self, family: &str, hook: NfHook, proto: &'static str, value: u64) -> u64 {
        let seen = self.0.entry((family.to_string(), hook, proto)).or_default();
        *seen = (*seen).max(value);
        *seen
    }
}

pub fn encode(enc: &mut DescriptorEncoder, snap: &Snapshot, held: &mut HighWater) -> fmt::Result {
    type Verdict = fn(&Verdicts) -> u64;
    let per_proto: [(&str, &str, Verdict); 2] = [
        (
            "netpost_netfilter_entered_packets",
            "Packets that reached the netfilter hook (its earliest priority).",
            |v| v.entered,
        ),
        (
            "netpost_netfilter_accepted_packets",
            "Packets that survived every other function at the hook: iptables/nftables, conntrack, NAT (its latest priority).",
            |v| v.accepted,
        ),
    ];
    for (name, help, field) in per_proto {
        let rows = nf_hooks(snap).flat_map(|(family, hook, h)| {
            verdicts(&h.by_proto).map(|(proto, v)| {
                (
                    [("family", family), ("hook", hook.name()), ("proto", proto)],
                    field(v),
                )
            })
        });
        counter(enc, name, help, None, rows)?;
    }
    let dropped: Vec<_> = nf_hooks(snap)
        .flat_map(|(family, hook, h)| {
            verdicts(&h.by_proto).map(|(proto, v)| {
                (
                    [("family", family), ("hook", hook.name()), ("proto", proto)],
                    held.hold(family, hook, proto, v.dropped),
                )
            })
        })
        .collect();
    counter(
        enc,
        "netpost_netfilter_dropped_packets",
        "Packets that entered the hook and did not survive it: dropped, stolen (e.g. held for defragmentation) or queued.",
        None,
        dropped,
    )?;
    type Bytes = fn(&NfHookStats) -> u64;
    let bytes: [(&str, &str, Bytes); 2] = [
        (
            "netpost_netfilter_entered",
            "IP bytes (from the IP header on) that reached the hook.",
            |h| h.entered_bytes,
        ),
        (
            "netpost_netfilter_accepted",
            "IP bytes that survived the hook.",
            |h| h.accepted_bytes,
        ),
    ];
    for (name, help, field) in bytes {
        let rows = nf_hooks(snap)
            .map(|(family, hook, h)| ([("family", family), ("hook", hook.name())], field(h)));
        counter(enc, name, help, Some(&Unit::Bytes), rows)?;
    }
    let states = nf_hooks(snap).flat_map(|(family, hook, h)| {
        ct_states(&h.ct).map(|(state, n)| {
            (
                [("family", family), ("hook", hook.name()), ("state", state)],
                n,
            )
        })
    });
    counter(
        enc,
        "netpost_netfilter_ct_state_packets",
        "Packets that survived the hook, by conntrack state (reply: the reply direction; none: no conntrack entry).",
        None,
        states,
    )?;
    let invalid = nf_hooks(snap)
        .map(|(family, hook, h)| ([("family", family), ("hook", hook.name())], h.ct.invalid));
    counter(
        enc,
        "netpost_netfilter_ct_invalid_packets",
        "Packets without a conntrack entry once conntrack is active in the family: INVALID (a subset of state=\"none\").",
        None,
        invalid,
    )?;
    type Classes = fn(&NfHookStats) -> &TcpClasses;
    let tcp: [(&str, &str, Classes); 2] = [
        (
            "netpost_netfilter_tcp_entered_packets",
            "TCP packets that reached the hook, by handshake class (syn, synack, rst, fin, other).",
            |h| &h.tcp,
        ),
        (
            "netpost_netfilter_tcp_accepted_packets",
            "TCP packets that survived the hook, by handshake class.",
            |h| &h.tcp_accepted,
        ),
    ];
    for (name, help, field) in tcp {
        let rows = nf_hooks(snap).flat_map(|(family, hook, h)| {
            tcp_classes(field(h)).map(|(class, n)| {
                (
                    [("family", family), ("hook", hook.name()), ("class", class)],
                    n,
                )
            })
        });
        counter(enc, name, help, None, rows)?;
    }
    Ok(())
}
