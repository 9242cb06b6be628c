//! Flows and TCP handshakes: the flow table (an LRU hash the tc programs update), the exact
//! handshake funnel counters, and the ring buffer of flow events (state changes only:
//! handshake RTTs, the `--events` stream). The tc programs are the interfaces probe's; this
//! probe owns the maps and their reading: the table in batches, the events as the kernel
//! submits them (the collection loop drains them between samples).
pub mod model;

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    io::{self, Write},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use tokio::io::{Interest, unix::AsyncFd};

use aya::{
    Ebpf,
    maps::{Map, MapData, PerCpuArray, RingBuf},
};
use aya_obj::generated::{bpf_attr, bpf_cmd};
use netpost_common::{
    flows::{FlowEvent, FlowKey, FlowValue, event, funnel},
    handshake::Stage,
};

use crate::{
    error::SetupError,
    loader::maps,
    model::RawSample,
    netdev::ifname,
    probe::{
        api::{Probe, Setup, Target, Tick},
        status::Status,
    },
};
use model::{FlowRow, FlowsRaw, Funnel, RttHistogram};

pub const MAP_FLOWS: &str = "NETPOST_FLOWS";
pub const MAP_EVENTS: &str = "NETPOST_FLOW_EVENTS";
/// Which watched interface speaks for each connection (sized like the flow table).
const MAP_OWNERS: &str = "NETPOST_FLOW_OWNERS";
/// The tc programs' switch for flow tracking.
const GLOBAL_FLOWS_ON: &str = "NETPOST_FLOWS_ON";
const MAP_FUNNEL: &str = "NETPOST_FUNNEL";
/// Handshake RTTs kept for the percentiles (the most recent ones).
const RTT_SAMPLES: usize = 4096;
/// A half-open handshake silent this long has failed (Linux's first SYN retransmits come
/// after 1 and 3 seconds).
const HANDSHAKE_TIMEOUT_NS: u64 = 5_000_000_000;
/// Most events one drain takes (a 4 MiB ring holds ~52,000).
pub const DRAIN_BATCH: u64 = 16_384;
/// Entries per BPF_MAP_LOOKUP_BATCH call.
const BATCH: usize = 1024;

pub struct FlowMaps {
    flows: MapData,
    events: RefCell<RingBuf<MapData>>,
    funnel: PerCpuArray<MapData, u64>,
    rtts: RefCell<VecDeque<u32>>,
    histogram: RefCell<RttHistogram>,
    /// `--events` output.
    stream: RefCell<Option<Box<dyn Write>>>,
    /// Half-open flows already reported as timed out, each with whether the last read still
    /// found it (pruned to the table's contents).
    timed_out: RefCell<HashMap<FlowKey, bool>>,
    timed_out_total: RefCell<u64>,
    /// Flows merged across interfaces, with the totals their rates are taken against.
    merger: RefCell<model::Merger>,
    /// Reset events by server endpoint and client.
    resets: RefCell<model::ResetTally>,
    /// The table as last read: kept between reads, so a full table (65,536 flows by default:
    /// ~8 MB) is not allocated and freed again every interval, which made netpost's RSS swing
    /// by tens of MB with every read. Its capacity is the map's size, reserved on first use.
    table: RefCell<Vec<(FlowKey, FlowValue)>>,
    max_entries: usize,
}

impl FlowMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<FlowMaps, String> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| format!("map {name} missing"))
        };
        let flows = match take(MAP_FLOWS)? {
            Map::LruHashMap(m) | Map::HashMap(m) => m,
            _ => return Err(format!("{MAP_FLOWS}: not a hash map")),
        };
        // The table's size as loaded (`--max-flows`).
        let max_entries = flows
            .info()
            .map_err(|e| format!("{MAP_FLOWS}: {e}"))?
            .max_entries() as usize;
        Ok(FlowMaps {
            flows,
            events: RefCell::new(RingBuf::try_from(take(MAP_EVENTS)?).map_err(|e| e.to_string())?),
            funnel: PerCpuArray::try_from(take(MAP_FUNNEL)?).map_err(|e| e.to_string())?,
            rtts: RefCell::new(VecDeque::new()),
            histogram: RefCell::new(RttHistogram::default()),
            stream: RefCell::new(None),
            timed_out: RefCell::new(HashMap::new()),
            timed_out_total: RefCell::new(0),
            merger: RefCell::new(model::Merger::with_capacity(max_entries)),
            resets: RefCell::new(model::ResetTally::default()),
            table: RefCell::new(Vec::new()),
            max_entries,
        })
    }

    /// Streams every flow event as a JSON line to `out`.
    pub fn stream_events_to(&self, out: Box<dyn Write>) {
        *self.stream.borrow_mut() = Some(out);
    }

    /// Funnel counters now, summed over CPUs.
    pub fn funnel(&self) -> io::Result<Funnel> {
        maps::sum_array(&self.funnel)
    }

    /// One collection: drains events, reads the table, folds the top `top` flows.
    pub fn read(
        &self,
        baseline: &Funnel,
        top: usize,
        ifname: &dyn Fn(u32) -> String,
    ) -> io::Result<FlowsRaw> {
        self.drain_events(ifname)?;
        let mut f = self.funnel()?;
        for (now, base) in f.iter_mut().zip(baseline) {
            *now = now.saturating_sub(*base);
        }
        let mut table = self.table.borrow_mut();
        dump_into(self.flows.fd().as_fd(), &mut table, self.max_entries)?;
        let table = &table[..];
        self.note_timeouts(table, ifname)?;
        let rows = |sorted: Vec<&(FlowKey, FlowValue)>| -> Vec<FlowRow> {
            sorted
                .into_iter()
                .map(|(k, v)| model::row(k, v, ifname(k.ifindex)))
                .collect()
        };
        let rtts: Vec<u32> = self.rtts.borrow().iter().copied().collect();
        let mut handshake = model::handshake_stats(
            &f,
            model::half_open(table),
            &rtts,
            &self.histogram.borrow(),
        );
        handshake.timed_out = *self.timed_out_total.borrow();
        handshake.half_open_sources = model::half_open_sources(table);
        handshake.resets_by = self.resets.borrow().top();
        Ok(FlowsRaw {
            handshake,
            by_bytes: rows(model::top(table, top, |v| v.bytes[0] + v.bytes[1])),
            by_packets: rows(model::top(table, top, |v| v.packets[0] + v.packets[1])),
            active: table.len() as u64,
            events_lost: f[funnel::EVENTS_LOST as usize],
            untracked: f[funnel::UNTRACKED as usize],
            merged: self
                .merger
                .borrow_mut()
                .top(table, top, monotonic_ns(), ifname),
        })
    }

    /// Counts (once) and streams half-open handshakes that went silent: the kernel sees no
    /// packet to emit an event for, so userspace notices the silence.
    fn note_timeouts(
        &self,
        table: &[(FlowKey, FlowValue)],
        ifname: &dyn Fn(u32) -> String,
    ) -> io::Result<()> {
        let now = monotonic_ns();
        let mut seen = self.timed_out.borrow_mut();
        let mut stream = self.stream.borrow_mut();
        seen.values_mut().for_each(|present| *present = false);
        for (key, value) in table {
            if let Some(present) = seen.get_mut(key) {
                *present = true;
                continue;
            }
            let stage = value.handshake.stage();
            // Counted once per connection: by the interface that speaks for it.
            let half_open = matches!(stage, Stage::SynSent | Stage::SynReceived);
            if half_open
                && value.owner == 1
                && now.saturating_sub(value.last_ns) > HANDSHAKE_TIMEOUT_NS
            {
                seen.insert(*key, true);
                *self.timed_out_total.borrow_mut() += 1;
                if let Some(out) = stream.as_mut() {
                    let e = FlowEvent {
                        ts_ns: now,
                        key: *key,
                        kind: event::TIMED_OUT,
                        stage: value.handshake.stage,
                        client_is_low: value.handshake.client_is_low,
                        ..FlowEvent::default()
                    };
                    serde_json::to_writer(&mut *out, &model::event_view(&e, ifname(key.ifindex)))?;
                    out.write_all(b"\n")?;
                }
            }
        }
        seen.retain(|_, present| *present);
        Ok(())
    }

    /// A readiness handle for the event ring buffer: the collection loop drains events as the
    /// kernel submits them, not once per interval, so the buffer only has to hold what
    /// arrives while the reader waits to be scheduled.
    pub fn events_ready(&self) -> io::Result<EventsReady> {
        let fd = self.events.borrow().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is our own duplicate, owned by the AsyncFd and closed only with it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(EventsReady(fd))
    }

    /// Takes the events the kernel submitted so far (RTTs, the `--events` stream), at most
    /// DRAIN_BATCH of them, and returns how many: a caller that got DRAIN_BATCH calls again
    /// (the kernel does not wake a reader that has not caught up) after letting its other
    /// work run, so a flood faster than the reader cannot hold the process in here.
    pub fn drain_events(&self, ifname: &dyn Fn(u32) -> String) -> io::Result<u64> {
        let mut drained = 0;
        let mut ring = self.events.borrow_mut();
        let mut rtts = self.rtts.borrow_mut();
        let mut histogram = self.histogram.borrow_mut();
        let mut stream = self.stream.borrow_mut();
        let mut resets = self.resets.borrow_mut();
        // Names looked up once per drain, not once per event (each lookup is a syscall).
        let mut names: Vec<(u32, String)> = Vec::new();
        while drained < DRAIN_BATCH {
            let Some(item) = ring.next() else { break };
            if item.len() < size_of::<FlowEvent>() {
                continue;
            }
            // SAFETY: FlowEvent is plain old data and the buffer is long enough.
            let e = unsafe { (item.as_ptr() as *const FlowEvent).read_unaligned() };
            drained += 1;
            if e.kind == event::ESTABLISHED && e.rtt_syn_us > 0 {
                if rtts.len() == RTT_SAMPLES {
                    rtts.pop_front();
                }
                rtts.push_back(e.rtt_syn_us + e.rtt_ack_us);
                histogram.observe(e.rtt_syn_us + e.rtt_ack_us);
            }
            if e.kind == event::RESET {
                resets.add(&e);
            }
            if let Some(out) = stream.as_mut() {
                let index = e.key.ifindex;
                let name = match names.iter().find(|(i, _)| *i == index) {
                    Some((_, n)) => n.clone(),
                    None => {
                        let n = ifname(index);
                        names.push((index, n.clone()));
                        n
                    }
                };
                serde_json::to_writer(&mut *out, &model::event_view(&e, name))?;
                out.write_all(b"\n")?;
            }
        }
        if let Some(out) = stream.as_mut() {
            out.flush()?;
        }
        Ok(drained)
    }
}

/// Readiness of the event ring buffer (an epoll registration of its fd; the kernel wakes it
/// when a submit finds the reader caught up).
pub struct EventsReady(AsyncFd<OwnedFd>);

impl EventsReady {
    /// Resolves once events may be waiting. Readiness is cleared before returning: the caller
    /// drains afterwards, so an event submitted during the drain wakes the next wait.
    pub async fn wait(&self) -> io::Result<()> {
        self.0.readable().await?.clear_ready();
        Ok(())
    }
}

#[derive(Default)]
pub struct Flows {
    status: Status,
    maps: Option<FlowMaps>,
    baseline: Funnel,
}

impl Flows {
    /// The flow table and event ring buffer (None when the run does without flows).
    pub fn maps(&self) -> Option<&FlowMaps> {
        self.maps.as_ref().filter(|_| self.status.is_running())
    }

    /// The programs that track flows did not load (a run that does without flows keeps its
    /// `off`).
    pub fn cannot_run(&mut self, why: &str) {
        self.status
            .advance(|| Err(why.to_string()));
    }
}

impl Probe for Flows {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, setup: &mut Setup<'_>) {
        let options = setup.options;
        setup.set_max_entries(MAP_FLOWS, options.max_flows);
        setup.set_max_entries(MAP_OWNERS, options.max_flows);
        setup.set_max_entries(MAP_EVENTS, options.events_bytes);
        // The tc programs track flows only when this probe runs (a profile without it
        // leaves the switch off and the flow code costs nothing).
        setup.set_global(GLOBAL_FLOWS_ON, &1u32);
    }

    fn load(&mut self, _ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        Ok(())
    }

    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        self.maps = Some(FlowMaps::take(ebpf).map_err(SetupError::Load)?);
        Ok(())
    }

    fn attach(&mut self, _ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        // Its kernel code runs in the interfaces probe's tc programs; it reads their maps.
        self.status.advance(|| Ok(Status::Reading));
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    fn baseline(&mut self, _zero: &mut RawSample) -> io::Result<()> {
        if let Some(maps) = &self.maps {
            self.baseline = maps.funnel()?;
        }
        Ok(())
    }

    fn sample(&self, tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        if let Some(maps) = self.maps.as_ref().filter(|_| self.status.is_running()) {
            raw.flows = Some(maps.read(&self.baseline, tick.top, &ifname)?);
        }
        Ok(())
    }
}

/// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Every entry of a hash map of `max_entries` into `out` (emptied first, its allocation
/// kept), BATCH at a time (one syscall per batch instead of two per entry). At most
/// `max_entries`: under churn a walk can meet more (entries added to buckets not yet read
/// after others were evicted from buckets already read), and the buffer is never regrown
/// past the map's size.
fn dump_into<K: Copy, V: Copy>(
    fd: BorrowedFd<'_>,
    out: &mut Vec<(K, V)>,
    max_entries: usize,
) -> io::Result<()> {
    out.clear();
    out.reserve_exact(max_entries);
    // SAFETY: K and V are plain old data (map keys and values); zeroed is a valid value.
    let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let (mut token, mut next): (u64, u64) = (0, 0);
    let mut first = true;
    loop {
        // SAFETY: all-zero is a valid bpf_attr.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the batch member of the zeroed union.
        let b = unsafe { &mut attr.batch };
        b.in_batch = if first {
            0
        } else {
            &token as *const u64 as u64
        };
        b.out_batch = &mut next as *mut u64 as u64;
        b.keys = keys.as_mut_ptr() as u64;
        b.values = values.as_mut_ptr() as u64;
        b.count = BATCH as u32;
        b.map_fd = fd.as_raw_fd() as u32;
        // attr describes buffers of BATCH keys and values that outlive the call.
        let err = crate::bpf_sys::bpf(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr).err();
        // SAFETY: the kernel wrote back how many entries it filled.
        let n = (unsafe { attr.batch.count } as usize)
            .min(BATCH)
            .min(max_entries - out.len());
        out.extend(
            keys[..n]
                .iter()
                .copied()
                .zip(values[..n].iter().copied()),
        );
        if out.len() == max_entries {
            return Ok(());
        }
        match err {
            None => {}
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Some(e) => return Err(e),
        }
        token = next;
        first = false;
    }
}
