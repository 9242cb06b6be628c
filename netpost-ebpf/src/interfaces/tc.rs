//! tc ingress and egress (TCX links, or netlink filters on a clsact qdisc before 6.6): the
//! skb as the stack holds it, GSO super-packets included.
use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    macros::{classifier, map},
    maps::{PerCpuArray, ProgramArray},
    programs::TcContext,
};
use netpost_common::{FRAG_NONE, Hook, Proto, tunnel_headers};

use crate::{
    bounds::below,
    count::{Counted, FrameMeta, add_tunnel_headers, count_tc},
    flows,
    packet::{CopiedPacket, SkbHeaders, Words},
};

const VLAN_HLEN: u32 = 4;

#[classifier]
pub fn netpost_tc_in(ctx: TcContext) -> i32 {
    observe(Hook::TcIngress, &ctx)
}

#[classifier]
pub fn netpost_tc_out(ctx: TcContext) -> i32 {
    observe(Hook::TcEgress, &ctx)
}

#[inline(always)]
fn observe(hook: Hook, ctx: &TcContext) -> i32 {
    // SAFETY: the context pointer the kernel handed this program.
    let skb = unsafe { &*ctx.skb.skb };
    let meta = FrameMeta {
        ifindex: skb.ifindex,
        // On ingress the stack has already moved an 802.1Q tag out of the data.
        hidden_l2: if skb.vlan_present != 0 { VLAN_HLEN } else { 0 },
        gso_segs: skb.gso_segs,
        gso_size: skb.gso_size,
        estimate: false,
    };
    let Some(scratch) = AFTER_SCRATCH.get_ptr_mut(0) else {
        return TC_ACT_UNSPEC;
    };
    let after = match SkbHeaders::of(ctx, skb.len) {
        Some(SkbHeaders::Direct(pkt)) => count_tc(hook, &pkt, meta, scratch),
        Some(SkbHeaders::Copied(buf, copied, len)) => {
            // SAFETY: this CPU's buffer, filled by SkbHeaders::of, untouched until we return.
            let pkt = CopiedPacket {
                buf: unsafe { &*buf },
                copied,
                len,
            };
            count_tc(hook, &pkt, meta, scratch)
        }
        None => false,
    };
    if after {
        // SAFETY: the context of this program, as the tail call requires. It returns only
        // when the slot is empty (never, once netpost has loaded).
        unsafe { AFTER.tail_call(ctx, 0) };
    }
    // TC_ACT_UNSPEC (TCX_NEXT): hand the skb on untouched.
    TC_ACT_UNSPEC
}

/// `netpost_tc_after` at index 0, put there by userspace.
#[map(name = "NETPOST_TC_AFTER")]
static AFTER: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What the counting program hands `netpost_tc_after` (per CPU: the tail call follows at
/// once on the same CPU, with softirqs off).
#[map(name = "NETPOST_TC_SCRATCH")]
static AFTER_SCRATCH: PerCpuArray<Counted> = PerCpuArray::with_max_entries(1, 0);

/// What follows the count of a packet at tc (tail-called by `netpost_tc_in`/`netpost_tc_out`;
/// never attached): a tunnel's inner headers for a super-packet, then the packet's flow.
#[classifier]
pub fn netpost_tc_after(ctx: TcContext) -> i32 {
    let Some(c) = AFTER_SCRATCH.get_ptr(0) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: this CPU's value, written by the program that tail-called this one.
    let mut c: Counted = unsafe { *c };
    // SAFETY: the context pointer the kernel handed this program.
    let skb = unsafe { &*ctx.skb.skb };
    match SkbHeaders::of(&ctx, skb.len) {
        Some(SkbHeaders::Direct(pkt)) => finish(&pkt, &mut c),
        Some(SkbHeaders::Copied(buf, copied, len)) => {
            // SAFETY: this CPU's buffer, filled by SkbHeaders::of, untouched until we return.
            let pkt = CopiedPacket {
                buf: unsafe { &*buf },
                copied,
                len,
            };
            finish(&pkt, &mut c)
        }
        None => {}
    }
    TC_ACT_UNSPEC
}

/// A tunnel's inner headers for a super-packet, then the flow.
#[inline(always)]
fn finish<P: Words>(pkt: &P, c: &mut Counted) {
    // Offsets that came through a map are unbounded for the verifier: bound them again (a
    // super-packet's outer headers never reach 512 bytes).
    let p = &mut c.parsed;
    let tunnel =
        c.gso_size != 0 && p.fragment == FRAG_NONE && matches!(p.proto, Proto::Udp | Proto::Other);
    if tunnel
        && let (Some(header_len), Some(l4_offset), Some(l2_len)) = (
            below::<512>(p.header_len),
            below::<512>(p.l4_offset),
            below::<32>(p.l2_len),
        )
    {
        (p.header_len, p.l4_offset, p.l2_len) = (header_len, l4_offset, l2_len);
        let inner = tunnel_headers(pkt, &c.parsed);
        if inner != 0
            && let Some((packets, bytes)) = add_tunnel_headers(c, inner)
        {
            (c.packets, c.bytes) = (packets, bytes);
        }
    }
    if c.track != 0 {
        let tracked = flows::trackable(&c.parsed)
            .then(|| flows::read(pkt, &c.parsed, c.ifindex))
            .flatten()
            .and_then(|flow| flows::update(&flow, c.bytes, c.packets));
        if tracked.is_none() {
            flows::count_untracked();
        }
    }
}
