//! Routing decisions. IPv6: the `fib6_table_lookup` raw tracepoint, every lookup of the
//! watched namespace (its namespace is an argument). IPv4: the `fib_table_lookup` raw tracepoint
//! (fib_table_lookup(tb_id, flowi4, nexthop, err) on this kernel). Successful lookups are
//! counted per (table, output device, gateway, destination) for the watched namespace,
//! found through the nexthop's device. Failed lookups carry no nexthop and so no namespace:
//! the packets they cost show up as IP_INNOROUTES / IP_OUTNOROUTES drops instead.
use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::LruPerCpuHashMap,
    programs::RawTracePointContext,
};
use netpost_common::routes::{ROUTE_KEYS, Route6Key, RouteKey, RouteOffsets};

use crate::kernel::{Window, is_watched, read};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Filled in by userspace before loading.
#[unsafe(no_mangle)]
static NETPOST_ROUTE_OFFSETS: RouteOffsets = RouteOffsets {
    nhc_dev: 0,
    nhc_gw_family: 0,
    nhc_gw: 0,
    dev_ifindex: 0,
    dev_net: 0,
    net_inum: 0,
    flow_daddr: 0,
    watch_inum: 0,
    res6_nh: 0,
    res6_type: 0,
    table6_id: 0,
    flow6_daddr: 0,
};

#[map(name = "NETPOST_ROUTES6")]
static ROUTES6: LruPerCpuHashMap<Route6Key, u64> =
    LruPerCpuHashMap::with_max_entries(ROUTE_KEYS, 0);

/// fib6_table_lookup(net, result, table, flowi6): one event per table consulted.
#[raw_tracepoint(tracepoint = "fib6_table_lookup")]
pub fn netpost_fib6_lookup(ctx: RawTracePointContext) -> i32 {
    let _ = observe6(&ctx);
    0
}

#[inline(always)]
fn observe6(ctx: &RawTracePointContext) -> Option<()> {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    let off: RouteOffsets = unsafe { core::ptr::read_volatile(&NETPOST_ROUTE_OFFSETS) };
    let net: u64 = ctx.arg(0);
    let res: u64 = ctx.arg(1);
    let table: u64 = ctx.arg(2);
    let flow: u64 = ctx.arg(3);
    is_watched(net, off.net_inum, off.watch_inum)?;
    let res_fields = Window::<32>::read(
        res,
        off.res6_nh.min(off.res6_type),
        (off.res6_nh + 8).max(off.res6_type + 1),
    );
    let mut key = Route6Key {
        table: if table == 0 {
            0
        } else {
            read(table, off.table6_id)?
        },
        route_type: res_fields.get(off.res6_type)?,
        dst: read(flow, off.flow6_daddr)?,
        ..Route6Key::default()
    };
    let nh: u64 = res_fields.get(off.res6_nh)?;
    if nh != 0 {
        let nh = nexthop_fields(nh, &off, 16);
        let dev: u64 = nh.get(off.nhc_dev)?;
        if dev != 0 {
            key.oif = read(dev, off.dev_ifindex)?;
        }
        if nh.get::<u8>(off.nhc_gw_family)? == AF_INET6 {
            key.gateway = nh.get(off.nhc_gw)?;
        }
    }
    match ROUTES6.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a valid map value.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = ROUTES6.insert(key, 1u64, 0);
        }
    }
    Some(())
}

/// A `fib_nh_common`'s device, gateway family and gateway (`gw_len` bytes) lie within a few
/// dozen bytes: one helper call reads them.
#[inline(always)]
fn nexthop_fields(nh: u64, off: &RouteOffsets, gw_len: u32) -> Window<64> {
    Window::read(
        nh,
        off.nhc_dev.min(off.nhc_gw_family).min(off.nhc_gw),
        (off.nhc_dev + 8)
            .max(off.nhc_gw_family + 1)
            .max(off.nhc_gw + gw_len),
    )
}

#[map(name = "NETPOST_ROUTES")]
static ROUTES: LruPerCpuHashMap<RouteKey, u64> = LruPerCpuHashMap::with_max_entries(ROUTE_KEYS, 0);

#[raw_tracepoint(tracepoint = "fib_table_lookup")]
pub fn netpost_fib_lookup(ctx: RawTracePointContext) -> i32 {
    let _ = observe(&ctx);
    0
}

#[inline(always)]
fn observe(ctx: &RawTracePointContext) -> Option<()> {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    let off: RouteOffsets = unsafe { core::ptr::read_volatile(&NETPOST_ROUTE_OFFSETS) };
    let table = ctx.arg::<u64>(0) as u32;
    let flow: u64 = ctx.arg(1);
    let nexthop: u64 = ctx.arg(2);
    let err = ctx.arg::<u64>(3) as i32;
    if err != 0 || nexthop == 0 {
        return None;
    }
    let nh = nexthop_fields(nexthop, &off, 4);
    let dev: u64 = nh.get(off.nhc_dev)?;
    if dev == 0 {
        return None;
    }
    // ifindex and nd_net sit close together in net_device.
    let dev = Window::<64>::read(
        dev,
        off.dev_ifindex.min(off.dev_net),
        (off.dev_ifindex + 4).max(off.dev_net + 8),
    );
    is_watched(dev.get(off.dev_net)?, off.net_inum, off.watch_inum)?;
    let key = RouteKey {
        table,
        oif: dev.get(off.dev_ifindex)?,
        gateway: if nh.get::<u8>(off.nhc_gw_family)? == AF_INET {
            nh.get(off.nhc_gw)?
        } else {
            [0; 4]
        },
        dst: read(flow, off.flow_daddr)?,
    };
    match ROUTES.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a valid map value.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = ROUTES.insert(key, 1u64, 0);
        }
    }
    Some(())
}
