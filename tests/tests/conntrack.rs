//! Conntrack table pressure: the count netpost reports rises by exactly the connections
//! made, and every created entry is seen by the netfilter programs.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netns::VethPair,
    netpost::{Netpost, num},
    require_root,
    traffic::{udp_flows, udp_receive, udp_receiver},
};

#[test]
fn conntrack_count_rises_by_the_flows_made_and_each_creation_is_seen() {
    require_root();
    let pair = VethPair::new();
    pair.ns_b.enable_conntrack("INPUT");
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7701);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    // 25 flows: 25 distinct source ports, 2 datagrams each.
    udp_flows(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7701),
        41000,
        25,
        2,
        16,
    );
    udp_receive(&rx, 50);
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    let ct = &snap["conntrack"];
    assert_eq!(num(ct, &["count"]), 25, "{ct}");
    assert!(num(ct, &["max"]) > 0);
    assert!(ct["fill_pct"].as_f64().unwrap() > 0.0);
    if !has_netfilter_links() {
        // Entries are seen created by the netfilter programs: without them netpost says
        // why, and leaves `new` null rather than a zero that would look like a fact.
        assert_netfilter_unavailable(&snap, &stderr);
        assert!(ct["new"].is_null(), "{ct}");
        return;
    }
    assert_eq!(num(ct, &["new"]), 25, "{ct}");
    let pre = &snap["netfilter"]["ipv4"]["prerouting"]["ct"];
    // Without a reply a UDP flow stays NEW: 50 NEW packets, 25 entries created.
    assert_eq!(num(pre, &["new"]), 50, "{pre}");
    assert_eq!(num(pre, &["established"]), 0, "{pre}");
    assert!(
        ct["top_sources"].as_array().unwrap().is_empty(),
        "table far from full"
    );
}
