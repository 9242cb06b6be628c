//! Dropped packets, from the `kfree_skb` tracepoint: map layouts shared by the kernel
//! program and userspace.
//!
//! Since Linux 5.17 the kernel frees packets it *uses* through `consume_skb` (its own
//! tracepoint) and packets it *drops* through `kfree_skb_reason`, which fires `kfree_skb`
//! with an `enum skb_drop_reason`; SKB_CONSUMED frees are routed to `consume_skb`. So every
//! `kfree_skb` event is a drop, NOT_SPECIFIED ones included (paths not yet annotated).

/// Drops counted per (reason, protocol, dropping function).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    /// enum skb_drop_reason
    pub reason: u32,
    /// skb->protocol as an ethertype in host order (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP).
    pub ethertype: u16,
    /// The IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), 0 when not IP or unreadable.
    pub ipproto: u8,
    pub _pad: u8,
    /// Address in the kernel function that dropped (`kfree_skb`'s `location`).
    pub location: u64,
}

/// One sampled drop, sent through the ring buffer (a few per reason per second).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropSample {
    pub ts_ns: u64,
    pub location: u64,
    pub reason: u32,
    pub ethertype: u16,
    pub ipproto: u8,
    /// 4 or 6; 0 when the addresses could not be read.
    pub ip_version: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub _pad: u32,
}

/// How often one CPU may sample drops of one reason.
pub const SAMPLE_GAP_NS: u64 = 100_000_000;
/// Reasons tracked for sampling (the enum has ~130 values; larger ones share slots).
pub const SAMPLE_SLOTS: u32 = 256;
/// Distinct (reason, protocol, location) keys kept; the least recently used go first.
pub const DROP_KEYS: u32 = 4096;

/// Kernel struct offsets the drop program reads at, from the running kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropOffsets {
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub skb_protocol: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    /// net_device.nd_net (possible_net_t: the struct net pointer).
    pub dev_net: u32,
    /// sock.__sk_common.skc_net.
    pub sk_net: u32,
    /// net.ns.inum: the namespace's inode number, as /proc/PID/ns/net shows it.
    pub net_inum: u32,
    /// The namespace to count drops of (its inode number); 0 counts every namespace.
    pub watch_inum: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<DropKey>() == 16);
const _: () = assert!(core::mem::size_of::<DropSample>() == 64);
const _: () = assert!(core::mem::size_of::<DropOffsets>() == 40);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::DropKey {}
    unsafe impl aya::Pod for super::DropSample {}
    unsafe impl aya::Pod for super::DropOffsets {}
}

/// Successful IPv4 route lookups counted per (table, output device, gateway, destination).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub table: u32,
    /// Output device ifindex (in the watched namespace).
    pub oif: u32,
    /// Gateway (network byte order), 0 for a directly connected destination.
    pub gateway: [u8; 4],
    pub dst: [u8; 4],
}

/// IPv6 route lookups per (table, result, output device, gateway, destination). Unlike IPv4's
/// tracepoint, fib6's passes the namespace, so failed lookups are counted too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route6Key {
    pub table: u32,
    pub oif: u32,
    /// The route's type (RTN_UNICAST 1, RTN_LOCAL 2, RTN_BLACKHOLE 6, RTN_UNREACHABLE 7,
    /// RTN_PROHIBIT 8...).
    pub route_type: u8,
    pub _pad: [u8; 3],
    pub gateway: [u8; 16],
    pub dst: [u8; 16],
}

/// Kernel struct offsets the route program reads at.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteOffsets {
    pub nhc_dev: u32,
    pub nhc_gw_family: u32,
    pub nhc_gw: u32,
    pub dev_ifindex: u32,
    pub dev_net: u32,
    pub net_inum: u32,
    /// flowi4.daddr
    pub flow_daddr: u32,
    pub watch_inum: u32,
    /// fib6_result.nh (a fib6_nh, which starts with its fib_nh_common)
    pub res6_nh: u32,
    /// fib6_result.fib6_type (u8)
    pub res6_type: u32,
    /// fib6_table.tb6_id
    pub table6_id: u32,
    /// flowi6.daddr
    pub flow6_daddr: u32,
}

/// Distinct route keys kept (least recently used first out).
pub const ROUTE_KEYS: u32 = 4096;

const _: () = assert!(core::mem::size_of::<RouteKey>() == 16);
const _: () = assert!(core::mem::size_of::<RouteOffsets>() == 48);
const _: () = assert!(core::mem::size_of::<Route6Key>() == 44);

#[cfg(feature = "user")]
mod route_pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::RouteKey {}
    unsafe impl aya::Pod for super::RouteOffsets {}
    unsafe impl aya::Pod for super::Route6Key {}
}
