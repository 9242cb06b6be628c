//! The compact live table printed once per interval until the dashboard exists.
use std::io::{self, Write};

use netpost_common::{Hook, netfilter::NfHook};

use super::Sink;
use crate::{
    fmt::{bytes, count, rate_bits, rate_pkts},
    model::{HookStats, Snapshot},
};

pub struct Table<W: Write> {
    out: W,
}

impl<W: Write> Table<W> {
    pub fn new(out: W) -> Self {
        Table { out }
    }
}

/// Renders one snapshot as text lines.
pub fn render(snap: &Snapshot) -> String {
    let mut s = format!(
        "netpost  +{:.1}s{}\n{:<12} {:<10} {:>9} {:>10} {:>9} {:>11} {:>5}  {:>8} {:>8} {:>7} {:>7} {:>7}\n",
        snap.elapsed_ms as f64 / 1000.0,
        snap.netns
            .as_deref()
            .map(|n| format!("  netns {n}"))
            .unwrap_or_default(),
        "iface",
        "hook",
        "pps",
        "bps",
        "packets",
        "bytes",
        "hdr%",
        "tcp",
        "udp",
        "icmp",
        "icmp6",
        "other",
    );
    for (name, iface) in &snap.interfaces {
        for hook in Hook::ALL {
            let h: &HookStats = iface.hook(hook);
            let hdr_pct = if h.bytes == 0 {
                0.0
            } else {
                h.header_bytes as f64 * 100.0 / h.bytes as f64
            };
            s.push_str(&format!(
                "{:<12} {:<10} {:>9} {:>10} {:>9} {:>11} {:>5.1}  {:>8} {:>8} {:>7} {:>7} {:>7}\n",
                name,
                hook.name(),
                rate_pkts(h.pps),
                rate_bits(h.bps),
                count(h.packets),
                bytes(h.bytes),
                hdr_pct,
                count(h.by_proto.tcp.packets),
                count(h.by_proto.udp.packets),
                count(h.by_proto.icmp.packets),
                count(h.by_proto.icmpv6.packets),
                count(h.by_proto.other.packets),
            ));
        }
    }
    s.push_str(&render_netfilter(snap));
    if let Some(ct) = &snap.conntrack {
        s.push_str(&format!(
            "conntrack    {}/{} ({:.1}% full)  new/s {}  drop {}  early_drop {}  insert_failed {}  invalid {}{}\n",
            count(ct.count),
            count(ct.max),
            ct.fill_pct,
            ct.new_per_s.map(rate_pkts).unwrap_or_else(|| "-".into()),
            count(ct.drop),
            count(ct.early_drop),
            count(ct.insert_failed),
            count(ct.invalid),
            ct.time_to_full_s
                .map(|t| format!("  full in {t:.0}s"))
                .unwrap_or_default(),
        ));
        for top in &ct.top_sources {
            s.push_str(&format!(
                "             top source {} ({} new)\n",
                top.src, top.new
            ));
        }
    }
    if let Some(d) = &snap.drops {
        s.push_str(&render_drops(d));
    }
    s
}

/// One line: the drop total and the busiest reasons with the function that dropped most.
fn render_drops(d: &crate::model::DropsStats) -> String {
    let top: Vec<String> = d
        .busiest()
        .into_iter()
        .take(3)
        .map(|(reason, r)| format!("{reason} {} in {}", count(r.packets), r.top_location()))
        .collect();
    format!(
        "drops        {} ({}/s){}{}\n",
        count(d.total),
        rate_pkts(d.per_s),
        if top.is_empty() { "" } else { "  " },
        top.join(", ")
    )
}

/// The five netfilter hooks in packet-path order, per linked family.
fn render_netfilter(snap: &Snapshot) -> String {
    let mut s = String::new();
    for (family, status) in &snap.netfilter_status {
        let Some(stats) = snap.netfilter.get(family) else {
            s.push_str(&format!("netfilter {family}: {status}\n"));
            continue;
        };
        s.push_str(&format!(
            "{:<12} {:<12} {:>9} {:>9} {:>9} {:>9} {:>8}  {:>6} {:>6} {:>6} {:>6}\n",
            format!("netfilter {family}"),
            "hook",
            "entered",
            "accepted",
            "dropped",
            "pps",
            "drop/s",
            "ct new",
            "est",
            "reply",
            "inval",
        ));
        for hook in NfHook::ALL {
            let h = stats.hook(hook);
            s.push_str(&format!(
                "{:<12} {:<12} {:>9} {:>9} {:>9} {:>9} {:>8}  {:>6} {:>6} {:>6} {:>6}\n",
                "",
                hook.name().to_uppercase(),
                count(h.entered),
                count(h.accepted),
                count(h.dropped),
                rate_pkts(h.pps),
                rate_pkts(h.dropped_pps),
                count(h.ct.new),
                count(h.ct.established),
                count(h.ct.reply),
                count(h.ct.invalid),
            ));
        }
    }
    s
}

impl<W: Write> Sink for Table<W> {
    fn emit(&mut self, snapshot: &Snapshot) -> io::Result<()> {
        writeln!(self.out, "{}", render(snapshot))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IfaceStats;

    #[test]
    fn table_lists_every_hook_with_counts_and_rates() {
        let mut iface = IfaceStats::default();
        iface.tc_ingress.packets = 1500;
        iface.tc_ingress.bytes = 150_000;
        iface.tc_ingress.header_bytes = 15_000;
        iface.tc_ingress.pps = 250.0;
        iface.tc_ingress.bps = 2_000_000.0;
        iface.tc_ingress.by_proto.udp.packets = 1500;
        let snap = Snapshot {
            elapsed_ms: 2500,
            netns: Some("lab".into()),
            interfaces: [("veth-b".to_string(), iface)].into(),
            ..Default::default()
        };
        let text = render(&snap);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            !text.contains("netfilter"),
            "no netfilter section without status"
        );
        assert!(lines[0].contains("+2.5s") && lines[0].contains("netns lab"));
        assert_eq!(lines.len(), 2 + 3);
        let tc_in = lines
            .iter()
            .find(|l| l.contains("tc_ingress"))
            .expect("tc_ingress row");
        for want in ["veth-b", "250", "2.00M", "1.5k", "146.5KiB", "10.0"] {
            assert!(tc_in.contains(want), "{want:?} missing in {tc_in:?}");
        }
    }

    #[test]
    fn netfilter_hooks_are_listed_in_packet_path_order_with_drops() {
        let mut v4 = crate::model::NfFamilyStats::default();
        v4.forward.entered = 120;
        v4.forward.accepted = 100;
        v4.forward.dropped = 20;
        v4.forward.dropped_pps = 20.0;
        v4.input.ct.established = 42;
        let snap = Snapshot {
            netfilter: [("ipv4".to_string(), v4)].into(),
            netfilter_status: [
                ("ipv4".to_string(), "linked".to_string()),
                ("ipv6".to_string(), "unavailable: no links".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let text = render(&snap);
        let order: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
            .collect();
        assert_eq!(
            order,
            ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
        );
        let forward = text.lines().find(|l| l.contains("FORWARD")).unwrap();
        let cols: Vec<&str> = forward.split_whitespace().collect();
        assert_eq!(&cols[1..4], ["120", "100", "20"], "{forward}");
        assert!(
            text.lines()
                .find(|l| l.contains("INPUT"))
                .unwrap()
                .contains("42")
        );
        assert!(text.contains("netfilter ipv6: unavailable: no links"));
    }

    #[test]
    fn drops_name_the_busiest_reasons_and_their_function() {
        use crate::model::{DropsStats, ReasonStats};
        let reason = |packets, function: &str| ReasonStats {
            packets,
            locations: [(function.to_string(), packets)].into(),
            ..Default::default()
        };
        let snap = Snapshot {
            drops: Some(DropsStats {
                total: 57,
                per_s: 12.0,
                reasons: [
                    ("NETFILTER_DROP".to_string(), reason(50, "nf_hook_slow")),
                    ("NO_SOCKET".to_string(), reason(7, "__udp4_lib_rcv")),
                ]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render(&snap);
        let line = text.lines().find(|l| l.starts_with("drops")).unwrap();
        assert_eq!(
            line,
            "drops        57 (12/s)  NETFILTER_DROP 50 in nf_hook_slow, NO_SOCKET 7 in __udp4_lib_rcv"
        );
    }
}
