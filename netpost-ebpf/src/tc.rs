//! tc ingress and egress (TCX links): the skb as the stack holds it, GSO super-packets
//! included.
use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};
use netpost_common::Hook;

use crate::{
    count::{FrameMeta, count},
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
    let ifindex = meta.ifindex;
    // Loopback hands every packet from its egress to its ingress: flows there are tracked
    // on the way out only, so each packet counts once.
    let track_flows = !(hook == Hook::TcIngress && ifindex == LOOPBACK_IFINDEX);
    if let Some((parsed, added)) = count(hook, &pkt, meta)
        && track_flows
        && flows::track(&pkt, &parsed, ifindex, added.bytes, added.packets) == 0
    {
        flows::count_untracked();
    }
    // TC_ACT_UNSPEC (TCX_NEXT): hand the skb on untouched.
    TC_ACT_UNSPEC
}
