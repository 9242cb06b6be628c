//! UDP generators: an echo server, a sink, and a paced sender.
use std::{
    io::ErrorKind,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use anyhow::Context as _;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Ctx, Pacer};

/// A dual-stack socket bound to [::]:`port` with a short read timeout.
fn bound(port: u16) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(false)?;
    s.bind(&SockAddr::from(SocketAddr::new(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        port,
    )))
    .with_context(|| format!("bind udp port {port}"))?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// Sends every datagram back to where it came from.
pub fn echo_server(ctx: Ctx, port: u16) -> anyhow::Result<()> {
    let s = bound(port)?;
    let mut buf = vec![0u8; 65536];
    while !ctx.stop.stopped() {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                if s.send_to(&buf[..n], from).is_ok() {
                    ctx.tally.add("udp datagrams echoed", 1);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives and counts (so datagrams to `port` cause no ICMP port unreachable).
pub fn sink(ctx: Ctx, port: u16, what: &'static str) -> anyhow::Result<()> {
    let s = bound(port)?;
    let mut buf = vec![0u8; 65536];
    while !ctx.stop.stopped() {
        match s.recv(&mut buf) {
            Ok(_) => ctx.tally.add(what, 1),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// How a [`sender`] sends.
#[derive(Clone, Copy, Debug)]
pub struct Send {
    pub dst: SocketAddr,
    /// Source address to bind (None: the kernel picks).
    pub src: Option<IpAddr>,
    pub per_sec: f64,
    pub size: usize,
    /// A new socket (so a new source port: a new conntrack entry) for every datagram.
    pub new_flow_each: bool,
    /// Count the echoes that come back.
    pub count_echoes: bool,
}

impl Send {
    pub fn to(dst: SocketAddr, per_sec: f64, size: usize) -> Send {
        Send {
            dst,
            src: None,
            per_sec,
            size,
            new_flow_each: false,
            count_echoes: false,
        }
    }
}

fn socket_for(send: &Send) -> anyhow::Result<UdpSocket> {
    let any: IpAddr = match send.dst {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let src = SocketAddr::new(send.src.unwrap_or(any), 0);
    let s = UdpSocket::bind(src).with_context(|| format!("bind {src}"))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Sends `per_sec` datagrams of `size` bytes to `dst`.
pub fn sender(ctx: Ctx, send: Send) -> anyhow::Result<()> {
    let payload = vec![0x5a; send.size];
    let mut buf = vec![0u8; 65536];
    let mut sock = socket_for(&send)?;
    let mut pacer = Pacer::new(send.per_sec);
    while !ctx.stop.stopped() {
        for _ in 0..pacer.due(&ctx.stop) {
            if send.new_flow_each {
                sock = socket_for(&send)?;
            }
            match sock.send_to(&payload, send.dst) {
                Ok(_) => ctx.tally.add("udp datagrams sent", 1),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    ctx.tally.add("udp datagrams not sent (buffer full)", 1)
                }
                // An ICMP error from an earlier datagram is reported on a later send.
                Err(_) => ctx.tally.add("udp send errors (ICMP reported)", 1),
            }
            if send.count_echoes {
                while sock.recv(&mut buf).is_ok() {
                    ctx.tally.add("udp echoes received", 1);
                }
            }
        }
    }
    Ok(())
}
