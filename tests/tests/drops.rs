//! Where and why packets die: real drops, counted with the kernel's own reason and the
//! function that dropped them, only for the namespace netpost watches.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netns::VethPair,
    netpost::{Netpost, num},
    require_root,
    router::Router,
    traffic::udp_send,
};
use serde_json::Value;

fn reason<'a>(snap: &'a Value, name: &str) -> &'a Value {
    let r = &snap["drops"]["reasons"][name];
    assert!(r.is_object(), "no {name} drops in {}", snap["drops"]);
    r
}

#[test]
fn udp_to_a_closed_port_is_no_socket_with_its_function_and_a_sample() {
    require_root();
    let pair = VethPair::new();
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7901),
        15,
        32,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snap = netpost.stop();
    assert_eq!(snap["drops_status"], "attached");
    let r = reason(&snap, "NO_SOCKET");
    assert_eq!(num(r, &["packets"]), 15, "{r}");
    assert_eq!(num(r, &["locations", "__udp4_lib_rcv"]), 15, "{r}");
    assert_eq!(num(r, &["by_proto", "udp"]), 15, "{r}");
    assert_eq!(num(&snap["drops"], &["total"]), 15, "nothing else dropped");
    let samples = snap["drops"]["samples"].as_array().unwrap();
    let dst = format!("{}:7901", pair.b.ip4);
    assert!(
        samples
            .iter()
            .any(|s| s["reason"] == "NO_SOCKET" && s["dst"] == dst.as_str()),
        "a sampled 5-tuple names the flow: {samples:?}"
    );
    assert_eq!(num(&snap["drops"], &["events_lost"]), 0);
}

#[test]
fn an_iptables_drop_rule_is_netfilter_drop() {
    require_root();
    let pair = VethPair::new();
    pair.ns_b.exec(
        "iptables",
        &["-A", "INPUT", "-p", "udp", "--dport", "7902", "-j", "DROP"],
    );
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7902),
        12,
        32,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    let r = reason(&snap, "NETFILTER_DROP");
    assert_eq!(num(r, &["packets"]), 12, "{r}");
    assert_eq!(num(r, &["by_proto", "udp"]), 12, "{r}");
    if !has_netfilter_links() {
        assert_netfilter_unavailable(&snap, &stderr);
        return;
    }
    // The same packets as the netfilter view: dropped at INPUT.
    let input = &snap["netfilter"]["ipv4"]["input"];
    assert_eq!(num(input, &["dropped"]), 12, "{input}");
}

#[test]
fn a_router_without_forwarding_shows_the_forwarded_packets_dropped_with_a_reason() {
    require_root();
    let r = Router::new_without_forwarding();
    let netpost = Netpost::start(&r.ns_router.name, &[&r.router_client.ifname], &[]);
    udp_send(
        &r.ns_client,
        SocketAddr::new(IpAddr::V4(r.server.ip4), 7903),
        9,
        32,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snap = netpost.stop();
    assert_eq!(num(&snap["drops"], &["total"]), 9, "{}", snap["drops"]);
    // ip_forward=0: the route lookup says "not for us, not forwardable".
    let r = reason(&snap, "IP_INADDRERRORS");
    assert_eq!(num(r, &["by_proto", "udp"]), 9, "{r}");
    assert_eq!(num(r, &["locations", "ip_error"]), 9, "{r}");
}

#[test]
fn a_packet_to_an_unroutable_destination_is_dropped_for_no_route() {
    require_root();
    let r = Router::new();
    let netpost = Netpost::start(&r.ns_router.name, &[&r.router_client.ifname], &[]);
    // TEST-NET-1: the router has no route there (nor any uplink): the client's default route
    // brings it to the router, which drops it.
    let nowhere = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 7904);
    udp_send(&r.ns_client, nowhere, 6, 32);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snap = netpost.stop();
    let r = reason(&snap, "IP_INNOROUTES");
    assert_eq!(num(r, &["packets"]), 6, "{r}");
    assert_eq!(num(&snap["drops"], &["total"]), 6, "{}", snap["drops"]);
    // The routing view names the same packets.
    let routing = &snap["routing"];
    assert_eq!(num(routing, &["no_route"]), 6, "{routing}");
    let results = routing["by_result"].as_array().unwrap();
    let no_route = results.iter().find(|r| r["result"] == "no route").unwrap();
    assert_eq!(num(no_route, &["lookups"]), 6, "{routing}");
}

#[test]
fn forwarded_packets_show_their_route_decision() {
    require_root();
    let r = Router::new();
    let rx = netpost_tests::traffic::udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7906);
    let netpost = Netpost::start(&r.ns_router.name, &[&r.router_client.ifname], &[]);
    udp_send(
        &r.ns_client,
        SocketAddr::new(IpAddr::V4(r.server.ip4), 7906),
        11,
        32,
    );
    netpost_tests::traffic::udp_receive(&rx, 11);
    let snap = netpost.stop();
    let routing = &snap["routing"];
    assert_eq!(snap["routes_status"], "attached");
    let results = routing["by_result"].as_array().unwrap();
    let to_server = results
        .iter()
        .find(|x| x["dev"] == r.router_server.ifname.as_str())
        .unwrap_or_else(|| panic!("no route via the server side: {routing}"));
    assert_eq!(to_server["table"], "main", "{routing}");
    assert_eq!(
        to_server["result"],
        format!("dev {}", r.router_server.ifname),
        "directly connected: {routing}"
    );
    // One input route lookup per forwarded packet (IPv4 has no route cache).
    let dst = r.server.ip4.to_string();
    assert_eq!(num(to_server, &["destinations", &dst]), 11, "{routing}");
    assert_eq!(num(routing, &["no_route"]), 0);
}

#[test]
fn drops_in_other_namespaces_do_not_leak_in() {
    require_root();
    let watched = VethPair::new();
    let other = VethPair::new();
    let netpost = Netpost::start(&watched.ns_b.name, &[&watched.b.ifname], &[]);
    udp_send(
        &other.ns_a,
        SocketAddr::new(IpAddr::V4(other.b.ip4), 7905),
        20,
        32,
    );
    udp_send(
        &watched.ns_a,
        SocketAddr::new(IpAddr::V4(watched.b.ip4), 7905),
        3,
        32,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snap = netpost.stop();
    assert_eq!(num(&snap["drops"], &["total"]), 3, "{}", snap["drops"]);
    assert_eq!(num(reason(&snap, "NO_SOCKET"), &["packets"]), 3);
}

#[test]
fn ipv6_forwarding_and_ipv6_no_route_show_in_routing() {
    require_root();
    let r = Router::new();
    let rx = netpost_tests::traffic::udp_receiver(&r.ns_server, IpAddr::V6(r.server.ip6), 7907);
    let netpost = Netpost::start(&r.ns_router.name, &[&r.router_client.ifname], &[]);
    udp_send(
        &r.ns_client,
        SocketAddr::new(IpAddr::V6(r.server.ip6), 7907),
        9,
        32,
    );
    netpost_tests::traffic::udp_receive(&rx, 9);
    // 2001:db8::/32 is for documentation: the router has no route there (nor an uplink).
    let nowhere: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    udp_send(
        &r.ns_client,
        SocketAddr::new(IpAddr::V6(nowhere), 7908),
        4,
        32,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snap = netpost.stop();
    let routing = &snap["routing"];
    let results = routing["by_result"].as_array().unwrap();
    let to_server = results
        .iter()
        .find(|x| x["family"] == "ipv6" && x["dev"] == r.router_server.ifname.as_str())
        .unwrap_or_else(|| panic!("no IPv6 route via the server side: {routing}"));
    let dst = r.server.ip6.to_string();
    assert_eq!(num(to_server, &["destinations", &dst]), 9, "{routing}");
    assert!(num(routing, &["ipv6_no_route_lookups"]) >= 4, "{routing}");
    let unreachable = results
        .iter()
        .find(|x| x["family"] == "ipv6" && x["result"] == "unreachable")
        .unwrap_or_else(|| panic!("no unreachable IPv6 result: {routing}"));
    assert!(
        num(unreachable, &["destinations", "2001:db8::1"]) >= 4,
        "{routing}"
    );
}
