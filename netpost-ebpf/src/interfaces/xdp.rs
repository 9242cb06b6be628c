//! XDP ingress: the earliest place a frame is seen, before the stack allocates an skb.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use netpost_common::Hook;

use crate::count::{FrameMeta, count_inline};
use crate::packet::DirectPacket;

#[xdp]
pub fn netpost_xdp(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    let pkt = DirectPacket {
        start,
        end,
        len: (end - start) as u32,
    };
    let meta = FrameMeta {
        ifindex: ctx.ingress_ifindex() as u32,
        hidden_l2: 0,
        // xdp_md has no GSO fields: derive wire segments from the MTU.
        gso_segs: 0,
        gso_size: 0,
        estimate: true,
    };
    // Flows are tracked at tc, which sees both directions.
    let _ = count_inline(Hook::Xdp, &pkt, meta);
    xdp_action::XDP_PASS
}
