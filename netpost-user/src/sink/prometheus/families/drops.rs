//! Dropped packets (kfree_skb), the drop recorder's counts, and IPv4 routing decisions. Label values come from the
//! kernel: drop reasons (a fixed enum), dropping functions and route tables, devices and
//! gateways of this namespace: bounded by the kernel and the routing table, not by traffic.
use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{NO_LABELS, counter};
use crate::model::{DropsStats, RecorderStats, RoutingStats};

pub fn encode_drops(enc: &mut DescriptorEncoder, drops: &DropsStats) -> fmt::Result {
    counter(
        enc,
        "netpost_drops",
        "Packets the kernel dropped in the watched namespace, by drop reason (enum skb_drop_reason) and the kernel function that dropped them.",
        None,
        drops.reasons.iter().flat_map(|(reason, r)| {
            r.locations.iter().map(move |(loc, n)| {
                (
                    [("reason", reason.as_str()), ("location", loc.as_str())],
                    *n,
                )
            })
        }),
    )?;
    counter(
        enc,
        "netpost_drops_by_proto",
        "Packets the kernel dropped in the watched namespace, by drop reason and protocol.",
        None,
        drops.reasons.iter().flat_map(|(reason, r)| {
            r.by_proto.iter().map(move |(proto, n)| {
                ([("reason", reason.as_str()), ("proto", proto.as_str())], *n)
            })
        }),
    )?;
    counter(
        enc,
        "netpost_events_lost",
        "Events the kernel could not hand to netpost because its ring buffer was full.",
        None,
        [([("source", "drop_samples")], drops.events_lost)],
    )?;
    if let Some(r) = &drops.recorder {
        encode_recorder(enc, r)?;
    }
    Ok(())
}

/// The drop recorder: packets recorded and left out, per reason (`drops.recorder`).
fn encode_recorder(enc: &mut DescriptorEncoder, r: &RecorderStats) -> fmt::Result {
    counter(
        enc,
        "netpost_drop_recorder_recorded",
        "Dropped packets the drop recorder recorded (--record-drops file, dashboard flight recorder), by drop reason.",
        None,
        r.recorded
            .iter()
            .map(|(reason, n)| ([("reason", reason.as_str())], *n)),
    )?;
    counter(
        enc,
        "netpost_drop_recorder_skipped",
        "Dropped packets the drop recorder left out, by drop reason and cause: rate (over --record-rate), lost (no room in its ring buffer or queue) or no_header (not a network packet).",
        None,
        [
            ("rate", &r.skipped_rate),
            ("lost", &r.skipped_lost),
            ("no_header", &r.skipped_no_header),
        ]
        .into_iter()
        .flat_map(|(cause, m)| {
            m.iter()
                .map(move |(reason, n)| ([("reason", reason.as_str()), ("cause", cause)], *n))
        }),
    )?;
    if r.file.is_some() {
        counter(
            enc,
            "netpost_drop_recorder_written_bytes",
            "Bytes the drop recorder wrote to its pcapng files (--record-drops), rotated ones included.",
            None,
            [(NO_LABELS, r.bytes_written)],
        )?;
    }
    Ok(())
}

pub fn encode_routing(enc: &mut DescriptorEncoder, routing: &RoutingStats) -> fmt::Result {
    counter(
        enc,
        "netpost_route_lookups",
        "Route lookups in the watched namespace that found a route, by family, table, output device and gateway (empty: directly connected).",
        None,
        routing.by_result.iter().filter_map(|r| {
            Some((
                [
                    ("family", r.family.clone()?),
                    ("table", r.table.clone()?),
                    ("dev", r.dev.clone()?),
                    ("gateway", r.gateway.clone().unwrap_or_default()),
                ],
                r.lookups,
            ))
        }),
    )?;
    counter(
        enc,
        "netpost_route_no_route_packets",
        "Packets dropped in the watched namespace for lack of a route (IP_INNOROUTES, IP_OUTNOROUTES).",
        None,
        [(NO_LABELS, routing.no_route)],
    )?;
    counter(
        enc,
        "netpost_route_ipv6_no_route_lookups",
        "IPv6 route lookups in the watched namespace that found no route (unreachable, blackhole, prohibit), the local table's misses excluded.",
        None,
        [(NO_LABELS, routing.ipv6_no_route_lookups)],
    )
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        collector::Collector, encoding::text::encode_registry, registry::Registry,
    };

    use super::*;
    use crate::model::{ReasonStats, RouteResult};

    #[derive(Debug)]
    struct Fixed(DropsStats, RoutingStats);

    impl Collector for Fixed {
        fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
            encode_drops(&mut enc, &self.0)?;
            encode_routing(&mut enc, &self.1)
        }
    }

    #[test]
    fn drops_and_routes_are_labelled_by_reason_location_and_route() {
        let drops = DropsStats {
            total: 12,
            reasons: [(
                "NO_SOCKET".to_string(),
                ReasonStats {
                    packets: 12,
                    locations: [("__udp4_lib_rcv".to_string(), 12)].into(),
                    by_proto: [("udp".to_string(), 12)].into(),
                    ..Default::default()
                },
            )]
            .into(),
            events_lost: 2,
            recorder: Some(RecorderStats {
                file: Some("/tmp/drops.pcapng".into()),
                recorded: [("NO_SOCKET".to_string(), 1000)].into(),
                skipped_rate: [("NO_SOCKET".to_string(), 199_000)].into(),
                skipped_lost: [("NO_SOCKET".to_string(), 3)].into(),
                bytes_written: 180_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let routing = RoutingStats {
            lookups: 5,
            no_route: 3,
            ipv6_no_route_lookups: 0,
            by_result: vec![
                RouteResult {
                    family: Some("ipv4".into()),
                    table: Some("main".into()),
                    result: "dev veth1".into(),
                    dev: Some("veth1".into()),
                    lookups: 5,
                    ..Default::default()
                },
                RouteResult {
                    result: "no route".into(),
                    lookups: 3,
                    ..Default::default()
                },
            ],
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(drops, routing)));
        let mut text = String::new();
        encode_registry(&mut text, &registry).unwrap();
        for line in [
            r#"netpost_drops_total{reason="NO_SOCKET",location="__udp4_lib_rcv"} 12"#,
            r#"netpost_drops_by_proto_total{reason="NO_SOCKET",proto="udp"} 12"#,
            r#"netpost_events_lost_total{source="drop_samples"} 2"#,
            r#"netpost_route_lookups_total{family="ipv4",table="main",dev="veth1",gateway=""} 5"#,
            "netpost_route_no_route_packets_total 3",
            r#"netpost_drop_recorder_recorded_total{reason="NO_SOCKET"} 1000"#,
            r#"netpost_drop_recorder_skipped_total{reason="NO_SOCKET",cause="rate"} 199000"#,
            r#"netpost_drop_recorder_skipped_total{reason="NO_SOCKET",cause="lost"} 3"#,
            "netpost_drop_recorder_written_bytes_total 180000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        assert_eq!(
            text.matches("netpost_route_lookups_total{").count(),
            1,
            "no-route row is not a lookup"
        );
    }
}
