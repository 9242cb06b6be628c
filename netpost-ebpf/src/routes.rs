//! IPv4 routing decisions: the `fib_table_lookup` raw tracepoint
//! (fib_table_lookup(tb_id, flowi4, nexthop, err) on this kernel). Successful lookups are
//! counted per (table, output device, gateway, destination) for the watched namespace,
//! found through the nexthop's device. Failed lookups carry no nexthop and so no namespace:
//! the packets they cost show up as IP_INNOROUTES / IP_OUTNOROUTES drops instead.
use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::LruPerCpuHashMap,
    programs::RawTracePointContext,
};
use netpost_common::drops::{ROUTE_KEYS, RouteKey, RouteOffsets};

use crate::kernel::{is_watched, read};

const AF_INET: u8 = 2;

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
};

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
    let dev: u64 = read(nexthop, off.nhc_dev)?;
    if dev == 0 {
        return None;
    }
    is_watched(read(dev, off.dev_net)?, off.net_inum, off.watch_inum)?;
    let gw_family: u8 = read(nexthop, off.nhc_gw_family)?;
    let key = RouteKey {
        table,
        oif: read(dev, off.dev_ifindex)?,
        gateway: if gw_family == AF_INET {
            read(nexthop, off.nhc_gw)?
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
