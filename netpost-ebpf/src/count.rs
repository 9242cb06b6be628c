//! The per-packet work every hook shares: parse, account, add to this CPU's counters.
use netpost_common::{
    Accounting, Hook, HookCounters, IFINDEX_ARRAY, PacketBytes, Parsed, account, parse,
};

use crate::maps::{COUNTERS, IFACES, IFACES_BY_INDEX};

/// What a hook knows about a frame beyond its bytes.
pub struct FrameMeta {
    pub ifindex: u32,
    /// L2 bytes that were on the wire but are not in the data (a stripped VLAN tag).
    pub hidden_l2: u32,
    /// Wire segments the frame stands for, if the hook knows (`skb->gso_segs`); 0 = derive
    /// from the MTU.
    pub gso_segs: u32,
}

/// Counts one frame; returns what it parsed and added, for the hooks that do more with it.
/// Not inlined: its stack frame is gone before the flow tracking's begins.
#[inline(never)]
pub fn count<P: PacketBytes>(hook: Hook, pkt: &P, meta: FrameMeta) -> Option<(Parsed, Accounting)> {
    let iface = if meta.ifindex < IFINDEX_ARRAY {
        let iface = IFACES_BY_INDEX.get(meta.ifindex)?;
        if iface.mtu == 0 {
            return None;
        }
        iface
    } else {
        // SAFETY: the value is plain data that only userspace writes, before attaching.
        unsafe { IFACES.get(meta.ifindex) }?
    };
    let counters = COUNTERS.get_ptr_mut(HookCounters::index(iface.slot, hook))?;
    let parsed = parse(pkt);
    let segments = if meta.gso_segs == 0 {
        netpost_common::estimate_segments(&parsed, iface.mtu)
    } else {
        meta.gso_segs
    };
    let add = account(&parsed, pkt.frame_len(), meta.hidden_l2, segments);
    // SAFETY: a per-CPU array value: only this CPU's copy, valid for the program's run.
    let counters = unsafe { &mut *counters };
    let cell = counters
        .by
        .get_mut(parsed.family as usize)
        .and_then(|row| row.get_mut(parsed.proto as usize))?;
    cell.frames += add.frames;
    cell.packets += add.packets;
    cell.bytes += add.bytes;
    cell.header_bytes += add.header_bytes;
    cell.payload_bytes += add.payload_bytes;
    Some((parsed, add))
}
