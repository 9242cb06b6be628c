//! Flows and TCP handshakes in the Snapshot: the handshake funnel (exact, from the kernel's
//! global counters), handshake RTT percentiles (from "established" events), top flows (from
//! the flow table). Pure functions over what the collector read.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use netpost_common::{
    flows::{FlowEvent, FlowKey, FlowValue, event, funnel},
    handshake::Stage,
};
use serde::Serialize;

pub const NAME: &str = "flows";

/// What one collection read from the flow programs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowsRaw {
    pub handshake: HandshakeStats,
    pub by_bytes: Vec<FlowRow>,
    pub by_packets: Vec<FlowRow>,
    /// Flows in the table now.
    pub active: u64,
    pub events_lost: u64,
    /// Packets at tc that no flow took.
    pub untracked: u64,
    /// One row per flow across the watched interfaces: the top flows by bytes, by packets
    /// and by current rate.
    pub merged: Vec<FlowSummary>,
}

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
    /// The clients with the most half-open handshakes now (top 5), most first.
    pub half_open_sources: Vec<HalfOpenSource>,
    /// Resets since start by server endpoint and client address (top 10), most first.
    pub resets_by: Vec<ResetsBy>,
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
        // Less the ones whose completing ACK was lost (the server asked again).
        established: at(funnel::ESTABLISHED).saturating_sub(at(funnel::UNDONE)),
        half_open,
        resets: at(funnel::RESETS),
        syn_retransmits: at(funnel::SYN_RETRANSMITS),
        synack_retransmits: at(funnel::SYNACK_RETRANSMITS),
        closed: at(funnel::CLOSED),
        timed_out: 0,
        half_open_sources: Vec::new(),
        resets_by: Vec::new(),
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

/// The stage string of rows and events: TCP's handshake stage, "-" for UDP and ICMP.
pub const NO_STAGE: &str = "-";

fn stage_name(proto: u8, stage: Stage) -> &'static str {
    if proto == 6 { stage.name() } else { NO_STAGE }
}

/// Whether the low endpoint goes first (as `src`): the client (the SYN's sender) of a TCP
/// flow whose handshake netpost saw; for UDP and ICMP the sender of the first packet seen
/// (so an ICMP error is listed from the host that sent it); else the lower address.
fn low_first(proto: u8, v: &FlowValue) -> bool {
    let stage = v.handshake.stage();
    if proto != 6 || !matches!(stage, Stage::None | Stage::Midstream) {
        v.handshake.client_is_low == 1
    } else {
        true
    }
}

/// Handshake RTTs of a flow: (total once established, SYN -> SYN-ACK, SYN-ACK -> ACK).
fn rtts(v: &FlowValue) -> (Option<u32>, Option<u32>, Option<u32>) {
    let h = &v.handshake;
    let established = matches!(
        h.stage(),
        Stage::Established | Stage::Closing | Stage::Closed
    );
    (
        (established && h.rtt_syn_us > 0).then(|| h.rtt_syn_us + h.rtt_ack_us),
        (h.rtt_syn_us > 0).then_some(h.rtt_syn_us),
        (h.rtt_ack_us > 0).then_some(h.rtt_ack_us),
    )
}

pub fn row(key: &FlowKey, v: &FlowValue, iface: String) -> FlowRow {
    let (src, dst) = endpoints(key, low_first(key.proto, v));
    let (rtt_us, rtt_synack_us, rtt_ack_us) = rtts(v);
    FlowRow {
        iface,
        src,
        dst,
        proto: proto_name(key.proto).into(),
        stage: stage_name(key.proto, v.handshake.stage()).into(),
        packets: v.packets[0] + v.packets[1],
        bytes: v.bytes[0] + v.bytes[1],
        rtt_us,
        rtt_synack_us,
        rtt_ack_us,
    }
}

/// A flow regardless of interface: the kernel keys its table per interface, so a flow that
/// crosses two watched interfaces (a router's) has an entry on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    ip_version: u8,
    proto: u8,
    lo_port: u16,
    hi_port: u16,
    lo: [u8; 16],
    hi: [u8; 16],
}

impl FlowId {
    pub fn of(k: &FlowKey) -> FlowId {
        FlowId {
            ip_version: k.ip_version,
            proto: k.proto,
            lo_port: k.lo_port,
            hi_port: k.hi_port,
            lo: k.lo,
            hi: k.hi,
        }
    }
}

/// One direction of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Direction {
    pub packets: u64,
    pub bytes: u64,
}

/// A flow as one interface saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlowOnIface {
    pub iface: String,
    /// Sent by `src` and by `dst` of the flow's row.
    pub from_src: Direction,
    pub from_dst: Direction,
    pub stage: String,
    pub rtt_us: Option<u32>,
    pub rtt_synack_us: Option<u32>,
    pub rtt_ack_us: Option<u32>,
}

/// One row per flow across the watched interfaces (the JSON's `flows_merged`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlowSummary {
    /// As in [`FlowRow`]: the client when known, for UDP/ICMP the first packet's sender.
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub stage: String,
    /// Interfaces it was seen on, in the order its first packet crossed them.
    pub ifaces: Vec<String>,
    /// Per direction, the most one interface saw (a forwarded flow crosses two with the same
    /// packets; one that dies on the way was seen whole where it came in).
    pub from_src: Direction,
    pub from_dst: Direction,
    pub packets: u64,
    pub bytes: u64,
    /// Both directions over the last interval (0 in the interval the flow first shows).
    pub pps: f64,
    pub bps: f64,
    /// The handshake as the interface that saw it last measured it.
    pub rtt_us: Option<u32>,
    pub rtt_synack_us: Option<u32>,
    pub rtt_ack_us: Option<u32>,
    /// Each interface's view, in `ifaces` order.
    pub seen: Vec<FlowOnIface>,
}

/// Merges the flow table's per-interface entries into one row per flow and ranks them;
/// remembers each flow's totals to take the next interval's rates against.
#[derive(Debug, Default)]
pub struct Merger {
    /// Last interval's totals per flow, sorted by flow: this interval's sorted groups are
    /// joined against it in one pass (no hashing; a map sized for a full table was ~7 MB
    /// each, and growing one past a high-water mark stepped netpost's RSS by as much).
    prev: Vec<(FlowId, [u64; 2])>,
    prev_ns: Option<u64>,
    // Buffers kept from one interval to the next: with a full table (65,536 entries) they
    // are several MB, which allocated and freed every interval made RSS swing and climb.
    totals: Vec<(FlowId, [u64; 2])>,
    order: Vec<(FlowId, usize)>,
    flows: Vec<Merged>,
    idx: Vec<usize>,
}

impl Merger {
    /// Buffers for a table of up to `entries`, reserved once: growing them by doubling as
    /// the table fills stepped RSS up by each copy left behind.
    pub fn with_capacity(entries: usize) -> Merger {
        Merger {
            prev: Vec::with_capacity(entries),
            prev_ns: None,
            totals: Vec::with_capacity(entries),
            order: Vec::with_capacity(entries),
            flows: Vec::with_capacity(entries),
            idx: Vec::with_capacity(entries),
        }
    }

    /// The top `n` flows by bytes, by packets and by current bit rate (together, without
    /// repeats), most bytes first. `now_ns`: when the table was read (any monotonic clock).
    pub fn top(
        &mut self,
        table: &[(FlowKey, FlowValue)],
        n: usize,
        now_ns: u64,
        ifname: &dyn Fn(u32) -> String,
    ) -> Vec<FlowSummary> {
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(table.iter().enumerate().map(|(i, (k, _))| (FlowId::of(k), i)));
        order.sort_unstable();
        let secs = self
            .prev_ns
            .map_or(0.0, |p| now_ns.saturating_sub(p) as f64 / 1e9);
        let mut flows = std::mem::take(&mut self.flows);
        flows.clear();
        let mut totals = std::mem::take(&mut self.totals);
        totals.clear();
        // Both sorted by flow: `before` walks `prev` alongside the groups.
        let mut before = self.prev.iter().peekable();
        let mut start = 0;
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let entries = start..start + group.len();
            start = entries.end;
            // Per direction, the most one interface saw: [packets, bytes].
            let most = |d: usize| {
                group.iter().fold([0u64; 2], |m, &(_, i)| {
                    let v = &table[i].1;
                    [m[0].max(v.packets[d]), m[1].max(v.bytes[d])]
                })
            };
            let (low, high) = (most(0), most(1));
            let now = [low[0] + high[0], low[1] + high[1]];
            let id = group[0].0;
            while before.next_if(|(p, _)| *p < id).is_some() {}
            let (pps, bps) = match before.next_if(|(p, _)| *p == id) {
                Some((_, before)) if secs > 0.0 => (
                    now[0].saturating_sub(before[0]) as f64 / secs,
                    now[1].saturating_sub(before[1]) as f64 * 8.0 / secs,
                ),
                _ => (0.0, 0.0),
            };
            totals.push((id, now));
            flows.push(Merged {
                entries,
                now,
                pps,
                bps,
            });
        }
        // The new totals become `prev`; the old ones' buffer is cleared and refilled next time.
        std::mem::swap(&mut self.prev, &mut totals);
        self.totals = totals;
        self.prev_ns = Some(now_ns);
        let mut chosen: Vec<usize> = Vec::new();
        let rankings: [fn(&Merged) -> f64; 3] =
            [|f| f.now[1] as f64, |f| f.now[0] as f64, |f| f.bps];
        let mut idx = std::mem::take(&mut self.idx);
        for metric in rankings {
            idx.clear();
            idx.extend(0..flows.len());
            let biggest =
                |a: &usize, b: &usize| metric(&flows[*b]).total_cmp(&metric(&flows[*a])).then(a.cmp(b));
            // Only the top n need an order (thousands of flows, a handful listed).
            if n < idx.len() {
                idx.select_nth_unstable_by(n, biggest);
                idx.truncate(n);
            }
            idx.sort_by(biggest);
            for &i in idx.iter().take(n) {
                if !chosen.contains(&i) && metric(&flows[i]) > 0.0 {
                    chosen.push(i);
                }
            }
        }
        chosen.sort_by(|&a, &b| flows[b].now[1].cmp(&flows[a].now[1]).then(a.cmp(&b)));
        let out = chosen
            .into_iter()
            .map(|i| {
                let f = &flows[i];
                let entries: Vec<usize> = order[f.entries.clone()].iter().map(|e| e.1).collect();
                summary(table, &entries, f.now, f.pps, f.bps, ifname)
            })
            .collect();
        self.order = order;
        self.flows = flows;
        self.idx = idx;
        out
    }
}

/// One flow: where its entries are in the sorted order, its totals (packets, bytes) and
/// its rates.
#[derive(Debug)]
struct Merged {
    entries: std::ops::Range<usize>,
    now: [u64; 2],
    pps: f64,
    bps: f64,
}

/// The row of one flow from its entries in the table.
fn summary(
    table: &[(FlowKey, FlowValue)],
    entries: &[usize],
    now: [u64; 2],
    pps: f64,
    bps: f64,
    ifname: &dyn Fn(u32) -> String,
) -> FlowSummary {
    let mut seen: Vec<&(FlowKey, FlowValue)> = entries.iter().map(|&i| &table[i]).collect();
    seen.sort_by_key(|(k, v)| (v.first_ns, k.ifindex));
    let key = &seen[0].0;
    // The handshake as last seen: an interface that saw it beats one that joined midway.
    let (_, best) = seen
        .iter()
        .max_by_key(|(_, v)| {
            let known = !matches!(v.handshake.stage(), Stage::None | Stage::Midstream);
            (known, v.last_ns)
        })
        .copied()
        .expect("a flow has an entry");
    // Who goes first: for UDP/ICMP the sender of the first packet the first interface saw.
    let low = low_first(key.proto, if key.proto == 6 { best } else { &seen[0].1 });
    let (src, dst) = endpoints(key, low);
    let (s, d) = if low { (0, 1) } else { (1, 0) };
    let dir = |v: &FlowValue, i: usize| Direction {
        packets: v.packets[i],
        bytes: v.bytes[i],
    };
    let seen: Vec<FlowOnIface> = seen
        .iter()
        .map(|(k, v)| {
            let (rtt_us, rtt_synack_us, rtt_ack_us) = rtts(v);
            FlowOnIface {
                iface: ifname(k.ifindex),
                from_src: dir(v, s),
                from_dst: dir(v, d),
                stage: stage_name(k.proto, v.handshake.stage()).into(),
                rtt_us,
                rtt_synack_us,
                rtt_ack_us,
            }
        })
        .collect();
    let most = |pick: fn(&FlowOnIface) -> Direction| Direction {
        packets: seen.iter().map(|f| pick(f).packets).max().unwrap_or(0),
        bytes: seen.iter().map(|f| pick(f).bytes).max().unwrap_or(0),
    };
    let (rtt_us, rtt_synack_us, rtt_ack_us) = rtts(best);
    FlowSummary {
        src,
        dst,
        proto: proto_name(key.proto).into(),
        stage: stage_name(key.proto, best.handshake.stage()).into(),
        ifaces: seen.iter().map(|f| f.iface.clone()).collect(),
        from_src: most(|f| f.from_src),
        from_dst: most(|f| f.from_dst),
        packets: now[0],
        bytes: now[1],
        pps,
        bps,
        rtt_us,
        rtt_synack_us,
        rtt_ack_us,
        seen,
    }
}

/// The `n` biggest flows by `metric`, biggest first.
pub fn top(
    flows: &[(FlowKey, FlowValue)],
    n: usize,
    metric: impl Fn(&FlowValue) -> u64,
) -> Vec<&(FlowKey, FlowValue)> {
    let mut all: Vec<&(FlowKey, FlowValue)> = flows.iter().collect();
    let biggest = |a: &&(FlowKey, FlowValue), b: &&(FlowKey, FlowValue)| {
        metric(&b.1).cmp(&metric(&a.1)).then(a.0.cmp(&b.0))
    };
    // Only the top n need an order.
    if n < all.len() {
        all.select_nth_unstable_by(n, biggest);
        all.truncate(n);
    }
    all.sort_by(biggest);
    all
}

/// A client and its half-open handshakes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HalfOpenSource {
    pub src: String,
    pub half_open: u64,
}

/// Half-open handshakes sources named per snapshot.
pub const HALF_OPEN_SOURCES: usize = 5;

/// The clients (addresses) with the most half-open handshakes, most first.
pub fn half_open_sources(flows: &[(FlowKey, FlowValue)]) -> Vec<HalfOpenSource> {
    let mut by: HashMap<IpAddr, u64> = HashMap::new();
    for (k, v) in flows {
        if v.owner == 1 && matches!(v.handshake.stage(), Stage::SynSent | Stage::SynReceived) {
            let client = if v.handshake.client_is_low == 1 { &k.lo } else { &k.hi };
            *by.entry(ip(k.ip_version, client)).or_default() += 1;
        }
    }
    let mut out: Vec<HalfOpenSource> = by
        .into_iter()
        .map(|(a, n)| HalfOpenSource {
            src: a.to_string(),
            half_open: n,
        })
        .collect();
    out.sort_by(|a, b| b.half_open.cmp(&a.half_open).then(a.src.cmp(&b.src)));
    out.truncate(HALF_OPEN_SOURCES);
    out
}

/// Resets of connections between one client address and one server endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResetsBy {
    /// The server endpoint (`ip:port`): the side that answered the SYN.
    pub server: String,
    /// The client's address (ports left out: each connection has its own).
    pub client: String,
    /// `server` or `client`: who sent the reset.
    pub reset_by: &'static str,
    /// Whether the handshake had completed: a reset answering a SYN (a closed port) is not.
    pub established: bool,
    pub resets: u64,
}

/// Resets counted by (server, client, who, established). Bounded: once it holds
/// [`RESET_KEYS`] keys, resets of new keys are not tallied here (a scan from many addresses
/// cannot grow it without end; the funnel's `resets` stays exact).
#[derive(Debug, Default)]
pub struct ResetTally {
    counts: HashMap<(String, String, bool, bool), u64>,
}

/// Keys a [`ResetTally`] keeps.
const RESET_KEYS: usize = 1024;
/// Rows of `resets_by`.
pub const RESETS_SHOWN: usize = 10;

impl ResetTally {
    /// Counts a reset event.
    pub fn add(&mut self, e: &FlowEvent) {
        let (_, server) = endpoints(&e.key, e.client_is_low == 1);
        let k = &e.key;
        let client = if e.client_is_low == 1 { &k.lo } else { &k.hi };
        let client = ip(k.ip_version, client).to_string();
        let key = (server, client, e.by_client == 1, e.rtt_ack_us > 0);
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
        } else if self.counts.len() < RESET_KEYS {
            self.counts.insert(key, 1);
        }
    }

    /// The busiest keys, most first.
    pub fn top(&self) -> Vec<ResetsBy> {
        let mut out: Vec<ResetsBy> = self
            .counts
            .iter()
            .map(|((server, client, by_client, established), n)| ResetsBy {
                server: server.clone(),
                client: client.clone(),
                reset_by: if *by_client { "client" } else { "server" },
                established: *established,
                resets: *n,
            })
            .collect();
        out.sort_by(|a, b| {
            b.resets
                .cmp(&a.resets)
                .then_with(|| (&a.server, &a.client).cmp(&(&b.server, &b.client)))
        });
        out.truncate(RESETS_SHOWN);
        out
    }
}

/// Flows between SYN and the completing ACK.
pub fn half_open(flows: &[(FlowKey, FlowValue)]) -> u64 {
    // One per connection however many watched interfaces it crosses: the entry of the one
    // that speaks for it.
    flows
        .iter()
        .filter(|(_, v)| {
            v.owner == 1 && matches!(v.handshake.stage(), Stage::SynSent | Stage::SynReceived)
        })
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
    // The client for TCP; for UDP/ICMP the sender of the flow's first packet.
    let (src, dst) = endpoints(&e.key, e.client_is_low == 1);
    EventView {
        ts_ns: e.ts_ns,
        event: match e.kind {
            event::NEW_FLOW => "new_flow",
            event::ANSWERED => "answered",
            event::ESTABLISHED => "established",
            event::RESET => "reset",
            event::CLOSED => "closed",
            event::TIMED_OUT => "handshake_timeout",
            event::UNDONE => "ack_lost",
            _ => "unknown",
        },
        iface,
        proto: proto_name(e.key.proto),
        src,
        dst,
        stage: stage_name(e.key.proto, stage),
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
            // The only watched interface the flow crosses speaks for it.
            owner: 1,
            ..Default::default()
        }
    }

    #[test]
    fn half_open_handshakes_are_named_by_client() {
        let flows = [
            (key(1, 40000, 7200), value(100, Stage::SynReceived, true)),
            (key(1, 40001, 7200), value(100, Stage::SynSent, true)),
            (key(2, 40000, 7200), value(100, Stage::SynReceived, true)),
            (key(3, 40000, 7200), value(100, Stage::Established, true)),
        ];
        let top = half_open_sources(&flows);
        let got: Vec<(&str, u64)> = top.iter().map(|s| (s.src.as_str(), s.half_open)).collect();
        assert_eq!(got, [("10.0.0.1", 2), ("10.0.0.2", 1)]);
        assert_eq!(half_open(&flows), 3);
    }

    #[test]
    fn resets_are_tallied_by_server_client_and_whether_established() {
        let mut t = ResetTally::default();
        let reset = |lo_last: u8, lo_port: u16, established: bool, by_client: bool| FlowEvent {
            key: key(lo_last, lo_port, 7300),
            kind: event::RESET,
            client_is_low: 1,
            by_client: by_client as u8,
            rtt_syn_us: 40,
            rtt_ack_us: if established { 60 } else { 0 },
            ..Default::default()
        };
        for port in 40000..40005 {
            t.add(&reset(1, port, true, false));
        }
        t.add(&reset(2, 40000, true, false));
        t.add(&reset(1, 40009, false, false));
        let top = t.top();
        assert_eq!(
            top[0],
            ResetsBy {
                server: "10.0.0.200:7300".into(),
                client: "10.0.0.1".into(),
                reset_by: "server",
                established: true,
                resets: 5,
            },
            "one row per client address, ports left out"
        );
        assert_eq!(top.len(), 3);
        assert!(top.iter().any(|r| !r.established && r.resets == 1));
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
    fn udp_and_icmp_rows_and_events_go_from_the_first_sender_with_no_stage() {
        let mut k = key(1, 0, 0);
        k.proto = 1;
        // An ICMP port-unreachable sent by the high endpoint (10.0.0.200) to 10.0.0.1.
        let v = FlowValue {
            packets: [0, 1],
            bytes: [0, 70],
            ..Default::default()
        };
        let r = row(&k, &v, "veth0".into());
        assert_eq!((r.src.as_str(), r.dst.as_str()), ("10.0.0.200", "10.0.0.1"));
        assert_eq!(r.stage, NO_STAGE);
        let e = FlowEvent {
            key: k,
            kind: event::NEW_FLOW,
            client_is_low: 0,
            ..Default::default()
        };
        let view = event_view(&e, "veth0".into());
        assert_eq!((view.src.as_str(), view.dst.as_str()), ("10.0.0.200", "10.0.0.1"));
        assert_eq!(view.stage, r.stage, "the same string in events and rows");
    }

    #[test]
    fn a_flow_crossing_two_interfaces_is_one_row_with_both_and_rates() {
        let on = |ifindex: u32, first_ns: u64, packets: [u64; 2], bytes: [u64; 2]| {
            let mut k = key(1, 40000, 80);
            k.ifindex = ifindex;
            let mut v = value(0, Stage::Established, true);
            v.first_ns = first_ns;
            v.last_ns = first_ns + 10;
            v.packets = packets;
            v.bytes = bytes;
            (k, v)
        };
        let other = (key(9, 1, 80), value(10, Stage::Established, true));
        let names = |i: u32| format!("veth{i}");
        let mut merger = Merger::default();
        // In on veth3, out on veth2 (seen there later); the reply direction likewise.
        let table = vec![
            on(2, 200, [10, 8], [10_000, 800]),
            on(3, 100, [10, 8], [10_000, 800]),
            other,
        ];
        let rows = merger.top(&table, 10, 1_000_000_000, &names);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let f = &rows[0];
        assert_eq!(f.ifaces, ["veth3", "veth2"], "in the order the flow crossed them");
        assert_eq!((f.src.as_str(), f.dst.as_str()), ("10.0.0.1:40000", "10.0.0.200:80"));
        assert_eq!((f.from_src.bytes, f.from_dst.bytes), (10_000, 800), "not doubled");
        assert_eq!((f.packets, f.bytes), (18, 10_800));
        assert_eq!((f.stage.as_str(), f.rtt_us), ("established", Some(100)));
        assert_eq!(f.seen.len(), 2);
        assert_eq!(f.bps, 0.0, "no rate before a second reading");
        // Half a second later: 5,000 more bytes in 5 packets from the client.
        let table = vec![
            on(2, 200, [15, 8], [15_000, 800]),
            on(3, 100, [15, 8], [15_000, 800]),
            other,
        ];
        let rows = merger.top(&table, 10, 1_500_000_000, &names);
        assert_eq!((rows[0].pps, rows[0].bps), (10.0, 80_000.0));
    }

    #[test]
    fn each_flow_s_rate_is_taken_against_its_own_last_total_as_flows_come_and_go() {
        // Flow i sent 1000 * i bytes in a packet each; the table is in no particular order.
        let entry = |i: u8, packets: u64| {
            let mut v = value(0, Stage::Established, true);
            v.packets = [packets, 0];
            v.bytes = [packets * 1000 * u64::from(i), 0];
            (key(i, u16::from(i), 80), v)
        };
        let names = |i: u32| format!("if{i}");
        let mut merger = Merger::default();
        let first = vec![entry(5, 1), entry(2, 1), entry(8, 1), entry(3, 1)];
        merger.top(&first, 10, 1_000_000_000, &names);
        // A second later: 2 and 8 are gone, 1, 4 and 9 are new, 3 and 5 sent 2 and 4 more.
        let second = vec![entry(9, 7), entry(3, 3), entry(1, 2), entry(5, 5), entry(4, 1)];
        let rows = merger.top(&second, 10, 2_000_000_000, &names);
        let rates: Vec<(String, f64)> = rows.iter().map(|r| (r.src.clone(), r.pps)).collect();
        let pps = |src: &str| rates.iter().find(|(s, _)| s == src).map(|r| r.1);
        assert_eq!(pps("10.0.0.3:3"), Some(2.0), "{rates:?}");
        assert_eq!(pps("10.0.0.5:5"), Some(4.0), "{rates:?}");
        for new in ["10.0.0.1:1", "10.0.0.4:4", "10.0.0.9:9"] {
            assert_eq!(pps(new), Some(0.0), "{new} has no earlier total: {rates:?}");
        }
        // Half a second on, only 9 and 1 sent: 3 more packets each.
        let third = vec![entry(1, 5), entry(9, 10), entry(3, 3), entry(5, 5), entry(4, 1)];
        let rows = merger.top(&third, 10, 2_500_000_000, &names);
        let rates: Vec<(String, f64)> = rows.iter().map(|r| (r.src.clone(), r.pps)).collect();
        assert_eq!(rates.iter().find(|r| r.0 == "10.0.0.1:1").map(|r| r.1), Some(6.0));
        assert_eq!(rates.iter().find(|r| r.0 == "10.0.0.9:9").map(|r| r.1), Some(6.0));
        assert_eq!(rates.iter().find(|r| r.0 == "10.0.0.3:3").map(|r| r.1), Some(0.0));
    }

    #[test]
    fn merged_rows_are_the_top_by_bytes_packets_and_rate_together() {
        let flows: Vec<(FlowKey, FlowValue)> = (1..=4)
            .map(|i| (key(i, i as u16, 80), value(1000 * i as u64, Stage::Established, true)))
            .collect();
        let mut merger = Merger::default();
        let rows = merger.top(&flows, 2, 1, &|i| format!("if{i}"));
        let srcs: Vec<&str> = rows.iter().map(|r| r.src.as_str()).collect();
        assert_eq!(srcs, ["10.0.0.4:4", "10.0.0.3:3"]);
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
        let mut twice = flows.clone();
        twice.push((key(2, 2, 80), FlowValue { owner: 0, ..flows[1].1 }));
        assert_eq!(half_open(&twice), 2, "a second interface's entry is not counted");
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
