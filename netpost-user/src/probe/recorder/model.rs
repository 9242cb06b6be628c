//! The drop recorder's pure half: a recorded drop with its numbers named, the packet it
//! becomes (its comment says why it died, and which rule when the rules probe is sure), and
//! the counters of what was recorded and what was left out, per reason.
use std::{collections::BTreeMap, sync::Arc};

use netpost_common::netfilter::{NfFamily, NfHook};
use serde::Serialize;

use crate::{
    pcapng::{Link, Packet},
    probe::rules::model::{Backend, RulesRaw},
};

pub const NAME: &str = "recorder";

/// The interface block of packets that had no device when they died.
pub const NO_DEVICE: &str = "none";

/// A recorded drop, named, waiting for the interval's end (when the rules that dropped in
/// it are known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropRecord {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub reason: String,
    pub location: String,
    /// skb->dev's name; None without a device.
    pub iface: Option<String>,
    /// From skb->protocol; None when not IP.
    pub family: Option<NfFamily>,
    /// The netfilter hook that saw it last, and whether it died after that hook's rules.
    pub hook: Option<(NfHook, bool)>,
    /// What its bytes start with; None when nothing could be copied.
    pub link: Option<Link>,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// The hook as iptables names its chain (`FORWARD`).
pub fn hook_label(hook: NfHook) -> &'static str {
    match hook {
        NfHook::PreRouting => "PREROUTING",
        NfHook::LocalIn => "INPUT",
        NfHook::Forward => "FORWARD",
        NfHook::LocalOut => "OUTPUT",
        NfHook::PostRouting => "POSTROUTING",
    }
}

/// The packet comment: `reason=NETFILTER_DROP location=nft_do_chain hook=FORWARD
/// iface=veth1 rule="..."`. `hook=` names the hook whose rules or hook functions dropped it;
/// `after_hook=` the hook it passed last (it died later, e.g. no socket after INPUT).
pub fn comment(r: &DropRecord, rule: Option<&str>) -> String {
    let mut c = format!("reason={} location={}", r.reason, r.location);
    match r.hook {
        Some((hook, false)) => c.push_str(&format!(" hook={}", hook_label(hook))),
        Some((hook, true)) => c.push_str(&format!(" after_hook={}", hook_label(hook))),
        None => {}
    }
    if let Some(iface) = &r.iface {
        c.push_str(&format!(" iface={iface}"));
    }
    if let Some(rule) = rule {
        let quoted = rule.replace('\\', "\\\\").replace('"', "\\\"");
        c.push_str(&format!(" rule=\"{quoted}\""));
    }
    c
}

/// The rule that dropped at `hook` of `family` in the rules probe's last read, when exactly
/// one rule did and every rule there that could have has a counter (a rule without one, or
/// rules folded together, would make it a guess): `ip filter FORWARD: <the rule>`.
pub fn sole_rule(rules: &RulesRaw, family: NfFamily, hook: NfHook) -> Option<String> {
    let h = rules.hooks.get(&(family, hook))?;
    if h.rows.iter().any(|r| r.packets.is_none()) {
        return None;
    }
    let mut dropping = h.rows.iter().filter(|r| r.per_s.is_some_and(|s| s > 0.0));
    let row = dropping.next()?;
    if dropping.next().is_some() || row.key.backend == Backend::Other {
        return None;
    }
    Some(format!(
        "{} {} {}: {}",
        row.key.family, row.key.table, row.key.chain, row.info.text
    ))
}

/// The packet `r` becomes, its comment naming the rule when `rules` is sure of it (netfilter
/// drops inside a hook's rules only).
pub fn packet(r: DropRecord, rules: Option<&RulesRaw>) -> Packet {
    let rule = match (r.reason.as_str(), r.family, r.hook, rules) {
        ("NETFILTER_DROP", Some(family), Some((hook, false)), Some(rules)) => {
            sole_rule(rules, family, hook)
        }
        _ => None,
    };
    let comment = comment(&r, rule.as_deref());
    Packet {
        ts_ns: r.ts_ns,
        iface: r.iface.unwrap_or_else(|| NO_DEVICE.to_string()),
        // No bytes: any link type reads them.
        link: r.link.unwrap_or(Link::Raw),
        orig_len: r.orig_len,
        data: r.data,
        comment,
    }
}

/// The recorder's part of a sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecorderRaw {
    pub stats: RecorderStats,
    /// The last packets recorded (`--flight-recorder`), oldest first.
    pub flight: Arc<Vec<Arc<Packet>>>,
}

/// The JSON's `drops.recorder`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecorderStats {
    /// The `--record-drops` file; null when only the dashboard's flight recorder runs.
    pub file: Option<String>,
    /// Bytes kept per packet; 0: headers only.
    pub snaplen: u32,
    /// Packets recorded per second per reason at most.
    pub rate_per_s: u32,
    /// The reasons recorded (`--record-reasons`); empty: every reason.
    pub reasons: Vec<String>,
    /// Per reason, since start: packets recorded (written to the file, kept for the
    /// dashboard), left out by the rate limit, lost for want of room (the kernel's ring
    /// buffer, or netpost's queue), and drops of buffers that are no network packet (no
    /// header to start from: a netlink message purged from a closing socket's queue). Every
    /// reason with a count is in all four; they add up to the reason's drops.
    pub recorded: BTreeMap<String, u64>,
    pub skipped_rate: BTreeMap<String, u64>,
    pub skipped_lost: BTreeMap<String, u64>,
    pub skipped_no_header: BTreeMap<String, u64>,
    /// Bytes written to the file and the files before it.
    pub bytes_written: u64,
    /// Times the file reached `--record-max-mib` and was renamed to make room.
    pub files_rotated: u64,
    /// Why writing stopped (the packets are still counted and kept for the dashboard).
    pub write_error: Option<String>,
}

impl RecorderStats {
    /// Sets the per-reason counters (recorded, skipped_rate, skipped_lost,
    /// skipped_no_header); a reason with any count gets a row in each.
    pub fn set_counts(&mut self, counts: [&BTreeMap<String, u64>; 4]) {
        let reasons: std::collections::BTreeSet<&String> = counts
            .iter()
            .flat_map(|m| m.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(r, _)| r)
            .collect();
        let outs = [
            &mut self.recorded,
            &mut self.skipped_rate,
            &mut self.skipped_lost,
            &mut self.skipped_no_header,
        ];
        for (out, m) in outs.into_iter().zip(counts) {
            for r in &reasons {
                out.insert(r.to_string(), m.get(*r).copied().unwrap_or(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::rules::model::{HookRaw, RawRow, RuleId, RuleInfo, RuleKey};

    fn record(reason: &str, hook: Option<(NfHook, bool)>) -> DropRecord {
        DropRecord {
            ts_ns: 1,
            reason: reason.into(),
            location: "nf_hook_slow".into(),
            iface: Some("veth1".into()),
            family: Some(NfFamily::Ipv4),
            hook,
            link: Some(Link::Ethernet),
            orig_len: 60,
            data: vec![0; 60],
        }
    }

    fn row(handle: u64, per_s: Option<f64>, backend: Backend) -> RawRow {
        RawRow {
            key: RuleKey {
                backend,
                family: "ip",
                table: "filter".into(),
                chain: "FORWARD".into(),
                id: RuleId::Handle {
                    table_handle: 1,
                    handle,
                },
            },
            info: RuleInfo {
                handle_or_index: Some(handle),
                text: format!("-A FORWARD -p udp --dport 750{handle} -j DROP"),
                verdict: "drop",
            },
            packets: per_s.map(|_| 9),
            per_s,
            shared: 0,
            note: None,
        }
    }

    fn rules(rows: Vec<RawRow>) -> RulesRaw {
        RulesRaw {
            hooks: [(
                (NfFamily::Ipv4, NfHook::Forward),
                HookRaw {
                    rows,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn comments_name_reason_location_hook_and_interface() {
        let r = record("NETFILTER_DROP", Some((NfHook::Forward, false)));
        assert_eq!(
            comment(&r, None),
            "reason=NETFILTER_DROP location=nf_hook_slow hook=FORWARD iface=veth1"
        );
        let mut r = record("NO_SOCKET", Some((NfHook::LocalIn, true)));
        r.location = "__udp4_lib_rcv".into();
        assert_eq!(
            comment(&r, None),
            "reason=NO_SOCKET location=__udp4_lib_rcv after_hook=INPUT iface=veth1"
        );
        let mut r = record("IP_OUTNOROUTES", None);
        r.iface = None;
        assert_eq!(
            comment(&r, None),
            "reason=IP_OUTNOROUTES location=nf_hook_slow"
        );
        let r = record("NETFILTER_DROP", Some((NfHook::Forward, false)));
        assert_eq!(
            comment(&r, Some(r#"inet t c: meta mark "x" drop"#)),
            r#"reason=NETFILTER_DROP location=nf_hook_slow hook=FORWARD iface=veth1 rule="inet t c: meta mark \"x\" drop""#
        );
    }

    #[test]
    fn the_rule_is_named_only_when_exactly_one_counted_rule_dropped_there() {
        let fwd = (NfFamily::Ipv4, NfHook::Forward);
        let one = rules(vec![
            row(1, Some(12.0), Backend::IptablesNft),
            row(2, Some(0.0), Backend::IptablesNft),
        ]);
        assert_eq!(
            sole_rule(&one, fwd.0, fwd.1).as_deref(),
            Some("ip filter FORWARD: -A FORWARD -p udp --dport 7501 -j DROP")
        );
        let r = record("NETFILTER_DROP", Some((NfHook::Forward, false)));
        let p = packet(r, Some(&one));
        assert!(p.comment.ends_with(r#"rule="ip filter FORWARD: -A FORWARD -p udp --dport 7501 -j DROP""#), "{}", p.comment);
        // Two rules dropped: say nothing.
        let two = rules(vec![
            row(1, Some(12.0), Backend::IptablesNft),
            row(2, Some(3.0), Backend::IptablesNft),
        ]);
        assert_eq!(sole_rule(&two, fwd.0, fwd.1), None);
        // A rule without a counter might have dropped too.
        let uncounted = rules(vec![
            row(1, Some(12.0), Backend::IptablesNft),
            row(2, None, Backend::Nft),
        ]);
        assert_eq!(sole_rule(&uncounted, fwd.0, fwd.1), None);
        // Rules folded together are not a rule.
        let other = rules(vec![row(1, Some(12.0), Backend::Other)]);
        assert_eq!(sole_rule(&other, fwd.0, fwd.1), None);
        // Nothing dropped there now, or another hook.
        let idle = rules(vec![row(1, Some(0.0), Backend::IptablesNft)]);
        assert_eq!(sole_rule(&idle, fwd.0, fwd.1), None);
        assert_eq!(sole_rule(&one, NfFamily::Ipv4, NfHook::LocalIn), None);
        assert_eq!(sole_rule(&one, NfFamily::Ipv6, NfHook::Forward), None);
    }

    #[test]
    fn only_drops_inside_a_hooks_rules_get_a_rule() {
        let one = rules(vec![row(1, Some(12.0), Backend::IptablesNft)]);
        let after = record("NETFILTER_DROP", Some((NfHook::Forward, true)));
        assert!(!packet(after, Some(&one)).comment.contains("rule="));
        let other_reason = record("NO_SOCKET", Some((NfHook::Forward, false)));
        assert!(!packet(other_reason, Some(&one)).comment.contains("rule="));
        let no_rules = record("NETFILTER_DROP", Some((NfHook::Forward, false)));
        assert!(!packet(no_rules, None).comment.contains("rule="));
    }

    #[test]
    fn packets_without_a_device_or_bytes_still_get_a_block() {
        let mut r = record("NO_SOCKET", None);
        r.iface = None;
        r.link = None;
        r.data.clear();
        let p = packet(r, None);
        assert_eq!((p.iface.as_str(), p.link), (NO_DEVICE, Link::Raw));
        assert!(p.data.is_empty());
    }

    #[test]
    fn every_reason_with_a_count_has_a_row_in_each_counter() {
        let mut s = RecorderStats::default();
        let m = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
        };
        s.set_counts([
            &m(&[("NO_SOCKET", 1000)]),
            &m(&[("NO_SOCKET", 199_000), ("OTHERHOST", 0)]),
            &m(&[("NETFILTER_DROP", 2)]),
            &m(&[("QUEUE_PURGE", 1)]),
        ]);
        let row = |a, b, c| m(&[("NETFILTER_DROP", a), ("NO_SOCKET", b), ("QUEUE_PURGE", c)]);
        assert_eq!(s.recorded, row(0, 1000, 0));
        assert_eq!(s.skipped_rate, row(0, 199_000, 0));
        assert_eq!(s.skipped_lost, row(2, 0, 0));
        assert_eq!(s.skipped_no_header, row(0, 0, 1));
    }
}
