//! `no-route` (packets dropped for lack of a route) and `rp-filter` (packets dropped by the
//! reverse-path filter: their source is not routed back through the interface they came
//! in on, the multi-homed pitfall).
use std::net::IpAddr;

use serde_json::json;

use super::{evidence, netns, round};
use crate::doctor::{
    Finding, Severity,
    config::{NoRoute, RpFilter},
    fix,
    window::View,
};

const NO_ROUTE: [&str; 2] = ["IP_INNOROUTES", "IP_OUTNOROUTES"];

pub fn no_route(v: &View<'_>, c: &NoRoute) -> Option<Finding> {
    let reasons: u64 = NO_ROUTE.iter().map(|r| v.reason(r)).sum();
    let mib4 = v.mib("IpExtInNoRoutes") + v.mib("IpOutNoRoutes");
    let mib6 = v.mib("Ip6InNoRoutes") + v.mib("Ip6OutNoRoutes");
    let lookups6 = v.delta(|s| Some(s.routing.as_ref()?.ipv6_no_route_lookups));
    let dropped = reasons.max(mib4 + mib6);
    if dropped < c.min_packets {
        return None;
    }
    // Destinations: the sampled drops, and IPv6's failed lookups.
    let mut dsts: Vec<IpAddr> = v
        .samples(&NO_ROUTE)
        .iter()
        .filter_map(|s| s.dst.as_deref().and_then(fix::ip_of))
        .collect();
    for r in v.last().routing.iter().flat_map(|r| r.by_result.iter()) {
        if matches!(r.result.as_str(), "unreachable" | "blackhole" | "prohibit") {
            dsts.extend(
                r.destinations
                    .keys()
                    .filter_map(|d| d.parse::<IpAddr>().ok()),
            );
        }
    }
    dsts.sort();
    dsts.dedup();
    let mut networks: Vec<String> = dsts.iter().map(|d| fix::prefix(*d)).collect();
    networks.dedup();
    let fix = match networks.first() {
        Some(net) => fix::in_netns(
            netns(v),
            &format!(
                "ip {}route add {net} via NEXT_HOP",
                if net.contains(':') { "-6 " } else { "" }
            ),
        ),
        None => fix::in_netns(netns(v), "ip route show"),
    };
    Some(Finding {
        id: "no-route",
        severity: Severity::Warning,
        summary: format!(
            "{}/s packets are dropped for lack of a route{}",
            round(v.per_s(dropped), 1),
            if networks.is_empty() {
                String::new()
            } else {
                format!(" (to {})", networks.join(", "))
            }
        ),
        evidence: evidence(
            v,
            vec![
                ("dropped", dropped.into()),
                ("per_s", round(v.per_s(dropped), 1).into()),
                ("drop_reasons", json!({"IP_INNOROUTES": v.reason(NO_ROUTE[0]), "IP_OUTNOROUTES": v.reason(NO_ROUTE[1])})),
                ("ipv4_no_routes", mib4.into()),
                ("ipv6_no_routes", mib6.into()),
                ("ipv6_failed_lookups", lookups6.into()),
                ("destinations", json!(dsts.iter().map(|d| d.to_string()).collect::<Vec<_>>())),
            ],
        ),
        fix,
        note: Some(
            "NEXT_HOP: the router toward that network (or `dev IFACE` for a directly attached one); \
             if nothing should go there, fix the senders instead"
                .into(),
        ),
    })
}

pub fn rp_filter(v: &View<'_>, c: &RpFilter) -> Option<Finding> {
    let reason = v.reason("IP_RPFILTER");
    let mib = v.mib("TcpExtIPReversePathFilter");
    let dropped = reason.max(mib);
    if dropped < c.min_packets {
        return None;
    }
    // The newest reading that read them (they are read when the filter drops).
    let modes = v
        .within
        .iter()
        .rev()
        .find_map(|e| e.kernel.rp_filter.as_ref())
        .or(v.base_kernel.rp_filter.as_ref())
        .cloned()
        .unwrap_or_default();
    let all = modes.get("all").copied().unwrap_or(0);
    // The kernel uses the higher of `all` and the interface's value; 1 is strict.
    let strict: Vec<&String> = modes
        .iter()
        .filter(|(name, mode)| {
            !matches!(name.as_str(), "all" | "default" | "lo") && (**mode).max(all) == 1
        })
        .map(|(name, _)| name)
        .collect();
    let mut sources: Vec<String> = v
        .samples(&["IP_RPFILTER"])
        .iter()
        .filter_map(|s| s.src.as_deref().and_then(fix::ip_of))
        .map(|ip| ip.to_string())
        .collect();
    sources.sort();
    sources.dedup();
    let mut keys: Vec<(String, String)> = Vec::new();
    if all == 1 {
        keys.push(("net.ipv4.conf.all.rp_filter".into(), "2".into()));
    }
    for name in &strict {
        keys.push((format!("net.ipv4.conf.{name}.rp_filter"), "2".into()));
    }
    let pairs: Vec<(&str, String)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    Some(Finding {
        id: "rp-filter",
        severity: Severity::Warning,
        summary: format!(
            "{}/s packets are dropped by the reverse-path filter (strict on {}){}",
            round(v.per_s(dropped), 1),
            if strict.is_empty() {
                "?".to_string()
            } else {
                strict
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if sources.is_empty() {
                String::new()
            } else {
                format!(", from {}", sources.join(", "))
            }
        ),
        evidence: evidence(
            v,
            vec![
                ("dropped", dropped.into()),
                ("per_s", round(v.per_s(dropped), 1).into()),
                ("drop_reasons", json!({"IP_RPFILTER": reason})),
                ("TcpExtIPReversePathFilter", mib.into()),
                ("rp_filter", json!(modes)),
                ("strict_interfaces", json!(strict)),
                ("sources", json!(sources)),
            ],
        ),
        fix: if pairs.is_empty() {
            fix::in_netns(netns(v), "sysctl -a --pattern rp_filter")
        } else {
            fix::sysctl(netns(v), &pairs)
        },
        note: Some(format!(
            "loose mode (2) accepts a source routed back through any interface; or route {} back through the interface it arrives on",
            sources
                .first()
                .map_or("the source".to_string(), |s| s.clone())
        )),
    })
}
