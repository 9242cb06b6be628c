//! The rows of the two tables, filtered and sorted: pure, so the App can count them for
//! scrolling and tests can check the order without rendering.
use netpost_common::{Hook, netfilter::NfHook};

use super::stats::iface_matches;
use crate::model::{FlowSummary, HookStats, NfHookStats, ReasonStats, Snapshot};

/// Orders of the interface hook table (`s` cycles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IfaceSort {
    /// Interface name, then the hooks in packet-path order.
    #[default]
    Path,
    Pps,
    Bps,
    Packets,
    Bytes,
}

impl IfaceSort {
    pub fn next(self) -> IfaceSort {
        match self {
            IfaceSort::Path => IfaceSort::Pps,
            IfaceSort::Pps => IfaceSort::Bps,
            IfaceSort::Bps => IfaceSort::Packets,
            IfaceSort::Packets => IfaceSort::Bytes,
            IfaceSort::Bytes => IfaceSort::Path,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            IfaceSort::Path => "path order",
            IfaceSort::Pps => "pps",
            IfaceSort::Bps => "bps",
            IfaceSort::Packets => "packets",
            IfaceSort::Bytes => "bytes",
        }
    }
}

/// Orders of the flows table (`s` cycles while it has focus).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowSort {
    #[default]
    Bytes,
    Rate,
    Packets,
    Rtt,
    Stage,
}

impl FlowSort {
    pub fn next(self) -> FlowSort {
        match self {
            FlowSort::Bytes => FlowSort::Rate,
            FlowSort::Rate => FlowSort::Packets,
            FlowSort::Packets => FlowSort::Rtt,
            FlowSort::Rtt => FlowSort::Stage,
            FlowSort::Stage => FlowSort::Bytes,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FlowSort::Bytes => "bytes",
            FlowSort::Rate => "rate",
            FlowSort::Packets => "packets",
            FlowSort::Rtt => "rtt",
            FlowSort::Stage => "state",
        }
    }
}

/// The flows (one row per flow across interfaces) matching `filter` (text in any column,
/// the interfaces included), in `sort` order, biggest first.
pub fn flow_rows<'a>(snap: &'a Snapshot, filter: &str, sort: FlowSort) -> Vec<&'a FlowSummary> {
    let needle = filter.to_lowercase();
    let mut rows: Vec<&FlowSummary> = snap
        .flows_merged
        .iter()
        .filter(|r| {
            needle.is_empty()
                || [&r.src, &r.dst, &r.proto, &r.stage]
                    .into_iter()
                    .chain(&r.ifaces)
                    .any(|f| f.to_lowercase().contains(&needle))
        })
        .collect();
    match sort {
        FlowSort::Bytes => rows.sort_by_key(|r| std::cmp::Reverse(r.bytes)),
        FlowSort::Rate => rows.sort_by(|a, b| b.bps.total_cmp(&a.bps)),
        FlowSort::Packets => rows.sort_by_key(|r| std::cmp::Reverse(r.packets)),
        FlowSort::Rtt => rows.sort_by_key(|r| std::cmp::Reverse(r.rtt_us)),
        FlowSort::Stage => rows.sort_by(|a, b| a.stage.cmp(&b.stage).then(b.bytes.cmp(&a.bytes))),
    }
    rows
}

/// A row of the drop reasons: routine ones (noise every host has) come last.
pub struct DropRow<'a> {
    pub reason: &'a str,
    pub stats: &'a ReasonStats,
    /// Why these drops are routine, when they are.
    pub routine: Option<&'static str>,
}

/// Drop reasons ranked by rate, then total, routine ones after the others.
pub fn drop_rows(snap: &Snapshot) -> Vec<DropRow<'_>> {
    snap.drops
        .as_ref()
        .map(|d| {
            d.ranked()
                .into_iter()
                .map(|(reason, stats)| DropRow {
                    reason,
                    stats,
                    routine: stats.routine(reason),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Orders of the netfilter table (`s` cycles while it has focus).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NfSort {
    /// Family, then the hooks in packet-path order.
    #[default]
    Path,
    Pps,
    DropRate,
    Dropped,
}

impl NfSort {
    pub fn next(self) -> NfSort {
        match self {
            NfSort::Path => NfSort::Pps,
            NfSort::Pps => NfSort::DropRate,
            NfSort::DropRate => NfSort::Dropped,
            NfSort::Dropped => NfSort::Path,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            NfSort::Path => "path order",
            NfSort::Pps => "pps",
            NfSort::DropRate => "drops/s",
            NfSort::Dropped => "dropped",
        }
    }
}

pub struct IfaceRow<'a> {
    pub iface: &'a str,
    pub hook: Hook,
    pub stats: &'a HookStats,
}

pub fn hook_label(hook: Hook) -> &'static str {
    match hook {
        Hook::Xdp => "xdp",
        Hook::TcIngress => "tc ingress",
        Hook::TcEgress => "tc egress",
    }
}

pub fn iface_rows<'a>(snap: &'a Snapshot, filter: &str, sort: IfaceSort) -> Vec<IfaceRow<'a>> {
    let mut rows: Vec<IfaceRow> = snap
        .interfaces
        .iter()
        .filter(|(name, _)| iface_matches(name, filter))
        .flat_map(|(name, iface)| {
            Hook::ALL.map(|hook| IfaceRow {
                iface: name,
                hook,
                stats: iface.hook(hook),
            })
        })
        .collect();
    // Stable sorts, descending: equal rows stay in path order.
    match sort {
        IfaceSort::Path => {}
        IfaceSort::Pps => rows.sort_by(|a, b| b.stats.pps.total_cmp(&a.stats.pps)),
        IfaceSort::Bps => rows.sort_by(|a, b| b.stats.bps.total_cmp(&a.stats.bps)),
        IfaceSort::Packets => rows.sort_by_key(|r| std::cmp::Reverse(r.stats.packets)),
        IfaceSort::Bytes => rows.sort_by_key(|r| std::cmp::Reverse(r.stats.bytes)),
    }
    rows
}

pub struct NfRow<'a> {
    pub family: &'a str,
    pub hook: NfHook,
    pub stats: &'a NfHookStats,
}

/// "PREROUTING", as iptables names the chains.
pub fn chain_name(hook: NfHook) -> String {
    hook.name().to_uppercase()
}

pub fn nf_rows(snap: &Snapshot, sort: NfSort) -> Vec<NfRow<'_>> {
    let mut rows: Vec<NfRow> = snap
        .netfilter
        .iter()
        .flat_map(|(family, stats)| {
            NfHook::ALL.map(|hook| NfRow {
                family,
                hook,
                stats: stats.hook(hook),
            })
        })
        .collect();
    match sort {
        NfSort::Path => {}
        NfSort::Pps => rows.sort_by(|a, b| b.stats.pps.total_cmp(&a.stats.pps)),
        NfSort::DropRate => {
            rows.sort_by(|a, b| b.stats.dropped_pps.total_cmp(&a.stats.dropped_pps))
        }
        NfSort::Dropped => rows.sort_by_key(|r| std::cmp::Reverse(r.stats.dropped)),
    }
    rows
}

#[cfg(test)]
mod flow_tests {
    use super::*;

    fn row(src: &str, bytes: u64, packets: u64, rtt: Option<u32>, stage: &str) -> FlowSummary {
        FlowSummary {
            ifaces: vec!["veth0".into(), "veth1".into()],
            src: src.into(),
            dst: "10.0.0.2:80".into(),
            proto: "tcp".into(),
            stage: stage.into(),
            packets,
            bytes,
            bps: packets as f64,
            rtt_us: rtt,
            ..Default::default()
        }
    }

    #[test]
    fn flows_filter_and_sort() {
        let snap = Snapshot {
            flows_merged: vec![
                row("10.0.0.1:1", 900, 5, Some(30), "established"),
                row("10.0.0.1:2", 100, 50, None, "syn_sent"),
            ],
            ..Default::default()
        };
        let srcs = |rows: Vec<&FlowSummary>| rows.iter().map(|r| r.src.clone()).collect::<Vec<_>>();
        assert_eq!(
            srcs(flow_rows(&snap, "", FlowSort::Bytes)),
            ["10.0.0.1:1", "10.0.0.1:2"]
        );
        assert_eq!(
            srcs(flow_rows(&snap, "", FlowSort::Packets)),
            ["10.0.0.1:2", "10.0.0.1:1"]
        );
        assert_eq!(srcs(flow_rows(&snap, "", FlowSort::Rate))[0], "10.0.0.1:2");
        assert_eq!(srcs(flow_rows(&snap, "", FlowSort::Rtt))[0], "10.0.0.1:1");
        assert_eq!(
            srcs(flow_rows(&snap, "syn", FlowSort::Bytes)),
            ["10.0.0.1:2"]
        );
        assert_eq!(
            flow_rows(&snap, "veth1", FlowSort::Bytes).len(),
            2,
            "interfaces match"
        );
        assert_eq!(FlowSort::Stage.next(), FlowSort::Bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IfaceStats, NfFamilyStats};

    fn snap() -> Snapshot {
        let mut a = IfaceStats::default();
        a.xdp.pps = 10.0;
        a.tc_egress.pps = 30.0;
        a.tc_egress.bytes = 5;
        let mut b = IfaceStats::default();
        b.tc_ingress.pps = 20.0;
        b.tc_ingress.bytes = 50;
        let mut v4 = NfFamilyStats::default();
        v4.output.dropped = 7;
        v4.input.dropped_pps = 2.0;
        v4.forward.pps = 9.0;
        Snapshot {
            interfaces: [("a".into(), a), ("b".into(), b)].into(),
            netfilter: [("ipv4".into(), v4)].into(),
            ..Default::default()
        }
    }

    fn order(snap: &Snapshot, filter: &str, sort: IfaceSort) -> Vec<String> {
        iface_rows(snap, filter, sort)
            .iter()
            .map(|r| format!("{} {}", r.iface, hook_label(r.hook)))
            .collect()
    }

    #[test]
    fn interface_rows_sort_descending_and_ties_keep_path_order() {
        let s = snap();
        assert_eq!(
            order(&s, "", IfaceSort::Path),
            [
                "a xdp",
                "a tc ingress",
                "a tc egress",
                "b xdp",
                "b tc ingress",
                "b tc egress"
            ]
        );
        assert_eq!(
            order(&s, "", IfaceSort::Pps)[..3],
            ["a tc egress", "b tc ingress", "a xdp"]
        );
        assert_eq!(
            order(&s, "", IfaceSort::Bytes)[..2],
            ["b tc ingress", "a tc egress"]
        );
        assert_eq!(order(&s, "B", IfaceSort::Path).len(), 3);
    }

    #[test]
    fn netfilter_rows_sort_by_drops() {
        let s = snap();
        let names = |sort| -> Vec<String> {
            nf_rows(&s, sort)
                .iter()
                .map(|r| chain_name(r.hook))
                .collect()
        };
        assert_eq!(
            names(NfSort::Path),
            ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
        );
        assert_eq!(names(NfSort::Pps)[0], "FORWARD");
        assert_eq!(names(NfSort::DropRate)[0], "INPUT");
        assert_eq!(names(NfSort::Dropped)[0], "OUTPUT");
    }

    #[test]
    fn sorts_cycle_back_to_path_order() {
        let mut s = IfaceSort::Path;
        for _ in 0..5 {
            s = s.next();
        }
        assert_eq!(s, IfaceSort::Path);
        let mut n = NfSort::Path;
        for _ in 0..4 {
            n = n.next();
        }
        assert_eq!(n, NfSort::Path);
    }
}
