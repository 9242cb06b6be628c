//! tc ingress and egress (TCX links): the skb as the stack holds it, GSO super-packets
//! included.
use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};
use netpost_common::Hook;

use crate::{
    count::{FrameMeta, count},
    packet::{DirectPacket, SkbPacket},
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
    let pkt = SkbPacket {
        direct: DirectPacket {
            start: ctx.data(),
            end: ctx.data_end(),
            len: skb.len,
        },
        ctx,
    };
    let meta = FrameMeta {
        ifindex: skb.ifindex,
        // On ingress the stack has already moved an 802.1Q tag out of the data.
        hidden_l2: if skb.vlan_present != 0 { VLAN_HLEN } else { 0 },
        gso_segs: skb.gso_segs.max(1),
    };
    count(hook, &pkt, meta);
    // TC_ACT_UNSPEC (TCX_NEXT): hand the skb on untouched.
    TC_ACT_UNSPEC
}
