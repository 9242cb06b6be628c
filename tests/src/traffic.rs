//! Real traffic from real sockets. Each helper runs inside a namespace (see
//! [`NetNs::run`](crate::netns::NetNs::run)) and sends to addresses of the test's own
//! namespaces only.
use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use crate::netns::{End, NetNs};

/// Binds a UDP socket in `ns` so datagrams to `port` are delivered (no ICMP unreachables).
pub fn udp_receiver(ns: &NetNs, addr: IpAddr, port: u16) -> UdpSocket {
    ns.run(move || UdpSocket::bind(SocketAddr::new(addr, port)).expect("bind udp receiver"))
}

/// Receives `count` datagrams (each test waits for delivery before reading counters).
pub fn udp_receive(sock: &UdpSocket, count: usize) {
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    for i in 0..count {
        sock.recv(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i}/{count} not received: {e}"));
    }
}

/// Datagrams already queued on `sock`, drained without waiting (0 when nothing arrived).
pub fn udp_pending(sock: &UdpSocket) -> usize {
    sock.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 65536];
    let mut n = 0;
    loop {
        match sock.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    sock.set_nonblocking(false).expect("blocking");
    n
}

/// Polls `value` until it returns `want` (for counters of packets a test sent that no
/// socket receives, e.g. drops), panicking with the last value after 5 seconds.
pub fn wait_for_value(what: &str, want: u64, mut value: impl FnMut() -> u64) {
    let mut got = 0;
    crate::wait_until(
        || {
            got = value();
            got == want
        },
        || format!("{what}: expected {want}"),
    );
}

/// Sends `count` datagrams of `size` payload bytes from `ns` to `dst`.
pub fn udp_send(ns: &NetNs, dst: SocketAddr, count: usize, size: usize) {
    ns.run(move || {
        let bind: SocketAddr = if dst.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let sock = UdpSocket::bind(bind).expect("bind udp sender");
        let payload = vec![0x5a; size];
        for _ in 0..count {
            sock.send_to(&payload, dst).expect("send_to");
        }
    })
}

/// `flows` distinct UDP flows from `ns` to `dst`: `per_flow` datagrams of `size` bytes from
/// each of the source ports `first_port..first_port + flows`. Explicit ports, because fresh
/// sockets bound to port 0 one after another may be given the same ephemeral port (about
/// one run in a hundred for 25 sockets), which makes two "flows" one conntrack entry.
pub fn udp_flows(
    ns: &NetNs,
    dst: SocketAddr,
    first_port: u16,
    flows: u16,
    per_flow: usize,
    size: usize,
) {
    ns.run(move || {
        let payload = vec![0x5a; size];
        for port in first_port..first_port + flows {
            let bind = if dst.is_ipv4() {
                SocketAddr::new(IpAddr::from([0u8; 4]), port)
            } else {
                SocketAddr::new(IpAddr::from([0u16; 8]), port)
            };
            let sock = UdpSocket::bind(bind)
                .unwrap_or_else(|e| panic!("bind udp sender to port {port}: {e}"));
            for _ in 0..per_flow {
                sock.send_to(&payload, dst).expect("send_to");
            }
        }
    })
}

/// Sends `size`-byte UDP datagrams from `ns` to `dst` at about `pps` for `secs`, 64 per
/// sendmmsg call (an unconnected socket: ICMP errors from a closed port do not stop it);
/// returns how many the kernel took.
pub fn udp_flood(ns: &NetNs, dst: SocketAddr, pps: u64, secs: f64, size: usize) -> u64 {
    ns.run(move || {
        const BATCH: usize = 64;
        let bind: SocketAddr = if dst.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let sock = UdpSocket::bind(bind).expect("bind udp flooder");
        let to = socket2::SockAddr::from(dst);
        let mut payload = vec![0x5a_u8; size];
        let mut iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: size,
        };
        // SAFETY: an all-zero mmsghdr is valid; every field the kernel reads is set below.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for m in &mut msgs {
            m.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_namelen = to.len();
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let start = std::time::Instant::now();
        let end = Duration::from_secs_f64(secs);
        let mut sent = 0u64;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= end {
                break;
            }
            // Ahead of the pace: wait for it.
            if sent as f64 > pps as f64 * elapsed.as_secs_f64() {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            // SAFETY: msgs point at `to`, `iov` and `payload`, alive for the call.
            let n = unsafe {
                libc::sendmmsg(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    0,
                )
            };
            if n > 0 {
                sent += n as u64;
            }
        }
        sent
    })
}

/// Sends `count` ICMP echo requests with `size` data bytes from `ns` to `dst` over a raw
/// socket, and waits for every reply.
pub fn ping4(ns: &NetNs, dst: std::net::Ipv4Addr, count: u16, size: usize) {
    ns.run(move || {
        // SAFETY: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(dst).to_be(),
            },
            sin_zero: [0; 8],
        };
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: valid fd and option struct.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        let ident = (std::process::id() & 0xffff) as u16;
        for seq in 0..count {
            let mut msg = vec![8u8, 0, 0, 0];
            msg.extend_from_slice(&ident.to_be_bytes());
            msg.extend_from_slice(&seq.to_be_bytes());
            msg.extend(std::iter::repeat_n(0xa5, size));
            let sum = internet_checksum(&msg);
            msg[2..4].copy_from_slice(&sum.to_be_bytes());
            // SAFETY: buffer and address are valid for the call.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&to as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as u32,
                )
            };
            assert_eq!(sent, msg.len() as isize, "sendto icmp");
            // The raw socket also sees our own request on some paths: read until the reply.
            let mut buf = [0u8; 2048];
            loop {
                // SAFETY: valid buffer.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                assert!(n > 0, "echo reply {seq} not received");
                let ihl = (buf[0] & 0x0f) as usize * 4;
                let icmp = &buf[ihl..n as usize];
                if icmp[0] == 0 && icmp[6..8] == seq.to_be_bytes() {
                    break;
                }
            }
        }
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(fd) };
    })
}

fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes raw Ethernet frames onto `ifname` with an AF_PACKET socket (for frames no socket
/// API produces: VLAN tags, malformed headers).
pub fn send_frames(ns: &NetNs, ifname: &str, frames: Vec<Vec<u8>>) {
    let ifname = ifname.to_string();
    ns.run(move || {
        let index = {
            let c = std::ffi::CString::new(ifname.clone()).unwrap();
            // SAFETY: valid C string.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        };
        assert_ne!(index, 0, "{ifname} not found");
        // SAFETY: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: all-zero sockaddr_ll is valid; fields set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        addr.sll_halen = 6;
        for frame in frames {
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: buffer and address are valid for the call.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(
                sent,
                frame.len() as isize,
                "AF_PACKET send: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(fd) };
    })
}

/// A TCP exchange from `client` to `server`: connect, send `up` bytes, receive `down`
/// bytes back, close from both sides. Returns when both ends are done.
pub fn tcp_exchange(client: &NetNs, server: &NetNs, server_end: &End, up: usize, down: usize) {
    let addr = SocketAddr::new(IpAddr::V4(server_end.ip4), 5201);
    let listener = server.run(move || TcpListener::bind(addr).expect("listen"));
    let server_thread = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = vec![0u8; up];
        conn.read_exact(&mut got).expect("server read");
        conn.write_all(&vec![0x42; down]).expect("server write");
        // Wait for the client's FIN before closing, so the teardown is the same every run.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).expect("server read eof");
        assert!(rest.is_empty());
    });
    client.run(move || {
        let mut conn = TcpStream::connect(addr).expect("connect");
        conn.write_all(&vec![0x24; up]).expect("client write");
        let mut got = vec![0u8; down];
        conn.read_exact(&mut got).expect("client read");
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    });
    server_thread.join().expect("server thread");
}
