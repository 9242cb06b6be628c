//! The interfaces' maps, shared by the XDP and tc programs (userspace reads them by these
//! names).
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use netpost_common::{HookCounters, IFINDEX_ARRAY, IfaceInfo, MAX_IFACES};

/// ifindex -> counters slot and MTU for ifindexes below IFINDEX_ARRAY (an array lookup is
/// much cheaper per packet than a hash lookup); filled by userspace before it attaches.
#[map(name = "NETPOST_IFACES_BY_INDEX")]
pub static IFACES_BY_INDEX: Array<IfaceInfo> = Array::with_max_entries(IFINDEX_ARRAY, 0);

/// The same for larger ifindexes.
#[map(name = "NETPOST_IFACES")]
pub static IFACES: HashMap<u32, IfaceInfo> = HashMap::with_max_entries(MAX_IFACES, 0);

/// Per-CPU counters, one entry per (interface slot, hook).
#[map(name = "NETPOST_COUNTERS")]
pub static COUNTERS: PerCpuArray<HookCounters> =
    PerCpuArray::with_max_entries(HookCounters::ENTRIES, 0);
