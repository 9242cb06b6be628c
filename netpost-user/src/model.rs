//! The [`Snapshot`] every sink renders, and how one is built from a raw sample: each probe's
//! model turns its part into cumulative totals since start plus per-second rates over the
//! last interval. Pure, so it is tested without root. The Snapshot's types are re-exported
//! here: sinks read the Snapshot, never a probe.

use std::{collections::BTreeMap, sync::Arc};

use netpost_common::netfilter::{NfFamily, NfHook};
use serde::Serialize;

pub use crate::pcapng::{Link, Packet};
use crate::probe::{
    conntrack::model as conntrack, drops::model as drops, interfaces::model as interfaces,
    netfilter::model as netfilter, routes::model as routes, rules::model as rules,
    sockets::model as sockets, status::Status,
};
pub use crate::probe::{
    conntrack::model::{ConntrackRaw, ConntrackStats, HIGH_FILL_PCT, TopSource},
    drops::model::{DropsRaw, DropsStats, ReasonStats, SampleView},
    flows::model::{
        Direction, FlowOnIface, FlowRow, FlowSummary, FlowsRaw, HalfOpenSource, HandshakeStats,
        Percentiles, RTT_BUCKETS_US, ResetsBy, RttHistogram,
    },
    interfaces::model::{
        AttachInfo, ByFamily, ByProto, HookStats, IfaceCounters, IfaceState, IfaceStats, Traffic,
    },
    interfaces::watchlist::IfaceStatus,
    netfilter::model::{
        ByProtoVerdicts, CtStates, NfFamilyStats, NfHookStats, NfRaw, TcpClasses, Verdicts,
    },
    recorder::model::{RecorderRaw, RecorderStats},
    routes::model::{RouteResult, RoutesRaw, RoutingStats},
    rules::model::{ChainOrder, EstablishedAccept, Registered, RuleDrops, RulesInfo, RulesRaw},
    sockets::model::SocketsStats,
};

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
    /// Per hook: packets dropped after netpost's tail program had accepted them, since
    /// start. The drop program fills it once it tells those drops apart; empty until then
    /// (the JSON's `dropped_after_last` stays null).
    pub nf_dropped_after_last: BTreeMap<(NfFamily, NfHook), u64>,
    /// Per hook: packets conntrack found invalid since start (the netfilter probe's count).
    pub nf_invalid: BTreeMap<(NfFamily, NfHook), u64>,
    /// Registered hook functions and rule attribution (None without the rules probe).
    pub rules: Option<RulesRaw>,
    /// The kernel's conntrack counters (None without conntrack).
    pub conntrack: Option<ConntrackRaw>,
    /// Top sources of created conntrack entries (read only when the table fills up).
    pub ct_sources: Vec<TopSource>,
    /// Drops since start (None without the drop program).
    pub drops: Option<DropsRaw>,
    /// The drop recorder's counters and last packets (None when it is off).
    pub recorder: Option<RecorderRaw>,
    /// Route lookups since start (None without the route programs).
    pub routes: Option<RoutesRaw>,
    /// Names of the output devices in `routes`.
    pub ifnames: BTreeMap<u32, String>,
    /// The flow table and handshake counters (None without flow tracking).
    pub flows: Option<FlowsRaw>,
    /// Local TCP sockets since start (None without the socket programs).
    pub sockets: Option<SocketsStats>,
    /// How long reading this sample took, µs.
    pub collection_us: u64,
    /// Watched interfaces that no longer exist (deleted while netpost ran).
    pub gone: Vec<String>,
    /// Where each watched interface stands (status, re-attachments).
    pub iface_state: BTreeMap<String, IfaceState>,
    /// Where the interfaces probe is attached now, per device.
    pub attached: BTreeMap<String, AttachInfo>,
    /// Interfaces wanted (`-i` pattern) but not watched: every slot is taken.
    pub over_cap: Vec<String>,
}

/// What does not change between snapshots of one run; each probe describes its part.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub netns: Option<String>,
    /// `--profile` (empty where no CLI chose one, as in tests of the model).
    pub profile: &'static str,
    /// Every probe's status, by probe name.
    pub status: BTreeMap<&'static str, Status>,
    /// Per netfilter family: linked, or why not.
    pub netfilter_status: BTreeMap<String, Status>,
    /// How the netfilter programs read packet headers (None when they are not linked).
    pub netfilter_reads: Option<&'static str>,
}

impl RunInfo {
    /// The status of probe `name` as the JSON shows it.
    fn status_of(&self, name: &str) -> String {
        self.status
            .get(name)
            .map(Status::to_string)
            .unwrap_or_default()
    }
}

/// One immutable view of everything netpost knows, handed to every sink.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub ts_ms: u64,
    pub elapsed_ms: u64,
    /// Length of the interval the rates cover.
    pub interval_ms: u64,
    pub netns: Option<String>,
    /// The `--profile` that ran (`counters`, `standard`, `full`).
    pub profile: String,
    /// Every probe's status by name: `attached`, `linked`, `reading`, `off (why)` (e.g.
    /// `off (profile counters)`) or `unavailable: why`.
    pub probes: BTreeMap<String, String>,
    pub interfaces: BTreeMap<String, IfaceStats>,
    pub attached: BTreeMap<String, AttachInfo>,
    /// Netfilter hook traversal per linked family ("ipv4", "ipv6").
    pub netfilter: BTreeMap<String, NfFamilyStats>,
    /// Per family: "linked", or why its netfilter hooks are missing.
    pub netfilter_status: BTreeMap<String, String>,
    /// How the netfilter programs read packet headers: "in_place" (Linux >= 6.17) or
    /// "copied" (a helper call per packet); null when they are not linked.
    pub netfilter_reads: Option<String>,
    /// How the hooks' `registered` and `rules` were read (null without the rules probe).
    pub netfilter_rules: Option<RulesInfo>,
    /// "reading", or why rules are not read.
    pub netfilter_rules_status: String,
    /// Conntrack table pressure in the namespace (null where the kernel has no conntrack).
    pub conntrack: Option<ConntrackStats>,
    /// Dropped packets by reason and dropping function (null without the drop program).
    pub drops: Option<DropsStats>,
    /// "attached", or why drop reasons are not collected.
    pub drops_status: String,
    /// The last dropped packets the recorder kept for the dashboard (`--flight-recorder`),
    /// oldest first; empty when it is off. Not in the JSON.
    #[serde(skip)]
    pub drop_packets: Arc<Vec<Arc<Packet>>>,
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
    /// One row per flow across the watched interfaces (the rows above are per interface):
    /// the top flows by bytes, by packets and by current rate, most bytes first.
    pub flows_merged: Vec<FlowSummary>,
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
    /// Watched interfaces deleted while netpost ran and not back: their totals stay.
    pub interfaces_gone: Vec<String>,
    /// The doctor's diagnoses of the window ending here, worst first (empty when healthy;
    /// filled by the collection loop, not by [`build_snapshot`]).
    pub diagnoses: Vec<crate::doctor::diagnosis::Diagnosis>,
    /// Interfaces an `-i` pattern matches that are not watched: every one of the 64 slots
    /// holds a present interface.
    pub interfaces_over_cap: Vec<String>,
}

/// Builds the snapshot for `now`, with rates against `prev` (the previous sample, or the
/// all-zero sample taken at attach time).
pub fn build_snapshot(now: &RawSample, prev: &RawSample, info: &RunInfo) -> Snapshot {
    let interval_ms = now.elapsed_ms.saturating_sub(prev.elapsed_ms);
    let created = netfilter::ct_created(&now.netfilter)
        .map(|n| (n, netfilter::ct_created(&prev.netfilter).unwrap_or(0)));
    let drops = now.drops.as_ref().map(|d| {
        let mut stats = drops::stats(d, prev.drops.as_ref(), interval_ms);
        stats.recorder = now.recorder.as_ref().map(|r| r.stats.clone());
        stats
    });
    let mut nf = netfilter::stats(&now.netfilter, &prev.netfilter, interval_ms);
    if let Some(r) = &now.rules {
        for (&(family, hook), part) in &r.hooks {
            if let Some(f) = nf.get_mut(family.name()) {
                f.hook_mut(hook).set_rules(rules::hook_view(part));
            }
        }
    }
    netfilter::set_dropped_after_last(&mut nf, &now.nf_dropped_after_last);
    netfilter::set_invalid(&mut nf, &now.nf_invalid);
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
        profile: info.profile.to_string(),
        probes: info
            .status
            .iter()
            .map(|(name, status)| (name.to_string(), status.to_string()))
            .collect(),
        interfaces: interfaces::stats(
            &now.interfaces,
            &prev.interfaces,
            &now.iface_state,
            interval_ms,
        ),
        attached: now.attached.clone(),
        netfilter: nf,
        netfilter_status: info
            .netfilter_status
            .iter()
            .map(|(family, status)| (family.clone(), status.to_string()))
            .collect(),
        netfilter_reads: info.netfilter_reads.map(str::to_string),
        netfilter_rules: now.rules.as_ref().map(|r| r.info.clone()),
        netfilter_rules_status: info.status_of(rules::NAME),
        conntrack,
        routing: now.routes.as_ref().map(|r| {
            let name = |i: u32| {
                now.ifnames
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| format!("if{i}"))
            };
            routes::stats(r, drops.as_ref(), &name)
        }),
        drops,
        drops_status: info.status_of(drops::NAME),
        drop_packets: now
            .recorder
            .as_ref()
            .map(|r| Arc::clone(&r.flight))
            .unwrap_or_default(),
        routes_status: info.status_of(routes::NAME),
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
        flows_merged: now
            .flows
            .as_ref()
            .map(|f| f.merged.clone())
            .unwrap_or_default(),
        flows_active: now.flows.as_ref().map_or(0, |f| f.active),
        events_lost: now.flows.as_ref().map_or(0, |f| f.events_lost),
        sockets: now.sockets.clone(),
        sockets_status: info.status_of(sockets::NAME),
        collection_us: now.collection_us,
        interfaces_gone: now.gone.clone(),
        diagnoses: Vec::new(),
        interfaces_over_cap: now.over_cap.clone(),
    }
}

#[cfg(test)]
mod tests {
    use netpost_common::{Counters, Family, Hook, HookCounters, Proto};

    use super::*;
    use crate::{delta::rate, probe::interfaces::model::hook_totals};

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
            nf_dropped_after_last: BTreeMap::new(),
            nf_invalid: BTreeMap::new(),
            rules: None,
            conntrack: None,
            ct_sources: Vec::new(),
            drops: None,
            recorder: None,
            routes: None,
            ifnames: BTreeMap::new(),
            flows: None,
            sockets: None,
            collection_us: 0,
            gone: Vec::new(),
            iface_state: BTreeMap::new(),
            attached: BTreeMap::new(),
            over_cap: Vec::new(),
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
