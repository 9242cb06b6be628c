//! Where and why packets die: the kernel's drop counters turned into the Snapshot's
//! `drops` object. Names come from the running kernel (reason names from BTF's
//! `enum skb_drop_reason`, functions from /proc/kallsyms); the folding itself is pure.
use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use netpost_common::{
    drops::{DropKey, DropSample, nf_where_decode},
    netfilter::{NfFamily, NfHook},
};
use serde::Serialize;

use crate::{delta::rate, ksyms::Ksyms, probe::recorder::model::RecorderStats};

pub const NAME: &str = "drops";

const REASON_PREFIX: &str = "SKB_DROP_REASON_";

/// A drop counter with its numbers turned into names.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedKey {
    pub reason: String,
    pub location: String,
    pub proto: String,
    /// Where netpost's netfilter programs last saw the packet: `(hook, after its rules)`.
    pub hook: Option<(NfHook, bool)>,
}

/// Drops counted since start (named), recent samples, lost samples: one collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropsRaw {
    pub counts: BTreeMap<NamedKey, u64>,
    pub samples: Vec<SampleView>,
    pub events_lost: u64,
    /// Netfilter drops after netpost's last program at a hook (conntrack's confirmation
    /// runs there, out of reach of BPF links), per family and hook; every hook present.
    pub after_last: BTreeMap<(NfFamily, NfHook), u64>,
}

/// Per family and hook, the NETFILTER_DROP drops that happened after netpost's last
/// netfilter program there (`nf_where` says "after"); 0 where none did.
pub fn after_last(counts: &BTreeMap<DropKey, u64>, names: &Names) -> BTreeMap<(NfFamily, NfHook), u64> {
    let mut out: BTreeMap<(NfFamily, NfHook), u64> = NfFamily::ALL
        .into_iter()
        .flat_map(|f| NfHook::ALL.into_iter().map(move |h| ((f, h), 0)))
        .collect();
    for (key, n) in counts {
        let family = match key.ethertype {
            0x0800 => NfFamily::Ipv4,
            0x86dd => NfFamily::Ipv6,
            _ => continue,
        };
        if let Some((hook, true)) = hook_of(key.nf_where)
            && names.reason(key.reason) == "NETFILTER_DROP"
        {
            *out.entry((family, hook)).or_default() += n;
        }
    }
    out
}

/// Names every counter (several addresses in one function add up).
pub fn name_counts(counts: &BTreeMap<DropKey, u64>, names: &mut Names) -> BTreeMap<NamedKey, u64> {
    let mut out = BTreeMap::new();
    for (key, n) in counts {
        let named = NamedKey {
            reason: names.reason(key.reason),
            location: names.function(key.location),
            proto: proto_name(key.ethertype, key.ipproto),
            hook: hook_of(key.nf_where),
        };
        *out.entry(named).or_default() += n;
    }
    out
}

/// The hook (and whether after its rules) a `nf_where` code names.
pub fn hook_of(nf_where: u8) -> Option<(NfHook, bool)> {
    let (hook, after) = nf_where_decode(nf_where)?;
    Some((*NfHook::ALL.get(hook as usize)?, after))
}

/// Turns numbers into names.
pub struct Names {
    reasons: HashMap<u32, String>,
    ksyms: Ksyms,
}

impl Names {
    /// `reasons`: (name, value) of `enum skb_drop_reason` (prefix stripped here).
    pub fn new(reasons: Vec<(String, u64)>, ksyms: Ksyms) -> Names {
        Names {
            reasons: reasons
                .into_iter()
                .map(|(name, v)| {
                    let short = name
                        .strip_prefix(REASON_PREFIX)
                        .unwrap_or(&name)
                        .to_string();
                    (v as u32, short)
                })
                .collect(),
            ksyms,
        }
    }

    pub fn reason(&self, value: u32) -> String {
        self.reasons
            .get(&value)
            .cloned()
            .unwrap_or_else(|| format!("REASON_{value}"))
    }

    pub fn function(&mut self, addr: u64) -> String {
        self.ksyms.name(addr)
    }
}

/// The protocol name of a drop key: the IP protocol for IP packets, else the ethertype.
pub fn proto_name(ethertype: u16, ipproto: u8) -> String {
    match (ethertype, ipproto) {
        (0x0800 | 0x86dd, 6) => "tcp".into(),
        (0x0800 | 0x86dd, 17) => "udp".into(),
        (0x0800, 1) => "icmp".into(),
        (0x86dd, 58) => "icmpv6".into(),
        (0x0800, _) => "ipv4".into(),
        (0x86dd, _) => "ipv6".into(),
        (0x0806, _) => "arp".into(),
        (e, _) => format!("ethertype_{e:04x}"),
    }
}

/// One reason's drops.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReasonStats {
    pub packets: u64,
    /// Drops per second over the last interval.
    pub per_s: f64,
    /// Dropping kernel function -> packets.
    pub locations: BTreeMap<String, u64>,
    /// Protocol -> packets.
    pub by_proto: BTreeMap<String, u64>,
    /// Netfilter hook (`prerouting`...) -> packets of this reason that netpost's netfilter
    /// programs saw there last: dropped by that hook's rules and hook functions (`in_rules`:
    /// netpost's first program there ran, its last one not), or after them (`after_rules`:
    /// after every rule, e.g. by conntrack's confirmation, or later in the stack). Packets
    /// netfilter never saw are not in it.
    pub hooks: BTreeMap<String, HookDrops>,
}

/// Drops of one reason at one netfilter hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HookDrops {
    pub in_rules: u64,
    pub after_rules: u64,
}

impl ReasonStats {
    /// Why these drops (of `reason`) are routine, when they are (see [`routine`]).
    pub fn routine(&self, reason: &str) -> Option<&'static str> {
        routine(reason, self)
    }

    /// The kernel function that dropped most of these packets.
    pub fn top_location(&self) -> &str {
        self.locations
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(l, _)| l.as_str())
            .unwrap_or("?")
    }
}

impl DropsStats {
    /// Reasons, most packets first (ties by name).
    pub fn busiest(&self) -> Vec<(&str, &ReasonStats)> {
        let mut reasons: Vec<(&str, &ReasonStats)> =
            self.reasons.iter().map(|(n, r)| (n.as_str(), r)).collect();
        reasons.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(b.0)));
        reasons
    }

    /// Reasons ranked as a person triages them: dropping now first (by rate), then by total;
    /// routine ones (see [`routine`]) after every other.
    pub fn ranked(&self) -> Vec<(&str, &ReasonStats)> {
        let mut reasons: Vec<(&str, &ReasonStats)> =
            self.reasons.iter().map(|(n, r)| (n.as_str(), r)).collect();
        reasons.sort_by(|a, b| {
            let routine = |x: &(&str, &ReasonStats)| routine(x.0, x.1).is_some();
            routine(a)
                .cmp(&routine(b))
                .then(b.1.per_s.total_cmp(&a.1.per_s))
                .then(b.1.packets.cmp(&a.1.packets))
                .then(a.0.cmp(b.0))
        });
        reasons
    }
}

/// Drops every host sees in normal operation, as (reason, dropping function or "*" for any,
/// why): they say nothing is wrong, so the dashboard folds them into one dimmed line.
pub const ROUTINE: [(&str, &str, &str); 4] = [
    (
        "NOT_SPECIFIED",
        "ip6_mc_input",
        "IPv6 multicast for a group nobody here joined",
    ),
    (
        "IPV6_NDISC_NS_OTHERHOST",
        "*",
        "neighbour solicitations for another host's address",
    ),
    (
        "OTHERHOST",
        "*",
        "frames for another host's MAC (promiscuous mode, bridges)",
    ),
    (
        "UNHANDLED_PROTO",
        "*",
        "frames of a protocol nothing here speaks (LLDP, STP...)",
    ),
];

/// Why a reason's drops are routine, when every function that dropped them is a routine
/// place for it (one that also drops elsewhere is not folded away).
pub fn routine(reason: &str, r: &ReasonStats) -> Option<&'static str> {
    let mut why = None;
    for location in r.locations.keys() {
        let (_, _, w) = ROUTINE
            .iter()
            .find(|(re, loc, _)| *re == reason && (*loc == "*" || loc == location))?;
        why = Some(*w);
    }
    why
}

/// A sampled dropped packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SampleView {
    pub reason: String,
    pub location: String,
    pub proto: String,
    /// "ip:port" ("ip" without ports), or null when the packet had no readable IP header.
    pub src: Option<String>,
    pub dst: Option<String>,
    /// The netfilter hook that last saw it (`forward`), with ` after rules` when it died
    /// after that hook's rules; null when netfilter never saw it.
    pub hook: Option<String>,
}

/// The JSON's `drops` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DropsStats {
    pub total: u64,
    pub per_s: f64,
    pub reasons: BTreeMap<String, ReasonStats>,
    /// The most recent sampled drops, newest last.
    pub samples: Vec<SampleView>,
    /// Samples the ring buffer had no room for.
    pub events_lost: u64,
    /// The drop recorder (`--record-drops`, the dashboard's flight recorder): packets
    /// recorded and left out per reason; null when it is off.
    pub recorder: Option<RecorderStats>,
}

fn endpoint(version: u8, addr: &[u8; 16], port: u16, with_port: bool) -> Option<String> {
    let ip = match version {
        4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return None,
    };
    Some(match (with_port, ip) {
        (false, ip) => ip.to_string(),
        (true, IpAddr::V4(ip)) => format!("{ip}:{port}"),
        (true, IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
    })
}

pub fn sample_view(s: &DropSample, names: &mut Names) -> SampleView {
    let ports = matches!(s.ipproto, 6 | 17);
    SampleView {
        reason: names.reason(s.reason),
        location: names.function(s.location),
        proto: proto_name(s.ethertype, s.ipproto),
        src: endpoint(s.ip_version, &s.src, s.sport, ports),
        dst: endpoint(s.ip_version, &s.dst, s.dport, ports),
        hook: hook_of(s.nf_where).map(|(hook, after)| {
            let name = hook.name().to_string();
            if after {
                format!("{name} after rules")
            } else {
                name
            }
        }),
    }
}

/// Folds named counts since start into per-reason stats, with rates against `prev`.
pub fn stats(raw: &DropsRaw, prev: Option<&DropsRaw>, interval_ms: u64) -> DropsStats {
    let mut out = DropsStats {
        samples: raw.samples.clone(),
        events_lost: raw.events_lost,
        ..Default::default()
    };
    let mut before: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, old) in prev.map(|p| &p.counts).into_iter().flatten() {
        *before.entry(key.reason.as_str()).or_default() += old;
    }
    for (key, packets) in &raw.counts {
        let r = out.reasons.entry(key.reason.clone()).or_default();
        r.packets += packets;
        *r.locations.entry(key.location.clone()).or_default() += packets;
        *r.by_proto.entry(key.proto.clone()).or_default() += packets;
        if let Some((hook, after)) = key.hook {
            let h = r.hooks.entry(hook.name().to_string()).or_default();
            if after {
                h.after_rules += packets;
            } else {
                h.in_rules += packets;
            }
        }
        out.total += packets;
    }
    for (reason, r) in out.reasons.iter_mut() {
        r.per_s = rate(
            r.packets,
            before.get(reason.as_str()).copied().unwrap_or(0),
            interval_ms,
        );
    }
    out.per_s = rate(out.total, before.values().sum(), interval_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::since;

    fn names() -> Names {
        Names::new(
            vec![
                ("SKB_DROP_REASON_NO_SOCKET".into(), 3),
                ("SKB_DROP_REASON_NETFILTER_DROP".into(), 12),
            ],
            Ksyms::parse("ffffffff81000100 T __udp4_lib_rcv\nffffffff81000200 T nf_hook_slow\n"),
        )
    }

    fn key(reason: u32, ipproto: u8, location: u64) -> DropKey {
        DropKey {
            reason,
            ethertype: 0x0800,
            ipproto,
            nf_where: 0,
            location,
        }
    }

    #[test]
    fn netfilter_drops_after_the_last_program_are_kept_per_family_and_hook() {
        use netpost_common::drops::nf_where;
        let n = names();
        let at = |reason, ethertype, code| DropKey {
            ethertype,
            nf_where: code,
            ..key(reason, 17, 0xffffffff81000200)
        };
        let counts: BTreeMap<DropKey, u64> = [
            // Conntrack's confirmation dropped 4 after POSTROUTING's rules, IPv4.
            (at(12, 0x0800, nf_where(4, true)), 4),
            // A rule dropped 9 inside FORWARD: not "after".
            (at(12, 0x0800, nf_where(2, false)), 9),
            // After INPUT's rules, but no socket: not a netfilter drop.
            (at(3, 0x0800, nf_where(1, true)), 5),
            (at(12, 0x86dd, nf_where(1, true)), 2),
        ]
        .into();
        let after = after_last(&counts, &n);
        assert_eq!(after.len(), 10, "every family and hook, zeros included");
        assert_eq!(after[&(NfFamily::Ipv4, NfHook::PostRouting)], 4);
        assert_eq!(after[&(NfFamily::Ipv4, NfHook::Forward)], 0);
        assert_eq!(after[&(NfFamily::Ipv4, NfHook::LocalIn)], 0);
        assert_eq!(after[&(NfFamily::Ipv6, NfHook::LocalIn)], 2);
    }

    #[test]
    fn drops_fold_by_reason_location_and_protocol() {
        let mut n = names();
        let now: BTreeMap<DropKey, u64> = [
            (key(3, 17, 0xffffffff81000150), 30),
            (key(3, 17, 0xffffffff81000160), 10),
            (key(12, 17, 0xffffffff81000210), 7),
            (key(12, 6, 0xffffffff81000220), 3),
        ]
        .into();
        let prev: BTreeMap<DropKey, u64> = [(key(3, 17, 0xffffffff81000150), 20)].into();
        let raw = DropsRaw {
            counts: name_counts(&now, &mut n),
            samples: vec![],
            events_lost: 1,
            after_last: BTreeMap::new(),
        };
        let prev = DropsRaw {
            counts: name_counts(&prev, &mut n),
            ..Default::default()
        };
        assert_eq!(
            raw.counts.len(),
            3,
            "two addresses in one function are one counter"
        );
        let s = stats(&raw, Some(&prev), 2000);
        assert_eq!(s.total, 50);
        assert_eq!(s.per_s, 15.0);
        assert_eq!(s.events_lost, 1);
        let no_socket = &s.reasons["NO_SOCKET"];
        assert_eq!(no_socket.packets, 40);
        assert_eq!(no_socket.per_s, 10.0);
        assert_eq!(no_socket.locations["__udp4_lib_rcv"], 40);
        assert_eq!(no_socket.by_proto["udp"], 40);
        let nf = &s.reasons["NETFILTER_DROP"];
        assert_eq!(nf.packets, 10);
        assert_eq!(nf.locations["nf_hook_slow"], 10);
        assert_eq!((nf.by_proto["udp"], nf.by_proto["tcp"]), (7, 3));
    }

    #[test]
    fn reasons_rank_by_rate_then_total_with_routine_ones_last() {
        let r = |packets: u64, per_s: f64, location: &str| ReasonStats {
            packets,
            per_s,
            locations: [(location.to_string(), packets)].into(),
            ..Default::default()
        };
        let d = DropsStats {
            reasons: [
                ("NOT_SPECIFIED".to_string(), r(900, 9.0, "ip6_mc_input")),
                ("NO_SOCKET".to_string(), r(500, 0.0, "__udp4_lib_rcv")),
                ("NETFILTER_DROP".to_string(), r(20, 5.0, "nft_do_chain")),
                ("IP_INNOROUTES".to_string(), r(30, 0.0, "ip_route_input_slow")),
            ]
            .into(),
            ..Default::default()
        };
        let order: Vec<&str> = d.ranked().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            order,
            ["NETFILTER_DROP", "NO_SOCKET", "IP_INNOROUTES", "NOT_SPECIFIED"]
        );
        assert!(routine("NOT_SPECIFIED", &d.reasons["NOT_SPECIFIED"]).is_some());
        assert!(routine("NO_SOCKET", &d.reasons["NO_SOCKET"]).is_none());
        // NOT_SPECIFIED elsewhere too: not routine as a whole.
        let mut mixed = r(5, 0.0, "ip6_mc_input");
        mixed.locations.insert("tcp_v4_rcv".into(), 1);
        assert!(routine("NOT_SPECIFIED", &mixed).is_none());
    }

    #[test]
    fn unknown_reasons_keep_their_number() {
        assert_eq!(names().reason(99), "REASON_99");
    }

    #[test]
    fn counts_since_a_baseline() {
        let base: BTreeMap<DropKey, u64> = [(key(3, 17, 1), 5)].into();
        let now: BTreeMap<DropKey, u64> = [(key(3, 17, 1), 8), (key(12, 6, 2), 2)].into();
        let d = since(&now, &base);
        assert_eq!(d[&key(3, 17, 1)], 3);
        assert_eq!(d[&key(12, 6, 2)], 2);
        assert_eq!(since(&base, &base).len(), 0);
    }

    #[test]
    fn samples_render_endpoints() {
        let mut n = names();
        let mut s = DropSample {
            reason: 3,
            location: 0xffffffff81000150,
            ethertype: 0x0800,
            ipproto: 17,
            ip_version: 4,
            sport: 40000,
            dport: 9,
            ..Default::default()
        };
        s.src[..4].copy_from_slice(&[10, 0, 0, 1]);
        s.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        let v = sample_view(&s, &mut n);
        assert_eq!(v.src.as_deref(), Some("10.0.0.1:40000"));
        assert_eq!(v.dst.as_deref(), Some("10.0.0.2:9"));
        assert_eq!((v.reason.as_str(), v.proto.as_str()), ("NO_SOCKET", "udp"));
        s.ip_version = 0;
        assert_eq!(sample_view(&s, &mut n).src, None);
    }
}
