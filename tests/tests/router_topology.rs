//! The client-router-server topology ([`Router`]) itself, checked against the kernel's own
//! counters: it is silent until a test sends, R forwards (or, without forwarding, drops)
//! exactly what C sends to S, delivers what is addressed to R, and iptables and nftables
//! rules in R drop exactly the datagrams they match.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{DevStats, dev_stats, snmp, snmp6},
    netns::End,
    require_root,
    router::Router,
    traffic::{tcp_exchange, udp_pending, udp_receive, udp_receiver, udp_send, wait_for_value},
};

fn v4(end: &End, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(end.ip4), port)
}

fn v6(end: &End, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(end.ip6), port)
}

/// Device counters of the four ends, in path order.
fn devs(r: &Router) -> Vec<DevStats> {
    r.ends()
        .iter()
        .map(|(ns, end)| dev_stats(ns, &end.ifname))
        .collect()
}

/// R's forwarded-datagram counters: (IPv4 ForwDatagrams, Ip6OutForwDatagrams). Since
/// Linux 6.6 both count before the FORWARD hook (datagrams a netfilter rule drops there
/// are counted too), before it after the hook: only tests without drops use them.
fn forwarded(r: &Router) -> (u64, u64) {
    (
        snmp(&r.ns_router, "Ip", "ForwDatagrams"),
        snmp6(&r.ns_router, "Ip6OutForwDatagrams"),
    )
}

/// Frames R's two devices transmitted. R sends nothing of its own (the topology is
/// silent), so these are exactly the forwarded datagrams that got through every hook, both
/// families. /proc/net/dev counts them on every kernel; `Ip: OutTransmits` only from 6.3.
fn transmitted(r: &Router) -> u64 {
    [&r.router_client, &r.router_server]
        .iter()
        .map(|end| dev_stats(&r.ns_router, &end.ifname).tx_packets)
        .sum()
}

/// Frames R's client-side device received: every datagram offered to R from C.
fn offered(r: &Router) -> u64 {
    dev_stats(&r.ns_router, &r.router_client.ifname).rx_packets
}

#[test]
fn topology_is_silent() {
    require_root();
    let routers = [Router::new(), Router::new_without_forwarding()];
    // MLD reports (the noise IPv6 forwarding would make) go out at link up and once more
    // within a second; /proc/net/dev counts from creation, so this window covers both.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    for r in &routers {
        for ((_, end), dev) in r.ends().iter().zip(devs(r)) {
            assert_eq!(
                dev,
                DevStats::default(),
                "{} (forwarding {}) carried traffic nobody sent",
                end.ifname,
                r.forwarding
            );
        }
    }
}

#[test]
fn udp_from_client_to_server_is_forwarded_exactly() {
    require_root();
    let r = Router::new();
    let rx4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7101);
    let rx6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7102);
    let (f4, f6) = forwarded(&r);
    let t = transmitted(&r);
    let delivers = snmp(&r.ns_router, "Ip", "InDelivers");
    let s_udp4 = snmp(&r.ns_server, "Udp", "InDatagrams");
    let s_udp6 = snmp6(&r.ns_server, "Udp6InDatagrams");

    udp_send(&r.ns_client, v4(&r.server, 7101), 25, 100);
    udp_receive(&rx4, 25);
    udp_send(&r.ns_client, v6(&r.server, 7102), 15, 100);
    udp_receive(&rx6, 15);

    let (g4, g6) = forwarded(&r);
    assert_eq!(g4 - f4, 25, "R's Ip ForwDatagrams");
    assert_eq!(g6 - f6, 15, "R's Ip6OutForwDatagrams");
    assert_eq!(transmitted(&r) - t, 40, "R's devices transmitted");
    assert_eq!(
        snmp(&r.ns_router, "Ip", "InDelivers"),
        delivers,
        "R kept none"
    );
    assert_eq!(snmp(&r.ns_server, "Udp", "InDatagrams") - s_udp4, 25);
    assert_eq!(snmp6(&r.ns_server, "Udp6InDatagrams") - s_udp6, 15);
    // The links carried nothing else: every frame on every device is one of the 40.
    let frames4 = 14 + 20 + 8 + 100;
    let frames6 = 14 + 40 + 8 + 100;
    let bytes = 25 * frames4 + 15 * frames6;
    let d = devs(&r);
    for (i, dev) in [(0, d[0]), (2, d[2])] {
        assert_eq!((dev.tx_packets, dev.tx_bytes), (40, bytes), "end {i} tx");
        assert_eq!(dev.rx_packets, 0, "end {i} rx");
    }
    for (i, dev) in [(1, d[1]), (3, d[3])] {
        assert_eq!((dev.rx_packets, dev.rx_bytes), (40, bytes), "end {i} rx");
        assert_eq!(dev.tx_packets, 0, "end {i} tx");
    }
}

#[test]
fn tcp_through_the_router_forwards_every_segment() {
    require_root();
    let r = Router::new();
    let (f4, _) = forwarded(&r);
    let (in_before, out_before) = (
        snmp(&r.ns_server, "Tcp", "InSegs"),
        snmp(&r.ns_server, "Tcp", "OutSegs"),
    );
    tcp_exchange(&r.ns_client, &r.ns_server, &r.server, 1000, 500);
    let in_segs = snmp(&r.ns_server, "Tcp", "InSegs") - in_before;
    let out_segs = snmp(&r.ns_server, "Tcp", "OutSegs") - out_before;
    assert!(in_segs >= 4, "handshake, data and FIN: {in_segs}");
    // The server's last ACK may still be on its way when tcp_exchange returns.
    wait_for_value("R's Ip ForwDatagrams", in_segs + out_segs, || {
        snmp(&r.ns_router, "Ip", "ForwDatagrams") - f4
    });
}

#[test]
fn udp_to_the_router_is_delivered_locally() {
    require_root();
    let r = Router::new();
    let rx4 = udp_receiver(&r.ns_router, IpAddr::V4(r.router_client.ip4), 7201);
    let rx6 = udp_receiver(&r.ns_router, IpAddr::V6(r.router_client.ip6), 7202);
    let (f4, f6) = forwarded(&r);
    let (d4, d6) = (
        snmp(&r.ns_router, "Ip", "InDelivers"),
        snmp6(&r.ns_router, "Ip6InDelivers"),
    );
    udp_send(&r.ns_client, v4(&r.router_client, 7201), 9, 50);
    udp_receive(&rx4, 9);
    udp_send(&r.ns_client, v6(&r.router_client, 7202), 4, 50);
    udp_receive(&rx6, 4);
    assert_eq!(snmp(&r.ns_router, "Ip", "InDelivers") - d4, 9);
    assert_eq!(snmp6(&r.ns_router, "Ip6InDelivers") - d6, 4);
    assert_eq!(forwarded(&r), (f4, f6), "nothing forwarded");
    assert_eq!(transmitted(&r), 0, "R sent nothing");
    let d = devs(&r);
    assert_eq!(d[1].rx_packets, 13);
    assert_eq!(d[2], DevStats::default(), "nothing towards S");
}

#[test]
fn without_forwarding_client_to_server_is_dropped_in_the_router() {
    require_root();
    let r = Router::new_without_forwarding();
    let rx4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7301);
    let rx6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7302);
    let (e4, e6) = (
        snmp(&r.ns_router, "Ip", "InAddrErrors"),
        snmp6(&r.ns_router, "Ip6InAddrErrors"),
    );
    udp_send(&r.ns_client, v4(&r.server, 7301), 10, 64);
    udp_send(&r.ns_client, v6(&r.server, 7302), 6, 64);
    // The drops have happened once R counted them; nothing can arrive after that.
    wait_for_value("R's Ip InAddrErrors", 10, || {
        snmp(&r.ns_router, "Ip", "InAddrErrors") - e4
    });
    wait_for_value("R's Ip6InAddrErrors", 6, || {
        snmp6(&r.ns_router, "Ip6InAddrErrors") - e6
    });
    assert_eq!(udp_pending(&rx4), 0, "IPv4 datagrams reached S");
    assert_eq!(udp_pending(&rx6), 0, "IPv6 datagrams reached S");
    assert_eq!(forwarded(&r), (0, 0), "R forwarded without forwarding");
    assert_eq!(transmitted(&r), 0, "R sent something (ICMP errors?)");
    let d = devs(&r);
    assert_eq!(d[1].rx_packets, 16, "R received all");
    assert_eq!(d[0].rx_packets, 0, "R answered C (ICMP errors?)");
    assert_eq!(d[2], DevStats::default(), "nothing towards S");
    assert_eq!(d[3], DevStats::default(), "nothing at S");

    // R itself is still reachable.
    let local = udp_receiver(&r.ns_router, IpAddr::V4(r.router_client.ip4), 7303);
    udp_send(&r.ns_client, v4(&r.router_client, 7303), 3, 10);
    udp_receive(&local, 3);
}

/// The drop tests send 12 + 8 IPv4 and 5 + 3 IPv6 datagrams, the first of each dropped in
/// R's FORWARD hook: all reach R, only the rest leave it (the rules' own counters say how
/// many each dropped).
fn check_forward_hook_counts(r: &Router, (o, t): (u64, u64)) {
    assert_eq!(offered(r) - o, 28, "all offered to R");
    assert_eq!(transmitted(r) - t, 11, "only what passed left R");
}

/// Packets counted by the first rule in `iptables -nvxL FORWARD` output that matches
/// `needle` (e.g. "dpt:7401").
fn xtables_rule_packets(listing: &str, needle: &str) -> u64 {
    let line = listing
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle} in:\n{listing}"));
    line.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {line}"))
}

#[test]
fn iptables_forward_drop_in_the_router_drops_exactly_its_port() {
    require_root();
    let r = Router::new();
    let backend = r.ns_router.exec("iptables", &["-V"]);
    eprintln!("iptables in R: {}", backend.trim());
    for tool in ["iptables", "ip6tables"] {
        r.ns_router.exec(
            tool,
            &[
                "-A", "FORWARD", "-p", "udp", "--dport", "7401", "-j", "DROP",
            ],
        );
    }
    let drop4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7401);
    let pass4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7402);
    let drop6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7401);
    let pass6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7402);
    let before = (offered(&r), transmitted(&r));

    udp_send(&r.ns_client, v4(&r.server, 7401), 12, 80);
    udp_send(&r.ns_client, v4(&r.server, 7402), 8, 80);
    udp_send(&r.ns_client, v6(&r.server, 7401), 5, 80);
    udp_send(&r.ns_client, v6(&r.server, 7402), 3, 80);
    udp_receive(&pass4, 8);
    udp_receive(&pass6, 3);
    for (tool, want) in [("iptables", 12), ("ip6tables", 5)] {
        wait_for_value(&format!("{tool} DROP rule packets"), want, || {
            let listing = r.ns_router.exec(tool, &["-nvxL", "FORWARD"]);
            xtables_rule_packets(&listing, "dpt:7401")
        });
    }
    assert_eq!(udp_pending(&drop4), 0, "dropped IPv4 port reached S");
    assert_eq!(udp_pending(&drop6), 0, "dropped IPv6 port reached S");
    assert_eq!(udp_pending(&pass4), 0, "more than sent");
    check_forward_hook_counts(&r, before);
    assert_eq!(dev_stats(&r.ns_server, &r.server.ifname).rx_packets, 11);
}

/// Packets of the first `counter` in `nft -j list chain` output.
fn nft_counter_packets(json: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(json).expect("nft -j json");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["rule"]["expr"].as_array())
        .flatten()
        .find_map(|expr| expr["counter"]["packets"].as_u64())
        .unwrap_or_else(|| panic!("no counter in {json}"))
}

#[test]
fn nftables_forward_drop_in_the_router_drops_exactly_its_port() {
    require_root();
    let r = Router::new();
    let nft = |args: &[&str]| r.ns_router.exec("nft", args);
    nft(&["add", "table", "inet", "t"]);
    // exec passes an argv: nft joins its arguments with spaces, so no shell quoting. The
    // chain must not be called "fwd": that is an nft keyword (the fwd statement).
    nft(&[
        "add", "chain", "inet", "t", "forward", "{", "type", "filter", "hook", "forward",
        "priority", "0", ";", "}",
    ]);
    nft(&[
        "add", "rule", "inet", "t", "forward", "udp", "dport", "7501", "counter", "drop",
    ]);
    let drop4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7501);
    let pass4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7502);
    let drop6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7501);
    let pass6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7502);
    let before = (offered(&r), transmitted(&r));

    udp_send(&r.ns_client, v4(&r.server, 7501), 12, 80);
    udp_send(&r.ns_client, v4(&r.server, 7502), 8, 80);
    udp_send(&r.ns_client, v6(&r.server, 7501), 5, 80);
    udp_send(&r.ns_client, v6(&r.server, 7502), 3, 80);
    udp_receive(&pass4, 8);
    udp_receive(&pass6, 3);
    // One inet rule sees both families.
    wait_for_value("nft drop rule packets", 17, || {
        nft_counter_packets(&nft(&["-j", "list", "chain", "inet", "t", "forward"]))
    });
    assert_eq!(udp_pending(&drop4), 0, "dropped IPv4 port reached S");
    assert_eq!(udp_pending(&drop6), 0, "dropped IPv6 port reached S");
    check_forward_hook_counts(&r, before);
    assert_eq!(dev_stats(&r.ns_server, &r.server.ifname).rx_packets, 11);
}

#[test]
fn router_namespaces_are_removed_on_drop_and_on_panic() {
    require_root();
    let exists = |name: &str| std::path::Path::new(&format!("/run/netns/{name}")).exists();
    let r = Router::new();
    let names = [
        r.ns_client.name.clone(),
        r.ns_router.name.clone(),
        r.ns_server.name.clone(),
    ];
    assert!(names.iter().all(|n| exists(n)));
    drop(r);
    let listed = netpost_tests::sh("ip", &["netns", "list"]);
    for n in &names {
        assert!(
            !exists(n) && !listed.contains(n.as_str()),
            "{n} left behind"
        );
    }

    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let r = Router::new();
        names.lock().unwrap().extend([
            r.ns_client.name.clone(),
            r.ns_router.name.clone(),
            r.ns_server.name.clone(),
        ]);
        panic!("test failure inside a router test");
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 3);
    for n in &names {
        assert!(!exists(n), "{n} left behind after a panic");
    }
}
