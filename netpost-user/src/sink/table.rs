//! The compact live table printed once per interval until the dashboard exists.
use std::io::{self, Write};

use netpost_common::Hook;

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
}
