//! The interfaces' part of the Snapshot: per device and hook (XDP, tc ingress, tc egress),
//! cumulative totals split by protocol and family, with rates over the last interval. Pure.
use std::collections::BTreeMap;

use netpost_common::{Counters, Family, Hook, HookCounters, Proto};
use serde::Serialize;

use super::watchlist::IfaceStatus;
use crate::delta::rate;

pub const NAME: &str = "interfaces";

/// Raw cumulative counters of one interface, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    pub hooks: [HookCounters; Hook::COUNT],
}

impl IfaceCounters {
    /// `self - earlier`, per counter: the counts of the window between two reads.
    pub fn since(&self, earlier: &IfaceCounters) -> IfaceCounters {
        let mut out = self.clone();
        for (hook, old) in out.hooks.iter_mut().zip(earlier.hooks.iter()) {
            for (row, old_row) in hook.by.iter_mut().zip(old.by.iter()) {
                for (c, o) in row.iter_mut().zip(old_row.iter()) {
                    c.frames = c.frames.saturating_sub(o.frames);
                    c.packets = c.packets.saturating_sub(o.packets);
                    c.bytes = c.bytes.saturating_sub(o.bytes);
                    c.header_bytes = c.header_bytes.saturating_sub(o.header_bytes);
                    c.payload_bytes = c.payload_bytes.saturating_sub(o.payload_bytes);
                }
            }
        }
        out
    }
}

/// Packets and bytes of one slice of traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Wire segments (a GSO/GRO super-packet counts each segment).
    pub packets: u64,
    /// Wire bytes from the Ethernet header on, FCS excluded.
    pub bytes: u64,
    /// What the hook ran on: XDP frames or skbs.
    pub frames: u64,
    pub header_bytes: u64,
    pub payload_bytes: u64,
}

impl From<&Counters> for Traffic {
    fn from(c: &Counters) -> Self {
        Traffic {
            packets: c.packets,
            bytes: c.bytes,
            frames: c.frames,
            header_bytes: c.header_bytes,
            payload_bytes: c.payload_bytes,
        }
    }
}

/// Traffic split by transport protocol. `other` includes malformed frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByProto {
    pub tcp: Traffic,
    pub udp: Traffic,
    pub icmp: Traffic,
    pub icmpv6: Traffic,
    pub other: Traffic,
}

/// Traffic split by network family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByFamily {
    pub ipv4: Traffic,
    pub ipv6: Traffic,
    pub other: Traffic,
}

/// Everything one hook saw on one interface (the JSON schema's `H`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HookStats {
    pub packets: u64,
    pub bytes: u64,
    pub header_bytes: u64,
    pub payload_bytes: u64,
    pub frames: u64,
    pub by_proto: ByProto,
    pub by_family: ByFamily,
    /// Frames whose headers do not hold together (also counted in `by_proto.other`).
    pub malformed: Traffic,
    /// Packets per second over the last interval.
    pub pps: f64,
    /// Bits per second over the last interval.
    pub bps: f64,
    /// Whether `packets` holds estimates: XDP has no segment count for the GRO/GSO
    /// super-packets it sees (generic XDP on veth, virtio), so it derives one from the device
    /// MTU, which is exact only when the sender's segments filled the MTU (a smaller MSS
    /// makes more segments than estimated). Always false at tc, which reads the kernel's count.
    pub packets_estimated: bool,
}

/// The three hooks of one interface, and where it stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct IfaceStats {
    pub xdp: HookStats,
    pub tc_ingress: HookStats,
    pub tc_egress: HookStats,
    /// "watching", "gone" (deleted while netpost ran: the totals stay) or "reattached" (a
    /// device of that name appeared again: the totals go on).
    pub status: IfaceStatus,
    /// How often a device of this name came back after one was deleted.
    pub reattached: u64,
}

/// Where a watched name stands, beside its counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceState {
    pub status: IfaceStatus,
    pub reattached: u64,
}

impl IfaceStats {
    pub fn hook(&self, hook: Hook) -> &HookStats {
        match hook {
            Hook::Xdp => &self.xdp,
            Hook::TcIngress => &self.tc_ingress,
            Hook::TcEgress => &self.tc_egress,
        }
    }

    fn hook_mut(&mut self, hook: Hook) -> &mut HookStats {
        match hook {
            Hook::Xdp => &mut self.xdp,
            Hook::TcIngress => &mut self.tc_ingress,
            Hook::TcEgress => &mut self.tc_egress,
        }
    }
}

/// What netpost attached where (per device; a device deleted has none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AttachInfo {
    pub ifindex: u32,
    /// "generic", "native" or "off".
    pub xdp_mode: String,
    /// "tcx" (fd-based links), "netlink" (clsact filters, kernels < 6.6) or "off".
    pub tc_mode: String,
    /// "attached", "off (--xdp-mode off)", or "unavailable: why" (counting goes on at tc).
    pub xdp_status: String,
    /// "attached", or "unavailable: why" (at one side: the other counts; at both: XDP alone
    /// counts).
    pub tc_status: String,
}

/// Folds one hook's raw per-(family, proto) counters into its totals and splits.
pub fn hook_totals(raw: &HookCounters) -> HookStats {
    let mut stats = HookStats::default();
    let mut total = Counters::default();
    for family in Family::ALL {
        let mut family_total = Counters::default();
        for proto in Proto::ALL {
            let c = raw.get(family, proto);
            family_total.add(c);
            let slot = match proto {
                Proto::Tcp => &mut stats.by_proto.tcp,
                Proto::Udp => &mut stats.by_proto.udp,
                Proto::Icmp => &mut stats.by_proto.icmp,
                Proto::Icmpv6 => &mut stats.by_proto.icmpv6,
                Proto::Other | Proto::Malformed => &mut stats.by_proto.other,
            };
            add_traffic(slot, c);
            if proto == Proto::Malformed {
                add_traffic(&mut stats.malformed, c);
            }
        }
        total.add(&family_total);
        *match family {
            Family::Ipv4 => &mut stats.by_family.ipv4,
            Family::Ipv6 => &mut stats.by_family.ipv6,
            Family::Other => &mut stats.by_family.other,
        } = Traffic::from(&family_total);
    }
    stats.packets = total.packets;
    stats.bytes = total.bytes;
    stats.header_bytes = total.header_bytes;
    stats.payload_bytes = total.payload_bytes;
    stats.frames = total.frames;
    stats
}

fn add_traffic(into: &mut Traffic, c: &Counters) {
    into.packets += c.packets;
    into.bytes += c.bytes;
    into.frames += c.frames;
    into.header_bytes += c.header_bytes;
    into.payload_bytes += c.payload_bytes;
}

/// Every device's stats, with rates against `prev` (devices it lacks count from zero), and
/// where each stands (`state`; "watching" where it has none).
pub fn stats(
    now: &BTreeMap<String, IfaceCounters>,
    prev: &BTreeMap<String, IfaceCounters>,
    state: &BTreeMap<String, IfaceState>,
    interval_ms: u64,
) -> BTreeMap<String, IfaceStats> {
    let zero = IfaceCounters::default();
    now.iter()
        .map(|(name, counters)| {
            let before = prev.get(name).unwrap_or(&zero);
            let state = state.get(name).copied().unwrap_or_default();
            let mut stats = IfaceStats {
                status: state.status,
                reattached: state.reattached,
                ..IfaceStats::default()
            };
            for hook in Hook::ALL {
                let cur = hook_totals(&counters.hooks[hook as usize]);
                let old = hook_totals(&before.hooks[hook as usize]);
                let out = stats.hook_mut(hook);
                *out = cur;
                out.pps = rate(cur.packets, old.packets, interval_ms);
                out.bps = rate(cur.bytes, old.bytes, interval_ms) * 8.0;
                // Only XDP estimates; a frame counted as more than one packet was estimated.
                out.packets_estimated = hook == Hook::Xdp && cur.packets != cur.frames;
            }
            (name.clone(), stats)
        })
        .collect()
}
