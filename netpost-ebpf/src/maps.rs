//! Maps shared by every program (userspace reads them by these names).
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use netpost_common::{HookCounters, IfaceInfo, MAX_IFACES};

/// ifindex -> counters slot and MTU, filled by userspace before it attaches anything.
#[map(name = "NETPOST_IFACES")]
pub static IFACES: HashMap<u32, IfaceInfo> = HashMap::with_max_entries(MAX_IFACES, 0);

/// Per-CPU counters, one entry per (interface slot, hook).
#[map(name = "NETPOST_COUNTERS")]
pub static COUNTERS: PerCpuArray<HookCounters> =
    PerCpuArray::with_max_entries(HookCounters::ENTRIES, 0);
