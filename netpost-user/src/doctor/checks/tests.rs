//! Each diagnosis from made-up snapshots: it fires on its evidence (with the numbers and the
//! fix it says), and nothing fires without evidence.
use std::collections::BTreeMap;

use crate::{
    doctor::{Config, Doctor, Severity, kernel::Reading, window::Window},
    model::{
        ChainOrder, ConntrackStats, DropsStats, EstablishedAccept, FlowSummary, HalfOpenSource,
        HandshakeStats, NfFamilyStats, ReasonStats, ResetsBy, RuleDrops, SampleView, Snapshot,
        SocketsStats,
    },
    probe::flows::model::Direction,
};

/// A kernel reading with these sysctls and MIB counters.
fn reading(sysctl: &[(&str, &str)], mib: &[(&str, u64)]) -> Reading {
    Reading {
        sysctl: sysctl
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        mib: mib.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..Default::default()
    }
}

fn snap(elapsed_s: u64) -> Snapshot {
    Snapshot {
        ts_ms: 1_000_000 + elapsed_s * 1000,
        elapsed_ms: elapsed_s * 1000,
        interval_ms: 1000,
        netns: Some("lab".into()),
        ..Default::default()
    }
}

/// Runs a doctor over `(snapshot, reading)` pairs from `start`; the last snapshot's diagnoses.
fn diagnose(start: Reading, steps: Vec<(Snapshot, Reading)>) -> Vec<crate::doctor::Diagnosis> {
    let mut d = Doctor::with_start(Config::default(), Default::default(), start);
    let mut last = None;
    for (s, r) in steps {
        last = Some(d.examine_with(s, r));
    }
    last.map(|s| s.diagnoses.clone()).unwrap_or_default()
}

fn ids(d: &[crate::doctor::Diagnosis]) -> Vec<&'static str> {
    d.iter().map(|d| d.id).collect()
}

fn drops(reasons: &[(&str, u64)], samples: Vec<SampleView>) -> DropsStats {
    DropsStats {
        total: reasons.iter().map(|r| r.1).sum(),
        reasons: reasons
            .iter()
            .map(|(n, p)| {
                (
                    n.to_string(),
                    ReasonStats {
                        packets: *p,
                        ..Default::default()
                    },
                )
            })
            .collect(),
        samples,
        ..Default::default()
    }
}

fn sample(reason: &str, proto: &str, src: &str, dst: &str) -> SampleView {
    SampleView {
        reason: reason.into(),
        location: "f".into(),
        proto: proto.into(),
        src: Some(src.into()),
        dst: Some(dst.into()),
        hook: None,
    }
}

#[test]
fn a_quiet_snapshot_has_no_diagnosis() {
    let r = reading(&[("net.ipv4.ip_forward", "0")], &[]);
    let d = diagnose(r.clone(), vec![(snap(1), r.clone()), (snap(2), r)]);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn forwarding_disabled_needs_both_the_sysctl_and_the_drops() {
    let start = reading(&[], &[("IpInAddrErrors", 100)]);
    let mut s = snap(4);
    s.drops = Some(drops(
        &[("IP_INADDRERRORS", 400)],
        vec![sample(
            "IP_INADDRERRORS",
            "udp",
            "10.0.1.2:5000",
            "10.0.2.2:7001",
        )],
    ));
    let off = reading(&[("net.ipv4.ip_forward", "0")], &[("IpInAddrErrors", 500)]);
    let d = diagnose(start.clone(), vec![(s.clone(), off)]);
    assert_eq!(ids(&d), ["forwarding-disabled"]);
    assert_eq!(d[0].severity, Severity::Critical);
    assert_eq!(d[0].evidence["families"]["ipv4"]["dropped"], 400);
    assert_eq!(d[0].evidence["families"]["ipv4"]["per_s"], 100.0);
    assert_eq!(d[0].evidence["window_s"], 4.0);
    assert_eq!(d[0].evidence["destinations"][0], "10.0.2.2");
    assert_eq!(
        d[0].fix,
        "ip netns exec lab sysctl -w net.ipv4.ip_forward=1"
    );
    assert_eq!(d[0].since, s.ts_ms);
    // Forwarding on: the same drops are something else.
    let on = reading(&[("net.ipv4.ip_forward", "1")], &[("IpInAddrErrors", 500)]);
    assert!(diagnose(start, vec![(s, on)]).is_empty());
}

fn nf(entered: u64, dropped: u64, attributed: u64, rules: Vec<RuleDrops>) -> NfFamilyStats {
    let mut f = NfFamilyStats::default();
    f.forward.entered = entered;
    f.forward.accepted = entered - dropped;
    f.forward.dropped = dropped;
    f.forward.attributed_drops = Some(attributed);
    f.forward.rules = rules;
    f
}

fn rule(text: &str, backend: &'static str, packets: u64) -> RuleDrops {
    RuleDrops {
        backend,
        family: "ip",
        table: "filter".into(),
        chain: "FORWARD".into(),
        handle_or_index: Some(1),
        rule: text.into(),
        verdict: "drop",
        packets: Some(packets),
        per_s: Some(0.0),
        shared_packets: 0,
        note: None,
    }
}

#[test]
fn rule_drops_names_the_rule_and_the_command_that_deletes_it() {
    let r = Reading::default();
    let mut s = snap(5);
    let udp = rule("-A FORWARD -p udp -j DROP", "iptables-nft", 300);
    s.netfilter
        .insert("ipv4".into(), nf(1000, 300, 300, vec![udp.clone()]));
    let d = diagnose(r.clone(), vec![(s, r.clone())]);
    assert_eq!(ids(&d), ["rule-drops"]);
    let e = &d[0].evidence["hooks"][0];
    assert_eq!(
        (e["hook"].as_str(), e["share"].as_f64()),
        (Some("ipv4 forward"), Some(0.3))
    );
    assert_eq!(e["rules"][0]["packets"], 300);
    assert_eq!(
        d[0].fix,
        "ip netns exec lab iptables -D FORWARD -p udp -j DROP"
    );
    assert!(d[0].summary.contains("30%"), "{}", d[0].summary);
    // 5% of the hook: below the share.
    let mut s = snap(5);
    s.netfilter.insert(
        "ipv4".into(),
        nf(
            1000,
            50,
            50,
            vec![rule("-A FORWARD -p udp -j DROP", "iptables-nft", 50)],
        ),
    );
    assert!(diagnose(r.clone(), vec![(s, r.clone())]).is_empty());
    // Drops no rule explains (conntrack's, say): not this diagnosis.
    let mut s = snap(5);
    s.netfilter.insert("ipv4".into(), nf(1000, 300, 0, vec![]));
    assert!(diagnose(r.clone(), vec![(s, r)]).is_empty());
}

#[test]
fn rule_drops_commands_per_backend() {
    use super::rules::rule_drops;
    let r = Reading::default();
    let mut nft = rule(
        "udp dport 7600 counter packets 5 bytes 500 drop",
        "nft",
        300,
    );
    nft.family = "inet";
    nft.table = "lab".into();
    nft.chain = "forward".into();
    nft.handle_or_index = Some(7);
    let mut s = snap(5);
    s.netfilter
        .insert("ipv4".into(), nf(1000, 300, 300, vec![nft]));
    let mut w = Window::new(10_000, r.clone());
    w.push(crate::doctor::window::Entry {
        snap: s.into(),
        kernel: r.into(),
    });
    let f = rule_drops(&w.view().unwrap(), &Config::default().rule_drops).unwrap();
    assert_eq!(
        f.fix,
        "ip netns exec lab nft delete rule inet lab forward handle 7"
    );
}

#[test]
fn rule_order_when_established_traffic_walks_many_rules() {
    let r = Reading::default();
    let chain = |position| ChainOrder {
        backend: "nft",
        family: "inet",
        table: "lab".into(),
        chain: "forward".into(),
        priority: 0,
        rules: 62,
        established_accept: Some(EstablishedAccept {
            position,
            handle_or_index: 65,
        }),
    };
    let with = |position, established, new| {
        let mut s = snap(5);
        let mut f = NfFamilyStats::default();
        f.forward.ct.established = established;
        f.forward.ct.new = new;
        f.forward.chains = vec![chain(position)];
        s.netfilter.insert("ipv4".into(), f);
        s
    };
    let d = diagnose(r.clone(), vec![(with(61, 990, 10), r.clone())]);
    assert_eq!(ids(&d), ["rule-order"]);
    assert_eq!(d[0].evidence["rules_before"], 60);
    assert_eq!(d[0].evidence["established_share"], 0.99);
    assert_eq!(
        d[0].fix,
        "ip netns exec lab nft insert rule inet lab forward ct state established,related accept \
         && ip netns exec lab nft delete rule inet lab forward handle 65"
    );
    // Early in the chain, or mostly new traffic, or too little traffic: nothing to say.
    assert!(diagnose(r.clone(), vec![(with(3, 990, 10), r.clone())]).is_empty());
    assert!(diagnose(r.clone(), vec![(with(61, 500, 500), r.clone())]).is_empty());
    assert!(diagnose(r.clone(), vec![(with(61, 99, 1), r)]).is_empty());
}

fn ct(count: u64, max: u64, drop: u64) -> ConntrackStats {
    ConntrackStats {
        count,
        max,
        fill_pct: count as f64 * 100.0 / max as f64,
        drop,
        ..Default::default()
    }
}

#[test]
fn conntrack_pressure_full_filling_or_refusing() {
    let r = Reading::default();
    let at = |t, c: ConntrackStats| {
        let mut s = snap(t);
        s.conntrack = Some(c);
        (s, r.clone())
    };
    // Refusing: drops rise between snapshots (the kernel's counters, since boot).
    let d = diagnose(
        r.clone(),
        vec![at(1, ct(256, 256, 1000)), at(3, ct(256, 256, 1500))],
    );
    assert_eq!(ids(&d), ["conntrack-pressure"]);
    assert_eq!(
        (d[0].severity, &d[0].evidence["drop"]),
        (Severity::Critical, &500.into())
    );
    assert_eq!(d[0].fix, "sysctl -w net.netfilter.nf_conntrack_max=65536");
    // Filling: 40% full, +100/s, full in 60 s.
    let d = diagnose(
        r.clone(),
        vec![at(1, ct(3800, 10_000, 0)), at(3, ct(4000, 10_000, 0))],
    );
    assert_eq!(ids(&d), ["conntrack-pressure"]);
    assert_eq!(d[0].severity, Severity::Warning);
    assert_eq!(d[0].evidence["time_to_full_s"], 60.0);
    // 10% full and growing slowly: fine. Old drops that do not rise: fine.
    assert!(
        diagnose(
            r.clone(),
            vec![at(1, ct(900, 10_000, 0)), at(3, ct(1000, 10_000, 0))]
        )
        .is_empty()
    );
    assert!(
        diagnose(
            r.clone(),
            vec![at(1, ct(10, 256, 900)), at(3, ct(10, 256, 900))]
        )
        .is_empty()
    );
}

#[test]
fn no_route_names_the_networks() {
    let r = Reading::default();
    let mut s = snap(2);
    s.drops = Some(drops(
        &[("IP_INNOROUTES", 40)],
        vec![sample(
            "IP_INNOROUTES",
            "udp",
            "10.0.1.2:4000",
            "10.9.9.1:53",
        )],
    ));
    let d = diagnose(r.clone(), vec![(s, r)]);
    assert_eq!(ids(&d), ["no-route"]);
    assert_eq!(d[0].fix, "ip -n lab route add 10.9.9.0/24 via NEXT_HOP");
    assert!(d[0].summary.contains("10.9.9.0/24"));
}

#[test]
fn rp_filter_loosens_the_strict_interfaces() {
    let start = reading(&[], &[("TcpExtIPReversePathFilter", 0)]);
    let mut r = reading(&[], &[("TcpExtIPReversePathFilter", 50)]);
    r.rp_filter = Some(BTreeMap::from([
        ("all".into(), 0),
        ("eth1".into(), 1),
        ("eth2".into(), 0),
        ("lo".into(), 0),
    ]));
    let d = diagnose(start, vec![(snap(2), r)]);
    assert_eq!(ids(&d), ["rp-filter"]);
    assert_eq!(
        d[0].fix,
        "ip netns exec lab sysctl -w net.ipv4.conf.eth1.rp_filter=2"
    );
}

fn flow(src: &str, dst: &str, up: u64, rtt_us: u32) -> FlowSummary {
    FlowSummary {
        src: src.into(),
        dst: dst.into(),
        proto: "tcp".into(),
        from_src: Direction {
            packets: up / 1000,
            bytes: up,
        },
        from_dst: Direction {
            packets: 10,
            bytes: 600,
        },
        rtt_us: Some(rtt_us),
        ..Default::default()
    }
}

#[test]
fn small_buffers_when_a_local_receiver_s_buffer_is_nearly_all_in_flight() {
    let mut r = reading(
        &[
            ("net.ipv4.tcp_rmem", "4096 16384 16384"),
            ("net.ipv4.tcp_wmem", "4096 16384 4194304"),
        ],
        &[],
    );
    r.local_addrs = vec!["10.0.2.2".parse().unwrap()];
    let at = |t, up, rtt| {
        let mut s = snap(t);
        s.flows_merged = vec![flow("10.0.1.2:40000", "10.0.2.2:7500", up, rtt)];
        (s, r.clone())
    };
    // 100 KB/s x 110 ms = 11 KB in flight of the 8 KB window a 16 KB buffer allows.
    let d = diagnose(
        r.clone(),
        vec![at(1, 100_000, 110_000), at(3, 300_000, 110_000)],
    );
    assert_eq!(ids(&d), ["small-buffers"]);
    let f = &d[0].evidence["flows"][0];
    assert_eq!(
        (f["bytes_per_s"].as_f64(), f["in_flight_bytes"].as_f64()),
        (Some(100_000.0), Some(11_000.0))
    );
    assert_eq!(f["buffer"], "net.ipv4.tcp_rmem");
    assert_eq!(
        d[0].fix,
        "ip netns exec lab sysctl -w net.ipv4.tcp_rmem=\"4096 16384 6291456\""
    );
    // A LAN RTT, or a flow this host only forwards: nothing.
    assert!(diagnose(r.clone(), vec![at(1, 100_000, 100), at(3, 300_000, 100)]).is_empty());
    let mut router = r.clone();
    router.local_addrs.clear();
    let mut s = snap(3);
    s.flows_merged = vec![flow("10.0.1.2:40000", "10.0.2.2:7500", 300_000, 110_000)];
    assert!(diagnose(router.clone(), vec![(snap(1), router.clone()), (s, router)]).is_empty());
}

#[test]
fn listen_overflow_from_the_mib_with_the_waiting_listener() {
    let start = reading(&[], &[("TcpExtListenOverflows", 0)]);
    let mut r = reading(
        &[("net.core.somaxconn", "4096")],
        &[("TcpExtListenOverflows", 40), ("TcpExtListenDrops", 40)],
    );
    r.full_listeners = Some(vec![crate::doctor::kernel::Listener {
        local: "10.0.2.2:7100".into(),
        port: 7100,
        queued: 2,
    }]);
    let d = diagnose(start, vec![(snap(2), r)]);
    assert_eq!(ids(&d), ["listen-overflow"]);
    assert_eq!(d[0].fix, "ip netns exec lab ss -ltnp 'sport = :7100'");
    assert!(d[0].summary.contains("10.0.2.2:7100"));
}

#[test]
fn syn_flood_needs_unanswered_synacks_not_just_half_open_flows() {
    let r = reading(&[("net.ipv4.tcp_syncookies", "1")], &[]);
    let with = |half_open, synack_retransmits| {
        let mut s = snap(4);
        s.handshake = Some(HandshakeStats {
            half_open,
            half_open_sources: vec![HalfOpenSource {
                src: "10.0.1.66".into(),
                half_open,
            }],
            ..Default::default()
        });
        s.sockets = Some(SocketsStats {
            synack_retransmits,
            ..Default::default()
        });
        s
    };
    let d = diagnose(r.clone(), vec![(with(200, 150), r.clone())]);
    assert_eq!(ids(&d), ["syn-flood"]);
    assert_eq!(
        d[0].fix,
        "ip netns exec lab iptables -I INPUT -s 10.0.1.66 -p tcp --syn -j DROP"
    );
    // SYNs nobody answers (a full accept queue drops them): half-open, but no SYN-ACKs.
    assert!(diagnose(r.clone(), vec![(with(200, 0), r)]).is_empty());
}

#[test]
fn reset_storm_counts_established_resets_by_port_not_refused_syns() {
    let r = Reading::default();
    let with = |t, established, resets| {
        let mut s = snap(t);
        s.handshake = Some(HandshakeStats {
            resets_by: vec![ResetsBy {
                server: "10.0.2.2:7300".into(),
                client: "10.0.1.2".into(),
                reset_by: "server",
                established,
                resets,
            }],
            ..Default::default()
        });
        (s, r.clone())
    };
    let d = diagnose(r.clone(), vec![with(1, true, 50), with(4, true, 200)]);
    assert_eq!(ids(&d), ["reset-storm"]);
    assert_eq!(d[0].evidence["resets"], 200);
    assert!(d[0].summary.contains("port 7300"), "{}", d[0].summary);
    // Refused SYNs (a closed port) are closed-port's business.
    assert!(diagnose(r.clone(), vec![with(1, false, 50), with(4, false, 200)]).is_empty());
}

#[test]
fn closed_port_names_ports_from_the_samples() {
    let r = Reading::default();
    let mut s = snap(2);
    s.drops = Some(drops(
        &[("NO_SOCKET", 200)],
        vec![
            sample("NO_SOCKET", "udp", "10.0.1.2:4000", "10.0.2.2:7999"),
            sample("NO_SOCKET", "udp", "10.0.1.2:4001", "10.0.2.2:7999"),
            sample("NO_SOCKET", "tcp", "10.0.1.2:4002", "10.0.2.2:7998"),
        ],
    ));
    let d = diagnose(r.clone(), vec![(s, r)]);
    assert_eq!(ids(&d), ["closed-port"]);
    assert_eq!(d[0].evidence["ports"][0]["port"], 7999);
    assert_eq!(d[0].evidence["ports"][0]["samples"], 2);
    assert_eq!(d[0].fix, "ip netns exec lab ss -lunp 'sport = :7999'");
}

#[test]
fn worst_first_and_since_is_kept_while_it_holds() {
    let start = reading(&[], &[]);
    let mut s = snap(2);
    s.drops = Some(drops(
        &[("NO_SOCKET", 200), ("IP_INADDRERRORS", 100)],
        vec![],
    ));
    let r = reading(&[("net.ipv4.ip_forward", "0")], &[("IpInAddrErrors", 100)]);
    let mut doctor = Doctor::with_start(Config::default(), Default::default(), start);
    let first = doctor.examine_with(s.clone(), r.clone());
    assert_eq!(
        ids(&first.diagnoses),
        ["forwarding-disabled", "closed-port"]
    );
    let mut later = s.clone();
    later.ts_ms += 1000;
    later.elapsed_ms += 1000;
    if let Some(d) = later.drops.as_mut() {
        d.reasons.get_mut("NO_SOCKET").unwrap().packets = 400;
    }
    let mut r2 = r.clone();
    r2.mib.insert("IpInAddrErrors".into(), 200);
    let second = doctor.examine_with(later, r2);
    assert_eq!(
        second.diagnoses[0].since, s.ts_ms,
        "still the first snapshot's time"
    );
    // A config turns a check off.
    let mut c = Config::default();
    c.closed_port.enabled = false;
    let mut doctor = Doctor::with_start(c, Default::default(), reading(&[], &[]));
    assert_eq!(
        ids(&doctor.examine_with(s, r).diagnoses),
        ["forwarding-disabled"]
    );
}
