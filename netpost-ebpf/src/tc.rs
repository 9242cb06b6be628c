//! tc ingress and egress (TCX links): the skb as the stack holds it, GSO super-packets
//! included.
use core::mem::MaybeUninit;

use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};
use netpost_common::Hook;

use crate::{
    count::{Counted, FrameMeta, count_inline, count_tc, outcome},
    flows,
    packet::{DirectPacket, SkbPacket},
};

const VLAN_HLEN: u32 = 4;
/// The loopback device's ifindex in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

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
    // Loopback hands every packet from its egress to its ingress: flows there are tracked
    // on the way out only, so each packet counts once. Without flows, count inline.
    if hook == Hook::TcIngress && meta.ifindex == LOOPBACK_IFINDEX {
        let _ = count_inline(hook, &pkt, meta);
        return TC_ACT_UNSPEC;
    }
    let mut counted = MaybeUninit::<Counted>::uninit();
    match count_tc(hook, &pkt, meta, counted.as_mut_ptr()) {
        outcome::FLOW => {
            // SAFETY: count_tc filled it (it returned FLOW).
            let c = unsafe { counted.assume_init_ref() };
            if flows::update(&c.flow, c.bytes, c.packets).is_none() {
                flows::count_untracked();
            }
        }
        outcome::UNTRACKED => flows::count_untracked(),
        _ => {}
    }
    // TC_ACT_UNSPEC (TCX_NEXT): hand the skb on untouched.
    TC_ACT_UNSPEC
}
