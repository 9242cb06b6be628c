//! The kfree_skb program's loader side: its kernel offsets, its maps, reading and naming
//! what it counted. The program is a raw tracepoint (no tracefs needed) whose link is an
//! fd, so it goes away with netpost.
use std::{cell::RefCell, collections::BTreeMap, io, os::unix::fs::MetadataExt as _};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use netpost_common::drops::{DropKey, DropOffsets, DropSample};

use crate::{
    drops::{self, DropsRaw, Names, SampleView},
    kernel_btf::KernelBtf,
    ksyms::Ksyms,
    maps_util,
};

pub const PROG_KFREE_SKB: &str = "netpost_kfree_skb";
pub const GLOBAL_DROP_OFFSETS: &str = "NETPOST_DROP_OFFSETS";
const MAP_DROPS: &str = "NETPOST_DROPS";
const MAP_SAMPLES: &str = "NETPOST_DROP_SAMPLES";
const MAP_EVENTS_LOST: &str = "NETPOST_EVENTS_LOST";
/// Samples a snapshot keeps.
const KEEP_SAMPLES: usize = 16;

/// The inode number of the network namespace this thread is in (netpost entered `--netns`
/// before loading): the namespace the tracepoint programs count.
pub fn this_netns_inum() -> Result<u32, String> {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino() as u32)
        .map_err(|e| format!("reading this namespace: {e}"))
}

/// The offsets the program reads at, counting namespace `watch_inum`.
pub fn offsets(btf: &KernelBtf, watch_inum: u32) -> Result<DropOffsets, String> {
    let mut offsets = btf.drop_offsets().map_err(|e| e.to_string())?;
    offsets.watch_inum = watch_inum;
    Ok(offsets)
}

/// The (name, value) pairs of `enum skb_drop_reason` in the running kernel's BTF (none when
/// it has no such enum).
pub fn reasons(btf: Option<&KernelBtf>) -> Vec<(String, u64)> {
    btf.and_then(|b| b.enum_values("skb_drop_reason").ok())
        .unwrap_or_default()
}

/// Names for drop reasons and dropping functions (numbers stand in for reasons not in
/// `reasons`).
pub fn names(reasons: Vec<(String, u64)>) -> Names {
    Names::new(reasons, Ksyms::load())
}

/// Loads the program into the kernel (not attached).
pub fn load(ebpf: &mut Ebpf) -> Result<(), String> {
    maps_util::load_raw_tp(ebpf, PROG_KFREE_SKB)
}

/// Attaches the loaded program to the kfree_skb tracepoint.
pub fn attach(ebpf: &mut Ebpf) -> Result<(), String> {
    maps_util::attach_raw_tp(ebpf, PROG_KFREE_SKB, "kfree_skb")
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
    pub fn take(ebpf: &mut Ebpf, names: Names) -> Result<DropMaps, String> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| format!("map {name} missing"))
        };
        Ok(DropMaps {
            counts: PerCpuHashMap::try_from(take(MAP_DROPS)?).map_err(|e| e.to_string())?,
            samples: RefCell::new(
                RingBuf::try_from(take(MAP_SAMPLES)?).map_err(|e| e.to_string())?,
            ),
            lost: PerCpuArray::try_from(take(MAP_EVENTS_LOST)?).map_err(|e| e.to_string())?,
            names: RefCell::new(names),
            recent: RefCell::new(Vec::new()),
        })
    }

    /// Raw counts per key, summed over CPUs.
    pub fn counts(&self) -> io::Result<BTreeMap<DropKey, u64>> {
        maps_util::sum_hash(&self.counts)
    }

    /// Counts since `baseline`, named, with the samples drained from the ring buffer.
    pub fn read(&self, baseline: &BTreeMap<DropKey, u64>) -> io::Result<DropsRaw> {
        let since = drops::since(&self.counts()?, baseline);
        let mut names = self.names.borrow_mut();
        let mut recent = self.recent.borrow_mut();
        let mut ring = self.samples.borrow_mut();
        while let Some(item) = ring.next() {
            // Length-checked, unaligned read: the ring gives bytes, not a typed value.
            if item.len() >= size_of::<DropSample>() {
                // SAFETY: DropSample is plain old data and the buffer is long enough.
                let sample = unsafe { (item.as_ptr() as *const DropSample).read_unaligned() };
                recent.push(drops::sample_view(&sample, &mut names));
            }
        }
        let excess = recent.len().saturating_sub(KEEP_SAMPLES);
        recent.drain(..excess);
        let lost = self.lost.get(&0, 0).map_err(io::Error::other)?.iter().sum();
        Ok(DropsRaw {
            counts: drops::name_counts(&since, &mut names),
            samples: recent.clone(),
            events_lost: lost,
        })
    }
}
