//! IPv4 routing decisions: loader side of the fib_table_lookup program and the Snapshot's
//! `routing` object.
use std::{
    collections::{BTreeMap, HashMap},
    ffi::CStr,
    io,
    net::Ipv4Addr,
};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuHashMap},
};
use netpost_common::drops::{RouteKey, RouteOffsets};
use serde::Serialize;

use crate::{drops::DropsStats, kernel_btf::KernelBtf, maps_util};

pub const PROG_FIB_LOOKUP: &str = "netpost_fib_lookup";
pub const GLOBAL_ROUTE_OFFSETS: &str = "NETPOST_ROUTE_OFFSETS";
const MAP_ROUTES: &str = "NETPOST_ROUTES";
/// Destinations named per result.
const TOP_DESTINATIONS: usize = 5;
/// The drop reasons that mean "no route".
const NO_ROUTE_REASONS: [&str; 2] = ["IP_INNOROUTES", "IP_OUTNOROUTES"];

/// Offsets for the route program, counting the namespace `watch_inum`.
pub fn offsets(btf: &KernelBtf, watch_inum: u32) -> Result<RouteOffsets, String> {
    let mut o = btf.route_offsets().map_err(|e| e.to_string())?;
    o.watch_inum = watch_inum;
    Ok(o)
}

pub fn load(ebpf: &mut Ebpf) -> Result<(), String> {
    maps_util::load_raw_tp(ebpf, PROG_FIB_LOOKUP)
}

pub fn attach(ebpf: &mut Ebpf) -> Result<(), String> {
    maps_util::attach_raw_tp(ebpf, PROG_FIB_LOOKUP, "fib_table_lookup")
}

pub struct RouteMap {
    routes: PerCpuHashMap<MapData, RouteKey, u64>,
}

impl RouteMap {
    pub fn take(ebpf: &mut Ebpf) -> Result<RouteMap, String> {
        let map = ebpf
            .take_map(MAP_ROUTES)
            .ok_or_else(|| format!("map {MAP_ROUTES} missing"))?;
        Ok(RouteMap {
            routes: PerCpuHashMap::try_from(map).map_err(|e| e.to_string())?,
        })
    }

    /// Lookups per key, summed over CPUs.
    pub fn read(&self) -> io::Result<BTreeMap<RouteKey, u64>> {
        maps_util::sum_hash(&self.routes)
    }
}

/// One routing result: where lookups sent packets, or that there was no route.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteResult {
    /// "main", "local", "default" or the table number; null for "no route".
    pub table: Option<String>,
    /// "via GW dev DEV", "dev DEV" or "no route".
    pub result: String,
    pub dev: Option<String>,
    pub gateway: Option<String>,
    pub lookups: u64,
    /// The most looked-up destinations with their counts.
    pub destinations: BTreeMap<String, u64>,
}

/// The JSON's `routing` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoutingStats {
    /// Successful IPv4 route lookups since start.
    pub lookups: u64,
    /// Packets dropped for lack of a route (IP_INNOROUTES + IP_OUTNOROUTES drops).
    pub no_route: u64,
    pub by_result: Vec<RouteResult>,
}

pub fn table_name(id: u32) -> String {
    match id {
        253 => "default".into(),
        254 => "main".into(),
        255 => "local".into(),
        n => n.to_string(),
    }
}

/// Interface name of `ifindex` in this namespace, or its number.
pub fn ifname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("if{ifindex}");
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Folds lookups since start into results (busiest first) and adds the no-route drops.
pub fn stats(
    lookups: &BTreeMap<RouteKey, u64>,
    drops: Option<&DropsStats>,
    ifname: &dyn Fn(u32) -> String,
) -> RoutingStats {
    // (table, device, gateway) -> (lookups, [(lookups, destination)])
    type Group = (u64, Vec<(u64, [u8; 4])>);
    let mut groups: HashMap<(u32, u32, [u8; 4]), Group> = HashMap::new();
    for (key, n) in lookups {
        let g = groups.entry((key.table, key.oif, key.gateway)).or_default();
        g.0 += n;
        g.1.push((*n, key.dst));
    }
    let mut by_result: Vec<RouteResult> = groups
        .into_iter()
        .map(|((table, oif, gw), (n, mut dsts))| {
            dsts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let dev = ifname(oif);
            let gateway = (gw != [0; 4]).then(|| Ipv4Addr::from(gw).to_string());
            RouteResult {
                table: Some(table_name(table)),
                result: match &gateway {
                    Some(g) => format!("via {g} dev {dev}"),
                    None => format!("dev {dev}"),
                },
                dev: Some(dev),
                gateway,
                lookups: n,
                destinations: dsts
                    .into_iter()
                    .take(TOP_DESTINATIONS)
                    .map(|(c, d)| (Ipv4Addr::from(d).to_string(), c))
                    .collect(),
            }
        })
        .collect();
    by_result.sort_by(|a, b| b.lookups.cmp(&a.lookups).then(a.result.cmp(&b.result)));
    let no_route: u64 = drops
        .map(|d| {
            NO_ROUTE_REASONS
                .iter()
                .filter_map(|r| d.reasons.get(*r))
                .map(|r| r.packets)
                .sum()
        })
        .unwrap_or(0);
    if no_route > 0 {
        by_result.push(RouteResult {
            result: "no route".into(),
            lookups: no_route,
            ..Default::default()
        });
    }
    RoutingStats {
        lookups: lookups.values().sum(),
        no_route,
        by_result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drops::ReasonStats;

    fn key(oif: u32, gw: [u8; 4], dst: [u8; 4]) -> RouteKey {
        RouteKey {
            table: 254,
            oif,
            gateway: gw,
            dst,
        }
    }

    #[test]
    fn lookups_group_by_table_device_and_gateway_with_top_destinations() {
        let lookups: BTreeMap<RouteKey, u64> = [
            (key(2, [0; 4], [10, 0, 1, 2]), 30),
            (key(2, [0; 4], [10, 0, 1, 3]), 5),
            (key(3, [10, 0, 0, 1], [192, 0, 2, 9]), 7),
        ]
        .into();
        let drops = DropsStats {
            reasons: [(
                "IP_INNOROUTES".to_string(),
                ReasonStats {
                    packets: 4,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        let names = |i: u32| format!("veth{i}");
        let s = stats(&lookups, Some(&drops), &names);
        assert_eq!((s.lookups, s.no_route), (42, 4));
        assert_eq!(s.by_result[0].result, "dev veth2");
        assert_eq!(s.by_result[0].lookups, 35);
        assert_eq!(s.by_result[0].table.as_deref(), Some("main"));
        assert_eq!(s.by_result[0].destinations["10.0.1.2"], 30);
        assert_eq!(s.by_result[1].result, "via 10.0.0.1 dev veth3");
        assert_eq!(s.by_result[2].result, "no route");
        assert_eq!(s.by_result[2].lookups, 4);
    }

    #[test]
    fn table_names() {
        assert_eq!(table_name(254), "main");
        assert_eq!(table_name(255), "local");
        assert_eq!(table_name(100), "100");
    }
}
