//! Where and why packets die: the kernel's drop counters turned into the Snapshot's
//! `drops` object. Names come from the running kernel (reason names from BTF's
//! `enum skb_drop_reason`, functions from /proc/kallsyms); the folding itself is pure.
use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use netpost_common::drops::{DropKey, DropSample};
use serde::Serialize;

use crate::{ksyms::Ksyms, model::rate};

const REASON_PREFIX: &str = "SKB_DROP_REASON_";

/// A drop counter with its numbers turned into names.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedKey {
    pub reason: String,
    pub location: String,
    pub proto: String,
}

/// Drops counted since start (named), recent samples, lost samples: one collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropsRaw {
    pub counts: BTreeMap<NamedKey, u64>,
    pub samples: Vec<SampleView>,
    pub events_lost: u64,
}

/// Names every counter (several addresses in one function add up).
pub fn name_counts(counts: &BTreeMap<DropKey, u64>, names: &mut Names) -> BTreeMap<NamedKey, u64> {
    let mut out = BTreeMap::new();
    for (key, n) in counts {
        let named = NamedKey {
            reason: names.reason(key.reason),
            location: names.function(key.location),
            proto: proto_name(key.ethertype, key.ipproto),
        };
        *out.entry(named).or_default() += n;
    }
    out
}

/// `now - baseline` per key (keys the baseline lacks count from zero).
pub fn since<K: Ord + Copy>(
    now: &BTreeMap<K, u64>,
    baseline: &BTreeMap<K, u64>,
) -> BTreeMap<K, u64> {
    now.iter()
        .map(|(k, v)| (*k, v.saturating_sub(baseline.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
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
}

impl ReasonStats {
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
            _pad: 0,
            location,
        }
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
