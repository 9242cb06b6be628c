//! Local TCP sockets, as the kernel sees them (raw tracepoints): state transitions
//! (inet_sock_set_state), SYN-ACK retransmissions, resets sent and received, counted for
//! the watched namespace only.
use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::PerCpuArray,
    programs::RawTracePointContext,
};
use netpost_common::sockets::{self, SockOffsets};

use crate::kernel::{is_watched, read};

const IPPROTO_TCP: u16 = 6;

/// Filled in by userspace before loading.
#[unsafe(no_mangle)]
static NETPOST_SOCK_OFFSETS: SockOffsets = SockOffsets {
    sk_net: 0,
    sk_protocol: 0,
    skb_dev: 0,
    dev_net: 0,
    net_inum: 0,
    watch_inum: 0,
};

#[map(name = "NETPOST_SOCKETS")]
static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(sockets::COUNT, 0);

#[inline(always)]
fn offsets() -> SockOffsets {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    unsafe { core::ptr::read_volatile(&NETPOST_SOCK_OFFSETS) }
}

#[inline(always)]
fn watched(net: u64, off: &SockOffsets) -> Option<()> {
    is_watched(net, off.net_inum, off.watch_inum)
}

#[inline(always)]
fn sock_watched(sk: u64, off: &SockOffsets) -> Option<()> {
    if sk == 0 {
        return None;
    }
    watched(read(sk, off.sk_net)?, off)
}

#[inline(always)]
fn bump(slot: u32) {
    if let Some(c) = COUNTS.get_ptr_mut(slot) {
        // SAFETY: this CPU's copy of a valid map value.
        unsafe { *c += 1 };
    }
}

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn netpost_sk_state(ctx: RawTracePointContext) -> i32 {
    let _ = (|| -> Option<()> {
        let off = offsets();
        let sk: u64 = ctx.arg(0);
        let new_state = ctx.arg::<u64>(2) as u32;
        sock_watched(sk, &off)?;
        if read::<u16>(sk, off.sk_protocol)? != IPPROTO_TCP || new_state >= sockets::STATES {
            return None;
        }
        bump(new_state);
        Some(())
    })();
    0
}

#[raw_tracepoint(tracepoint = "tcp_retransmit_synack")]
pub fn netpost_synack_rtx(ctx: RawTracePointContext) -> i32 {
    let off = offsets();
    if sock_watched(ctx.arg(0), &off).is_some() {
        bump(sockets::SYNACK_RETRANSMITS);
    }
    0
}

#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn netpost_rst_sent(ctx: RawTracePointContext) -> i32 {
    let _ = (|| -> Option<()> {
        let off = offsets();
        let sk: u64 = ctx.arg(0);
        if sk != 0 {
            sock_watched(sk, &off)?;
        } else {
            // A reset for a packet no socket wanted: the packet's device tells the namespace.
            let skb: u64 = ctx.arg(1);
            let dev: u64 = read(skb, off.skb_dev)?;
            if dev == 0 {
                return None;
            }
            watched(read(dev, off.dev_net)?, &off)?;
        }
        bump(sockets::RESETS_SENT);
        Some(())
    })();
    0
}

#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn netpost_rst_recv(ctx: RawTracePointContext) -> i32 {
    let off = offsets();
    if sock_watched(ctx.arg(0), &off).is_some() {
        bump(sockets::RESETS_RECEIVED);
    }
    0
}
