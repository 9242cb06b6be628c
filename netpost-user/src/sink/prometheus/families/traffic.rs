//! XDP and tc counters: `{interface, hook, proto}`, plus the family split and malformed; and
//! which watched interfaces are present, came back, or did not fit under the cap.
use std::fmt;

use netpost_common::Hook;
use prometheus_client::{encoding::DescriptorEncoder, registry::Unit};

use super::{NO_LABELS, PROTOS, counter, gauge};
use crate::model::{ByFamily, ByProto, HookStats, IfaceStatus, Snapshot, Traffic};

fn by_proto(p: &ByProto) -> [(&'static str, &Traffic); 5] {
    let [tcp, udp, icmp, icmpv6, other] = PROTOS;
    [
        (tcp, &p.tcp),
        (udp, &p.udp),
        (icmp, &p.icmp),
        (icmpv6, &p.icmpv6),
        (other, &p.other),
    ]
}

fn by_family(f: &ByFamily) -> [(&'static str, &Traffic); 3] {
    [("ipv4", &f.ipv4), ("ipv6", &f.ipv6), ("other", &f.other)]
}

/// Every (interface, hook) of the snapshot, in a stable order.
fn hooks(snap: &Snapshot) -> impl Iterator<Item = (&str, &'static str, &HookStats)> + Clone {
    snap.interfaces.iter().flat_map(|(name, iface)| {
        Hook::ALL
            .into_iter()
            .map(move |hook| (name.as_str(), hook.name(), iface.hook(hook)))
    })
}

pub fn encode(enc: &mut DescriptorEncoder, snap: &Snapshot) -> fmt::Result {
    type Field = fn(&Traffic) -> u64;
    let per_proto: [(&str, &str, Option<&Unit>, Field); 5] = [
        (
            "netpost_packets",
            "Wire packets seen at the hook (a GSO/GRO super-packet counts each wire segment).",
            None,
            |t| t.packets,
        ),
        (
            "netpost",
            "Wire bytes seen at the hook, from the Ethernet header on, FCS excluded.",
            Some(&Unit::Bytes),
            |t| t.bytes,
        ),
        (
            "netpost_header",
            "Header bytes (Ethernet, VLAN, IP with options/extensions, TCP/UDP/ICMP, padding; every byte of non-IP and malformed frames).",
            Some(&Unit::Bytes),
            |t| t.header_bytes,
        ),
        (
            "netpost_payload",
            "Application payload bytes (TCP/UDP data, ICMP body, the rest of other IP datagrams).",
            Some(&Unit::Bytes),
            |t| t.payload_bytes,
        ),
        (
            "netpost_frames",
            "What the hook ran on: XDP frames or skbs (packets / frames shows GSO/GRO batching).",
            None,
            |t| t.frames,
        ),
    ];
    for (name, help, unit, field) in per_proto {
        let rows = hooks(snap).flat_map(|(iface, hook, h)| {
            by_proto(&h.by_proto).map(|(proto, t)| {
                (
                    [("interface", iface), ("hook", hook), ("proto", proto)],
                    field(t),
                )
            })
        });
        counter(enc, name, help, unit, rows)?;
    }
    let per_family: [(&str, &str, Option<&Unit>, Field); 2] = [
        (
            "netpost_family_packets",
            "Wire packets seen at the hook by network family (ipv4, ipv6, other: non-IP).",
            None,
            |t| t.packets,
        ),
        (
            "netpost_family",
            "Wire bytes seen at the hook by network family.",
            Some(&Unit::Bytes),
            |t| t.bytes,
        ),
    ];
    for (name, help, unit, field) in per_family {
        let rows = hooks(snap).flat_map(|(iface, hook, h)| {
            by_family(&h.by_family).map(|(family, t)| {
                (
                    [("interface", iface), ("hook", hook), ("family", family)],
                    field(t),
                )
            })
        });
        counter(enc, name, help, unit, rows)?;
    }
    let malformed: [(&str, &str, Option<&Unit>, Field); 2] = [
        (
            "netpost_malformed_packets",
            "Frames whose headers do not hold together (also counted under proto=\"other\").",
            None,
            |t| t.packets,
        ),
        (
            "netpost_malformed",
            "Bytes of malformed frames.",
            Some(&Unit::Bytes),
            |t| t.bytes,
        ),
    ];
    for (name, help, unit, field) in malformed {
        let rows = hooks(snap)
            .map(|(iface, hook, h)| ([("interface", iface), ("hook", hook)], field(&h.malformed)));
        counter(enc, name, help, unit, rows)?;
    }
    presence(enc, snap)
}

/// Interfaces that come and go: present or deleted, re-attached, left out at the cap.
fn presence(enc: &mut DescriptorEncoder, snap: &Snapshot) -> fmt::Result {
    let names = || {
        snap.interfaces
            .iter()
            .map(|(n, i)| ([("interface", n.as_str())], i))
    };
    gauge(
        enc,
        "netpost_interface_present",
        "1 while the watched interface exists and netpost counts it, 0 once it was deleted (its counters keep their totals, and go on if a device of that name appears again).",
        None,
        names().map(|(l, i)| (l, i64::from(i.status != IfaceStatus::Gone))),
    )?;
    counter(
        enc,
        "netpost_interface_reattached",
        "Times a device of this name appeared again after the watched one was deleted, and netpost attached to it.",
        None,
        names().map(|(l, i)| (l, i.reattached)),
    )?;
    gauge(
        enc,
        "netpost_interfaces_over_cap",
        "Interfaces an -i pattern matches that netpost does not watch: each of its 64 slots holds a present interface.",
        None,
        [(NO_LABELS, snap.interfaces_over_cap.len() as i64)],
    )
}
