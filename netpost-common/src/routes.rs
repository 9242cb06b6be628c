//! Routing decisions, from the `fib_table_lookup` and `fib6_table_lookup` tracepoints: map
//! layouts shared by the kernel programs and userspace.

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
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::RouteKey {}
    unsafe impl aya::Pod for super::RouteOffsets {}
    unsafe impl aya::Pod for super::Route6Key {}
}
