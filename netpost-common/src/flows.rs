//! Per-flow state shared through the flow map and the flow event ring buffer.
//!
//! A flow is the canonical 5-tuple (both directions map to one key, endpoints ordered by
//! [`crate::handshake::canonical`]) on one interface. tc ingress and egress update it, so each
//! packet is seen once (on loopback, where a packet leaves and comes back in, only on the way
//! out).
use crate::handshake::Handshake;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub ifindex: u32,
    /// 4 or 6.
    pub ip_version: u8,
    /// IP protocol number.
    pub proto: u8,
    pub _pad: u16,
    pub lo_port: u16,
    pub hi_port: u16,
    pub lo: [u8; 16],
    pub hi: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub first_ns: u64,
    pub last_ns: u64,
    /// Sent by the low endpoint [0] and the high one [1].
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub handshake: Handshake,
    /// TCP flags seen from each endpoint (OR of every packet's flags).
    pub flags: [u8; 2],
    pub _pad: [u8; 6],
}

/// Event kinds sent through the ring buffer (state changes only, never per packet).
pub mod event {
    pub const NEW_FLOW: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const ESTABLISHED: u8 = 3;
    pub const RESET: u8 = 4;
    pub const CLOSED: u8 = 5;
    /// Raised by userspace, not the kernel: a half-open handshake went silent.
    pub const TIMED_OUT: u8 = 6;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    pub ts_ns: u64,
    pub key: FlowKey,
    pub kind: u8,
    /// Handshake stage after the change.
    pub stage: u8,
    /// For resets: 1 when the client (the endpoint that sent the first SYN) sent it.
    pub by_client: u8,
    pub client_is_low: u8,
    pub rtt_syn_us: u32,
    pub rtt_ack_us: u32,
    pub _pad: [u32; 2],
}

/// Global handshake counters (a per-CPU array, indexed by these), exact even when flows
/// are evicted from the flow map.
pub mod funnel {
    pub const SYN: u32 = 0;
    pub const SYNACK: u32 = 1;
    pub const ESTABLISHED: u32 = 2;
    pub const RESETS: u32 = 3;
    pub const SYN_RETRANSMITS: u32 = 4;
    pub const SYNACK_RETRANSMITS: u32 = 5;
    pub const CLOSED: u32 = 6;
    pub const FLOWS: u32 = 7;
    /// Flow events the ring buffer had no room for.
    pub const EVENTS_LOST: u32 = 8;
    /// Packets at tc that no flow took (not TCP/UDP/ICMP over IP, or headers out of reach).
    pub const UNTRACKED: u32 = 9;
    pub const COUNT: u32 = 10;
}

/// Default size of the flow map (`--max-flows`).
pub const DEFAULT_MAX_FLOWS: u32 = 65536;

const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);
const _: () = assert!(core::mem::size_of::<FlowValue>() == 96);
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 72);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowValue {}
    unsafe impl aya::Pod for super::FlowEvent {}
}

/// Local TCP sockets, from the kernel's tracepoints: the counters' slots.
pub mod sockets {
    /// Transitions into TCP state N (include/net/tcp_states.h: 1 ESTABLISHED .. 12
    /// NEW_SYN_RECV) are counted at slot N.
    pub const STATES: u32 = 16;
    pub const SYNACK_RETRANSMITS: u32 = 16;
    pub const RESETS_SENT: u32 = 17;
    pub const RESETS_RECEIVED: u32 = 18;
    pub const COUNT: u32 = 19;

    /// Names of the TCP states, by number.
    pub const STATE_NAMES: [&str; 13] = [
        "",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
    ];
}

/// Kernel struct offsets the socket tracepoint programs read at.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOffsets {
    /// sock.__sk_common.skc_net
    pub sk_net: u32,
    /// sock.sk_protocol (u16)
    pub sk_protocol: u32,
    pub skb_dev: u32,
    pub dev_net: u32,
    pub net_inum: u32,
    pub watch_inum: u32,
}

const _: () = assert!(core::mem::size_of::<SockOffsets>() == 24);

#[cfg(feature = "user")]
mod sock_pod {
    // SAFETY: a #[repr(C)] struct of u32s.
    unsafe impl aya::Pod for super::SockOffsets {}
}
