//! The TCP handshake funnel under real-world openings (issue 19, cases 2-5): TCP Fast Open,
//! lost SYN-ACKs and lost completing ACKs, a reset on a flow first seen mid-connection, and
//! a router that sees every connection on two interfaces. Every expected number is the
//! kernel's own (Tcp PassiveOpens, TcpExt TCPSynRetrans, TCPFastOpen*: what `nstat` shows)
//! or tcpdump's.
use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::{AsRawFd, FromRawFd},
    time::Duration,
};

use netpost_tests::{
    capture::{Capture, RST, SYN},
    kernel::{netstat, snmp},
    netns::{NetNs, VethPair},
    netpost::{Netpost, TempOutput, metric, num, scrape_metrics},
    require_root,
    router::Router,
    traffic::tcp_exchange,
};
use serde_json::Value;

/// TCP_FASTOPEN (server queue length) from linux/tcp.h.
const TCP_FASTOPEN: libc::c_int = 23;

/// One Fast Open connection from `ns` to `addr`: the request goes out with sendto
/// (MSG_FASTOPEN), in the SYN when the client holds a cookie; then the answer is read and
/// the client closes.
fn fast_open_exchange(ns: &NetNs, addr: SocketAddrV4, request: usize, answer: usize) {
    ns.run(move || {
        // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd was just created and nothing else owns it.
        let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let data = vec![0x46; request];
        // SAFETY: buffer and address are valid for the call.
        let sent = unsafe {
            libc::sendto(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_FASTOPEN,
                (&to as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
        };
        assert_eq!(
            sent,
            request as isize,
            "sendto(MSG_FASTOPEN): {}",
            std::io::Error::last_os_error()
        );
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = vec![0u8; answer];
        stream.read_exact(&mut got).expect("client read");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("client read eof");
    })
}

#[test]
fn fast_open_connections_are_established_like_any_other() {
    require_root();
    const CONNECTIONS: usize = 3;
    let pair = VethPair::new();
    for ns in [&pair.ns_a, &pair.ns_b] {
        // 1: client, 2: server.
        ns.exec("sysctl", &["-qw", "net.ipv4.tcp_fastopen=3"]);
    }
    let addr = SocketAddrV4::new(pair.b.ip4, 5201);
    let listener = pair.ns_b.run(move || {
        let l = TcpListener::bind(addr).expect("listen");
        let qlen: libc::c_int = 16;
        // SAFETY: a valid socket and option value.
        let rc = unsafe {
            libc::setsockopt(
                l.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_FASTOPEN,
                (&qlen as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(rc, 0, "TCP_FASTOPEN: {}", std::io::Error::last_os_error());
        l
    });
    let passive = snmp(&pair.ns_b, "Tcp", "PassiveOpens");
    let fo_passive = netstat(&pair.ns_b, "TcpExt", "TCPFastOpenPassive");
    let fo_active = netstat(&pair.ns_a, "TcpExt", "TCPFastOpenActive");
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let capture = Capture::start(&pair.ns_b, &pair.b.ifname, &["tcp"]);
    let server = std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut got = [0u8; 100];
            conn.read_exact(&mut got).expect("server read");
            conn.write_all(&[0x47; 50]).expect("server write");
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).expect("server read eof");
        }
    });
    for _ in 0..CONNECTIONS {
        fast_open_exchange(&pair.ns_a, addr, 100, 50);
    }
    server.join().expect("server");
    std::thread::sleep(Duration::from_millis(200));
    let frames = capture.stop();
    let snap = netpost.stop();

    // The witnesses: every connection completed at the server, the later ones with their
    // data in the SYN (the first one only fetched the cookie).
    let completed = snmp(&pair.ns_b, "Tcp", "PassiveOpens") - passive;
    assert_eq!(completed, CONNECTIONS as u64, "server's PassiveOpens");
    let with_data = (
        netstat(&pair.ns_a, "TcpExt", "TCPFastOpenActive") - fo_active,
        netstat(&pair.ns_b, "TcpExt", "TCPFastOpenPassive") - fo_passive,
    );
    assert_eq!(with_data, (2, 2), "Fast Open data in SYN accepted");
    let syns_with_data = frames
        .iter()
        .filter(|f| f.tcp_flags() == Some(SYN) && f.tcp_payload_len() == Some(100))
        .count();
    assert_eq!(syns_with_data, 2, "tcpdump: SYNs carrying the request");

    let h = &snap["handshake"];
    assert_eq!(num(h, &["syn"]), CONNECTIONS as u64, "{h}");
    assert_eq!(num(h, &["synack"]), CONNECTIONS as u64, "{h}");
    assert_eq!(
        num(h, &["established"]),
        completed,
        "the server's PassiveOpens: {h}"
    );
    assert_eq!(num(h, &["half_open"]), 0, "{h}");
    let stages: Vec<&Value> = snap["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["stage"])
        .collect();
    assert_eq!(stages.len(), CONNECTIONS, "{stages:?}");
    assert!(stages.iter().all(|s| *s == "closed"), "{stages:?}");
}

#[test]
fn syns_retransmitted_for_lost_synacks_are_counted_like_the_client_counts_them() {
    require_root();
    let pair = VethPair::new();
    let addr = SocketAddr::new(IpAddr::V4(pair.b.ip4), 5202);
    let listener = pair
        .ns_b
        .run(move || TcpListener::bind(addr).expect("listen"));
    // The client never receives a SYN-ACK: it retransmits its SYN, the server its SYN-ACK.
    pair.ns_a.exec(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--tcp-flags",
            "SYN,ACK",
            "SYN,ACK",
            "-j",
            "DROP",
        ],
    );
    let syn_rtx = netstat(&pair.ns_a, "TcpExt", "TCPSynRetrans");
    let synack_rtx = netstat(&pair.ns_b, "TcpExt", "TCPSynRetrans");
    let netpost = Netpost::start(&pair.ns_a.name, &[&pair.a.ifname], &[]);
    pair.ns_a.run(move || {
        // SYNs at 0, 1 and 2 s (tcp_syn_linear_timeouts): two retransmissions.
        let r = TcpStream::connect_timeout(&addr, Duration::from_millis(2500));
        assert!(r.is_err(), "no SYN-ACK gets through");
    });
    // A closed listener drops its request socket at the next timer, retransmitting nothing.
    drop(listener);
    std::thread::sleep(Duration::from_millis(200));
    let syn_rtx = netstat(&pair.ns_a, "TcpExt", "TCPSynRetrans") - syn_rtx;
    let synack_rtx = netstat(&pair.ns_b, "TcpExt", "TCPSynRetrans") - synack_rtx;
    let snap = netpost.stop();
    assert!(syn_rtx >= 1, "the client retransmitted its SYN: {syn_rtx}");
    let h = &snap["handshake"];
    assert_eq!(num(h, &["syn"]), 1, "one connection attempt: {h}");
    assert_eq!(
        (
            num(h, &["syn_retransmits"]),
            num(h, &["synack_retransmits"])
        ),
        (syn_rtx, synack_rtx),
        "(SYN, SYN-ACK) retransmissions: the client's and the server's TCPSynRetrans: {h}"
    );
    assert_eq!(num(h, &["established"]), 0, "{h}");
}

/// Connections whose completing ACK is lost: the client is established, the server is not
/// and retransmits its SYN-ACK. Seen from either end, netpost must count as established
/// what the server completed, and every retransmitted SYN-ACK.
#[test]
fn a_lost_completing_ack_is_not_an_established_connection_until_the_server_has_one() {
    require_root();
    const CONNECTIONS: usize = 3;
    let pair = VethPair::new();
    let addr = SocketAddr::new(IpAddr::V4(pair.b.ip4), 5203);
    let listener = pair
        .ns_b
        .run(move || TcpListener::bind(addr).expect("listen"));
    // Everything but SYNs from the client is lost on the way into the server for a while.
    let rule = [
        "INPUT", "-p", "tcp", "--dport", "5203", "!", "--syn", "-j", "DROP",
    ];
    let with = |op: &'static str| [&[op][..], &rule[..]].concat();
    pair.ns_b.exec("iptables", &with("-A"));
    let passive = snmp(&pair.ns_b, "Tcp", "PassiveOpens");
    let synack_rtx = netstat(&pair.ns_b, "TcpExt", "TCPSynRetrans");
    let at_server = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let at_client = Netpost::start(&pair.ns_a.name, &[&pair.a.ifname], &[]);
    let clients: Vec<TcpStream> = pair.ns_a.run(move || {
        (0..CONNECTIONS)
            .map(|_| TcpStream::connect(addr).expect("the client completes at once"))
            .collect()
    });
    // The server retransmits its SYN-ACKs after 1 s (the next time after 3 s); the clients'
    // answers are still lost.
    std::thread::sleep(Duration::from_millis(1800));
    pair.ns_b.exec("iptables", &with("-D"));
    let server = std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut got = [0u8; 10];
            conn.read_exact(&mut got).expect("server read");
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).expect("server read eof");
        }
    });
    for mut c in clients {
        // Data acknowledges the SYN-ACK too: it completes the server's handshake.
        c.write_all(&[1; 10]).expect("client write");
        c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).expect("client read eof");
    }
    server.join().expect("server");
    std::thread::sleep(Duration::from_millis(200));
    let completed = snmp(&pair.ns_b, "Tcp", "PassiveOpens") - passive;
    let synack_rtx = netstat(&pair.ns_b, "TcpExt", "TCPSynRetrans") - synack_rtx;
    assert_eq!(completed, CONNECTIONS as u64, "server's PassiveOpens");
    assert!(
        synack_rtx >= CONNECTIONS as u64,
        "each SYN-ACK retransmitted: {synack_rtx}"
    );
    let (server_snap, client_snap) = (at_server.stop(), at_client.stop());
    let view = |snap: &Value| {
        let h = &snap["handshake"];
        (
            num(h, &["established"]),
            num(h, &["synack_retransmits"]),
            num(h, &["half_open"]),
        )
    };
    assert_eq!(
        (view(&server_snap), view(&client_snap)),
        ((completed, synack_rtx, 0), (completed, synack_rtx, 0)),
        "(established, synack_retransmits, half_open) at the server's end, then the client's: \
         server {} client {}",
        server_snap["handshake"],
        client_snap["handshake"]
    );
}

/// A connection opened before netpost started, then reset by its server (SO_LINGER 0):
/// the flow has no SYN to tell the client by. Both orientations: the client's address is
/// the lower one in one connection and the higher one in the other.
#[test]
fn a_reset_on_a_flow_first_seen_midstream_is_blamed_on_its_sender() {
    require_root();
    let pair = VethPair::new();
    // (server namespace, server address, client namespace): A serves one, B the other.
    let b_serves = SocketAddr::new(IpAddr::V4(pair.b.ip4), 5204);
    let a_serves = SocketAddr::new(IpAddr::V4(pair.a.ip4), 5205);
    let l_b = pair.ns_b.run(move || TcpListener::bind(b_serves).unwrap());
    let l_a = pair.ns_a.run(move || TcpListener::bind(a_serves).unwrap());
    let from_a = pair.ns_a.run(move || TcpStream::connect(b_serves).unwrap());
    let from_b = pair.ns_b.run(move || TcpStream::connect(a_serves).unwrap());
    let served_by_b = l_b.accept().unwrap().0;
    let served_by_a = l_a.accept().unwrap().0;
    let clients = [
        (from_a.local_addr().unwrap(), b_serves),
        (from_b.local_addr().unwrap(), a_serves),
    ];
    for (client, _) in &clients {
        assert!(client.port() > 5205, "an ephemeral client port: {client}");
    }
    let events = TempOutput::new("npev");
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--events", &events.arg()],
    );
    let capture = Capture::start(&pair.ns_b, &pair.b.ifname, &["tcp"]);
    // Midstream traffic, then each server aborts its connection.
    for (mut client, mut server) in [(&from_a, &served_by_b), (&from_b, &served_by_a)] {
        client.write_all(&[7; 100]).unwrap();
        let mut got = [0u8; 100];
        server.read_exact(&mut got).unwrap();
    }
    for server in [served_by_b, served_by_a] {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and option value.
        let rc = unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                size_of::<libc::linger>() as u32,
            )
        };
        assert_eq!(rc, 0);
        drop(server);
    }
    for mut client in [&from_a, &from_b] {
        let mut buf = [0u8; 1];
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let r = client.read(&mut buf).map_err(|e| e.kind());
        assert_eq!(
            r,
            Err(std::io::ErrorKind::ConnectionReset),
            "the client's stack took the reset"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let frames = capture.stop();
    let snap = netpost.stop();

    // Witnesses: each client read ECONNRESET (above), and tcpdump saw exactly one RST per
    // connection, from its server.
    let rst_from: Vec<String> = frames
        .iter()
        .filter(|f| f.tcp_flags().is_some_and(|fl| fl & RST != 0))
        .map(|f| {
            let ip = &f.data[14..34];
            let port = u16::from_be_bytes([f.data[34], f.data[35]]);
            format!("{}.{}.{}.{}:{port}", ip[12], ip[13], ip[14], ip[15])
        })
        .collect();
    let mut want: Vec<String> = clients.iter().map(|(_, s)| s.to_string()).collect();
    let mut got = rst_from.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "tcpdump: one RST from each server");

    let lines = events.lines();
    for (client, server) in clients {
        let (client, server) = (client.to_string(), server.to_string());
        let matches = |e: &&Value| {
            let ends = [e["src"].as_str(), e["dst"].as_str()];
            ends.contains(&Some(client.as_str())) && ends.contains(&Some(server.as_str()))
        };
        let resets: Vec<&Value> = lines
            .iter()
            .filter(matches)
            .filter(|e| e["event"] == "reset")
            .collect();
        assert_eq!(resets.len(), 1, "one reset event for {client}: {lines:?}");
        let e = resets[0];
        assert_eq!(
            (e["reset_by"].as_str(), e["src"].as_str(), e["dst"].as_str()),
            (Some("server"), Some(client.as_str()), Some(server.as_str())),
            "the server reset it, the client is src: {e}"
        );
        let flows: Vec<&Value> = snap["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(matches)
            .collect();
        assert_eq!(flows.len(), 1, "{}", snap["flows"]);
        assert_eq!(
            (
                flows[0]["src"].as_str(),
                flows[0]["dst"].as_str(),
                flows[0]["stage"].as_str()
            ),
            (Some(client.as_str()), Some(server.as_str()), Some("reset")),
            "flow row: {}",
            flows[0]
        );
    }
    assert_eq!(num(&snap["handshake"], &["resets"]), 2);
}

/// A router watching both its interfaces sees every forwarded connection twice; the funnel
/// and the RTT samples must count each connection once.
#[test]
fn a_router_watching_both_interfaces_counts_each_connection_once() {
    require_root();
    const CONNECTIONS: u64 = 5;
    const METRICS_PORT: u16 = 9464;
    let r = Router::new();
    let passive = snmp(&r.ns_server, "Tcp", "PassiveOpens");
    let metrics_addr = format!("127.0.0.1:{METRICS_PORT}");
    let netpost = Netpost::start(
        &r.ns_router.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        &["--prometheus", &metrics_addr],
    );
    for _ in 0..CONNECTIONS {
        tcp_exchange(&r.ns_client, &r.ns_server, &r.server, 1000, 100);
    }
    std::thread::sleep(Duration::from_millis(300));
    let metrics = scrape_metrics(&r.ns_router, METRICS_PORT);
    let snap = netpost.stop();
    let completed = snmp(&r.ns_server, "Tcp", "PassiveOpens") - passive;
    assert_eq!(completed, CONNECTIONS, "server's PassiveOpens");
    let h = &snap["handshake"];
    let funnel = |k: &str| num(h, &[k]);
    let rtt_samples = metric(&metrics, "netpost_handshake_rtt_seconds_count").unwrap_or(-1.0);
    assert_eq!(
        (
            funnel("syn"),
            funnel("synack"),
            funnel("established"),
            funnel("closed"),
            rtt_samples as u64
        ),
        (completed, completed, completed, completed, completed),
        "(syn, synack, established, closed, RTT samples): {h}"
    );
}
