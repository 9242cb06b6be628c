//! Local TCP sockets, from the kernel's tracepoints (`inet_sock_set_state`,
//! `tcp_retransmit_synack`, `tcp_send_reset`, `tcp_receive_reset`): the counters' slots and the
//! offsets the programs read at, shared by the kernel programs and userspace.

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
mod pod {
    // SAFETY: a #[repr(C)] struct of u32s.
    unsafe impl aya::Pod for super::SockOffsets {}
}
