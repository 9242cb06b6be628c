//! Routing decisions in the Snapshot's `routing` object: IPv4 and IPv6 lookups grouped by
//! table, device and gateway with their top destinations, plus the packets dropped for lack
//! of a route (from the drops probe). Pure.
use std::{
    collections::{BTreeMap, HashMap},
    net::{Ipv4Addr, Ipv6Addr},
};

use netpost_common::routes::{Route6Key, RouteKey};
use serde::Serialize;

use crate::{delta::since, probe::drops::model::DropsStats};

pub const NAME: &str = "routes";
/// Destinations named per result.
const TOP_DESTINATIONS: usize = 5;
/// The drop reasons that mean "no route".
const NO_ROUTE_REASONS: [&str; 2] = ["IP_INNOROUTES", "IP_OUTNOROUTES"];

/// Lookups per key since start, both families.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutesRaw {
    pub v4: BTreeMap<RouteKey, u64>,
    pub v6: BTreeMap<Route6Key, u64>,
}

impl RoutesRaw {
    pub fn since(&self, baseline: &RoutesRaw) -> RoutesRaw {
        RoutesRaw {
            v4: since(&self.v4, &baseline.v4),
            v6: since(&self.v6, &baseline.v6),
        }
    }

    /// Output devices the lookups name.
    pub fn oifs(&self) -> impl Iterator<Item = u32> + '_ {
        self.v4
            .keys()
            .map(|k| k.oif)
            .chain(self.v6.keys().map(|k| k.oif))
    }
}

/// One routing result: where lookups sent packets, or that there was no route.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteResult {
    /// "ipv4" or "ipv6"; null for the "no route" packets (both families).
    pub family: Option<String>,
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
    /// IPv6 lookups that found no route (unreachable, blackhole or prohibit) in any table but
    /// "local" (which every lookup consults first).
    pub ipv6_no_route_lookups: u64,
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

/// What an IPv6 lookup's route type means for the packet.
fn route6_result(route_type: u8, dev: &str, gateway: Option<&str>) -> String {
    match (route_type, gateway) {
        (2, _) => format!("local dev {dev}"),
        (6, _) => "blackhole".into(),
        (7, _) => "unreachable".into(),
        (8, _) => "prohibit".into(),
        (_, Some(g)) => format!("via {g} dev {dev}"),
        (_, None) => format!("dev {dev}"),
    }
}

const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RT_TABLE_LOCAL: u32 = 255;

/// The IPv6 results, busiest first, and the lookups that found no route.
fn stats6(
    lookups: &BTreeMap<Route6Key, u64>,
    ifname: &dyn Fn(u32) -> String,
) -> (Vec<RouteResult>, u64, u64) {
    type Group = (u64, Vec<(u64, [u8; 16])>);
    let mut groups: HashMap<(u32, u8, u32, [u8; 16]), Group> = HashMap::new();
    let mut found = 0;
    let mut no_route = 0;
    for (key, n) in lookups {
        let routed = matches!(key.route_type, RTN_UNICAST | RTN_LOCAL);
        // Every lookup tries "local" first; missing there is not a failure.
        if !routed && key.table == RT_TABLE_LOCAL {
            continue;
        }
        if routed {
            found += n;
        } else {
            no_route += n;
        }
        let g = groups
            .entry((key.table, key.route_type, key.oif, key.gateway))
            .or_default();
        g.0 += n;
        g.1.push((*n, key.dst));
    }
    let results = groups
        .into_iter()
        .map(|((table, route_type, oif, gw), (n, mut dsts))| {
            dsts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let routed = matches!(route_type, RTN_UNICAST | RTN_LOCAL);
            let dev = routed.then(|| ifname(oif));
            let gateway = (gw != [0; 16]).then(|| Ipv6Addr::from(gw).to_string());
            RouteResult {
                family: Some("ipv6".into()),
                table: Some(table_name(table)),
                result: route6_result(
                    route_type,
                    dev.as_deref().unwrap_or("-"),
                    gateway.as_deref(),
                ),
                dev,
                gateway,
                lookups: n,
                destinations: dsts
                    .into_iter()
                    .take(TOP_DESTINATIONS)
                    .map(|(c, d)| (Ipv6Addr::from(d).to_string(), c))
                    .collect(),
            }
        })
        .collect();
    (results, found, no_route)
}

/// Folds lookups since start into results (busiest first) and adds the no-route drops.
pub fn stats(
    routes: &RoutesRaw,
    drops: Option<&DropsStats>,
    ifname: &dyn Fn(u32) -> String,
) -> RoutingStats {
    let lookups = &routes.v4;
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
                family: Some("ipv4".into()),
                table: Some(table_name(table)),
                result: match &gateway {
                    Some(g) => format!("via {g} dev {dev}"),
                    // The IPv4 tracepoint passes no route type, but the local table holds
                    // only routes to this host's own addresses (and their broadcasts).
                    None if table == RT_TABLE_LOCAL => format!("local dev {dev}"),
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
    let (results6, found6, no_route6) = stats6(&routes.v6, ifname);
    by_result.extend(results6);
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
        lookups: lookups.values().sum::<u64>() + found6,
        no_route,
        ipv6_no_route_lookups: no_route6,
        by_result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::drops::model::ReasonStats;

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
        let mut v6key = Route6Key {
            table: 254,
            oif: 4,
            route_type: 1,
            ..Default::default()
        };
        v6key.dst[15] = 9;
        let unreachable_main = Route6Key {
            table: 254,
            route_type: 7,
            ..Default::default()
        };
        let local_miss = Route6Key {
            table: 255,
            route_type: 7,
            ..Default::default()
        };
        let routes = RoutesRaw {
            v4: lookups,
            v6: [(v6key, 6), (unreachable_main, 2), (local_miss, 8)].into(),
        };
        let s = stats(&routes, Some(&drops), &names);
        assert_eq!((s.lookups, s.no_route), (48, 4), "IPv4 42 + IPv6 found 6");
        assert_eq!(
            s.ipv6_no_route_lookups, 2,
            "the local table's misses do not count"
        );
        let v6 = s
            .by_result
            .iter()
            .find(|r| r.family.as_deref() == Some("ipv6") && r.lookups == 6)
            .unwrap();
        assert_eq!(v6.result, "dev veth4");
        assert_eq!(v6.destinations["::9"], 6);
        assert!(
            s.by_result
                .iter()
                .any(|r| r.result == "unreachable" && r.lookups == 2)
        );
        assert!(
            !s.by_result.iter().any(|r| r.lookups == 8),
            "local misses are not listed"
        );
        assert_eq!(s.by_result[0].result, "dev veth2");
        assert_eq!(s.by_result[0].lookups, 35);
        assert_eq!(s.by_result[0].table.as_deref(), Some("main"));
        assert_eq!(s.by_result[0].destinations["10.0.1.2"], 30);
        assert_eq!(s.by_result[1].result, "via 10.0.0.1 dev veth3");
        let last = s.by_result.last().unwrap();
        assert_eq!((last.result.as_str(), last.lookups), ("no route", 4));
        let local = RouteKey {
            table: 255,
            oif: 1,
            gateway: [0; 4],
            dst: [127, 0, 0, 1],
        };
        let routes = RoutesRaw {
            v4: [(local, 3)].into(),
            ..Default::default()
        };
        let s = stats(&routes, None, &|_| "lo".into());
        assert_eq!(s.by_result[0].result, "local dev lo");
        assert_eq!(s.by_result[0].table.as_deref(), Some("local"));
    }

    #[test]
    fn table_names() {
        assert_eq!(table_name(254), "main");
        assert_eq!(table_name(255), "local");
        assert_eq!(table_name(100), "100");
    }
}
