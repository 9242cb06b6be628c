//! Where and why packets die: the kfree_skb raw tracepoint (no tracefs needed; its link is an
//! fd, so it goes away with netpost), its counts per (reason, protocol, dropping function)
//! and its sampled drops, named from the kernel's BTF and /proc/kallsyms.
pub mod model;

use std::{cell::RefCell, collections::BTreeMap, io};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use netpost_common::drops::{DropKey, DropOffsets, DropSample};

use crate::{
    delta::since,
    error::SetupError,
    kernel_btf::{BtfOffsetError, KernelBtf},
    ksyms::Ksyms,
    loader::{attach, maps},
    model::RawSample,
    netns,
    probe::{
        api::{Probe, Setup, Target, Tick},
        status::Status,
    },
};
use model::{DropsRaw, Names, SampleView};

/// The drop program (the recorder's kernel half runs in it too).
pub const PROG_KFREE_SKB: &str = "netpost_kfree_skb";
const GLOBAL_DROP_OFFSETS: &str = "NETPOST_DROP_OFFSETS";
const MAP_DROPS: &str = "NETPOST_DROPS";
const MAP_SAMPLES: &str = "NETPOST_DROP_SAMPLES";
const MAP_EVENTS_LOST: &str = "NETPOST_EVENTS_LOST";
/// Samples a snapshot keeps.
const KEEP_SAMPLES: usize = 16;

impl KernelBtf {
    /// The kernel struct offsets the drop program reads at (`watch_inum` left 0).
    pub fn drop_offsets(&self) -> Result<DropOffsets, BtfOffsetError> {
        let at = |s: &str, m: &str, size: u32| self.member_sized(s, m, size);
        Ok(DropOffsets {
            skb_dev: at("sk_buff", "dev", 8)?,
            skb_sk: at("sk_buff", "sk", 8)?,
            skb_protocol: at("sk_buff", "protocol", 2)?,
            skb_head: at("sk_buff", "head", 8)?,
            skb_network_header: at("sk_buff", "network_header", 2)?,
            // possible_net_t is a struct holding only the struct net pointer.
            dev_net: at("net_device", "nd_net", 8)?,
            sk_net: self.member("sock", "__sk_common")?.offset + at("sock_common", "skc_net", 8)?,
            net_inum: netns::inum_offset(self)?,
            watch_inum: 0,
            _pad: 0,
        })
    }
}

/// The program's maps, taken out of the Ebpf object.
pub struct DropMaps {
    counts: PerCpuHashMap<MapData, DropKey, u64>,
    samples: RefCell<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    names: RefCell<Names>,
    recent: RefCell<Vec<SampleView>>,
}

impl DropMaps {
    pub fn take(ebpf: &mut Ebpf, names: Names) -> Result<DropMaps, SetupError> {
        Ok(DropMaps {
            counts: maps::take(ebpf, MAP_DROPS)?,
            samples: RefCell::new(maps::take(ebpf, MAP_SAMPLES)?),
            lost: maps::take(ebpf, MAP_EVENTS_LOST)?,
            names: RefCell::new(names),
            recent: RefCell::new(Vec::new()),
        })
    }

    /// Raw counts per key, summed over CPUs.
    pub fn counts(&self) -> io::Result<BTreeMap<DropKey, u64>> {
        maps::sum_hash(&self.counts)
    }

    /// Counts since `baseline`, named, with the samples drained from the ring buffer.
    pub fn read(&self, baseline: &BTreeMap<DropKey, u64>) -> io::Result<DropsRaw> {
        let since = since(&self.counts()?, baseline);
        let mut names = self.names.borrow_mut();
        let mut recent = self.recent.borrow_mut();
        let mut ring = self.samples.borrow_mut();
        while let Some(item) = ring.next() {
            // Length-checked, unaligned read: the ring gives bytes, not a typed value.
            if item.len() >= size_of::<DropSample>() {
                // SAFETY: DropSample is plain old data and the buffer is long enough.
                let sample = unsafe { (item.as_ptr() as *const DropSample).read_unaligned() };
                recent.push(model::sample_view(&sample, &mut names));
            }
        }
        let excess = recent.len().saturating_sub(KEEP_SAMPLES);
        recent.drain(..excess);
        let lost = self.lost.get(&0, 0).map_err(io::Error::other)?.iter().sum();
        Ok(DropsRaw {
            counts: model::name_counts(&since, &mut names),
            after_last: model::after_last(&since, &names),
            samples: recent.clone(),
            events_lost: lost,
        })
    }
}

#[derive(Default)]
pub struct Drops {
    status: Status,
    /// `enum skb_drop_reason` from the kernel's BTF, named once the maps are taken.
    reasons: Vec<(String, u64)>,
    maps: Option<DropMaps>,
    baseline: BTreeMap<DropKey, u64>,
}

impl Probe for Drops {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, setup: &mut Setup<'_>) {
        let offsets = setup.set_offsets(
            GLOBAL_DROP_OFFSETS,
            |btf| btf.drop_offsets(),
            |o: &mut DropOffsets, inum| o.watch_inum = inum,
        );
        // Reason names are read even when the program cannot run: the BTF is gone after this.
        self.reasons = setup
            .btf()
            .ok()
            .and_then(|b| b.enum_values("skb_drop_reason").ok())
            .unwrap_or_default();
        self.status.advance(|| offsets.map(|_| Status::Pending));
    }

    fn load(&mut self, ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        self.status.advance(|| {
            attach::load_raw_tp(ebpf, PROG_KFREE_SKB)?;
            Ok(Status::Pending)
        });
        Ok(())
    }

    /// Also reads /proc/kallsyms, to name the functions that drop.
    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        let names = Names::new(std::mem::take(&mut self.reasons), Ksyms::load());
        self.maps = Some(DropMaps::take(ebpf, names)?);
        Ok(())
    }

    fn attach(&mut self, ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        self.status.advance(|| {
            attach::attach_raw_tp(ebpf, PROG_KFREE_SKB, "kfree_skb")?;
            Ok(Status::Attached)
        });
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    fn report(&self, _netns: Option<&str>) -> Vec<String> {
        vec![match &self.status {
            Status::Attached => "netpost: drop reasons: kfree_skb tracepoint attached (this namespace's drops only)".to_string(),
            why => format!("netpost: drop reasons: {why}; the other counters continue"),
        }]
    }

    fn baseline(&mut self, _zero: &mut RawSample) -> io::Result<()> {
        if let Some(maps) = &self.maps {
            self.baseline = maps.counts()?;
        }
        Ok(())
    }

    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        if let (Status::Attached, Some(maps)) = (&self.status, &self.maps) {
            let drops = maps.read(&self.baseline)?;
            raw.nf_dropped_after_last = drops.after_last.clone();
            raw.drops = Some(drops);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::kernel_btf::oracle::{Oracle, kernel};

    #[test]
    fn drop_offsets_are_found() {
        let o = kernel().drop_offsets().unwrap();
        let oracle = Oracle::load();
        assert_eq!(o.skb_dev, oracle.member("sk_buff", "dev").0.offset);
        assert_eq!(o.dev_net, oracle.member("net_device", "nd_net").0.offset);
        assert_eq!(
            o.net_inum,
            oracle.member("net", "ns").0.offset + oracle.member("ns_common", "inum").0.offset
        );
    }
}
