//! Flows and TCP handshakes from real sockets: completed handshakes with their RTT, resets
//! from a closed port, half-open flows behind a DROP rule, eviction past --max-flows with the
//! totals still exact, and lost events counted when the ring buffer is too small.
use std::{
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use netpost_tests::{
    netns::VethPair,
    netpost::{Netpost, TempOutput, hook, num},
    require_root,
    router::Router,
    traffic::{tcp_exchange, udp_receiver, udp_send},
};

/// One datagram from each of `flows` fresh sockets, as fast as possible.
fn burst(pair: &VethPair, dst: SocketAddr, flows: usize) {
    paced_burst(pair, dst, flows, flows, Duration::ZERO);
}

/// One datagram from each of `flows` fresh sockets, `per_pause` of them between pauses. The
/// sockets live until all have sent, so their source ports, and the flows, are distinct.
fn paced_burst(pair: &VethPair, dst: SocketAddr, flows: usize, per_pause: usize, pause: Duration) {
    pair.ns_a.run(move || {
        let sockets: Vec<_> = (0..flows)
            .map(|_| std::net::UdpSocket::bind("0.0.0.0:0").unwrap())
            .collect();
        for group in sockets.chunks(per_pause) {
            for s in group {
                s.send_to(&[7; 8], dst).unwrap();
            }
            std::thread::sleep(pause);
        }
    });
}

#[test]
fn completed_connections_are_established_with_a_handshake_rtt() {
    require_root();
    let pair = VethPair::new();
    let events = TempOutput::new("npev");
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--events", &events.arg()],
    );
    for _ in 0..4 {
        tcp_exchange(&pair.ns_a, &pair.ns_b, &pair.b, 2000, 100);
    }
    std::thread::sleep(Duration::from_millis(200));
    let snap = netpost.stop();
    let h = &snap["handshake"];
    assert_eq!(num(h, &["syn"]), 4, "{h}");
    assert_eq!(num(h, &["synack"]), 4, "{h}");
    assert_eq!(num(h, &["established"]), 4, "{h}");
    assert_eq!(num(h, &["closed"]), 4, "{h}");
    assert_eq!(num(h, &["half_open"]), 0, "{h}");
    assert_eq!(num(h, &["resets"]), 0, "{h}");
    assert!(num(h, &["rtt_us", "p50"]) > 0, "{h}");
    let flows = snap["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 4, "{flows:?}");
    let client = pair.a.ip4.to_string();
    for f in flows {
        assert!(
            f["src"].as_str().unwrap().starts_with(&client),
            "client first: {f}"
        );
        assert_eq!(f["dst"], format!("{}:5201", pair.b.ip4));
        assert_eq!(f["stage"], "closed");
        assert!(num(f, &["rtt_us"]) > 0);
        assert_eq!(
            num(f, &["rtt_us"]),
            num(f, &["rtt_synack_us"]) + num(f, &["rtt_ack_us"]),
            "both halves of the handshake: {f}"
        );
    }
    // Every flow's packets add up to what tc counted.
    let flow_packets: u64 = flows.iter().map(|f| num(f, &["packets"])).sum();
    let tc = num(
        hook(&snap, &pair.b.ifname, "tc_ingress"),
        &["by_proto", "tcp", "packets"],
    ) + num(
        hook(&snap, &pair.b.ifname, "tc_egress"),
        &["by_proto", "tcp", "packets"],
    );
    assert_eq!(flow_packets, tc);
    // The server's sockets, from the kernel's tracepoints: each accepted connection became
    // ESTABLISHED once.
    let sockets = &snap["sockets"];
    assert_eq!(num(sockets, &["states", "ESTABLISHED"]), 4, "{sockets}");
    assert_eq!(
        num(sockets, &["states", "LISTEN"]),
        4,
        "a listener per exchange: {sockets}"
    );
    let lines = events.lines();
    let established = lines.iter().filter(|e| e["event"] == "established").count();
    assert_eq!(established, 4, "{lines:?}");
    assert!(lines.iter().all(|e| e["iface"] == pair.b.ifname.as_str()));
}

#[test]
fn connections_to_a_closed_port_are_reset_by_the_server() {
    require_root();
    let pair = VethPair::new();
    let events = TempOutput::new("npev");
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--events", &events.arg()],
    );
    let addr = SocketAddr::new(IpAddr::V4(pair.b.ip4), 5301);
    pair.ns_a.run(move || {
        for _ in 0..3 {
            assert!(TcpStream::connect(addr).is_err(), "nothing listens");
        }
    });
    let snap = netpost.stop();
    let h = &snap["handshake"];
    assert_eq!(num(h, &["syn"]), 3, "{h}");
    assert_eq!(num(h, &["resets"]), 3, "{h}");
    assert_eq!(num(h, &["established"]), 0, "{h}");
    let flows = snap["flows"].as_array().unwrap();
    assert!(flows.iter().all(|f| f["stage"] == "reset"), "{flows:?}");
    // The kernel's view: no socket took the SYNs, so the stack answered each with a reset.
    assert_eq!(
        num(&snap["sockets"], &["resets_sent"]),
        3,
        "{}",
        snap["sockets"]
    );
    // Each reset is attributed: the server (the SYN's receiver) sent it.
    let lines = events.lines();
    let resets: Vec<_> = lines.iter().filter(|e| e["event"] == "reset").collect();
    assert_eq!(resets.len(), 3, "{lines:?}");
    assert!(
        resets.iter().all(|e| e["reset_by"] == "server"),
        "{resets:?}"
    );
}

#[test]
fn a_dropped_port_leaves_half_open_flows_and_syn_retransmits() {
    require_root();
    let pair = VethPair::new();
    let addr = SocketAddr::new(IpAddr::V4(pair.b.ip4), 5401);
    let _listener = pair.ns_b.run(move || TcpListener::bind(addr).unwrap());
    pair.ns_b.exec(
        "iptables",
        &["-A", "INPUT", "-p", "tcp", "--dport", "5401", "-j", "DROP"],
    );
    let events = TempOutput::new("npev");
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--events", &events.arg()],
    );
    pair.ns_a.run(move || {
        // The first SYN retransmit goes out after 1 s.
        let r = TcpStream::connect_timeout(&addr, Duration::from_millis(1600));
        assert!(r.is_err(), "the SYNs are dropped");
    });
    // Silent for 5 s after the last SYN: the handshake has failed.
    std::thread::sleep(Duration::from_millis(5000));
    let snap = netpost.stop();
    let h = &snap["handshake"];
    assert_eq!(num(h, &["syn"]), 1, "{h}");
    assert!(num(h, &["syn_retransmits"]) >= 1, "{h}");
    assert_eq!(num(h, &["synack"]), 0, "{h}");
    assert_eq!(num(h, &["half_open"]), 1, "{h}");
    assert_eq!(num(h, &["timed_out"]), 1, "{h}");
    assert_eq!(snap["flows"][0]["stage"], "syn_sent");
    let lines = events.lines();
    let timeouts: Vec<_> = lines
        .iter()
        .filter(|e| e["event"] == "handshake_timeout")
        .collect();
    assert_eq!(timeouts.len(), 1, "{lines:?}");
    assert_eq!(timeouts[0]["dst"], addr.to_string());
}

#[test]
fn an_icmp_error_is_listed_from_its_sender_and_udp_and_icmp_have_one_no_stage_string() {
    require_root();
    let pair = VethPair::new();
    let events = TempOutput::new("npev");
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--events", &events.arg()],
    );
    // Nothing listens on B's port 9: B answers A with an ICMP port unreachable.
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 9),
        1,
        16,
    );
    std::thread::sleep(Duration::from_millis(300));
    let snap = netpost.stop();
    let (a, b) = (pair.a.ip4.to_string(), pair.b.ip4.to_string());
    let flows = snap["flows"].as_array().unwrap();
    let of = |proto: &str| {
        flows
            .iter()
            .find(|f| f["proto"] == proto)
            .unwrap_or_else(|| panic!("no {proto} flow: {flows:?}"))
    };
    let udp = of("udp");
    assert!(
        udp["src"].as_str().unwrap().starts_with(&format!("{a}:")),
        "{udp}"
    );
    assert_eq!(udp["dst"], format!("{b}:9"), "{udp}");
    let icmp = of("icmp");
    assert_eq!(
        (&icmp["src"], &icmp["dst"]),
        (&b.clone().into(), &a.clone().into()),
        "{icmp}"
    );
    let merged = snap["flows_merged"].as_array().unwrap();
    let icmp_merged = merged.iter().find(|f| f["proto"] == "icmp").unwrap();
    assert_eq!(icmp_merged["src"], b.as_str(), "{icmp_merged}");
    let events = events.lines();
    let new_icmp = events
        .iter()
        .find(|e| e["event"] == "new_flow" && e["proto"] == "icmp")
        .unwrap_or_else(|| panic!("no new_flow for the ICMP error: {events:?}"));
    assert_eq!(
        (&new_icmp["src"], &new_icmp["dst"]),
        (&b.into(), &a.into()),
        "{new_icmp}"
    );
    for e in &events {
        assert_eq!(
            e["stage"], "-",
            "UDP/ICMP events say no stage as rows do: {e}"
        );
    }
    for f in flows {
        assert_eq!(f["stage"], "-", "{f}");
    }
}

#[test]
fn a_flow_crossing_two_watched_interfaces_is_one_merged_row() {
    require_root();
    let r = Router::new();
    let netpost = Netpost::start(
        &r.ns_router.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        &[],
    );
    tcp_exchange(&r.ns_client, &r.ns_server, &r.server, 3000, 200);
    std::thread::sleep(Duration::from_millis(200));
    let snap = netpost.stop();
    let per_iface: Vec<&serde_json::Value> = snap["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["proto"] == "tcp")
        .collect();
    assert_eq!(per_iface.len(), 2, "one entry per interface: {per_iface:?}");
    let merged: Vec<&serde_json::Value> = snap["flows_merged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["proto"] == "tcp")
        .collect();
    assert_eq!(merged.len(), 1, "listed once: {merged:?}");
    let f = merged[0];
    assert_eq!(
        f["ifaces"],
        serde_json::json!([r.router_client.ifname, r.router_server.ifname]),
        "in the order the SYN crossed them: {f}"
    );
    assert!(
        f["src"]
            .as_str()
            .unwrap()
            .starts_with(&r.client.ip4.to_string()),
        "{f}"
    );
    assert_eq!(f["dst"], format!("{}:5201", r.server.ip4));
    assert_eq!(f["stage"], "closed", "{f}");
    assert!(f["rtt_us"].as_u64().unwrap() > 0, "{f}");
    // Not doubled: the client's bytes as each interface saw them.
    assert_eq!(f["bytes"], per_iface[0]["bytes"], "{f} vs {:?}", per_iface);
    assert!(num(f, &["from_src", "bytes"]) > 3000, "{f}");
    assert!(num(f, &["from_dst", "bytes"]) > 200, "{f}");
    assert_eq!(f["seen"].as_array().unwrap().len(), 2, "{f}");
}

#[test]
fn more_flows_than_the_table_holds_are_evicted_and_totals_stay_exact() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 5501);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &["--max-flows", "64"]);
    burst(&pair, SocketAddr::new(IpAddr::V4(pair.b.ip4), 5501), 300);
    // The receiver's buffer may overflow under the burst; XDP counts before it.
    std::thread::sleep(Duration::from_millis(300));
    drop(rx);
    let snap = netpost.stop();
    assert!(
        num(&snap, &["flows_active"]) <= 64,
        "{}",
        snap["flows_active"]
    );
    let xdp = hook(&snap, &pair.b.ifname, "xdp");
    assert_eq!(
        num(xdp, &["by_proto", "udp", "packets"]),
        300,
        "global counters exact"
    );
}

/// New-flow events in an `--events` stream.
fn new_flow_events(events: &TempOutput) -> usize {
    events
        .lines()
        .iter()
        .filter(|e| e["event"] == "new_flow")
        .count()
}

#[test]
fn a_tiny_event_buffer_overflowing_while_netpost_is_stopped_counts_every_lost_event() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 5601);
    let events = TempOutput::new("npev");
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--events-buffer", "4", "--events", &events.arg()],
    );
    // Stopped, netpost cannot drain: 4 KiB holds 51 events of 80 bytes (72 + the ring
    // buffer's 8-byte header), the other 349 new flows find it full.
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(netpost.pid(), libc::SIGSTOP) };
    burst(&pair, SocketAddr::new(IpAddr::V4(pair.b.ip4), 5601), 400);
    // SAFETY: as above.
    unsafe { libc::kill(netpost.pid(), libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(300));
    drop(rx);
    let snap = netpost.stop();
    assert_eq!(new_flow_events(&events), 51, "what the buffer held");
    assert_eq!(
        num(&snap, &["events_lost"]),
        349,
        "every other event counted"
    );
    assert_eq!(
        num(
            hook(&snap, &pair.b.ifname, "xdp"),
            &["by_proto", "udp", "packets"]
        ),
        400
    );
}

#[test]
fn events_are_drained_as_they_come_not_once_per_interval() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 5701);
    let events = TempOutput::new("npev");
    // 1600 new flows within one 10 s interval through a buffer of 204 events (200 ms of
    // them at this pace, slack for a busy machine): only a reader woken by the kernel as
    // events arrive loses none of them.
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &[
            "--events-buffer",
            "16",
            "--interval",
            "10000",
            "--events",
            &events.arg(),
        ],
    );
    let dst = SocketAddr::new(IpAddr::V4(pair.b.ip4), 5701);
    paced_burst(&pair, dst, 1600, 10, Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(300));
    drop(rx);
    let snap = netpost.stop();
    assert_eq!(num(&snap, &["events_lost"]), 0);
    assert_eq!(new_flow_events(&events), 1600);
}
