//! Shared between the kernel programs (`netpost-ebpf`) and userspace (`netpost-user`):
//! the `#[repr(C)]` layouts of map keys and values, and the pure packet logic (header
//! parsing, wire accounting) so that host unit tests check exactly what the kernel runs.
#![no_std]

pub mod account;
pub mod counters;
pub mod drops;
pub mod flows;
pub mod handshake;
pub mod netfilter;
pub mod parse;
pub mod record;
pub mod routes;
pub mod sockets;

pub use account::{Accounting, account, estimate_segments, gso_segments};
pub use counters::{
    Counters, Family, Hook, HookCounters, IFINDEX_ARRAY, IfaceInfo, MAX_IFACES, Proto,
};
pub use parse::{
    FRAG_FIRST, FRAG_LATER, FRAG_NONE, PacketBytes, Parsed, parse, parse_l3, tunnel_headers,
};
