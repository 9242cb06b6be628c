//! Turns raw counters into the [`Snapshot`] every sink renders: cumulative totals since
//! start plus per-second rates over the last interval. Pure, so it is tested without root.

use std::collections::BTreeMap;

use netpost_common::{Counters, Family, Hook, HookCounters, Proto, netfilter::NfFamily};
use serde::Serialize;

use crate::{
    conntrack::{self, ConntrackRaw, ConntrackStats, TopSource},
    drops::{self, DropsRaw, DropsStats},
    flow_watch::FlowsRaw,
    flows::{FlowRow, HandshakeStats},
    nf_model::{self, NfFamilyStats, NfRaw},
    route_watch::{self, RoutingStats},
    sock_watch::SocketsStats,
};

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

/// One collection: cumulative counters per interface name, at a time.
#[derive(Clone, Debug, Default)]
pub struct RawSample {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Milliseconds since netpost attached.
    pub elapsed_ms: u64,
    pub interfaces: BTreeMap<String, IfaceCounters>,
    /// Netfilter counters of each linked family.
    pub netfilter: BTreeMap<NfFamily, NfRaw>,
    /// The kernel's conntrack counters (None without conntrack).
    pub conntrack: Option<ConntrackRaw>,
    /// Top sources of created conntrack entries (read only when the table fills up).
    pub ct_sources: Vec<TopSource>,
    /// Drops since start (None without the drop program).
    pub drops: Option<DropsRaw>,
    /// Route lookups since start (None without the route programs).
    pub routes: Option<route_watch::RoutesRaw>,
    /// Names of the output devices in `routes`.
    pub ifnames: BTreeMap<u32, String>,
    /// The flow table and handshake counters (None without flow tracking).
    pub flows: Option<FlowsRaw>,
    /// Local TCP sockets since start (None without the socket programs).
    pub sockets: Option<SocketsStats>,
    /// How long reading this sample took, µs.
    pub collection_us: u64,
}

impl RawSample {
    /// Conntrack entries created, as the netfilter programs saw them (None without links).
    fn ct_created(&self) -> Option<u64> {
        (!self.netfilter.is_empty()).then(|| {
            self.netfilter
                .values()
                .flat_map(|raw| raw.iter())
                .map(|hook| hook.ct_created)
                .sum()
        })
    }
}

/// What does not change between snapshots of one run.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub netns: Option<String>,
    pub attached: BTreeMap<String, AttachInfo>,
    /// Per family: "linked", or why the netfilter hooks are missing.
    pub netfilter_status: BTreeMap<String, String>,
    /// "attached", or why drop reasons are not collected.
    pub drops_status: String,
    /// "attached", or why routing decisions are not collected.
    pub routes_status: String,
    /// "attached", or why the socket tracepoints are not collected.
    pub sockets_status: String,
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
}

/// The three hooks of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct IfaceStats {
    pub xdp: HookStats,
    pub tc_ingress: HookStats,
    pub tc_egress: HookStats,
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

/// What netpost attached where (static for a run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AttachInfo {
    pub ifindex: u32,
    /// "generic", "native" or "off".
    pub xdp_mode: String,
    /// "tcx" (fd-based links) or "netlink" (clsact filters, kernels < 6.6).
    pub tc_mode: String,
}

/// One immutable view of everything netpost knows, handed to every sink.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub ts_ms: u64,
    pub elapsed_ms: u64,
    /// Length of the interval the rates cover.
    pub interval_ms: u64,
    pub netns: Option<String>,
    pub interfaces: BTreeMap<String, IfaceStats>,
    pub attached: BTreeMap<String, AttachInfo>,
    /// Netfilter hook traversal per linked family ("ipv4", "ipv6").
    pub netfilter: BTreeMap<String, NfFamilyStats>,
    /// Per family: "linked", or why its netfilter hooks are missing.
    pub netfilter_status: BTreeMap<String, String>,
    /// Conntrack table pressure in the namespace (null where the kernel has no conntrack).
    pub conntrack: Option<ConntrackStats>,
    /// Dropped packets by reason and dropping function (null without the drop program).
    pub drops: Option<DropsStats>,
    /// "attached", or why drop reasons are not collected.
    pub drops_status: String,
    /// IPv4 routing decisions (null without the route program).
    pub routing: Option<RoutingStats>,
    /// "attached", or why routing decisions are not collected.
    pub routes_status: String,
    /// The TCP handshake funnel and handshake RTT percentiles.
    pub handshake: Option<HandshakeStats>,
    /// The top flows by bytes (`--top`).
    pub flows: Vec<FlowRow>,
    /// The top flows by packets.
    pub flows_by_packets: Vec<FlowRow>,
    /// Flows in the flow table now.
    pub flows_active: u64,
    /// Flow events the kernel's ring buffer had no room for.
    pub events_lost: u64,
    /// Local TCP sockets: state transitions, SYN-ACK retransmits, resets (null without the
    /// socket tracepoints).
    pub sockets: Option<SocketsStats>,
    /// "attached", or why the socket tracepoints are not collected.
    pub sockets_status: String,
    /// How long the last collection took to read every map and counter, µs.
    pub collection_us: u64,
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

/// Per-second rate of a cumulative counter; 0 when the interval is empty or the counter
/// went backwards (it never should: maps are only created, never reset, by netpost).
pub fn rate(now: u64, before: u64, interval_ms: u64) -> f64 {
    if interval_ms == 0 || now < before {
        return 0.0;
    }
    (now - before) as f64 * 1000.0 / interval_ms as f64
}

/// Builds the snapshot for `now`, with rates against `prev` (the previous sample, or the
/// all-zero sample taken at attach time).
pub fn build_snapshot(now: &RawSample, prev: &RawSample, info: &RunInfo) -> Snapshot {
    let interval_ms = now.elapsed_ms.saturating_sub(prev.elapsed_ms);
    let zero = IfaceCounters::default();
    let interfaces = now
        .interfaces
        .iter()
        .map(|(name, counters)| {
            let before = prev.interfaces.get(name).unwrap_or(&zero);
            let mut stats = IfaceStats::default();
            for hook in Hook::ALL {
                let cur = hook_totals(&counters.hooks[hook as usize]);
                let old = hook_totals(&before.hooks[hook as usize]);
                let out = stats.hook_mut(hook);
                *out = cur;
                out.pps = rate(cur.packets, old.packets, interval_ms);
                out.bps = rate(cur.bytes, old.bytes, interval_ms) * 8.0;
            }
            (name.clone(), stats)
        })
        .collect();
    let netfilter = now
        .netfilter
        .iter()
        .map(|(family, raw)| {
            let before = prev.netfilter.get(family).copied().unwrap_or_default();
            (
                family.name().to_string(),
                nf_model::family_stats(raw, &before, interval_ms),
            )
        })
        .collect();
    let created = now
        .ct_created()
        .map(|n| (n, prev.ct_created().unwrap_or(0)));
    let drops = now
        .drops
        .as_ref()
        .map(|d| drops::stats(d, prev.drops.as_ref(), interval_ms));
    let conntrack = now.conntrack.as_ref().map(|c| {
        conntrack::stats(
            c,
            prev.conntrack.as_ref(),
            created,
            interval_ms,
            now.ct_sources.clone(),
        )
    });
    Snapshot {
        ts_ms: now.ts_ms,
        elapsed_ms: now.elapsed_ms,
        interval_ms,
        netns: info.netns.clone(),
        interfaces,
        attached: info.attached.clone(),
        netfilter,
        netfilter_status: info.netfilter_status.clone(),
        conntrack,
        routing: now.routes.as_ref().map(|r| {
            let name = |i: u32| {
                now.ifnames
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| format!("if{i}"))
            };
            route_watch::stats(r, drops.as_ref(), &name)
        }),
        drops,
        drops_status: info.drops_status.clone(),
        routes_status: info.routes_status.clone(),
        handshake: now.flows.as_ref().map(|f| f.handshake.clone()),
        flows: now
            .flows
            .as_ref()
            .map(|f| f.by_bytes.clone())
            .unwrap_or_default(),
        flows_by_packets: now
            .flows
            .as_ref()
            .map(|f| f.by_packets.clone())
            .unwrap_or_default(),
        flows_active: now.flows.as_ref().map_or(0, |f| f.active),
        events_lost: now.flows.as_ref().map_or(0, |f| f.events_lost),
        sockets: now.sockets.clone(),
        sockets_status: info.sockets_status.clone(),
        collection_us: now.collection_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(packets: u64, bytes: u64, payload: u64) -> Counters {
        Counters {
            frames: packets,
            packets,
            bytes,
            header_bytes: bytes - payload,
            payload_bytes: payload,
        }
    }

    fn sample(elapsed_ms: u64, fill: impl Fn(&mut HookCounters)) -> RawSample {
        let mut iface = IfaceCounters::default();
        fill(&mut iface.hooks[Hook::TcIngress as usize]);
        RawSample {
            ts_ms: 1_000_000 + elapsed_ms,
            elapsed_ms,
            interfaces: [("veth0".to_string(), iface)].into(),
            netfilter: BTreeMap::new(),
            conntrack: None,
            ct_sources: Vec::new(),
            drops: None,
            routes: None,
            ifnames: BTreeMap::new(),
            flows: None,
            sockets: None,
            collection_us: 0,
        }
    }

    #[test]
    fn totals_fold_families_and_protocols_and_keep_malformed_in_other() {
        let mut raw = HookCounters::default();
        raw.by[Family::Ipv4 as usize][Proto::Udp as usize] = counters(3, 300, 150);
        raw.by[Family::Ipv6 as usize][Proto::Udp as usize] = counters(2, 200, 80);
        raw.by[Family::Ipv4 as usize][Proto::Tcp as usize] = counters(1, 66, 0);
        raw.by[Family::Other as usize][Proto::Other as usize] = counters(4, 168, 0);
        raw.by[Family::Ipv4 as usize][Proto::Malformed as usize] = counters(1, 30, 0);

        let h = hook_totals(&raw);
        assert_eq!(h.packets, 11);
        assert_eq!(h.bytes, 764);
        assert_eq!(h.payload_bytes, 230);
        assert_eq!(h.header_bytes, 764 - 230);
        assert_eq!(h.by_proto.udp.packets, 5);
        assert_eq!(h.by_proto.udp.bytes, 500);
        assert_eq!(h.by_proto.tcp.packets, 1);
        assert_eq!(h.by_proto.other.packets, 5, "other includes malformed");
        assert_eq!(h.malformed.packets, 1);
        assert_eq!(h.by_family.ipv4.packets, 5);
        assert_eq!(h.by_family.ipv6.packets, 2);
        assert_eq!(h.by_family.other.packets, 4);
    }

    #[test]
    fn rates_are_per_second_over_the_interval() {
        let prev = sample(1_000, |h| {
            h.by[0][Proto::Udp as usize] = counters(100, 10_000, 5_000)
        });
        let now = sample(1_500, |h| {
            h.by[0][Proto::Udp as usize] = counters(300, 30_000, 15_000)
        });
        let info = RunInfo {
            netns: Some("ns1".into()),
            ..Default::default()
        };
        let snap = build_snapshot(&now, &prev, &info);
        let h = &snap.interfaces["veth0"].tc_ingress;
        assert_eq!(snap.interval_ms, 500);
        assert_eq!(h.packets, 300, "cumulative, not per interval");
        assert_eq!(h.pps, 400.0);
        assert_eq!(h.bps, 20_000.0 * 2.0 * 8.0);
        assert_eq!(snap.interfaces["veth0"].xdp.pps, 0.0);
        assert_eq!(snap.netns.as_deref(), Some("ns1"));
    }

    #[test]
    fn counts_since_a_baseline_subtract_every_counter() {
        let mut base = IfaceCounters::default();
        base.hooks[0].by[0][0] = counters(10, 1000, 400);
        let mut now = IfaceCounters::default();
        now.hooks[0].by[0][0] = counters(15, 1600, 700);
        now.hooks[2].by[1][1] = counters(2, 200, 100);
        let d = now.since(&base);
        assert_eq!(d.hooks[0].by[0][0], counters(5, 600, 300));
        assert_eq!(d.hooks[2].by[1][1], counters(2, 200, 100));
    }

    #[test]
    fn rate_of_empty_interval_or_going_backwards_is_zero() {
        assert_eq!(rate(10, 5, 0), 0.0);
        assert_eq!(rate(5, 10, 1000), 0.0);
        assert_eq!(rate(15, 5, 2000), 5.0);
    }

    #[test]
    fn snapshot_json_has_the_documented_schema() {
        let now = sample(2_000, |h| {
            h.by[0][Proto::Icmp as usize] = counters(2, 196, 112)
        });
        let snap = build_snapshot(&now, &RawSample::default(), &RunInfo::default());
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["ts_ms"], 1_002_000);
        let iface = &v["interfaces"]["veth0"];
        for hook in ["xdp", "tc_ingress", "tc_egress"] {
            let h = &iface[hook];
            for key in [
                "packets",
                "bytes",
                "header_bytes",
                "payload_bytes",
                "pps",
                "bps",
            ] {
                assert!(h[key].is_number(), "{hook}.{key} missing: {h}");
            }
            for proto in ["tcp", "udp", "icmp", "icmpv6", "other"] {
                assert!(h["by_proto"][proto]["packets"].is_u64(), "{hook} {proto}");
                assert!(h["by_proto"][proto]["bytes"].is_u64(), "{hook} {proto}");
            }
        }
        assert_eq!(iface["tc_ingress"]["by_proto"]["icmp"]["packets"], 2);
        assert_eq!(iface["tc_ingress"]["payload_bytes"], 112);
        assert_eq!(iface["tc_ingress"]["pps"], 1.0);
    }
}
