//! Offloads (issue 19, cases 6, 7, 8, 9): super-packets a VM hands over through a tap
//! (TSO, `gso_segs` still 0), GRO super-packets at XDP with a small MSS, VXLAN-encapsulated
//! super-packets, and FINs riding on the last segment of a super-packet. Witnesses: the
//! frames as built, the devices' own counters where the stack segmented for real, the
//! sender's TCP OutSegs, and tcpdump.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::FromRawFd,
    time::Duration,
};

use netpost_tests::{
    capture::{Capture, FIN},
    kernel::{DevStats, assert_netfilter_unavailable, dev_stats, has_netfilter_links, snmp},
    netns::{NetNs, VethPair, unique_name},
    netpost::{Netpost, hook, num},
    require_root,
    tap::{TCP4_HEADERS, Tap, tso_frame},
};
use serde_json::Value;

/// Reads `ns`'s counters of `ifname` once they have stood still for 100 ms.
fn settled(ns: &NetNs, ifname: &str) -> DevStats {
    let mut last = dev_stats(ns, ifname);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        let now = dev_stats(ns, ifname);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// `interfaces[IF].xdp.packets_estimated` is true: XDP's packet count is derived, not read.
fn xdp_estimated(snap: &Value, ifname: &str) -> bool {
    hook(snap, ifname, "xdp")["packets_estimated"] == Value::Bool(true)
}

/// A VM's TSO frames: five 14480-byte TCP super-packets with gso_size 1448 written to a
/// tap in a router namespace (A), forwarded to B over a veth. A's veth end has TSO and GSO
/// off, so A's stack cuts each super-packet into its 10 segments before the veth: B's
/// device counters are the witness of the wire segments.
#[test]
fn tso_frames_from_a_tap_count_their_segments_at_tc_and_netfilter() {
    require_root();
    const FRAMES: u64 = 5;
    const SEGMENTS: u64 = 10;
    const GSO_SIZE: u16 = 1448;
    let pair = VethPair::new();
    let tap = Tap::new(&pair.ns_a);
    let link = tap.up(&pair.ns_a);
    pair.ns_a.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    pair.ns_a.exec(
        "ethtool",
        &["-K", &pair.a.ifname, "tso", "off", "gso", "off"],
    );
    // B takes the segments off the wire and drops them without answering.
    pair.ns_b.exec(
        "iptables",
        &["-A", "INPUT", "-p", "tcp", "--dport", "5301", "-j", "DROP"],
    );
    let b_before = dev_stats(&pair.ns_b, &pair.b.ifname);
    let netpost = Netpost::start(&pair.ns_a.name, &[&tap.ifname], &[]);
    let capture = Capture::start(&pair.ns_a, &tap.ifname, &["tcp"]);
    let payload = SEGMENTS as usize * GSO_SIZE as usize;
    for i in 0..FRAMES {
        let (hdr, frame) = tso_frame(
            (link.guest_mac, link.host_mac),
            (link.guest_ip4, 40000),
            (pair.b.ip4, 5301),
            1 + (i as u32) * payload as u32,
            payload,
            GSO_SIZE,
        );
        tap.write(hdr, &frame);
    }
    let b = settled(&pair.ns_b, &pair.b.ifname).delta(&b_before);
    let frames = capture.stop();
    let snap = netpost.stop();

    // The construction: 5 frames on the tap, each 10 segments' worth of payload.
    assert_eq!(frames.len() as u64, FRAMES, "tcpdump on the tap");
    let segment_bytes = TCP4_HEADERS as u64 + GSO_SIZE as u64;
    let wire_packets = FRAMES * SEGMENTS;
    let wire_bytes = wire_packets * segment_bytes;
    // The real segmentation: B received them as 50 frames of 1502 bytes.
    assert_eq!(
        (b.rx_packets, b.rx_bytes),
        (wire_packets, wire_bytes),
        "B's device counters"
    );

    let tc = &hook(&snap, &tap.ifname, "tc_ingress")["by_proto"]["tcp"];
    let xdp = &hook(&snap, &tap.ifname, "xdp")["by_proto"]["tcp"];
    if !has_netfilter_links() {
        // No netfilter figures to check (the other tests here check that netpost says why).
        assert_eq!(num(tc, &["packets"]), wire_packets, "tc {tc}");
        assert_eq!(num(tc, &["bytes"]), wire_bytes, "tc bytes {tc}");
        assert_eq!(num(tc, &["frames"]), FRAMES, "tc frames {tc}");
        return;
    }
    let pre = &snap["netfilter"]["ipv4"]["prerouting"]["by_proto"]["tcp"];
    let fwd = &snap["netfilter"]["ipv4"]["forward"]["by_proto"]["tcp"];
    let post = &snap["netfilter"]["ipv4"]["postrouting"]["by_proto"]["tcp"];
    assert_eq!(
        (
            num(tc, &["packets"]),
            num(pre, &["entered"]),
            num(fwd, &["entered"]),
            num(post, &["entered"])
        ),
        (wire_packets, wire_packets, wire_packets, wire_packets),
        "(tc ingress, PREROUTING, FORWARD, POSTROUTING) packets: tc {tc} PREROUTING {pre} \
         FORWARD {fwd} POSTROUTING {post}"
    );
    assert_eq!(num(tc, &["bytes"]), wire_bytes, "tc bytes {tc}");
    assert_eq!(num(tc, &["frames"]), FRAMES, "tc frames {tc}");
    if !xdp_estimated(&snap, &tap.ifname) {
        assert_eq!(num(xdp, &["packets"]), wire_packets, "xdp {xdp}");
    }
}

/// A TCP socket in `ns` connected to `addr` with its MSS set (TCP_MAXSEG) before the SYN.
fn connect_with_mss(ns: &NetNs, addr: SocketAddrV4, mss: i32) -> TcpStream {
    ns.run(move || {
        // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd was just created and nothing else owns it.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        // SAFETY: a valid socket and option value.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&mss as *const i32).cast(),
                size_of::<i32>() as u32,
            )
        };
        assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: a valid socket and address.
        let rc = unsafe {
            libc::connect(
                fd,
                (&to as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
        };
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    })
}

/// Sends `bytes` from `client` to a server thread that reads them all, then both close.
fn bulk(client: TcpStream, listener: TcpListener, bytes: usize) {
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut all = Vec::new();
        conn.read_to_end(&mut all).expect("server read");
        assert_eq!(all.len(), bytes);
    });
    let mut client = client;
    client.write_all(&vec![0x33; bytes]).expect("client write");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    server.join().expect("server");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("client read eof");
}

/// Like [`bulk`], but the server reads nothing until the client has written everything and
/// shut down (or 2 s passed): the receive window fills, the rest of the write waits in the
/// client's queue, and the FIN is set on the queued last super-packet instead of going out
/// alone after the data already left. The client's send buffer holds the whole write.
fn bulk_fin_queued(client: TcpStream, listener: TcpListener, bytes: usize) {
    let (shut, shut_done) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let _ = shut_done.recv_timeout(Duration::from_secs(2));
        let mut all = Vec::new();
        conn.read_to_end(&mut all).expect("server read");
        assert_eq!(all.len(), bytes);
    });
    socket2::SockRef::from(&client)
        .set_send_buffer_size(4 * bytes)
        .expect("SO_SNDBUF");
    let mut client = client;
    client.write_all(&vec![0x33; bytes]).expect("client write");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let _ = shut.send(());
    server.join().expect("server");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("client read eof");
}

/// GRO super-packets of 500-byte segments at the receiver's XDP: XDP has no segment count
/// and cannot know the MSS. Either its count is exact, or the JSON says it is an estimate
/// (`xdp.packets_estimated`); tc (gso_segs) is exact. Witness: the sender's Tcp OutSegs (A
/// sends nothing else, so every segment it sent reached B's end once).
#[test]
fn small_mss_super_packets_are_exact_at_tc_and_exact_or_flagged_at_xdp() {
    require_root();
    const BULK: usize = 2 << 20;
    let pair = VethPair::new();
    let addr = SocketAddrV4::new(pair.b.ip4, 5207);
    let listener = pair
        .ns_b
        .run(move || TcpListener::bind(addr).expect("listen"));
    let out_before = snmp(&pair.ns_a, "Tcp", "OutSegs");
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let client = connect_with_mss(&pair.ns_a, addr, 500);
    bulk(client, listener, BULK);
    let b = settled(&pair.ns_b, &pair.b.ifname);
    let sent = snmp(&pair.ns_a, "Tcp", "OutSegs") - out_before;
    let snap = netpost.stop();
    assert!(
        sent as usize >= BULK / 500,
        "the MSS held: {sent} segments for {BULK} bytes"
    );
    let tc = &hook(&snap, &pair.b.ifname, "tc_ingress")["by_proto"]["tcp"];
    let xdp_hook = hook(&snap, &pair.b.ifname, "xdp");
    let xdp = &xdp_hook["by_proto"]["tcp"];
    assert!(
        num(tc, &["frames"]) < num(tc, &["packets"]) / 4,
        "veth should carry super-packets: {tc} ({b:?})"
    );
    assert_eq!(
        num(tc, &["packets"]),
        sent,
        "tc: the sender's OutSegs: {tc}"
    );
    let estimated = xdp_estimated(&snap, &pair.b.ifname);
    if !estimated {
        assert_eq!(
            num(xdp, &["packets"]),
            sent,
            "XDP's count is not flagged as an estimate (packets_estimated = {}), so it must be \
             exact: {xdp}",
            xdp_hook["packets_estimated"]
        );
    }
}

/// The VXLAN overlay of `pair`: a vxlan device (VNI 42, port 4789) in each namespace over
/// the veth, 192.168.77.1 in A and .2 in B, ARP off and static neighbours (the overlay
/// carries only the test's traffic).
fn vxlan_overlay(pair: &VethPair) -> (Ipv4Addr, Ipv4Addr) {
    let overlay = [
        Ipv4Addr::new(192, 168, 77, 1),
        Ipv4Addr::new(192, 168, 77, 2),
    ];
    let macs = ["02:76:78:00:00:01", "02:76:78:00:00:02"];
    let ends = [
        (&pair.ns_a, &pair.a, &pair.b, 0usize),
        (&pair.ns_b, &pair.b, &pair.a, 1usize),
    ];
    for (ns, me, peer, i) in ends {
        let vx = unique_name("npx");
        ns.exec(
            "ip",
            &[
                "link",
                "add",
                &vx,
                "address",
                macs[i],
                "type",
                "vxlan",
                "id",
                "42",
                "dstport",
                "4789",
                "local",
                &me.ip4.to_string(),
                "remote",
                &peer.ip4.to_string(),
                "dev",
                &me.ifname,
            ],
        );
        ns.exec("ip", &["link", "set", &vx, "arp", "off"]);
        ns.exec(
            "ip",
            &["addr", "add", &format!("{}/24", overlay[i]), "dev", &vx],
        );
        ns.exec(
            "ip",
            &[
                "neigh",
                "replace",
                &overlay[1 - i].to_string(),
                "lladdr",
                macs[1 - i],
                "dev",
                &vx,
                "nud",
                "permanent",
            ],
        );
        ns.exec("ip", &["link", "set", &vx, "up"]);
    }
    (overlay[0], overlay[1])
}

/// TCP through a VXLAN tunnel, netpost on B's underlay veth. A's veth end segments the
/// encapsulated super-packets in software (tunnel segmentation off) and B's end coalesces
/// them again (GRO on): tcpdump on A's end sees the wire frames, tc at B sees super-packets
/// whose every segment repeats the outer and the inner headers. (Not B's /proc/net/dev: in
/// veth's NAPI mode it counts bytes after the Ethernet header.)
#[test]
fn vxlan_super_packets_count_the_wire_bytes_of_every_segment() {
    require_root();
    const BULK: usize = 2 << 20;
    let pair = VethPair::new();
    pair.ns_a.exec(
        "ethtool",
        &[
            "-K",
            &pair.a.ifname,
            "tx-udp_tnl-segmentation",
            "off",
            "tx-udp_tnl-csum-segmentation",
            "off",
            // veth hands frames to its peer's GRO only from a sender without TSO.
            "tso",
            "off",
        ],
    );
    pair.ns_b
        .exec("ethtool", &["-K", &pair.b.ifname, "gro", "on"]);
    let (_, b_overlay) = vxlan_overlay(&pair);
    let addr = SocketAddrV4::new(b_overlay, 5208);
    let listener = pair
        .ns_b
        .run(move || TcpListener::bind(addr).expect("listen"));
    let b_before = dev_stats(&pair.ns_b, &pair.b.ifname);
    // Native XDP: a generic XDP program turns GRO off on its device (netif_elide_gro). XDP
    // then runs on each wire frame before GRO.
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--xdp-mode", "native"],
    );
    let capture = Capture::start(
        &pair.ns_a,
        &pair.a.ifname,
        &["udp", "and", "src", "host", &pair.a.ip4.to_string()],
    );
    let client = pair
        .ns_a
        .run(move || TcpStream::connect(addr).expect("connect"));
    bulk(client, listener, BULK);
    let b = settled(&pair.ns_b, &pair.b.ifname).delta(&b_before);
    let frames = capture.stop();
    let snap = netpost.stop();
    // The wire: every frame A's end sent to B, after segmentation.
    let wire = (
        frames.len() as u64,
        frames.iter().map(|f| f.len as u64).sum::<u64>(),
    );
    assert_eq!(wire.0, b.rx_packets, "B received every frame A sent");
    let tc = &hook(&snap, &pair.b.ifname, "tc_ingress")["by_proto"]["udp"];
    assert!(
        num(tc, &["frames"]) < num(tc, &["packets"]) / 4,
        "GRO should make super-packets at B: {tc}"
    );
    // XDP runs frame by frame before GRO, tc on the super-packets: both must give the wire.
    let xdp = &hook(&snap, &pair.b.ifname, "xdp")["by_proto"]["udp"];
    assert_eq!(
        (
            num(tc, &["packets"]),
            num(tc, &["bytes"]),
            num(xdp, &["packets"]),
            num(xdp, &["bytes"])
        ),
        (wire.0, wire.1, wire.0, wire.1),
        "(tc packets, tc bytes, XDP packets, XDP bytes) = tcpdump's frames and bytes on the \
         wire: tc {tc} XDP {xdp}"
    );
}

/// FINs sent right after a big write ride on the last segment of a super-packet: one FIN
/// segment on the wire per FIN (tcpdump), however many segments the super-packet holds.
#[test]
fn a_fin_on_a_super_packet_is_one_fin_segment_at_netfilter() {
    fin_on_super_packets(&[]);
}

/// The same where the netfilter programs copy the headers out (as before Linux 6.17, where
/// `skb->head` cannot be read in place): the GSO fields come through the copy.
#[test]
fn a_fin_on_a_super_packet_is_one_fin_segment_at_netfilter_with_headers_copied() {
    fin_on_super_packets(&[("NETPOST_TEST_NF_COPY", "1")]);
}

fn fin_on_super_packets(env: &[(&str, &str)]) {
    require_root();
    const CONNECTIONS: usize = 5;
    const WRITE: usize = 256 << 10;
    let pair = VethPair::new();
    let addr = SocketAddrV4::new(pair.b.ip4, 5209);
    let netpost = Netpost::start_with_env(&pair.ns_b.name, &[&pair.b.ifname], &[], env);
    let capture = Capture::start(&pair.ns_b, &pair.b.ifname, &["tcp"]);
    for _ in 0..CONNECTIONS {
        let listener = pair
            .ns_b
            .run(move || TcpListener::bind(addr).expect("listen"));
        let client = pair
            .ns_a
            .run(move || TcpStream::connect(addr).expect("connect"));
        bulk_fin_queued(client, listener, WRITE);
    }
    std::thread::sleep(Duration::from_millis(200));
    let frames = capture.stop();
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    if !has_netfilter_links() {
        // The subject is netfilter's view: without links netpost says why and counts on.
        assert_netfilter_unavailable(&snap, &stderr);
        let tc = &snap["interfaces"][pair.b.ifname.as_str()]["tc_ingress"];
        assert!(num(tc, &["by_proto", "tcp", "packets"]) > 0, "{tc}");
        return;
    }
    let reads = if env.is_empty() {
        netpost_tests::kernel::netfilter_reads()
    } else {
        "copied"
    };
    assert_eq!(snap["netfilter_reads"], reads);
    let b_ip = pair.b.ip4.octets();
    let fins = |to_b: bool| {
        frames
            .iter()
            .filter(|f| f.tcp_flags().is_some_and(|fl| fl & FIN != 0))
            .filter(|f| (f.data[30..34] == b_ip) == to_b)
            .collect::<Vec<_>>()
    };
    let (fins_in, fins_out) = (fins(true), fins(false));
    assert_eq!(
        (fins_in.len(), fins_out.len()),
        (CONNECTIONS, CONNECTIONS),
        "tcpdump: one FIN each way per connection"
    );
    let on_super_packets = fins_in
        .iter()
        .filter(|f| f.tcp_payload_len().unwrap_or(0) > 1448)
        .count();
    assert!(
        on_super_packets > 0,
        "no client FIN rode on a super-packet: the test shows nothing"
    );
    let fin = |hook: &str| num(&snap["netfilter"]["ipv4"][hook]["tcp"], &["fin"]);
    assert_eq!(
        (
            fin("prerouting"),
            fin("input"),
            fin("output"),
            fin("postrouting")
        ),
        (
            fins_in.len() as u64,
            fins_in.len() as u64,
            fins_out.len() as u64,
            fins_out.len() as u64
        ),
        "FIN segments at (PREROUTING, INPUT, OUTPUT, POSTROUTING); {on_super_packets} of the \
         client FINs rode on super-packets"
    );
}
