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
    /// Sent by the low endpoint [0] and the high one [1]. First, so that what every packet
    /// updates shares one cache line with the end of the key: the kernel lays an LRU hash
    /// entry out as 48 bytes of its own, the key (44, rounded up to 48), then the value,
    /// which starts 96 bytes in, and 192-byte entries start on a cache line.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub first_ns: u64,
    /// When the handshake machine last took a packet (every packet of a connection not yet
    /// established or closing, and SYN/FIN/RST later); first_ns for UDP and ICMP. Not
    /// updated for every packet: that took a clock read and a third cache line each.
    pub last_ns: u64,
    pub handshake: Handshake,
    /// TCP flags seen from each endpoint (OR of every packet's flags).
    pub flags: [u8; 2],
    /// 1 when this interface's entry speaks for the connection: the first watched interface
    /// that saw it (a router sees a connection on both its interfaces). Only that entry
    /// counts it in the global funnel and emits its events.
    pub owner: u8,
    pub _pad: [u8; 5],
}

/// Key of the table that remembers the ports of a fragmented datagram's first fragment, so
/// its later fragments (which carry no transport header) go to the same flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// 4 or 6.
    pub ip_version: u8,
    pub proto: u8,
    pub _pad: u16,
    /// The fragment identification (IPv4's 16 bits, IPv6's 32).
    pub id: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// Datagrams whose first fragment's ports are remembered (least recently used first out).
pub const FRAG_KEYS: u32 = 1024;

/// Event kinds sent through the ring buffer (state changes only, never per packet).
pub mod event {
    pub const NEW_FLOW: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const ESTABLISHED: u8 = 3;
    pub const RESET: u8 = 4;
    pub const CLOSED: u8 = 5;
    /// Raised by userspace, not the kernel: a half-open handshake went silent.
    pub const TIMED_OUT: u8 = 6;
    /// The server retransmitted its SYN-ACK after the completing ACK: that ACK was lost and
    /// the handshake is open again.
    pub const UNDONE: u8 = 7;
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
    /// Handshakes counted established whose completing ACK turned out lost (the server
    /// retransmitted its SYN-ACK): `ESTABLISHED - UNDONE` completed.
    pub const UNDONE: u32 = 10;
    pub const COUNT: u32 = 11;
}

/// Default size of the flow map (`--max-flows`).
pub const DEFAULT_MAX_FLOWS: u32 = 65536;

const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);
const _: () = assert!(core::mem::size_of::<FlowValue>() == 96);
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 72);
const _: () = assert!(core::mem::size_of::<FragKey>() == 40);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowValue {}
    unsafe impl aya::Pod for super::FlowEvent {}
    unsafe impl aya::Pod for super::FragKey {}
}
