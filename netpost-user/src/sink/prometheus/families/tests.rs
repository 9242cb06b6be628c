//! Names, types, label sets and values of the families, from a known Snapshot.
use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::registry::Registry;

use super::*;
use crate::model::{
    AttachInfo, ConntrackStats, HookStats, IfaceStats, IfaceStatus, NfFamilyStats, NfHookStats,
    RuleDrops, SocketsStats, TopSource, Traffic, Verdicts,
};

/// A snapshot with distinct values everywhere that matters.
pub(crate) fn sample_snapshot() -> Snapshot {
    let t = |packets: u64| Traffic {
        packets,
        bytes: packets * 100,
        frames: packets,
        header_bytes: packets * 42,
        payload_bytes: packets * 58,
    };
    let mut xdp = HookStats {
        packets: 18,
        bytes: 1800,
        header_bytes: 756,
        payload_bytes: 1044,
        frames: 18,
        ..Default::default()
    };
    xdp.by_proto.udp = t(7);
    xdp.by_proto.tcp = t(5);
    xdp.by_proto.other = t(6);
    xdp.by_family.ipv4 = t(12);
    xdp.by_family.other = t(6);
    xdp.malformed = t(2);
    let mut input = NfHookStats {
        entered: 9,
        accepted: 8,
        dropped: 1,
        entered_bytes: 900,
        accepted_bytes: 800,
        ..Default::default()
    };
    input.by_proto.udp = Verdicts {
        entered: 9,
        accepted: 8,
        dropped: 1,
    };
    input.ct.established = 3;
    input.ct.none = 5;
    input.tcp.syn = 4;
    input.tcp_accepted.syn = 2;
    input.attributed_drops = Some(1);
    input.unattributed_drops = Some(0);
    input.rules = vec![RuleDrops {
        backend: "iptables-nft",
        family: "ip",
        table: "filter".into(),
        chain: "INPUT".into(),
        handle_or_index: Some(1),
        rule: "-A INPUT -p udp -m udp --dport 9 -j DROP".into(),
        verdict: "drop",
        packets: Some(1),
        per_s: Some(1.0),
        shared_packets: 0,
        note: None,
    }];
    Snapshot {
        ts_ms: 1_700_000_010_000,
        elapsed_ms: 10_000,
        interval_ms: 1_000,
        netns: Some("lab".into()),
        interfaces: [(
            "veth0".to_string(),
            IfaceStats {
                xdp,
                ..Default::default()
            },
        )]
        .into(),
        attached: [(
            "veth0".to_string(),
            AttachInfo {
                ifindex: 2,
                xdp_mode: "generic".into(),
                tc_mode: "tcx".into(),
                xdp_status: "attached".into(),
                tc_status: "attached".into(),
            },
        )]
        .into(),
        netfilter: [(
            "ipv4".to_string(),
            NfFamilyStats {
                input,
                ..Default::default()
            },
        )]
        .into(),
        netfilter_status: [
            ("ipv4".to_string(), "linked".to_string()),
            ("ipv6".to_string(), "off (--no-netfilter)".to_string()),
        ]
        .into(),
        conntrack: Some(ConntrackStats {
            count: 600,
            max: 1000,
            buckets: 256,
            fill_pct: 60.0,
            drop: 14,
            early_drop: 3,
            new: Some(700),
            top_sources: vec![TopSource {
                src: "10.0.0.1".into(),
                new: 9,
            }],
            ..Default::default()
        }),
        sockets: Some(SocketsStats {
            states: [("ESTABLISHED".to_string(), 5), ("LISTEN".to_string(), 1)].into(),
            synack_retransmits: 2,
            resets_sent: 3,
            resets_received: 4,
        }),
        ..Default::default()
    }
}

fn encode(snap: Snapshot) -> String {
    let (_tx, rx) = watch::channel(Arc::new(snap));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector::new(rx)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
    out
}

/// One sample line: name, labels, value.
#[derive(Debug)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format as far as netpost's output needs (no escapes
/// inside label values in these tests): HELP and TYPE per family, then samples.
pub(crate) fn parse(text: &str) -> (BTreeMap<String, (String, String)>, Vec<Sample>) {
    let mut meta: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            meta.entry(name.into()).or_default().0 = help.into();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            meta.entry(name.into()).or_default().1 = ty.into();
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            samples.push(Sample {
                name: name.into(),
                labels,
                value: value.parse().unwrap(),
            });
        }
    }
    (meta, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<_> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0].value
}

#[test]
fn every_family_is_netpost_prefixed_typed_and_helped_with_fixed_label_names() {
    let (meta, samples) = parse(&encode(sample_snapshot()));
    let expected: BTreeMap<&str, (&str, &[&str])> = [
        (
            "netpost_packets_total",
            ("counter", &["interface", "hook", "proto"][..]),
        ),
        (
            "netpost_bytes_total",
            ("counter", &["interface", "hook", "proto"]),
        ),
        (
            "netpost_header_bytes_total",
            ("counter", &["interface", "hook", "proto"]),
        ),
        (
            "netpost_payload_bytes_total",
            ("counter", &["interface", "hook", "proto"]),
        ),
        (
            "netpost_frames_total",
            ("counter", &["interface", "hook", "proto"]),
        ),
        (
            "netpost_family_packets_total",
            ("counter", &["interface", "hook", "family"]),
        ),
        (
            "netpost_family_bytes_total",
            ("counter", &["interface", "hook", "family"]),
        ),
        (
            "netpost_malformed_packets_total",
            ("counter", &["interface", "hook"]),
        ),
        (
            "netpost_malformed_bytes_total",
            ("counter", &["interface", "hook"]),
        ),
        (
            "netpost_netfilter_entered_packets_total",
            ("counter", &["family", "hook", "proto"]),
        ),
        (
            "netpost_netfilter_accepted_packets_total",
            ("counter", &["family", "hook", "proto"]),
        ),
        (
            "netpost_netfilter_dropped_packets_total",
            ("counter", &["family", "hook", "proto"]),
        ),
        (
            "netpost_netfilter_entered_bytes_total",
            ("counter", &["family", "hook"]),
        ),
        (
            "netpost_netfilter_accepted_bytes_total",
            ("counter", &["family", "hook"]),
        ),
        (
            "netpost_netfilter_ct_state_packets_total",
            ("counter", &["family", "hook", "state"]),
        ),
        (
            "netpost_netfilter_ct_invalid_packets_total",
            ("counter", &["family", "hook"]),
        ),
        (
            "netpost_netfilter_tcp_entered_packets_total",
            ("counter", &["family", "hook", "class"]),
        ),
        (
            "netpost_netfilter_tcp_accepted_packets_total",
            ("counter", &["family", "hook", "class"]),
        ),
        (
            "netpost_netfilter_rule_drops_total",
            (
                "counter",
                &["family", "hook", "backend", "table", "chain", "rule"],
            ),
        ),
        ("netpost_conntrack_entries", ("gauge", &[])),
        ("netpost_conntrack_entries_limit", ("gauge", &[])),
        ("netpost_conntrack_buckets", ("gauge", &[])),
        ("netpost_conntrack_failures_total", ("counter", &["kind"])),
        ("netpost_conntrack_created_total", ("counter", &[])),
        (
            "netpost_socket_state_transitions_total",
            ("counter", &["tcp_state"]),
        ),
        ("netpost_socket_synack_retransmits_total", ("counter", &[])),
        ("netpost_socket_resets_total", ("counter", &["direction"])),
        ("netpost_diagnosis", ("gauge", &["id", "severity"])),
        ("netpost_interface_present", ("gauge", &["interface"])),
        (
            "netpost_interface_reattached_total",
            ("counter", &["interface"]),
        ),
        ("netpost_interfaces_over_cap", ("gauge", &[])),
        (
            "netpost_program_attached",
            ("gauge", &["interface", "hook", "mode"]),
        ),
        ("netpost_netfilter_linked", ("gauge", &["family"])),
        ("netpost_tracepoint_attached", ("gauge", &["program"])),
        ("netpost_collection_duration_seconds", ("gauge", &[])),
        ("netpost_snapshot_timestamp_seconds", ("gauge", &[])),
        ("netpost_snapshot_age_seconds", ("gauge", &[])),
        ("netpost_start_time_seconds", ("gauge", &[])),
        ("netpost_collection_interval_seconds", ("gauge", &[])),
        ("netpost_scrape_duration_seconds", ("gauge", &[])),
    ]
    .into();
    let names: BTreeSet<&str> = meta.keys().map(String::as_str).collect();
    assert_eq!(names, expected.keys().copied().collect(), "families");
    for (name, (help, ty)) in &meta {
        assert!(!help.is_empty(), "{name} has no HELP");
        assert_eq!(ty, expected[name.as_str()].0, "{name} TYPE");
        if ty == "counter" {
            assert!(name.ends_with("_total"), "{name}");
        }
    }
    for s in &samples {
        let want: BTreeSet<&str> = expected[s.name.as_str()].1.iter().copied().collect();
        let got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(got, want, "labels of {s:?}");
    }
}

#[test]
fn values_are_the_snapshot_counters() {
    let snap = sample_snapshot();
    let (_, s) = parse(&encode(snap.clone()));
    let xdp = [("interface", "veth0"), ("hook", "xdp")];
    let with = |extra: (&'static str, &'static str)| {
        let mut l = xdp.to_vec();
        l.push(extra);
        l
    };
    assert_eq!(
        value(&s, "netpost_packets_total", &with(("proto", "udp"))),
        7.0
    );
    assert_eq!(
        value(&s, "netpost_bytes_total", &with(("proto", "tcp"))),
        500.0
    );
    assert_eq!(
        value(&s, "netpost_header_bytes_total", &with(("proto", "udp"))),
        294.0
    );
    assert_eq!(
        value(&s, "netpost_payload_bytes_total", &with(("proto", "udp"))),
        406.0
    );
    assert_eq!(
        value(&s, "netpost_frames_total", &with(("proto", "other"))),
        6.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_family_packets_total",
            &with(("family", "ipv4"))
        ),
        12.0
    );
    assert_eq!(value(&s, "netpost_malformed_packets_total", &xdp), 2.0);
    // Summing over proto gives the hook totals of the JSON.
    let total: f64 = s
        .iter()
        .filter(|x| x.name == "netpost_packets_total" && x.labels["hook"] == "xdp")
        .map(|x| x.value)
        .sum();
    assert_eq!(total, snap.interfaces["veth0"].xdp.packets as f64);
    let input =
        |extra: (&'static str, &'static str)| vec![("family", "ipv4"), ("hook", "input"), extra];
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_entered_packets_total",
            &input(("proto", "udp"))
        ),
        9.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_accepted_packets_total",
            &input(("proto", "udp"))
        ),
        8.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_dropped_packets_total",
            &input(("proto", "udp"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_entered_bytes_total",
            &[("family", "ipv4"), ("hook", "input")]
        ),
        900.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_ct_state_packets_total",
            &input(("state", "established"))
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_tcp_entered_packets_total",
            &input(("class", "syn"))
        ),
        4.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_netfilter_tcp_accepted_packets_total",
            &input(("class", "syn"))
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_program_attached",
            &[("interface", "veth0"), ("hook", "xdp"), ("mode", "generic")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "netpost_netfilter_linked", &[("family", "ipv4")]),
        1.0
    );
    assert_eq!(
        value(&s, "netpost_netfilter_linked", &[("family", "ipv6")]),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_socket_state_transitions_total",
            &[("tcp_state", "ESTABLISHED")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_socket_state_transitions_total",
            &[("tcp_state", "CLOSE_WAIT")]
        ),
        0.0,
        "every state is served"
    );
    assert_eq!(
        value(&s, "netpost_socket_synack_retransmits_total", &[]),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "netpost_socket_resets_total",
            &[("direction", "received")]
        ),
        4.0
    );
    assert_eq!(
        value(&s, "netpost_start_time_seconds", &[]),
        1_700_000_000.0
    );
    assert_eq!(
        value(&s, "netpost_snapshot_timestamp_seconds", &[]),
        1_700_000_010.0
    );
}

#[test]
fn cardinality_is_fixed_per_interface_and_family() {
    let (_, s) = parse(&encode(sample_snapshot()));
    let count = |name: &str| s.iter().filter(|x| x.name == name).count();
    // 1 interface x 3 hooks x 5 protos; 2 families x... only linked families appear.
    assert_eq!(count("netpost_packets_total"), 15);
    assert_eq!(count("netpost_family_packets_total"), 9);
    assert_eq!(count("netpost_netfilter_entered_packets_total"), 5 * 5);
    assert_eq!(count("netpost_netfilter_ct_state_packets_total"), 5 * 6);
    assert_eq!(count("netpost_program_attached"), 3);
}

#[test]
fn conntrack_is_absent_without_it_and_names_no_source() {
    let text = encode(sample_snapshot());
    assert!(!text.contains("10.0.0.1"), "per-address label: {text}");
    let mut snap = sample_snapshot();
    snap.conntrack.as_mut().unwrap().new = None;
    let (meta, _) = parse(&encode(snap.clone()));
    assert!(!meta.contains_key("netpost_conntrack_created_total"));
    snap.conntrack = None;
    let (meta, _) = parse(&encode(snap));
    assert!(!meta.keys().any(|k| k.starts_with("netpost_conntrack")));
}

#[test]
fn deleted_and_reattached_interfaces_are_told_apart() {
    let mut snap = sample_snapshot();
    let mut gone = snap.interfaces["veth0"];
    gone.status = IfaceStatus::Gone;
    snap.interfaces.insert("veth1".into(), gone);
    let back = snap.interfaces.get_mut("veth0").unwrap();
    back.status = IfaceStatus::Reattached;
    back.reattached = 3;
    snap.interfaces_over_cap = vec!["veth9".into()];
    let (_, s) = parse(&encode(snap));
    let veth0 = [("interface", "veth0")];
    let veth1 = [("interface", "veth1")];
    assert_eq!(value(&s, "netpost_interface_present", &veth0), 1.0);
    assert_eq!(value(&s, "netpost_interface_present", &veth1), 0.0);
    assert_eq!(value(&s, "netpost_interface_reattached_total", &veth0), 3.0);
    assert_eq!(value(&s, "netpost_interfaces_over_cap", &[]), 1.0);
}

#[test]
fn xdp_off_reports_not_attached() {
    let mut snap = sample_snapshot();
    snap.attached.get_mut("veth0").unwrap().xdp_mode = "off".into();
    let (_, s) = parse(&encode(snap));
    let xdp = [("interface", "veth0"), ("hook", "xdp"), ("mode", "off")];
    assert_eq!(value(&s, "netpost_program_attached", &xdp), 0.0);
}

#[test]
fn before_the_first_snapshot_only_health_is_served() {
    let (meta, _) = parse(&encode(Snapshot::default()));
    let names: Vec<&str> = meta.keys().map(String::as_str).collect();
    assert_eq!(names, ["netpost_scrape_duration_seconds"]);
}

#[test]
fn dropped_never_goes_down_between_scrapes() {
    let mut snap = sample_snapshot();
    let (tx, rx) = watch::channel(Arc::new(snap.clone()));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector::new(rx)));
    let scrape = || {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        let (_, s) = parse(&out);
        let l = [("family", "ipv4"), ("hook", "input"), ("proto", "udp")];
        value(&s, "netpost_netfilter_dropped_packets_total", &l)
    };
    assert_eq!(scrape(), 1.0);
    // The packet in flight was accepted after all.
    snap.netfilter
        .get_mut("ipv4")
        .unwrap()
        .input
        .by_proto
        .udp
        .dropped = 0;
    tx.send_replace(Arc::new(snap.clone()));
    assert_eq!(scrape(), 1.0);
    snap.netfilter
        .get_mut("ipv4")
        .unwrap()
        .input
        .by_proto
        .udp
        .dropped = 4;
    tx.send_replace(Arc::new(snap));
    assert_eq!(scrape(), 4.0);
}

#[test]
fn interface_names_are_escaped_not_trusted() {
    let mut snap = sample_snapshot();
    let stats = snap.interfaces.remove("veth0").unwrap();
    snap.interfaces.insert("we\"ird\\if".into(), stats);
    let text = encode(snap);
    assert!(text.contains(r#"interface="we\"ird\\if""#), "{text}");
}

#[test]
fn every_diagnosis_has_a_gauge_and_the_ones_that_hold_are_1() {
    use crate::doctor::{Diagnosis, IDS, Severity};
    let mut snap = sample_snapshot();
    let (_, s) = parse(&encode(snap.clone()));
    let series: Vec<&Sample> = s.iter().filter(|x| x.name == "netpost_diagnosis").collect();
    assert_eq!(series.len(), IDS.len());
    assert!(series.iter().all(|x| x.value == 0.0));
    snap.diagnoses = vec![Diagnosis {
        id: "conntrack-pressure",
        severity: Severity::Warning,
        since: 1,
        summary: String::new(),
        evidence: Default::default(),
        fix: String::new(),
        note: None,
    }];
    let (_, s) = parse(&encode(snap));
    let ct = [("id", "conntrack-pressure"), ("severity", "warning")];
    assert_eq!(value(&s, "netpost_diagnosis", &ct), 1.0);
    let quiet = [("id", "rule-order"), ("severity", "info")];
    assert_eq!(value(&s, "netpost_diagnosis", &quiet), 0.0);
}
