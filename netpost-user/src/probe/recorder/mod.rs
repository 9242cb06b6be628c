//! The drop recorder: the packets the kernel drops in the watched namespace, their first
//! `--snaplen` bytes with why they died, into a pcapng file (`--record-drops`) and into the
//! dashboard's flight recorder. Its kernel half runs inside the drop program (the drops
//! probe's `kfree_skb`, netpost-ebpf/src/record.rs); this probe configures it, owns its maps
//! and turns its records into packets. It samples after the rules probe: a netfilter drop's
//! comment names the rule that dropped it when that interval's attribution is sure of one.
pub mod model;

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap, VecDeque},
    io,
    os::fd::{AsFd as _, OwnedFd},
    sync::Arc,
};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
};
use netpost_common::{
    netfilter::NfFamily,
    record::{
        DATA_BYTES, HEADER_LEN, RecordConfig, RecordHeader, SLOTS, Skipped, bucket_for, link,
        slot,
    },
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    error::SetupError,
    kernel_btf::{BtfOffsetError, KernelBtf},
    ksyms::Ksyms,
    loader::maps,
    model::RawSample,
    netdev::ifname,
    pcapng::{Link, Packet, RotatingFile},
    probe::{
        api::{Probe, RecordOptions, Setup, Target, Tick},
        drops::{
            PROG_KFREE_SKB,
            model::{Names, hook_of},
        },
        status::Status,
    },
};
use model::{DropRecord, RecorderStats};

const GLOBAL_CONFIG: &str = "NETPOST_RECORD_CONFIG";
const MAP_RING: &str = "NETPOST_RECORD_RING";
const MAP_SKIPPED: &str = "NETPOST_RECORD_SKIPPED";
/// The ring buffer of records: ~5,000 packets of 128 bytes; netpost empties it every
/// interval, and sooner when the kernel wakes it at a quarter full.
const RING_BYTES: u32 = 1 << 20;
/// Records one read of the ring takes (between samples, so a flood cannot hold the loop).
pub const DRAIN_BATCH: usize = 16_384;
/// Records waiting for the interval's end at most; beyond, they are counted as lost.
const PENDING_MAX: usize = 65_536;

impl KernelBtf {
    /// The kernel struct offsets the recorder reads at (settings left zero).
    pub fn record_offsets(&self) -> Result<RecordConfig, BtfOffsetError> {
        let at = |s: &str, m: &str, size: u32| self.member_sized(s, m, size);
        Ok(RecordConfig {
            skb_len: at("sk_buff", "len", 4)?,
            skb_dev: at("sk_buff", "dev", 8)?,
            skb_mac_header: at("sk_buff", "mac_header", 2)?,
            skb_network_header: at("sk_buff", "network_header", 2)?,
            // sk_buff_data_t: an offset from head on 64-bit kernels.
            skb_tail: at("sk_buff", "tail", 4)?,
            skb_head: at("sk_buff", "head", 8)?,
            skb_data: at("sk_buff", "data", 8)?,
            dev_ifindex: at("net_device", "ifindex", 4)?,
            ..RecordConfig::default()
        })
    }
}

/// Reason names to their `enum skb_drop_reason` values; `NO_SOCKET`, `no_socket` and
/// `SKB_DROP_REASON_NO_SOCKET` all name one. An unknown name is an error listing the known.
pub fn reason_values(wanted: &[String], known: &[(String, u64)]) -> Result<Vec<u64>, String> {
    let short = |n: &str| {
        n.strip_prefix("SKB_DROP_REASON_")
            .unwrap_or(n)
            .to_ascii_uppercase()
    };
    wanted
        .iter()
        .map(|w| {
            known
                .iter()
                .find(|(name, _)| short(name) == short(w))
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let mut names: Vec<String> = known.iter().map(|(n, _)| short(n)).collect();
                    names.sort();
                    format!(
                        "--record-reasons: this kernel has no drop reason '{w}'; it has {}",
                        names.join(", ")
                    )
                })
        })
        .collect()
}

/// The recorder's maps, taken out of the Ebpf object.
struct RecordMaps {
    ring: RefCell<RingBuf<MapData>>,
    skipped: PerCpuArray<MapData, Skipped>,
}

/// What changes as records arrive (samples take `&self`).
#[derive(Default)]
struct State {
    names: Option<Names>,
    /// Records drained since the last sample.
    pending: Vec<DropRecord>,
    recorded: BTreeMap<String, u64>,
    /// Records dropped because `pending` was full.
    lost: BTreeMap<String, u64>,
    /// The last packets, for the dashboard.
    flight: VecDeque<Arc<Packet>>,
    file: Option<RotatingFile>,
    write_error: Option<String>,
    baseline: Option<Box<Skipped>>,
}

#[derive(Default)]
pub struct Recorder {
    status: Status,
    options: RecordOptions,
    /// `enum skb_drop_reason`, read while the BTF is there.
    reasons: Vec<(String, u64)>,
    /// A setup problem the run cannot go on with (a bad `--record-reasons`, or no recorder
    /// while `--record-drops` asks for a file).
    fatal: Option<String>,
    maps: Option<RecordMaps>,
    state: RefCell<State>,
}

impl Recorder {
    /// Writes what is recorded into `file` (`--record-drops`, opened before attaching).
    pub fn write_to(&mut self, file: RotatingFile) {
        self.state.get_mut().file = Some(file);
    }

    /// A readiness handle for the record ring: the kernel wakes it once a quarter of it is
    /// full, so the collection loop drains it before it overflows.
    pub fn ready(&self) -> Option<io::Result<RingReady>> {
        let maps = self.maps.as_ref()?;
        self.status.is_running().then(|| {
            let fd = maps.ring.borrow().as_fd().try_clone_to_owned()?;
            // SAFETY: `fd` is our own duplicate, owned by the AsyncFd and closed only with it.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
            Ok(RingReady(fd))
        })
    }

    /// Moves up to DRAIN_BATCH records from the ring into the interval's queue; returns how
    /// many (DRAIN_BATCH: call again after letting other work run).
    pub fn drain(&self) -> io::Result<usize> {
        let Some(maps) = &self.maps else {
            return Ok(0);
        };
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let Some(names) = st.names.as_mut() else {
            return Ok(0);
        };
        let mut ring = maps.ring.borrow_mut();
        // The kernel stamps CLOCK_MONOTONIC; the file wants wall-clock time.
        let offset = realtime_ns().wrapping_sub(monotonic_ns());
        let mut ifnames: HashMap<u32, String> = HashMap::new();
        let mut n = 0;
        while n < DRAIN_BATCH {
            let Some(item) = ring.next() else { break };
            n += 1;
            if item.len() < HEADER_LEN {
                continue;
            }
            // SAFETY: RecordHeader is plain old data and the buffer is long enough.
            let h = unsafe { (item.as_ptr() as *const RecordHeader).read_unaligned() };
            let reason = names.reason(h.reason);
            if st.pending.len() >= PENDING_MAX {
                *st.lost.entry(reason).or_default() += 1;
                continue;
            }
            let cap = (h.cap_len as usize).min(DATA_BYTES).min(item.len() - HEADER_LEN);
            let iface = (h.ifindex != 0).then(|| {
                ifnames
                    .entry(h.ifindex)
                    .or_insert_with(|| ifname(h.ifindex))
                    .clone()
            });
            *st.recorded.entry(reason.clone()).or_default() += 1;
            st.pending.push(DropRecord {
                ts_ns: h.ts_ns.wrapping_add(offset),
                reason,
                location: names.function(h.location),
                iface,
                family: match h.ethertype {
                    0x0800 => Some(NfFamily::Ipv4),
                    0x86dd => Some(NfFamily::Ipv6),
                    _ => None,
                },
                hook: hook_of(h.nf_where),
                link: match h.link {
                    link::ETHERNET => Some(Link::Ethernet),
                    link::IP => Some(Link::Raw),
                    _ => None,
                },
                orig_len: h.orig_len,
                data: item[HEADER_LEN..HEADER_LEN + cap].to_vec(),
            });
        }
        Ok(n)
    }

}

/// What the kernel left out between `base` and `now`, per reason: by the buckets, for want
/// of room in the ring, for want of a header.
fn skipped_by_reason(now: &Skipped, base: &Skipped, names: &Names) -> [BTreeMap<String, u64>; 3] {
    let mut out: [BTreeMap<String, u64>; 3] = Default::default();
    for s in 0..SLOTS as usize {
        let counts = [
            now.rate[s].saturating_sub(base.rate[s]),
            now.lost[s].saturating_sub(base.lost[s]),
            now.no_header[s].saturating_sub(base.no_header[s]),
        ];
        if counts.iter().any(|n| *n > 0) {
            // Slots name their reason; the last one holds every reason from 255 up.
            let name = names.reason(s as u32);
            for (map, n) in out.iter_mut().zip(counts) {
                *map.entry(name.clone()).or_default() += n;
            }
        }
    }
    out
}

/// Every CPU's counters of left-out records, added up.
fn sum(map: &PerCpuArray<MapData, Skipped>) -> io::Result<Box<Skipped>> {
    let mut out = Box::<Skipped>::default();
    for cpu in map.get(&0, 0).map_err(io::Error::other)?.iter() {
        for s in 0..SLOTS as usize {
            out.rate[s] += cpu.rate[s];
            out.lost[s] += cpu.lost[s];
            out.no_header[s] += cpu.no_header[s];
        }
    }
    Ok(out)
}

/// Readiness of the record ring (an epoll registration of its fd).
pub struct RingReady(AsyncFd<OwnedFd>);

impl RingReady {
    /// Resolves once records may be waiting; readiness is cleared before returning, so a
    /// record submitted during the drain wakes the next wait.
    pub async fn wait(&self) -> io::Result<()> {
        self.0.readable().await?.clear_ready();
        Ok(())
    }
}

impl Probe for Recorder {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, setup: &mut Setup<'_>) {
        let Some(options) = setup.options.record.clone() else {
            self.status = Status::Off("no --record-drops".into());
            return;
        };
        self.options = options;
        self.reasons = setup
            .btf()
            .ok()
            .and_then(|b| b.enum_values("skb_drop_reason").ok())
            .unwrap_or_default();
        let config = (|| -> Result<RecordConfig, String> {
            let mut c = setup
                .btf()?
                .record_offsets()
                .map_err(|e| e.to_string())?;
            if self.options.reasons.is_empty() {
                c.want_all();
            } else {
                for v in reason_values(&self.options.reasons, &self.reasons)
                    .inspect_err(|e| self.fatal = Some(e.clone()))?
                {
                    c.want(slot(v as u32));
                }
            }
            let cpus = aya::util::online_cpus().map_or(1, |c| c.len()) as u32;
            (c.cost_ns, c.burst_ns) = bucket_for(self.options.rate, cpus);
            c.on = 1;
            c.snaplen = self.options.snaplen;
            c.wake_bytes = u64::from(RING_BYTES / 4);
            Ok(c)
        })();
        match &config {
            Ok(c) => {
                setup.set_global(GLOBAL_CONFIG, c);
                setup.set_max_entries(MAP_RING, RING_BYTES);
            }
            Err(why) => {
                if self.options.file.is_some() && self.fatal.is_none() {
                    self.fatal = Some(format!("--record-drops: the recorder cannot run: {why}"));
                }
            }
        }
        self.status.advance(|| config.map(|_| Status::Pending));
    }

    fn load(&mut self, _ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        match &self.fatal {
            Some(why) => Err(SetupError::Recorder(why.clone())),
            None => Ok(()),
        }
    }

    /// Also reads /proc/kallsyms (shared with the drops probe), to name the functions.
    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        self.maps = Some(RecordMaps {
            ring: RefCell::new(maps::take(ebpf, MAP_RING)?),
            skipped: maps::take(ebpf, MAP_SKIPPED)?,
        });
        self.state.get_mut().names = Some(Names::new(self.reasons.clone(), Ksyms::load()));
        Ok(())
    }

    fn attach(&mut self, ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        let loaded = ebpf
            .program(PROG_KFREE_SKB)
            .is_some_and(|p| p.fd().is_ok());
        if !loaded && self.options.file.is_some() {
            return Err(SetupError::Recorder(
                "--record-drops: the drop program (kfree_skb) is not running on this kernel: see its status line".into(),
            ));
        }
        self.status.advance(|| {
            loaded
                .then_some(Status::Reading)
                .ok_or_else(|| "needs the drop program (kfree_skb), which is not running".to_string())
        });
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    fn report(&self, _netns: Option<&str>) -> Vec<String> {
        let what = match &self.options.file {
            Some(path) => format!("to {}", path.display()),
            None => "for the dashboard (key w saves them)".to_string(),
        };
        let snap = match self.options.snaplen {
            0 => "headers only".to_string(),
            n => format!("first {n} bytes"),
        };
        match &self.status {
            // Not asked for: nothing to say.
            Status::Off(_) => vec![],
            Status::Reading => vec![format!(
                "netpost: drop recorder: dropped packets ({snap}, at most {}/s per reason) {what}",
                self.options.rate
            )],
            why => vec![format!("netpost: drop recorder: {why}")],
        }
    }

    /// Records from before counting started are dropped: the file starts with the counts.
    fn baseline(&mut self, _zero: &mut RawSample) -> io::Result<()> {
        let Some(maps) = &self.maps else {
            return Ok(());
        };
        while maps.ring.borrow_mut().next().is_some() {}
        let base = sum(&maps.skipped)?;
        self.state.get_mut().baseline = Some(base);
        Ok(())
    }

    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        let (true, Some(maps)) = (self.status.is_running(), &self.maps) else {
            return Ok(());
        };
        while self.drain()? == DRAIN_BATCH {}
        let now = sum(&maps.skipped)?;
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let Some(names) = st.names.as_ref() else {
            return Ok(());
        };
        let base = st.baseline.as_deref().copied().unwrap_or_default();
        let [skipped_rate, mut lost, no_header] = skipped_by_reason(&now, &base, names);
        // Records netpost's own queue had no room for are lost too.
        for (reason, n) in &st.lost {
            *lost.entry(reason.clone()).or_default() += n;
        }
        for r in std::mem::take(&mut st.pending) {
            let p = Arc::new(model::packet(r, raw.rules.as_ref()));
            if let (Some(file), None) = (st.file.as_mut(), &st.write_error)
                && let Err(e) = file.write(&p)
            {
                eprintln!(
                    "netpost: --record-drops {}: {e}; recording goes on for the counters and the dashboard only",
                    file.path().display()
                );
                st.write_error = Some(e.to_string());
            }
            if self.options.flight > 0 {
                if st.flight.len() == self.options.flight {
                    st.flight.pop_front();
                }
                st.flight.push_back(p);
            }
        }
        if let (Some(file), None) = (st.file.as_mut(), &st.write_error)
            && let Err(e) = file.flush()
        {
            st.write_error = Some(e.to_string());
        }
        let mut stats = RecorderStats {
            file: self.options.file.as_ref().map(|p| p.display().to_string()),
            snaplen: self.options.snaplen,
            rate_per_s: self.options.rate,
            reasons: self.options.reasons.clone(),
            bytes_written: st.file.as_ref().map_or(0, |f| f.bytes()),
            files_rotated: st.file.as_ref().map_or(0, |f| f.rotations),
            write_error: st.write_error.clone(),
            ..Default::default()
        };
        stats.set_counts([&st.recorded, &skipped_rate, &lost, &no_header]);
        raw.recorder = Some(model::RecorderRaw {
            stats,
            flight: Arc::new(st.flight.iter().cloned().collect()),
        });
        Ok(())
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC: the clock of bpf_ktime_get_ns.
fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_btf::oracle::{Oracle, kernel};

    #[test]
    fn record_offsets_are_found() {
        let o = kernel().record_offsets().unwrap();
        let oracle = Oracle::load();
        assert_eq!(o.skb_tail, oracle.member("sk_buff", "tail").0.offset);
        assert_eq!(o.skb_mac_header, oracle.member("sk_buff", "mac_header").0.offset);
        assert_eq!(o.dev_ifindex, oracle.member("net_device", "ifindex").0.offset);
        // The header offsets, tail, head and data are one read of at most 32 bytes.
        let lo = o.skb_mac_header.min(o.skb_network_header);
        assert!(o.skb_data + 8 - lo <= 32, "{o:?}");
    }

    #[test]
    fn reasons_are_named_as_the_drop_counters_name_them() {
        let known = vec![
            ("SKB_DROP_REASON_NO_SOCKET".to_string(), 3),
            ("SKB_DROP_REASON_NETFILTER_DROP".to_string(), 12),
        ];
        let want = |names: &[&str]| {
            reason_values(
                &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &known,
            )
        };
        assert_eq!(want(&["NO_SOCKET", "netfilter_drop"]), Ok(vec![3, 12]));
        assert_eq!(want(&["SKB_DROP_REASON_NO_SOCKET"]), Ok(vec![3]));
        let e = want(&["NO_SUCH"]).unwrap_err();
        assert!(
            e.contains("--record-reasons") && e.contains("'NO_SUCH'") && e.contains("NETFILTER_DROP, NO_SOCKET"),
            "{e}"
        );
    }
}
