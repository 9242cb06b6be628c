//! The `netpost_*` metric families, encoded by prometheus-client from the latest Snapshot on
//! every scrape. Every counter is the Snapshot's cumulative value, so a scrape equals the JSON
//! line of the same snapshot. Labels come from fixed sets (hooks, protocols, families, states)
//! plus the interface names given with `-i`: nothing per flow or per address.
//!
//! Adding families (e.g. the handshake RTT histogram, drop reasons, events lost, not emitted
//! while the Snapshot has no such data: never fake values): a module whose `encode` takes the
//! encoder and its part of the Snapshot, called from [`SnapshotCollector::encode`], rows in
//! docs/metrics.md (a unit test checks every family is there), and the names in the test of
//! the expected families.
//!
//! - `traffic`: XDP and tc, per interface, hook and protocol.
//! - `netfilter`: verdicts, conntrack states and TCP classes per family and hook.
//! - `rules`: drops attributed to netfilter rules (top rules per hook, the rest summed).
//! - `conntrack`: the kernel's conntrack table.
//! - `drops`: drop reasons with the dropping function, lost events, IPv4 routing decisions.
//! - `flows`: the TCP handshake funnel, its RTT histogram, the flow table's size.
//! - `sockets`: local TCP sockets' state transitions, SYN-ACK retransmits and resets.
//! - `doctor`: which of the doctor's diagnoses hold.
//! - `health`: what is attached and linked, and how fresh the snapshot is.
use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Instant,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};
use tokio::sync::watch;

use crate::model::Snapshot;

mod conntrack;
mod doctor;
mod drops;
mod flows;
mod health;
mod netfilter;
mod rules;
mod sockets;
mod traffic;

use netfilter::HighWater;
use rules::RuleSeries;

/// No labels (a family of one series).
const NO_LABELS: [(&str, &str); 0] = [];

/// Protocol label values, in the Snapshot's `by_proto` order.
const PROTOS: [&str; 5] = ["tcp", "udp", "icmp", "icmpv6", "other"];

/// Encodes the Snapshot families on each scrape.
#[derive(Debug)]
pub struct SnapshotCollector {
    latest: watch::Receiver<Arc<Snapshot>>,
    dropped: Mutex<HighWater>,
    rules: Mutex<RuleSeries>,
}

impl SnapshotCollector {
    pub fn new(latest: watch::Receiver<Arc<Snapshot>>) -> SnapshotCollector {
        SnapshotCollector {
            latest,
            dropped: Mutex::new(HighWater::default()),
            rules: Mutex::new(RuleSeries::default()),
        }
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let started = Instant::now();
        // Clone the Arc and release the borrow at once: a held borrow would block the
        // collector's next send.
        let snap = Arc::clone(&self.latest.borrow());
        // Before the first interval the channel holds the empty default: health only.
        if snap.ts_ms != 0 {
            traffic::encode(&mut enc, &snap)?;
            let mut dropped = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
            netfilter::encode(&mut enc, &snap, &mut dropped)?;
            drop(dropped);
            let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
            rules::encode(&mut enc, &snap, &mut rules)?;
            drop(rules);
            if let Some(ct) = &snap.conntrack {
                conntrack::encode(&mut enc, ct)?;
            }
            if let Some(d) = &snap.drops {
                drops::encode_drops(&mut enc, d)?;
            }
            if let Some(r) = &snap.routing {
                drops::encode_routing(&mut enc, r)?;
            }
            if let Some(h) = &snap.handshake {
                flows::encode(&mut enc, &snap, h)?;
            }
            if let Some(s) = &snap.sockets {
                sockets::encode(&mut enc, s)?;
            }
            doctor::encode(&mut enc, &snap)?;
            health::encode(&mut enc, &snap)?;
        }
        gauge(
            &mut enc,
            "netpost_scrape_duration",
            "Seconds this scrape spent encoding the snapshot families.",
            Some(&Unit::Seconds),
            [(NO_LABELS, started.elapsed().as_secs_f64())],
        )
    }
}

/// One counter family; nothing (not even HELP/TYPE) when it has no series.
fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge family; nothing when it has no series.
fn gauge<L: EncodeLabelSet, N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, N)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
