//! The per-packet work every hook shares: parse, account, add to this CPU's counters.
use netpost_common::{
    Accounting, Hook, HookCounters, IFINDEX_ARRAY, PacketBytes, Parsed, account, parse,
};

use crate::{
    flows::{self, FlowPacket},
    maps::{COUNTERS, IFACES, IFACES_BY_INDEX},
    packet::Words,
};

/// What a hook knows about a frame beyond its bytes.
pub struct FrameMeta {
    pub ifindex: u32,
    /// L2 bytes that were on the wire but are not in the data (a stripped VLAN tag).
    pub hidden_l2: u32,
    /// Wire segments the frame stands for, if the hook knows (`skb->gso_segs`); 0 = derive
    /// from the MTU.
    pub gso_segs: u32,
}

/// What [`count_tc`] did.
pub mod outcome {
    /// The frame's interface is not watched.
    pub const NOT_COUNTED: u32 = 0;
    /// Counted; no flow can take it.
    pub const UNTRACKED: u32 = 1;
    /// Counted, and `Counted` holds what its flow needs.
    pub const FLOW: u32 = 2;
}

/// What the flow update needs of a frame counted at tc.
pub struct Counted {
    pub packets: u64,
    pub bytes: u64,
    pub flow: FlowPacket,
}

/// Counts one frame at tc and reads what its flow needs into `out` (filled when it returns
/// [`outcome::FLOW`]). The packet is read here only, so the flow update runs in the caller
/// without another BPF-to-BPF call. Not inlined: the verifier would explore the flow update
/// once per path through the parser otherwise (far too many).
#[inline(never)]
pub fn count_tc<P: Words>(hook: Hook, pkt: &P, meta: FrameMeta, out: *mut Counted) -> u32 {
    let ifindex = meta.ifindex;
    let Some((parsed, add)) = count_inline(hook, pkt, meta) else {
        return outcome::NOT_COUNTED;
    };
    let Some(flow) = flows::read(pkt, &parsed, ifindex) else {
        return outcome::UNTRACKED;
    };
    // SAFETY: `out` points at the caller's Counted, which nothing else uses meanwhile.
    unsafe {
        out.write(Counted {
            packets: add.packets,
            bytes: add.bytes,
            flow,
        })
    };
    outcome::FLOW
}

/// Counts one frame; returns what it parsed and added. Inlined where nothing follows (XDP,
/// loopback ingress): a BPF-to-BPF call and return cost as much as a good part of the work.
#[inline(always)]
pub fn count_inline<P: PacketBytes>(
    hook: Hook,
    pkt: &P,
    meta: FrameMeta,
) -> Option<(Parsed, Accounting)> {
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
