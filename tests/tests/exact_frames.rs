//! Frames whose headers are not where a simple reader looks (issue 19, cases 10 and 11): a
//! TCP header in a page fragment of the skb (a tap whose virtio-net header says the linear
//! part is the Ethernet header only), and double-tagged (802.1ad + 802.1Q, "QinQ") frames.
//! Witnesses: the frames as built, the receiver's TCP counters, the device's counters.
use std::time::Duration;

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, dev_stats, has_netfilter_links, snmp},
    netns::{NetNs, VethPair},
    netpost::{Netpost, hook, num},
    require_root,
    tap::{Tap, VnetHdr},
    traffic::{send_frames, wait_for_value},
};

/// 30 pure SYNs (no TCP data) written to a tap with `hdr_len` 14, each padded with Ethernet
/// trailer bytes to more than a page so that tun does not copy it whole into the linear
/// part: only the Ethernet header is linear, `ip_rcv` pulls the IP header in, and at
/// PREROUTING the TCP header still lies in a page fragment (nothing pulls it before TCP).
/// netpost watches only `lo`, so no XDP program runs on the tap (generic XDP would make the
/// skb linear first).
///
/// Expectation: PREROUTING's TCP classes read the flags of all 30 (syn 30, nothing else), or,
/// if the program cannot reach them, of none: every one in `other` and no SYN, SYN-ACK, RST
/// or FIN invented from bytes that are not the header.
#[test]
fn tcp_flags_in_a_page_fragment_are_read_right_or_not_at_all() {
    require_root();
    const SYNS: u32 = 30;
    const FRAME: usize = 4200;
    let ns = NetNs::new();
    let tap = Tap::new(&ns);
    let link = tap.up(&ns);
    let (in_segs, out_rsts) = (snmp(&ns, "Tcp", "InSegs"), snmp(&ns, "Tcp", "OutRsts"));
    let netpost = Netpost::start(&ns.name, &["lo"], &[]);
    for i in 0..SYNS {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2(link.guest_mac, link.host_mac)
            .ipv4(link.guest_ip4.octets(), link.host_ip4.octets(), 64)
            .tcp(40000 + i as u16, 5310, 1000 * i, 65535)
            .syn()
            .write(&mut frame, &[])
            .expect("build SYN");
        assert_eq!(frame.len(), 54, "a SYN without options or data");
        frame.resize(FRAME, 0xee);
        let hdr = VnetHdr {
            hdr_len: 14,
            ..VnetHdr::default()
        };
        tap.write(hdr, &frame);
    }
    // Nothing listens: TCP answers each SYN with a RST once it has read its header.
    wait_for_value("Tcp OutRsts", SYNS as u64, || {
        snmp(&ns, "Tcp", "OutRsts") - out_rsts
    });
    std::thread::sleep(Duration::from_millis(200));
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    assert_eq!(
        snmp(&ns, "Tcp", "InSegs") - in_segs,
        SYNS as u64,
        "TCP took every SYN"
    );
    if !has_netfilter_links() {
        // The flags are read by the netfilter programs: without links netpost says why.
        assert_netfilter_unavailable(&snap, &stderr);
        return;
    }
    let pre = &snap["netfilter"]["ipv4"]["prerouting"];
    let c = &pre["tcp"];
    let seen = (
        num(pre, &["by_proto", "tcp", "entered"]),
        (
            num(c, &["syn"]),
            num(c, &["synack"]),
            num(c, &["rst"]),
            num(c, &["fin"]),
            num(c, &["other"]),
            num(c, &["unread"]),
        ),
    );
    let n = SYNS as u64;
    assert!(
        seen == (n, (n, 0, 0, 0, 0, 0)) || seen == (n, (0, 0, 0, 0, 0, n)),
        "PREROUTING (tcp entered, (syn, synack, rst, fin, other, unread)) = {seen:?}: expected \
         ({n}, ({n}, 0, 0, 0, 0, 0)), or ({n}, (0, 0, 0, 0, 0, {n})) if the flags cannot be read: {pre}"
    );
}

/// Double-tagged frames (outer 802.1ad tag 100, inner 802.1Q tag 200) with IPv4/UDP inside,
/// written onto A's end. XDP sees both tags in the frame; at tc ingress the stack has moved
/// the outer one into `vlan_tci` (skb_vlan_untag) and the inner one is still in the data.
/// Both hooks must see the same IPv4/UDP packets of the same size.
#[test]
fn double_tagged_frames_are_the_same_packets_at_xdp_and_tc() {
    require_root();
    const FRAMES: u64 = 5;
    const PAYLOAD: u64 = 64;
    let pair = VethPair::new();
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(pair.a.mac, pair.b.mac)
        .double_vlan(
            etherparse::VlanId::try_new(100).unwrap(),
            etherparse::VlanId::try_new(200).unwrap(),
        )
        .ipv4(pair.a.ip4.octets(), pair.b.ip4.octets(), 64)
        .udp(4000, 4001)
        .write(&mut frame, &[0x11; PAYLOAD as usize])
        .unwrap();
    assert_eq!(&frame[12..14], &[0x88, 0xa8], "an 802.1ad outer tag");
    let len = frame.len() as u64;
    assert_eq!(len, 14 + 8 + 20 + 8 + PAYLOAD);
    let before = dev_stats(&pair.ns_b, &pair.b.ifname);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    send_frames(&pair.ns_a, &pair.a.ifname, vec![frame; FRAMES as usize]);
    wait_for_value("B's rx_packets", FRAMES, || {
        dev_stats(&pair.ns_b, &pair.b.ifname)
            .delta(&before)
            .rx_packets
    });
    let dev = dev_stats(&pair.ns_b, &pair.b.ifname).delta(&before);
    let snap = netpost.stop();
    assert_eq!(dev.rx_bytes, FRAMES * len, "B's device counters");
    let view = |name: &str| {
        let h = hook(&snap, &pair.b.ifname, name);
        let udp = &h["by_proto"]["udp"];
        (
            num(&h["by_family"]["ipv4"], &["packets"]),
            num(udp, &["packets"]),
            num(udp, &["bytes"]),
            num(udp, &["header_bytes"]),
            num(udp, &["payload_bytes"]),
        )
    };
    let want = (
        FRAMES,
        FRAMES,
        FRAMES * len,
        FRAMES * (len - PAYLOAD),
        FRAMES * PAYLOAD,
    );
    assert_eq!(
        (view("xdp"), view("tc_ingress")),
        (want, want),
        "(ipv4 packets, udp packets, bytes, header bytes, payload bytes) at XDP, then tc: \
         XDP {} tc {}",
        hook(&snap, &pair.b.ifname, "xdp"),
        hook(&snap, &pair.b.ifname, "tc_ingress")
    );
}
