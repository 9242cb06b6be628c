//! IP fragments (issue 19, case 1): a 3000-byte UDP datagram crosses a 1500-byte MTU veth
//! as three fragments. Later fragments carry no UDP header, so their first bytes are payload,
//! never ports. Witnesses: tcpdump on the receiving veth, its /proc/net/dev counters, the
//! receiver's reassembly counters (Ip ReasmReqds/ReasmOKs, Ip6ReasmReqds/Ip6ReasmOKs) and
//! the datagram read from the socket.
use std::net::{IpAddr, SocketAddr, UdpSocket};

use netpost_tests::{
    capture::Capture,
    kernel::{assert_netfilter_unavailable, dev_stats, has_netfilter_links, snmp, snmp6},
    netns::{NetNs, VethPair},
    netpost::{Netpost, hook, num},
    require_root,
    traffic::{udp_receive, udp_receiver},
};
use serde_json::Value;

const DATAGRAM: usize = 3000;

/// Sends one datagram of `size` bytes from a fresh socket in `ns`; returns its source port.
fn send_one(ns: &NetNs, dst: SocketAddr, size: usize) -> u16 {
    ns.run(move || {
        let bind: SocketAddr = if dst.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let sock = UdpSocket::bind(bind).expect("bind");
        sock.send_to(&vec![b'A'; size], dst).expect("send_to");
        sock.local_addr().unwrap().port()
    })
}

/// The receiver's reassembly counters: (requests = fragments, datagrams reassembled, failures).
fn reasm(ns: &NetNs, v6: bool) -> (u64, u64, u64) {
    if v6 {
        (
            snmp6(ns, "Ip6ReasmReqds"),
            snmp6(ns, "Ip6ReasmOKs"),
            snmp6(ns, "Ip6ReasmFails"),
        )
    } else {
        (
            snmp(ns, "Ip", "ReasmReqds"),
            snmp(ns, "Ip", "ReasmOKs"),
            snmp(ns, "Ip", "ReasmFails"),
        )
    }
}

/// One datagram from A to B, netpost and tcpdump on B's end; checks the flow table against
/// the capture.
fn one_fragmented_datagram_is_one_flow(v6: bool) {
    require_root();
    let pair = VethPair::new();
    let (a_ip, b_ip) = if v6 {
        (IpAddr::V6(pair.a.ip6), IpAddr::V6(pair.b.ip6))
    } else {
        (IpAddr::V4(pair.a.ip4), IpAddr::V4(pair.b.ip4))
    };
    let rx = udp_receiver(&pair.ns_b, b_ip, 7901);
    let reasm_before = reasm(&pair.ns_b, v6);
    let dev_before = dev_stats(&pair.ns_b, &pair.b.ifname);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let capture = Capture::start(&pair.ns_b, &pair.b.ifname, &[]);
    let sport = send_one(&pair.ns_a, SocketAddr::new(b_ip, 7901), DATAGRAM);
    udp_receive(&rx, 1);
    let frames = capture.stop();
    let snap = netpost.stop();
    let dev = dev_stats(&pair.ns_b, &pair.b.ifname).delta(&dev_before);

    // The witnesses: three fragments on the wire, reassembled into the one datagram.
    assert_eq!(frames.len(), 3, "tcpdump: {frames:?}");
    assert!(frames.iter().all(|f| f.is_fragment()), "{frames:?}");
    let wire_bytes: u64 = frames.iter().map(|f| f.len as u64).sum();
    assert_eq!(
        (dev.rx_packets, dev.rx_bytes),
        (frames.len() as u64, wire_bytes)
    );
    let after = reasm(&pair.ns_b, v6);
    assert_eq!(
        (
            after.0 - reasm_before.0,
            after.1 - reasm_before.1,
            after.2 - reasm_before.2
        ),
        (3, 1, 0),
        "the receiver reassembled three fragments into one datagram"
    );

    // The hooks count the fragments as UDP packets, none malformed.
    for name in ["xdp", "tc_ingress"] {
        let h = hook(&snap, &pair.b.ifname, name);
        assert_eq!(num(h, &["by_proto", "udp", "packets"]), 3, "{name}: {h}");
        assert_eq!(num(h, &["bytes"]), wire_bytes, "{name}: {h}");
        assert_eq!(num(h, &["malformed", "packets"]), 0, "{name}: {h}");
    }

    // One flow, A:sport <-> B:7901, with every fragment; no flow made of payload bytes.
    let flows = snap["flows"].as_array().expect("flows");
    let ends = |f: &Value| {
        let mut e = [
            f["src"].as_str().unwrap_or("?").to_string(),
            f["dst"].as_str().unwrap_or("?").to_string(),
        ];
        e.sort();
        e
    };
    let mut want = [
        SocketAddr::new(a_ip, sport).to_string(),
        SocketAddr::new(b_ip, 7901).to_string(),
    ];
    want.sort();
    let summary: Vec<String> = flows
        .iter()
        .map(|f| {
            format!(
                "{:?} packets {} bytes {}",
                ends(f),
                f["packets"],
                f["bytes"]
            )
        })
        .collect();
    assert_eq!(flows.len(), 1, "exactly one flow: {summary:?}");
    let flow = &flows[0];
    assert_eq!(flow["proto"], "udp", "{flow}");
    assert_eq!(ends(flow), want, "{summary:?}");
    assert_eq!(num(flow, &["packets"]), frames.len() as u64, "{flow}");
    assert_eq!(num(flow, &["bytes"]), wire_bytes, "{flow}");
}

#[test]
fn ipv4_fragments_make_one_flow_holding_every_fragment() {
    one_fragmented_datagram_is_one_flow(false);
}

#[test]
fn ipv6_fragments_make_one_flow_holding_every_fragment() {
    one_fragmented_datagram_is_one_flow(true);
}

/// With conntrack on, defragmentation happens at PREROUTING (nf_defrag, priority -400): it
/// holds the first fragments and hands the reassembled datagram on. The kernel dropped
/// nothing (each socket gets its datagram; IPv4's ReasmOKs/ReasmFails say so too, while
/// IPv6's netfilter defrag keeps no Ip6Reasm* counters), so netpost must not show fragments
/// held for reassembly as dropped. Fragments per family: tcpdump.
#[test]
fn fragments_held_for_reassembly_at_prerouting_are_not_dropped() {
    require_root();
    let pair = VethPair::new();
    pair.ns_b.enable_conntrack("INPUT");
    pair.ns_b.exec(
        "ip6tables",
        &[
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID",
            "-j",
            "DROP",
        ],
    );
    let rx4 = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7902);
    let rx6 = udp_receiver(&pair.ns_b, IpAddr::V6(pair.b.ip6), 7902);
    let (r4, r6) = (reasm(&pair.ns_b, false), reasm(&pair.ns_b, true));
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let capture = Capture::start(&pair.ns_b, &pair.b.ifname, &["udp", "or", "ip6"]);
    send_one(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7902),
        DATAGRAM,
    );
    send_one(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V6(pair.b.ip6), 7902),
        DATAGRAM,
    );
    udp_receive(&rx4, 1);
    udp_receive(&rx6, 1);
    let frames = capture.stop();
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    let linked = has_netfilter_links();
    if !linked {
        // PREROUTING's view needs netfilter links: netpost says why; the kernel's own
        // reassembly counters below still show nothing was lost.
        assert_netfilter_unavailable(&snap, &stderr);
    }
    let mut seen = Vec::new();
    let mut want = Vec::new();
    for (family, before, v6) in [("ipv4", r4, false), ("ipv6", r6, true)] {
        let ethertype: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let fragments = frames
            .iter()
            .filter(|f| f.data[12..14] == ethertype && f.is_fragment())
            .count() as u64;
        assert_eq!(fragments, 3, "{family}: tcpdump saw three fragments");
        if !v6 {
            let after = reasm(&pair.ns_b, v6);
            assert_eq!(
                (after.0 - before.0, after.1 - before.1, after.2 - before.2),
                (3, 1, 0),
                "{family}: three fragments reassembled, none lost"
            );
        }
        if !linked {
            continue;
        }
        let pre = &snap["netfilter"][family]["prerouting"];
        // Every fragment entered, none dropped (a family without links says why).
        seen.push(if pre.is_object() {
            format!(
                "{family}: udp entered {}, udp dropped {}, dropped {}",
                num(pre, &["by_proto", "udp", "entered"]),
                num(pre, &["by_proto", "udp", "dropped"]),
                num(pre, &["dropped"])
            )
        } else {
            format!("{family}: {}", snap["netfilter_status"][family])
        });
        want.push(format!(
            "{family}: udp entered {fragments}, udp dropped 0, dropped 0"
        ));
    }
    assert_eq!(
        seen,
        want,
        "PREROUTING: the kernel dropped nothing: \
         ipv4 {} ipv6 {}",
        snap["netfilter"]["ipv4"]["prerouting"]["by_proto"]["udp"],
        snap["netfilter"]["ipv6"]["prerouting"]["by_proto"]["udp"]
    );
}
