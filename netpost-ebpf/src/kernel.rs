//! Reading kernel structs from the tracepoint programs: fields at offsets userspace found in
//! the running kernel's BTF, and the namespace check they all share.
use aya_ebpf::helpers::bpf_probe_read_kernel;

/// The `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one only returns an error.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// Whether `net` (a `struct net *`) is the watched namespace: its `ns.inum` (at
/// `inum_offset`) equals `watch_inum`, or `watch_inum` is 0 (watch everything).
#[inline(always)]
pub fn is_watched(net: u64, inum_offset: u32, watch_inum: u32) -> Option<()> {
    if net == 0 {
        return None;
    }
    (watch_inum == 0 || read::<u32>(net, inum_offset)? == watch_inum).then_some(())
}
