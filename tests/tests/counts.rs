//! Exact per-hook, per-protocol counts for real traffic through a veth pair, with netpost
//! watching the receiving end (`b`) in its namespace: XDP and tc ingress see what `a`
//! sends, tc egress sees what `b` answers. The topology is silent on its own (static
//! neighbours, no IPv6 autoconf), so every packet counted is one the test sent.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{DevStats, dev_stats, snmp},
    netns::VethPair,
    netpost::{Netpost, hook, num},
    require_root,
    traffic::{ping4, send_frames, tcp_exchange, udp_receive, udp_receiver, udp_send},
};
use serde_json::Value;

const ETH: u64 = 14;
const IPV4: u64 = 20;
const IPV6: u64 = 40;
const UDP: u64 = 8;
const ICMP: u64 = 8;
const VLAN: u64 = 4;

/// Runs `traffic` with netpost watching `b`; returns netpost's final snapshot and the
/// device counters of `b` over the same window.
fn observe(pair: &VethPair, traffic: impl FnOnce(&VethPair)) -> (Value, DevStats) {
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let before = dev_stats(&pair.ns_b, &pair.b.ifname);
    traffic(pair);
    // The last segments (a FIN's ACK) may still be on their way when the exchange returns:
    // read once the device's counters have stood still for 100 ms.
    let mut after = dev_stats(&pair.ns_b, &pair.b.ifname);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = dev_stats(&pair.ns_b, &pair.b.ifname);
        if now == after {
            break;
        }
        after = now;
    }
    (netpost.stop(), after.delta(&before))
}

/// Asserts one protocol's exact numbers at a hook: packets, bytes, header and payload.
fn assert_proto(h: &Value, proto: &str, packets: u64, frame_bytes: u64, payload: u64) {
    let p = &h["by_proto"][proto];
    assert_eq!(num(p, &["packets"]), packets, "{proto} packets in {h}");
    assert_eq!(
        num(p, &["bytes"]),
        packets * frame_bytes,
        "{proto} bytes in {h}"
    );
    assert_eq!(
        num(p, &["payload_bytes"]),
        packets * payload,
        "{proto} payload in {h}"
    );
    assert_eq!(
        num(p, &["header_bytes"]),
        packets * (frame_bytes - payload),
        "{proto} header bytes in {h}"
    );
}

/// Asserts that a hook saw nothing but `proto` (all other protocols zero).
fn assert_only(h: &Value, proto: &str) {
    for other in ["tcp", "udp", "icmp", "icmpv6", "other"] {
        if other != proto {
            assert_eq!(num(h, &["by_proto", other, "packets"]), 0, "{other} in {h}");
        }
    }
    assert_eq!(num(h, &["malformed", "packets"]), 0, "malformed in {h}");
}

fn assert_silent(h: &Value) {
    assert_eq!(num(h, &["packets"]), 0, "expected no packets: {h}");
    assert_eq!(num(h, &["bytes"]), 0, "expected no bytes: {h}");
}

#[test]
fn udp_ipv4_counts_exactly_at_xdp_and_tc_ingress() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7001);
    let (snap, dev) = observe(&pair, |p| {
        udp_send(&p.ns_a, SocketAddr::new(IpAddr::V4(p.b.ip4), 7001), 50, 200);
        udp_receive(&rx, 50);
    });
    let frame = ETH + IPV4 + UDP + 200;
    for name in ["xdp", "tc_ingress"] {
        let h = hook(&snap, &pair.b.ifname, name);
        assert_proto(h, "udp", 50, frame, 200);
        assert_only(h, "udp");
        assert_eq!(num(h, &["packets"]), 50);
        assert_eq!(num(h, &["frames"]), 50);
        assert_eq!(num(h, &["bytes"]), 50 * frame);
        assert_eq!(num(h, &["header_bytes"]), 50 * (ETH + IPV4 + UDP));
        assert_eq!(num(h, &["payload_bytes"]), 50 * 200);
        assert_eq!(num(h, &["by_family", "ipv4", "packets"]), 50);
        // The device's own counters agree frame for frame.
        assert_eq!(num(h, &["frames"]), dev.rx_packets);
        assert_eq!(num(h, &["bytes"]), dev.rx_bytes);
    }
    assert_silent(hook(&snap, &pair.b.ifname, "tc_egress"));
    assert_eq!(dev.tx_packets, 0);
}

#[test]
fn udp_ipv6_counts_exactly_with_family_split() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V6(pair.b.ip6), 7002);
    let (snap, dev) = observe(&pair, |p| {
        udp_send(&p.ns_a, SocketAddr::new(IpAddr::V6(p.b.ip6), 7002), 20, 120);
        udp_receive(&rx, 20);
    });
    let frame = ETH + IPV6 + UDP + 120;
    for name in ["xdp", "tc_ingress"] {
        let h = hook(&snap, &pair.b.ifname, name);
        assert_proto(h, "udp", 20, frame, 120);
        assert_only(h, "udp");
        assert_eq!(num(h, &["by_family", "ipv6", "packets"]), 20);
        assert_eq!(num(h, &["by_family", "ipv4", "packets"]), 0);
        assert_eq!(num(h, &["bytes"]), dev.rx_bytes);
    }
    assert_silent(hook(&snap, &pair.b.ifname, "tc_egress"));
}

#[test]
fn icmp_echo_requests_in_and_replies_out() {
    require_root();
    let pair = VethPair::new();
    let (snap, dev) = observe(&pair, |p| ping4(&p.ns_a, p.b.ip4, 10, 56));
    let frame = ETH + IPV4 + ICMP + 56;
    for name in ["xdp", "tc_ingress", "tc_egress"] {
        let h = hook(&snap, &pair.b.ifname, name);
        assert_proto(h, "icmp", 10, frame, 56);
        assert_only(h, "icmp");
    }
    assert_eq!(dev.rx_packets, 10);
    assert_eq!(dev.tx_packets, 10);
    assert_eq!(
        num(hook(&snap, &pair.b.ifname, "tc_egress"), &["bytes"]),
        dev.tx_bytes
    );
}

#[test]
fn vlan_tagged_frames_count_the_tag_at_every_hook() {
    require_root();
    let pair = VethPair::new();
    let payload = [0x11u8; 64];
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(pair.a.mac, pair.b.mac)
        .single_vlan(etherparse::VlanId::try_new(100).unwrap())
        .ipv4(pair.a.ip4.octets(), pair.b.ip4.octets(), 64)
        .udp(4000, 4001)
        .write(&mut frame, &payload)
        .unwrap();
    let len = frame.len() as u64;
    assert_eq!(len, ETH + VLAN + IPV4 + UDP + 64);
    let (snap, dev) = observe(&pair, |p| send_frames(&p.ns_a, &p.a.ifname, vec![frame; 3]));
    // XDP sees the tag in the frame; tc ingress after the stack moved it to vlan_tci.
    for name in ["xdp", "tc_ingress"] {
        let h = hook(&snap, &pair.b.ifname, name);
        assert_proto(h, "udp", 3, len, 64);
        assert_only(h, "udp");
    }
    assert_eq!(dev.rx_bytes, 3 * len);
}

#[test]
fn tcp_exchange_counts_every_segment_and_exact_payload() {
    require_root();
    let pair = VethPair::new();
    let (in_before, out_before) = (
        snmp(&pair.ns_b, "Tcp", "InSegs"),
        snmp(&pair.ns_b, "Tcp", "OutSegs"),
    );
    let (snap, dev) = observe(&pair, |p| tcp_exchange(&p.ns_a, &p.ns_b, &p.b, 1000, 500));
    let in_segs = snmp(&pair.ns_b, "Tcp", "InSegs") - in_before;
    let out_segs = snmp(&pair.ns_b, "Tcp", "OutSegs") - out_before;
    assert!(in_segs >= 4, "handshake, data and FIN: {in_segs}");
    for name in ["xdp", "tc_ingress"] {
        let h = hook(&snap, &pair.b.ifname, name);
        assert_only(h, "tcp");
        let tcp = &h["by_proto"]["tcp"];
        assert_eq!(num(tcp, &["packets"]), in_segs, "{name}: TCP's own InSegs");
        assert_eq!(num(tcp, &["packets"]), dev.rx_packets);
        assert_eq!(num(tcp, &["bytes"]), dev.rx_bytes);
        assert_eq!(num(tcp, &["payload_bytes"]), 1000, "{name}");
        assert_eq!(
            num(tcp, &["header_bytes"]) + 1000,
            dev.rx_bytes,
            "{name}: headers + payload = wire bytes"
        );
    }
    let out = hook(&snap, &pair.b.ifname, "tc_egress");
    assert_only(out, "tcp");
    assert_eq!(num(out, &["by_proto", "tcp", "packets"]), out_segs);
    assert_eq!(num(out, &["by_proto", "tcp", "packets"]), dev.tx_packets);
    assert_eq!(num(out, &["by_proto", "tcp", "bytes"]), dev.tx_bytes);
    assert_eq!(num(out, &["by_proto", "tcp", "payload_bytes"]), 500);
}

#[test]
fn gso_super_packets_count_as_wire_segments_at_every_hook() {
    require_root();
    const BULK: u64 = 8 << 20;
    let pair = VethPair::new();
    let retrans_before = snmp(&pair.ns_a, "Tcp", "RetransSegs");
    let (snap, dev) = observe(&pair, |p| {
        tcp_exchange(&p.ns_a, &p.ns_b, &p.b, BULK as usize, 0)
    });
    // A retransmitted segment (a busy machine) carries its payload twice.
    let retransmitted = snmp(&pair.ns_a, "Tcp", "RetransSegs") - retrans_before;
    let xdp = &hook(&snap, &pair.b.ifname, "xdp")["by_proto"]["tcp"];
    let tc = &hook(&snap, &pair.b.ifname, "tc_ingress")["by_proto"]["tcp"];
    // tc reads skb->gso_segs; XDP derives segments from the MTU. They must agree.
    assert_eq!(
        num(xdp, &["packets"]),
        num(tc, &["packets"]),
        "xdp {xdp} tc {tc}"
    );
    assert_eq!(num(xdp, &["bytes"]), num(tc, &["bytes"]));
    assert_eq!(num(xdp, &["payload_bytes"]), num(tc, &["payload_bytes"]));
    if retransmitted == 0 {
        assert_eq!(num(tc, &["payload_bytes"]), BULK);
    } else {
        // A retransmission may also replace a segment lost before XDP.
        let payload = num(tc, &["payload_bytes"]);
        assert!(
            payload >= BULK && payload <= BULK + retransmitted * 65536,
            "{payload} payload bytes, {retransmitted} retransmitted"
        );
    }
    // The device counts skbs: those are our frames.
    assert_eq!(num(tc, &["frames"]), dev.rx_packets);
    let (frames, packets) = (num(tc, &["frames"]), num(tc, &["packets"]));
    assert!(
        frames < packets / 4,
        "veth should carry super-packets: {frames} frames, {packets} packets"
    );
    // No segment carries more than an MSS (1500 - 20 IPv4 - 32 TCP with timestamps).
    assert!(
        packets >= BULK.div_ceil(1448),
        "{packets} segments for {BULK} bytes"
    );
    // Wire bytes: every extra segment repeats the 14 + 20 + 32 bytes of headers.
    assert_eq!(
        num(tc, &["bytes"]),
        dev.rx_bytes + (packets - frames) * (ETH + IPV4 + 32)
    );
}

#[test]
fn several_interfaces_are_counted_separately() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7003);
    let lo_rx = udp_receiver(&pair.ns_b, "127.0.0.1".parse().unwrap(), 7004);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname, "lo"], &[]);
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7003),
        7,
        10,
    );
    udp_send(&pair.ns_b, "127.0.0.1:7004".parse().unwrap(), 5, 30);
    udp_receive(&rx, 7);
    udp_receive(&lo_rx, 5);
    let snap = netpost.stop();
    let veth = hook(&snap, &pair.b.ifname, "xdp");
    assert_proto(veth, "udp", 7, ETH + IPV4 + UDP + 10, 10);
    assert_only(veth, "udp");
    // Loopback: each datagram leaves (tc egress) and comes back in (XDP, tc ingress).
    for name in ["xdp", "tc_ingress", "tc_egress"] {
        let h = hook(&snap, "lo", name);
        assert_proto(h, "udp", 5, ETH + IPV4 + UDP + 30, 30);
        assert_only(h, "udp");
    }
    assert_eq!(snap["attached"]["lo"]["xdp_mode"], "generic");
    assert_eq!(
        snap["attached"][pair.b.ifname.as_str()]["xdp_mode"],
        "generic"
    );
}
