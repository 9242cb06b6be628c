//! Flows and TCP handshakes in the Snapshot: the handshake funnel (exact, from the kernel's
//! global counters), handshake RTT percentiles (from "established" events), top flows (from
//! the flow table). Pure functions over what the collector read.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netpost_common::{
    flows::{FlowEvent, FlowKey, FlowValue, event, funnel},
    handshake::Stage,
};
use serde::Serialize;

/// One row of the top-flows table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlowRow {
    pub iface: String,
    /// The client (the endpoint that sent the first SYN) when known, else the lower one.
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub stage: String,
    pub packets: u64,
    pub bytes: u64,
    /// Handshake time on the wire (SYN -> SYN-ACK -> ACK), µs; null until established.
    pub rtt_us: Option<u32>,
    /// Its two halves: SYN -> SYN-ACK and SYN-ACK -> ACK, µs (null until measured).
    pub rtt_synack_us: Option<u32>,
    pub rtt_ack_us: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
}

/// Upper bounds of the handshake RTT histogram buckets, in µs (then +Inf).
pub const RTT_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 500_000, 2_000_000,
];

/// Every handshake RTT since start, bucketed (for the metrics endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttHistogram {
    /// Per bucket of [`RTT_BUCKETS_US`], then one for larger values (not cumulative).
    pub counts: [u64; RTT_BUCKETS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl Default for RttHistogram {
    fn default() -> Self {
        RttHistogram {
            counts: [0; RTT_BUCKETS_US.len() + 1],
            sum_us: 0,
            count: 0,
        }
    }
}

impl RttHistogram {
    pub fn observe(&mut self, us: u32) {
        let i = RTT_BUCKETS_US
            .iter()
            .position(|&le| us as u64 <= le)
            .unwrap_or(RTT_BUCKETS_US.len());
        self.counts[i] += 1;
        self.sum_us += us as u64;
        self.count += 1;
    }
}

/// The JSON's `handshake` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HandshakeStats {
    /// Handshakes opened (first SYN of a flow).
    pub syn: u64,
    /// SYN-ACKs that answered them.
    pub synack: u64,
    pub established: u64,
    /// Flows in the table still between SYN and the final ACK.
    pub half_open: u64,
    pub resets: u64,
    pub syn_retransmits: u64,
    pub synack_retransmits: u64,
    pub closed: u64,
    /// Half-open handshakes that went silent for 5 s (failed), since start.
    pub timed_out: u64,
    /// Over the handshakes completed since start (null before the first).
    pub rtt_us: Option<Percentiles>,
    /// All handshake RTTs since start, bucketed (exported as a Prometheus histogram).
    #[serde(skip)]
    pub rtt_histogram: RttHistogram,
}

/// Kernel funnel counters since start, indexed by `netpost_common::flows::funnel`.
pub type Funnel = [u64; funnel::COUNT as usize];

pub fn handshake_stats(
    f: &Funnel,
    half_open: u64,
    rtts: &[u32],
    histogram: &RttHistogram,
) -> HandshakeStats {
    let at = |i: u32| f[i as usize];
    HandshakeStats {
        syn: at(funnel::SYN),
        synack: at(funnel::SYNACK),
        established: at(funnel::ESTABLISHED),
        half_open,
        resets: at(funnel::RESETS),
        syn_retransmits: at(funnel::SYN_RETRANSMITS),
        synack_retransmits: at(funnel::SYNACK_RETRANSMITS),
        closed: at(funnel::CLOSED),
        timed_out: 0,
        rtt_us: percentiles(rtts),
        rtt_histogram: histogram.clone(),
    }
}

/// Nearest-rank percentiles.
pub fn percentiles(samples: &[u32]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = |p: usize| s[((p * s.len()).div_ceil(100)).clamp(1, s.len()) - 1];
    Some(Percentiles {
        p50: rank(50),
        p90: rank(90),
        p99: rank(99),
    })
}

pub fn proto_name(ipproto: u8) -> &'static str {
    match ipproto {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmpv6",
        _ => "other",
    }
}

fn ip(version: u8, addr: &[u8; 16]) -> IpAddr {
    if version == 4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    }
}

fn endpoint(version: u8, addr: &[u8; 16], port: u16, with_port: bool) -> String {
    match (ip(version, addr), with_port) {
        (a, false) => a.to_string(),
        (IpAddr::V4(a), true) => format!("{a}:{port}"),
        (IpAddr::V6(a), true) => format!("[{a}]:{port}"),
    }
}

/// (client, server) endpoints of a flow: the SYN's sender first when known.
pub fn endpoints(key: &FlowKey, client_is_low: bool) -> (String, String) {
    let ports = matches!(key.proto, 6 | 17);
    let lo = endpoint(key.ip_version, &key.lo, key.lo_port, ports);
    let hi = endpoint(key.ip_version, &key.hi, key.hi_port, ports);
    if client_is_low { (lo, hi) } else { (hi, lo) }
}

pub fn row(key: &FlowKey, v: &FlowValue, iface: String) -> FlowRow {
    let stage = v.handshake.stage();
    let known_client = !matches!(stage, Stage::None | Stage::Midstream);
    let (src, dst) = endpoints(key, !known_client || v.handshake.client_is_low == 1);
    let established = matches!(stage, Stage::Established | Stage::Closing | Stage::Closed);
    FlowRow {
        iface,
        src,
        dst,
        proto: proto_name(key.proto).into(),
        stage: if key.proto == 6 {
            stage.name().into()
        } else {
            "-".into()
        },
        packets: v.packets[0] + v.packets[1],
        bytes: v.bytes[0] + v.bytes[1],
        rtt_us: (established && v.handshake.rtt_syn_us > 0)
            .then(|| v.handshake.rtt_syn_us + v.handshake.rtt_ack_us),
        rtt_synack_us: (v.handshake.rtt_syn_us > 0).then_some(v.handshake.rtt_syn_us),
        rtt_ack_us: (v.handshake.rtt_ack_us > 0).then_some(v.handshake.rtt_ack_us),
    }
}

/// The `n` biggest flows by `metric`, biggest first.
pub fn top(
    flows: &[(FlowKey, FlowValue)],
    n: usize,
    metric: impl Fn(&FlowValue) -> u64,
) -> Vec<&(FlowKey, FlowValue)> {
    let mut all: Vec<&(FlowKey, FlowValue)> = flows.iter().collect();
    all.sort_by(|a, b| metric(&b.1).cmp(&metric(&a.1)).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

/// Flows between SYN and the completing ACK.
pub fn half_open(flows: &[(FlowKey, FlowValue)]) -> u64 {
    flows
        .iter()
        .filter(|(_, v)| matches!(v.handshake.stage(), Stage::SynSent | Stage::SynReceived))
        .count() as u64
}

/// One flow event as a JSON object (for `--events`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    pub ts_ns: u64,
    pub event: &'static str,
    pub iface: String,
    pub proto: &'static str,
    pub src: String,
    pub dst: String,
    pub stage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u32>,
    /// For resets: "client" or "server".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_by: Option<&'static str>,
}

pub fn event_view(e: &FlowEvent, iface: String) -> EventView {
    let stage = Stage::from_u8(e.stage);
    let client_known = e.kind != event::NEW_FLOW || e.key.proto == 6;
    let (src, dst) = endpoints(&e.key, !client_known || e.client_is_low == 1);
    EventView {
        ts_ns: e.ts_ns,
        event: match e.kind {
            event::NEW_FLOW => "new_flow",
            event::ANSWERED => "answered",
            event::ESTABLISHED => "established",
            event::RESET => "reset",
            event::CLOSED => "closed",
            event::TIMED_OUT => "handshake_timeout",
            _ => "unknown",
        },
        iface,
        proto: proto_name(e.key.proto),
        src,
        dst,
        stage: stage.name(),
        rtt_us: (e.kind == event::ESTABLISHED).then(|| e.rtt_syn_us + e.rtt_ack_us),
        reset_by: (e.kind == event::RESET).then_some(if e.by_client == 1 {
            "client"
        } else {
            "server"
        }),
    }
}

#[cfg(test)]
mod tests {
    use netpost_common::handshake::Handshake;

    use super::*;

    fn key(lo_last: u8, lo_port: u16, hi_port: u16) -> FlowKey {
        let mut k = FlowKey {
            ifindex: 2,
            ip_version: 4,
            proto: 6,
            lo_port,
            hi_port,
            ..Default::default()
        };
        k.lo[..4].copy_from_slice(&[10, 0, 0, lo_last]);
        k.hi[..4].copy_from_slice(&[10, 0, 0, 200]);
        k
    }

    fn value(bytes: u64, stage: Stage, client_is_low: bool) -> FlowValue {
        FlowValue {
            packets: [bytes / 100, 1],
            bytes: [bytes, 0],
            handshake: Handshake {
                stage: stage as u8,
                client_is_low: client_is_low as u8,
                rtt_syn_us: 40,
                rtt_ack_us: 60,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn rtts_fall_in_their_buckets() {
        let mut h = RttHistogram::default();
        for us in [10, 50, 51, 3_000_000] {
            h.observe(us);
        }
        assert_eq!(h.counts[0], 2, "<= 50 µs");
        assert_eq!(h.counts[1], 1, "<= 100 µs");
        assert_eq!(h.counts[RTT_BUCKETS_US.len()], 1, "+Inf");
        assert_eq!((h.count, h.sum_us), (4, 3_000_111));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        assert_eq!(percentiles(&[]), None);
        let one = percentiles(&[7]).unwrap();
        assert_eq!((one.p50, one.p90, one.p99), (7, 7, 7));
        let s: Vec<u32> = (1..=100).collect();
        let p = percentiles(&s).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50, 90, 99));
    }

    #[test]
    fn rows_show_the_client_first_and_rtt_once_established() {
        let k = key(1, 40000, 80);
        let r = row(&k, &value(5000, Stage::Established, true), "veth0".into());
        assert_eq!(
            (r.src.as_str(), r.dst.as_str()),
            ("10.0.0.1:40000", "10.0.0.200:80")
        );
        assert_eq!((r.stage.as_str(), r.rtt_us), ("established", Some(100)));
        assert_eq!((r.rtt_synack_us, r.rtt_ack_us), (Some(40), Some(60)));
        assert_eq!((r.packets, r.bytes), (51, 5000));
        let r = row(&k, &value(5000, Stage::SynSent, false), "veth0".into());
        assert_eq!(r.src, "10.0.0.200:80", "the high endpoint sent the SYN");
        assert_eq!(r.rtt_us, None);
    }

    #[test]
    fn top_and_half_open() {
        let flows = vec![
            (key(1, 1, 80), value(100, Stage::Established, true)),
            (key(2, 2, 80), value(900, Stage::SynSent, true)),
            (key(3, 3, 80), value(500, Stage::SynReceived, true)),
        ];
        let by_bytes = top(&flows, 2, |v| v.bytes[0] + v.bytes[1]);
        assert_eq!(by_bytes.len(), 2);
        assert_eq!(by_bytes[0].0.lo[3], 2);
        assert_eq!(by_bytes[1].0.lo[3], 3);
        assert_eq!(half_open(&flows), 2);
    }

    #[test]
    fn funnel_counters_map_to_the_json() {
        let mut f: Funnel = [0; funnel::COUNT as usize];
        f[funnel::SYN as usize] = 5;
        f[funnel::SYNACK as usize] = 4;
        f[funnel::ESTABLISHED as usize] = 3;
        f[funnel::RESETS as usize] = 1;
        f[funnel::SYN_RETRANSMITS as usize] = 2;
        let h = handshake_stats(&f, 1, &[100, 300], &RttHistogram::default());
        assert_eq!(
            (h.syn, h.synack, h.established, h.resets, h.syn_retransmits),
            (5, 4, 3, 1, 2)
        );
        assert_eq!(h.half_open, 1);
        assert_eq!(h.rtt_us.unwrap().p50, 100);
    }
}
