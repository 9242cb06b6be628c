//! The TCP handshake funnel, its RTT histogram, the flow table's size and lost flow events.
use std::fmt;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Unit,
};

use super::{NO_LABELS, counter, gauge};
use crate::model::{HandshakeStats, RTT_BUCKETS_US, RttHistogram, Snapshot};

pub fn encode(enc: &mut DescriptorEncoder, snap: &Snapshot, h: &HandshakeStats) -> fmt::Result {
    counter(
        enc,
        "netpost_handshakes",
        "TCP handshake steps seen on the wire since start: stage=\"syn\" opened, \"synack\" answered, \"established\", \"reset\", \"closed\".",
        None,
        [
            ("syn", h.syn),
            ("synack", h.synack),
            ("established", h.established),
            ("reset", h.resets),
            ("closed", h.closed),
        ]
        .map(|(stage, n)| ([("stage", stage)], n)),
    )?;
    counter(
        enc,
        "netpost_handshake_retransmits",
        "Retransmitted handshake packets since start (kind=\"syn\" or \"synack\").",
        None,
        [("syn", h.syn_retransmits), ("synack", h.synack_retransmits)]
            .map(|(kind, n)| ([("kind", kind)], n)),
    )?;
    gauge(
        enc,
        "netpost_handshakes_half_open",
        "Flows in the flow table between SYN and the completing ACK.",
        None,
        [(NO_LABELS, h.half_open as i64)],
    )?;
    gauge(
        enc,
        "netpost_flows_active",
        "Flows in the kernel's flow table.",
        None,
        [(NO_LABELS, snap.flows_active as i64)],
    )?;
    counter(
        enc,
        "netpost_flow_events_lost",
        "Flow events the kernel's ring buffer had no room for.",
        None,
        [(NO_LABELS, snap.events_lost)],
    )?;
    let mut family = enc.encode_descriptor(
        "netpost_handshake_rtt",
        "Handshake time on the wire (SYN to SYN-ACK plus SYN-ACK to ACK) of the handshakes completed since start.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    Rtt(&h.rtt_histogram).encode(family.encode_family(&NO_LABELS)?)
}

struct Rtt<'a>(&'a RttHistogram);

impl EncodeMetric for Rtt<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let h = self.0;
        let buckets: Vec<(f64, u64)> = RTT_BUCKETS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(h.counts.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        collector::Collector, encoding::text::encode_registry, registry::Registry,
    };

    use super::*;

    #[derive(Debug)]
    struct Fixed(Snapshot);

    impl Collector for Fixed {
        fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
            encode(&mut enc, &self.0, self.0.handshake.as_ref().unwrap())
        }
    }

    #[test]
    fn funnel_counters_and_a_cumulative_rtt_histogram() {
        let mut hist = RttHistogram::default();
        for us in [80, 90, 300, 5_000_000] {
            hist.observe(us);
        }
        let snap = Snapshot {
            handshake: Some(HandshakeStats {
                syn: 4,
                established: 3,
                resets: 1,
                syn_retransmits: 2,
                half_open: 1,
                rtt_histogram: hist,
                ..Default::default()
            }),
            flows_active: 7,
            events_lost: 5,
            ..Default::default()
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(snap)));
        let mut text = String::new();
        encode_registry(&mut text, &registry).unwrap();
        for line in [
            r#"netpost_handshakes_total{stage="syn"} 4"#,
            r#"netpost_handshakes_total{stage="established"} 3"#,
            r#"netpost_handshakes_total{stage="reset"} 1"#,
            r#"netpost_handshake_retransmits_total{kind="syn"} 2"#,
            "netpost_handshakes_half_open 1",
            "netpost_flows_active 7",
            "netpost_flow_events_lost_total 5",
            r#"netpost_handshake_rtt_seconds_bucket{le="0.0001"} 2"#,
            r#"netpost_handshake_rtt_seconds_bucket{le="0.0005"} 3"#,
            r#"netpost_handshake_rtt_seconds_bucket{le="+Inf"} 4"#,
            "netpost_handshake_rtt_seconds_count 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
