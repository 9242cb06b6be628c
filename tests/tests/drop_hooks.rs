//! Drops say which netfilter hook they happened at: a rule's drop at FORWARD is a drop "in
//! the rules" of FORWARD, a packet to a closed port died after INPUT's rules, and a drop no
//! netfilter hook saw names none.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netpost::{Netpost, num},
    require_root,
    router::Router,
    traffic::{udp_receive, udp_receiver, udp_send, wait_for_value},
};

#[test]
fn a_forward_rule_drop_and_a_closed_port_name_their_hooks() {
    require_root();
    let r = Router::new();
    r.ns_router.exec(
        "iptables",
        &[
            "-A", "FORWARD", "-p", "udp", "--dport", "7501", "-j", "DROP",
        ],
    );
    let pass = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7502);
    let np = Netpost::start(
        &r.ns_router.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        &[],
    );
    let to_server = |port| SocketAddr::new(IpAddr::V4(r.server.ip4), port);
    udp_send(&r.ns_client, to_server(7501), 9, 40);
    udp_send(&r.ns_client, to_server(7502), 2, 40);
    udp_receive(&pass, 2);
    // To the router itself, where nothing listens: dropped after INPUT's rules.
    udp_send(
        &r.ns_client,
        SocketAddr::new(IpAddr::V4(r.router_client.ip4), 7503),
        4,
        40,
    );
    wait_for_value("NO_SOCKET drops", 4, || {
        np.lines()
            .last()
            .and_then(|s| s["drops"]["reasons"]["NO_SOCKET"]["packets"].as_u64())
            .unwrap_or(0)
    });
    let stderr = np.stderr();
    let snap = np.stop();
    let reasons = &snap["drops"]["reasons"];
    let nf = &reasons["NETFILTER_DROP"];
    assert_eq!(num(nf, &["packets"]), 9, "{nf}");
    if !has_netfilter_links() {
        // The hook a drop happened at comes from the netfilter programs' records: without
        // them netpost says why, and the drops are counted all the same, hook unnamed.
        assert_netfilter_unavailable(&snap, &stderr);
        assert_eq!(num(&reasons["NO_SOCKET"], &["packets"]), 4);
        assert_eq!(nf["hooks"], serde_json::json!({}), "{nf}");
        return;
    }
    assert_eq!(num(nf, &["hooks", "forward", "in_rules"]), 9, "{nf}");
    assert_eq!(num(nf, &["hooks", "forward", "after_rules"]), 0, "{nf}");
    let closed = &reasons["NO_SOCKET"];
    assert_eq!(
        num(closed, &["hooks", "input", "after_rules"]),
        4,
        "{closed}"
    );
    let samples = snap["drops"]["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["reason"] == "NETFILTER_DROP" && s["hook"] == "forward"),
        "{samples:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s["reason"] == "NO_SOCKET" && s["hook"] == "input after rules"),
        "{samples:?}"
    );
}
