//! The per-packet work the XDP and tc hooks share (`interfaces`): parse, account, add to
//! this CPU's counters; at tc, also read what the packet's flow needs.
use netpost_common::{
    Accounting, Counters, Family, Hook, HookCounters, IFINDEX_ARRAY, PacketBytes, Parsed, Proto,
    account, gso_segments, parse,
};

use crate::{
    bounds::below,
    flows,
    maps::{COUNTERS, IFACES, IFACES_BY_INDEX},
};

/// The loopback device's ifindex in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// What a hook knows about a frame beyond its bytes.
#[derive(Clone, Copy)]
pub struct FrameMeta {
    pub ifindex: u32,
    /// L2 bytes that were on the wire but are not in the data (a stripped VLAN tag).
    pub hidden_l2: u32,
    /// `skb->gso_segs` (tc): wire segments, when the kernel has counted them.
    pub gso_segs: u32,
    /// `skb->gso_size` (tc): payload bytes per segment of a GSO skb, 0 for others.
    pub gso_size: u32,
    /// XDP: no skb, so no GSO fields; a super-packet's segments are estimated from the MTU.
    pub estimate: bool,
}

/// What the program after the count (`netpost_tc_after`) needs of a frame counted at tc:
/// how it was counted, where its headers are (it reads addresses and ports itself), and what
/// is left to do.
#[derive(Clone, Copy)]
pub struct Counted {
    pub packets: u64,
    pub bytes: u64,
    pub ifindex: u32,
    /// Its counters (`HookCounters::index`) and cell in them, for the tunnel correction (as
    /// plain integers: the compiler would drop the bounds checks of enums read back from
    /// memory, which the verifier needs).
    pub counters: u32,
    pub family: u32,
    pub proto: u32,
    pub gso_segs: u32,
    pub gso_size: u32,
    pub hidden_l2: u32,
    pub frame_len: u32,
    /// 1: flows are tracked for it (this run tracks flows, and it is not loopback ingress).
    pub track: u32,
    pub parsed: Parsed,
}

/// Counts one frame at tc; returns whether it left in `out` (this CPU's scratch value) work
/// for the program after the count: a tunnel's inner headers of a super-packet, the flow.
/// Both run there, not here: verified on their own, their paths do not multiply with the
/// parser's (the tunnel code alone made these programs too large to verify), and the tail
/// call that gets there is a direct jump.
///
/// Inlined, not a BPF-to-BPF subprogram: verifiers before 6.3 cannot track which values
/// must be exact ("precise") back across a subprogram's return, so they give up and treat
/// every value as exact, after which hardly any two paths look alike and cannot be pruned.
#[inline(always)]
pub fn count_tc<P: PacketBytes>(hook: Hook, pkt: &P, meta: FrameMeta, out: *mut Counted) -> bool {
    let (ifindex, gso_segs, gso_size, hidden_l2) =
        (meta.ifindex, meta.gso_segs, meta.gso_size, meta.hidden_l2);
    let Some((parsed, add, counters)) = count_inline(hook, pkt, meta) else {
        return false;
    };
    // Loopback hands every packet from its egress to its ingress: flows there are tracked
    // on the way out only, so each packet counts once. As few decisions as possible here
    // (each one multiplies the paths the verifier walks through the parser): the program
    // after the count makes the others.
    let track = !(hook == Hook::TcIngress && ifindex == LOOPBACK_IFINDEX) && flows::tracking();
    if !track && gso_size == 0 {
        return false;
    }
    // SAFETY: `out` points at this CPU's scratch value, which nothing else uses meanwhile.
    unsafe {
        out.write(Counted {
            packets: add.packets,
            bytes: add.bytes,
            ifindex,
            counters,
            family: parsed.family as u32,
            proto: parsed.proto as u32,
            gso_segs,
            gso_size,
            hidden_l2,
            frame_len: pkt.frame_len(),
            track: track as u32,
            parsed,
        })
    };
    true
}

/// Adds to the counters at `index` what a tunnel's inner headers (`inner` bytes per segment)
/// change in a super-packet `c` counted without them; returns the packets and bytes it
/// stands for now. Bytes grow by the headers every extra segment repeats, payload shrinks
/// by them (the per-CPU value may go below zero: userspace sums the CPUs wrapping).
#[inline(always)]
pub fn add_tunnel_headers(c: &Counted, inner: u32) -> Option<(u64, u64)> {
    let before = account(&c.parsed, c.frame_len, c.hidden_l2, segments(c, &c.parsed));
    let mut parsed = c.parsed;
    parsed.header_len += inner;
    let after = account(&parsed, c.frame_len, c.hidden_l2, segments(c, &parsed));
    let counters = COUNTERS.get_ptr_mut(c.counters)?;
    // SAFETY: a per-CPU array value: only this CPU's copy, valid for the program's run.
    let counters = unsafe { &mut *counters };
    // Read back from the scratch map: bound again where the verifier sees it.
    let family = below::<{ Family::COUNT as u64 }>(c.family)?;
    let proto = below::<{ Proto::COUNT as u64 }>(c.proto)?;
    let cell = counters
        .by
        .get_mut(family as usize)
        .and_then(|row| row.get_mut(proto as usize))?;
    cell.add(&Counters {
        frames: 0,
        packets: after.packets.wrapping_sub(before.packets),
        bytes: after.bytes.wrapping_sub(before.bytes),
        header_bytes: after.header_bytes.wrapping_sub(before.header_bytes),
        payload_bytes: after.payload_bytes.wrapping_sub(before.payload_bytes),
    });
    Some((after.packets, after.bytes))
}

#[inline(always)]
fn segments(c: &Counted, parsed: &Parsed) -> u32 {
    gso_segments(parsed, c.gso_segs, c.gso_size)
}

/// Counts one frame; returns what it parsed and added. Inlined (XDP, and tc through
/// [`count_tc`]): a BPF-to-BPF call and return cost as much as a good part of the work.
#[inline(always)]
pub fn count_inline<P: PacketBytes>(
    hook: Hook,
    pkt: &P,
    meta: FrameMeta,
) -> Option<(Parsed, Accounting, u32)> {
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
    let index = HookCounters::index(iface.slot, hook);
    let counters = COUNTERS.get_ptr_mut(index)?;
    let parsed = parse(pkt);
    let segments = if meta.estimate {
        netpost_common::estimate_segments(&parsed, iface.mtu)
    } else if meta.gso_size != 0 {
        // (A tunnel's inner headers, which each segment repeats too, are added by the tc
        // program that follows: see [`count_tc`].)
        gso_segments(&parsed, meta.gso_segs, meta.gso_size)
    } else {
        meta.gso_segs.max(1)
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
    Some((parsed, add, index))
}
