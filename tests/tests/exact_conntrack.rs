//! conntrack entries that never made it into the table (issue 19, the doubtful case):
//! conntrack attaches a new, unconfirmed entry to a connection's first packet at PREROUTING
//! and inserts it into the table only when the packet leaves the last hook (confirmation).
//! A packet dropped before that leaves no entry: `conntrack -E` reports no NEW event and the
//! table does not grow. netpost's `conntrack.new` ("entries created") must count what the
//! table got, so that `top_sources` never blames sources that did not fill it.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    conntrack::{self, Events},
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netns::VethPair,
    netpost::{Netpost, num},
    require_root,
    traffic::{udp_flows, udp_receive, udp_receiver, udp_send, wait_for_value},
};

#[test]
fn entries_dropped_before_confirmation_are_not_created_entries() {
    require_root();
    const DROPPED_FLOWS: u64 = 10;
    let pair = VethPair::new();
    // New connections to 7990 are dropped at INPUT, after conntrack made their entries.
    pair.ns_b.exec(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "udp",
            "--dport",
            "7990",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "DROP",
        ],
    );
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7991);
    let events = Events::start(&pair.ns_b);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    // A source port each: a new flow each.
    udp_flows(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7990),
        41000,
        DROPPED_FLOWS as u16,
        1,
        16,
    );
    wait_for_value("the DROP rule's packets", DROPPED_FLOWS, || {
        let listing = pair.ns_b.exec("iptables", &["-nvxL", "INPUT"]);
        listing
            .lines()
            .find(|l| l.contains("dpt:7990"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    });
    // The control: one flow that gets through makes one entry (3 datagrams, one socket).
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7991),
        3,
        16,
    );
    udp_receive(&rx, 3);
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    let lines = events.stop();
    let new_events = lines.iter().filter(|l| l.contains("[NEW]")).count() as u64;
    assert_eq!(
        new_events, 1,
        "conntrack -E: only the control flow: {lines:?}"
    );
    assert_eq!(conntrack::count(&pair.ns_b), 1, "nf_conntrack_count");
    let ct = &snap["conntrack"];
    if !has_netfilter_links() {
        // Entries created are what the netfilter programs see: without them netpost says
        // why, `new` is null, and the table's count is still read.
        assert_netfilter_unavailable(&snap, &stderr);
        assert!(ct["new"].is_null(), "{ct}");
        assert_eq!(num(ct, &["count"]), 1, "{ct}");
        return;
    }
    assert_eq!(
        (num(ct, &["new"]), num(ct, &["count"])),
        (new_events, 1),
        "(entries created, table count): conntrack -E's NEW events and the table: {ct}"
    );
}
