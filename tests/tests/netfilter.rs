//! Netfilter hook traversal in a real router: netpost runs in the router namespace of a
//! client -- router -- server topology that carries only the test's traffic, and every
//! hook's entered/accepted/dropped must be exactly what the topology implies.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links, netfilter_reads, snmp},
    netpost::{Netpost, num},
    require_root,
    router::Router,
    traffic::{tcp_exchange, udp_receive, udp_receiver, udp_send},
    wait_until,
};
use serde_json::Value;

const HOOKS: [&str; 5] = ["prerouting", "input", "forward", "output", "postrouting"];

fn watch_router(r: &Router, extra: &[&str]) -> Netpost {
    Netpost::start(
        &r.ns_router.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        extra,
    )
}

fn nf<'a>(snap: &'a Value, family: &str, hook: &str) -> &'a Value {
    let n = &snap["netfilter"][family][hook];
    assert!(n.is_object(), "no netfilter.{family}.{hook} in {snap}");
    n
}

/// Asserts (entered, accepted, dropped) of one hook, in total and for one protocol.
fn assert_hook(snap: &Value, family: &str, hook: &str, proto: &str, want: (u64, u64, u64)) {
    let n = nf(snap, family, hook);
    let got = |v: &Value| {
        (
            num(v, &["entered"]),
            num(v, &["accepted"]),
            num(v, &["dropped"]),
        )
    };
    assert_eq!(got(n), want, "{family} {hook} total: {n}");
    assert_eq!(
        got(&n["by_proto"][proto]),
        want,
        "{family} {hook} {proto}: {n}"
    );
}

fn v4(end: &netpost_tests::netns::End, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(end.ip4), port)
}

fn v6(end: &netpost_tests::netns::End, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(end.ip6), port)
}

/// Stops netpost; on a kernel without netfilter links checks what a netfilter test can:
/// netpost says why (once), and the `want` packets of `proto` that arrived at R from C
/// were counted at XDP all the same. Returns the snapshot and whether the hooks' numbers
/// can be checked.
fn stop_linked(netpost: Netpost, r: &Router, proto: &str, want: u64) -> (Value, bool) {
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    if has_netfilter_links() {
        return (snap, true);
    }
    assert_netfilter_unavailable(&snap, &stderr);
    let xdp = &snap["interfaces"][r.router_client.ifname.as_str()]["xdp"];
    assert_eq!(num(xdp, &["by_proto", proto, "packets"]), want, "{xdp}");
    (snap, false)
}

#[test]
fn forwarded_udp_crosses_prerouting_forward_postrouting_only() {
    require_root();
    let r = Router::new();
    let rx = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7601);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.server, 7601), 30, 100);
    udp_receive(&rx, 30);
    let (snap, linked) = stop_linked(netpost, &r, "udp", 30);
    if !linked {
        return;
    }
    assert_eq!(snap["netfilter_status"]["ipv4"], "linked");
    assert_hook(&snap, "ipv4", "prerouting", "udp", (30, 30, 0));
    assert_hook(&snap, "ipv4", "input", "udp", (0, 0, 0));
    assert_hook(&snap, "ipv4", "forward", "udp", (30, 30, 0));
    assert_hook(&snap, "ipv4", "output", "udp", (0, 0, 0));
    assert_hook(&snap, "ipv4", "postrouting", "udp", (30, 30, 0));
    // IP bytes: 20 + 8 + 100 per datagram.
    assert_eq!(
        num(nf(&snap, "ipv4", "forward"), &["entered_bytes"]),
        30 * 128
    );
    for hook in HOOKS {
        assert_eq!(num(nf(&snap, "ipv6", hook), &["entered"]), 0, "ipv6 {hook}");
    }
    // The same packets at the interfaces: in at the client side, out at the server side.
    let xdp = &snap["interfaces"][r.router_client.ifname.as_str()]["xdp"];
    assert_eq!(num(xdp, &["by_proto", "udp", "packets"]), 30);
    let out = &snap["interfaces"][r.router_server.ifname.as_str()]["tc_egress"];
    assert_eq!(num(out, &["by_proto", "udp", "packets"]), 30);
}

/// The kernel matrix's smoke test (xtask): exact counts at the hooks forwarded UDP crosses
/// where the kernel has netfilter links; where it has not (< 6.4, or built without them),
/// netpost says why, once on stderr and in the JSON, and counts on at XDP and tc.
#[test]
fn forwarded_udp_is_counted_at_its_hooks_or_netfilter_is_unavailable_with_a_reason() {
    require_root();
    let r = Router::new();
    let rx = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7604);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.server, 7604), 20, 100);
    udp_receive(&rx, 20);
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    if has_netfilter_links() {
        assert_eq!(snap["netfilter_status"]["ipv4"], "linked", "{stderr}");
        assert_hook(&snap, "ipv4", "prerouting", "udp", (20, 20, 0));
        assert_hook(&snap, "ipv4", "input", "udp", (0, 0, 0));
        assert_hook(&snap, "ipv4", "forward", "udp", (20, 20, 0));
        assert_hook(&snap, "ipv4", "output", "udp", (0, 0, 0));
        assert_hook(&snap, "ipv4", "postrouting", "udp", (20, 20, 0));
    } else {
        assert_netfilter_unavailable(&snap, &stderr);
    }
    let xdp = &snap["interfaces"][r.router_client.ifname.as_str()]["xdp"];
    assert_eq!(num(xdp, &["by_proto", "udp", "packets"]), 20);
    let out = &snap["interfaces"][r.router_server.ifname.as_str()]["tc_egress"];
    assert_eq!(num(out, &["by_proto", "udp", "packets"]), 20);
}

#[test]
fn traffic_to_and_from_the_router_uses_input_and_output() {
    require_root();
    let r = Router::new();
    let local = udp_receiver(&r.ns_router, IpAddr::V4(r.router_client.ip4), 7602);
    let at_server = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7603);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.router_client, 7602), 12, 50);
    udp_send(&r.ns_router, v4(&r.server, 7603), 9, 50);
    udp_receive(&local, 12);
    udp_receive(&at_server, 9);
    let (snap, linked) = stop_linked(netpost, &r, "udp", 12);
    if !linked {
        return;
    }
    assert_hook(&snap, "ipv4", "prerouting", "udp", (12, 12, 0));
    assert_hook(&snap, "ipv4", "input", "udp", (12, 12, 0));
    assert_hook(&snap, "ipv4", "forward", "udp", (0, 0, 0));
    assert_hook(&snap, "ipv4", "output", "udp", (9, 9, 0));
    assert_hook(&snap, "ipv4", "postrouting", "udp", (9, 9, 0));
}

/// Packets counted by the first rule of an `iptables -nvxL` listing.
fn first_rule_packets(listing: &str) -> u64 {
    listing
        .lines()
        .find(|l| l.contains("DROP"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no DROP rule in {listing}"))
}

#[test]
fn iptables_drop_in_forward_is_counted_exactly_as_dropped() {
    require_root();
    let r = Router::new();
    r.ns_router.exec(
        "iptables",
        &[
            "-A", "FORWARD", "-p", "udp", "--dport", "7611", "-j", "DROP",
        ],
    );
    let pass = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7612);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.server, 7611), 20, 64);
    udp_send(&r.ns_client, v4(&r.server, 7612), 15, 64);
    udp_receive(&pass, 15);
    let (snap, linked) = stop_linked(netpost, &r, "udp", 35);
    let matched = first_rule_packets(&r.ns_router.exec("iptables", &["-nvxL", "FORWARD"]));
    assert_eq!(matched, 20);
    if !linked {
        return;
    }
    assert_eq!(num(nf(&snap, "ipv4", "forward"), &["dropped"]), matched);
    assert_hook(&snap, "ipv4", "prerouting", "udp", (35, 35, 0));
    assert_hook(&snap, "ipv4", "forward", "udp", (35, 15, 20));
    assert_hook(&snap, "ipv4", "postrouting", "udp", (15, 15, 0));
}

#[test]
fn nftables_drop_counts_for_ipv4_and_ipv6_forwarding() {
    require_root();
    let r = Router::new();
    let nft = |args: &[&str]| r.ns_router.exec("nft", args);
    nft(&["add", "table", "inet", "t"]);
    nft(&[
        "add", "chain", "inet", "t", "forward", "{", "type", "filter", "hook", "forward",
        "priority", "0", ";", "}",
    ]);
    nft(&[
        "add", "rule", "inet", "t", "forward", "udp", "dport", "7621", "drop",
    ]);
    let pass4 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7622);
    let pass6 = udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7622);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.server, 7621), 11, 64);
    udp_send(&r.ns_client, v4(&r.server, 7622), 6, 64);
    udp_send(&r.ns_client, v6(&r.server, 7621), 7, 64);
    udp_send(&r.ns_client, v6(&r.server, 7622), 25, 64);
    udp_receive(&pass4, 6);
    udp_receive(&pass6, 25);
    let (snap, linked) = stop_linked(netpost, &r, "udp", 17 + 32);
    if !linked {
        return;
    }
    assert_hook(&snap, "ipv4", "forward", "udp", (17, 6, 11));
    assert_hook(&snap, "ipv4", "postrouting", "udp", (6, 6, 0));
    assert_eq!(snap["netfilter_status"]["ipv6"], "linked");
    assert_hook(&snap, "ipv6", "prerouting", "udp", (32, 32, 0));
    assert_hook(&snap, "ipv6", "input", "udp", (0, 0, 0));
    assert_hook(&snap, "ipv6", "forward", "udp", (32, 25, 7));
    assert_hook(&snap, "ipv6", "postrouting", "udp", (25, 25, 0));
    // IPv6 bytes: 40 + 8 + 64 per datagram.
    assert_eq!(
        num(nf(&snap, "ipv6", "postrouting"), &["accepted_bytes"]),
        25 * 112
    );
}

#[test]
fn tcp_through_the_router_shows_new_then_established_and_the_handshake() {
    tcp_through_the_router(&[]);
}

/// The same where the programs copy the headers out (as before Linux 6.17, where
/// `skb->head` cannot be read in place).
#[test]
fn tcp_through_the_router_counts_the_same_with_headers_copied() {
    tcp_through_the_router(&[("NETPOST_TEST_NF_COPY", "1")]);
}

/// How the programs must have read headers under `env`.
fn reads_under(env: &[(&str, &str)]) -> &'static str {
    if env.iter().any(|(k, _)| *k == "NETPOST_TEST_NF_COPY") {
        "copied"
    } else {
        netfilter_reads()
    }
}

fn tcp_through_the_router(env: &[(&str, &str)]) {
    require_root();
    let r = Router::new();
    r.ns_router.enable_conntrack("FORWARD");
    let (in_before, out_before) = (
        snmp(&r.ns_server, "Tcp", "InSegs"),
        snmp(&r.ns_server, "Tcp", "OutSegs"),
    );
    let netpost = Netpost::start_with_env(
        &r.ns_router.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        &[],
        env,
    );
    tcp_exchange(&r.ns_client, &r.ns_server, &r.server, 1000, 500);
    // The last ACK may still be on its way: what S received is what C sent through R.
    let from_client = || snmp(&r.ns_server, "Tcp", "InSegs") - in_before;
    let mut arrived = from_client();
    wait_until(
        || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = from_client();
            std::mem::replace(&mut arrived, now) == now
        },
        || "S's InSegs never settled".into(),
    );
    let (snap, linked) = stop_linked(netpost, &r, "tcp", arrived);
    if !linked {
        return;
    }
    assert_eq!(
        snap["netfilter_reads"],
        reads_under(env),
        "{}",
        snap["netfilter_reads"]
    );
    let segments = snmp(&r.ns_server, "Tcp", "InSegs") - in_before
        + snmp(&r.ns_server, "Tcp", "OutSegs")
        - out_before;
    let fwd = nf(&snap, "ipv4", "forward");
    assert_hook(&snap, "ipv4", "forward", "tcp", (segments, segments, 0));
    let ct = &fwd["ct"];
    assert_eq!(num(ct, &["new"]), 1, "the SYN opens the connection: {ct}");
    assert!(
        num(ct, &["reply"]) >= 2,
        "SYN-ACK and the server's data/FIN: {ct}"
    );
    assert!(
        num(ct, &["established"]) >= 2,
        "client ACKs, data and FIN: {ct}"
    );
    assert_eq!(
        num(ct, &["new"]) + num(ct, &["established"]) + num(ct, &["reply"]),
        segments,
        "every forwarded segment has a state: {ct}"
    );
    assert_eq!(num(ct, &["invalid"]), 0);
    let tcp = &fwd["tcp"];
    assert_eq!(num(tcp, &["syn"]), 1, "{tcp}");
    assert_eq!(num(tcp, &["synack"]), 1, "{tcp}");
    assert_eq!(num(tcp, &["rst"]), 0, "{tcp}");
    assert_eq!(num(tcp, &["fin"]), 2, "one FIN each way: {tcp}");
    assert_eq!(
        num(&nf(&snap, "ipv4", "prerouting")["ct"], &["new"]),
        1,
        "conntrack already assigned NEW at PREROUTING"
    );
}

#[test]
fn without_netfilter_links_everything_else_keeps_working_and_says_why() {
    require_root();
    let r = Router::new();
    let rx = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7631);
    let netpost = Netpost::start_with_env(
        &r.ns_router.name,
        &[&r.router_client.ifname],
        &[],
        &[("NETPOST_TEST_NO_NETFILTER", "1")],
    );
    udp_send(&r.ns_client, v4(&r.server, 7631), 5, 10);
    udp_receive(&rx, 5);
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    for family in ["ipv4", "ipv6"] {
        let status = snap["netfilter_status"][family].as_str().unwrap();
        assert!(status.starts_with("unavailable: "), "{status}");
        assert!(
            snap["netfilter"][family].is_null(),
            "no {family} numbers without links"
        );
    }
    // Both families share the reason: one line says it.
    let line = "netpost: netfilter (ipv4, ipv6): unavailable: disabled by NETPOST_TEST_NO_NETFILTER; XDP and tc counting continues";
    assert_eq!(stderr.matches(line).count(), 1, "{stderr}");
    let xdp = &snap["interfaces"][r.router_client.ifname.as_str()]["xdp"];
    assert_eq!(num(xdp, &["by_proto", "udp", "packets"]), 5);
}

#[test]
fn no_netfilter_flag_links_nothing() {
    require_root();
    let r = Router::new();
    let netpost = watch_router(&r, &["--no-netfilter"]);
    let snap = netpost.stop();
    assert_eq!(snap["netfilter_status"]["ipv4"], "off (--no-netfilter)");
    assert_eq!(snap["netfilter"], serde_json::json!({}));
    assert_eq!(
        snap["netfilter_reads"],
        Value::Null,
        "nothing linked, nothing read"
    );
}
