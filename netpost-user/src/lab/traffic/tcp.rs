//! TCP generators: echo servers and clients, a bulk transfer, listeners that never accept,
//! servers that reset, and a connector that opens many connections without waiting.
use std::{
    collections::VecDeque,
    io::{ErrorKind, Read as _, Write as _},
    net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Ctx, Pacer};

const TICK: Duration = Duration::from_millis(200);

/// A dual-stack listener on [::]:`port` (IPv4 clients arrive as v4-mapped), non-blocking.
pub fn listener(port: u16, backlog: i32) -> anyhow::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    s.set_only_v6(false)?;
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(SocketAddr::new(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        port,
    )))
    .with_context(|| format!("bind port {port}"))?;
    s.listen(backlog)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Accepts one connection if one is waiting (None after a short sleep otherwise).
fn accept(l: &Socket, ctx: &Ctx) -> anyhow::Result<Option<TcpStream>> {
    match l.accept() {
        Ok((s, _)) => {
            s.set_nonblocking(false)?;
            Ok(Some(s.into()))
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            ctx.stop.sleep(Duration::from_millis(5));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Echoes every connection back, each on its own thread, until stopped.
pub fn echo_server(ctx: Ctx, port: u16) -> anyhow::Result<()> {
    let l = listener(port, 128)?;
    while !ctx.stop.stopped() {
        let Some(mut s) = accept(&l, &ctx)? else {
            continue;
        };
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(TICK));
            let mut buf = vec![0u8; 64 * 1024];
            while !ctx.stop.stopped() {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        });
    }
    Ok(())
}

/// One request/response: writes `size` bytes and reads as many back.
fn exchange(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    s.write_all(buf)?;
    s.read_exact(buf)
}

/// Short connections: `per_sec` times a second, connect to `dst`, do `exchanges`
/// request/responses of `size` bytes, and close cleanly (half-close, wait for the server's
/// FIN), so no RST is ever sent.
pub fn echo_client(
    ctx: Ctx,
    dst: SocketAddr,
    per_sec: f64,
    exchanges: usize,
    size: usize,
) -> anyhow::Result<()> {
    let mut pacer = Pacer::new(per_sec);
    let mut buf = vec![0x5a; size];
    while !ctx.stop.stopped() {
        for _ in 0..pacer.due(&ctx.stop) {
            let done =
                TcpStream::connect_timeout(&dst, Duration::from_secs(1)).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    for _ in 0..exchanges {
                        exchange(&mut s, &mut buf)?;
                    }
                    s.shutdown(std::net::Shutdown::Write)?;
                    let _ = s.read(&mut buf)?;
                    Ok(())
                });
            match done {
                Ok(()) => {
                    ctx.tally.add("tcp connections", 1);
                    ctx.tally.add("tcp exchanges", exchanges as u64);
                }
                Err(_) => ctx.tally.add("tcp connection failures", 1),
            }
        }
    }
    Ok(())
}

/// One long-lived connection doing `per_sec` request/responses of `size` bytes
/// (reconnecting after an error): the established traffic of a busy service.
pub fn persistent_client(
    ctx: Ctx,
    dst: SocketAddr,
    per_sec: f64,
    size: usize,
) -> anyhow::Result<()> {
    let mut buf = vec![0x33; size];
    while !ctx.stop.stopped() {
        let Ok(mut s) = TcpStream::connect_timeout(&dst, Duration::from_secs(1)) else {
            ctx.tally.add("tcp connection failures", 1);
            ctx.stop.sleep(Duration::from_millis(200));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut pacer = Pacer::new(per_sec);
        'conn: while !ctx.stop.stopped() {
            for _ in 0..pacer.due(&ctx.stop) {
                if exchange(&mut s, &mut buf).is_err() {
                    ctx.tally.add("tcp connection failures", 1);
                    break 'conn;
                }
                ctx.tally.add("tcp exchanges", 1);
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.read(&mut buf);
    }
    Ok(())
}

/// A listener with `backlog` that either never accepts (`accept == false`: its accept
/// queue fills) or accepts and holds every connection open without reading.
pub fn hold_server(ctx: Ctx, port: u16, backlog: i32, accept_them: bool) -> anyhow::Result<()> {
    let l = listener(port, backlog)?;
    let mut held = Vec::new();
    while !ctx.stop.stopped() {
        if !accept_them {
            ctx.stop.sleep(TICK);
            continue;
        }
        if let Some(s) = accept(&l, &ctx)? {
            held.push(s);
            ctx.tally.add("connections accepted and held", 1);
        }
    }
    Ok(())
}

/// Accepts and then resets every connection (SO_LINGER 0, close): what a crashing or
/// overloaded service does to its clients.
pub fn reset_server(ctx: Ctx, port: u16) -> anyhow::Result<()> {
    let l = listener(port, 128)?;
    let mut buf = [0u8; 1024];
    while !ctx.stop.stopped() {
        let Some(mut s) = accept(&l, &ctx)? else {
            continue;
        };
        s.set_read_timeout(Some(TICK))?;
        let _ = s.read(&mut buf);
        Socket::from(s).set_linger(Some(Duration::ZERO))?;
        ctx.tally.add("connections reset by the server", 1);
    }
    Ok(())
}

/// `per_sec` connections that send a request and wait for the answer the server never
/// gives (it resets them).
pub fn reset_client(ctx: Ctx, dst: SocketAddr, per_sec: f64) -> anyhow::Result<()> {
    let mut pacer = Pacer::new(per_sec);
    let mut buf = [0u8; 1024];
    while !ctx.stop.stopped() {
        for _ in 0..pacer.due(&ctx.stop) {
            let Ok(mut s) = TcpStream::connect_timeout(&dst, Duration::from_secs(1)) else {
                ctx.tally.add("tcp connection failures", 1);
                continue;
            };
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            match s.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    ctx.tally.add("connections reset by peer", 1)
                }
                _ => ctx.tally.add("connections not reset", 1),
            }
        }
    }
    Ok(())
}

/// Reads everything every connection sends, counting bytes.
pub fn bulk_server(ctx: Ctx, port: u16) -> anyhow::Result<()> {
    let l = listener(port, 16)?;
    while !ctx.stop.stopped() {
        let Some(mut s) = accept(&l, &ctx)? else {
            continue;
        };
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(TICK));
            let mut buf = vec![0u8; 256 * 1024];
            while !ctx.stop.stopped() {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => ctx.tally.add("bulk bytes received", n as u64),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        });
    }
    Ok(())
}

/// Sends as fast as the connection takes it, reconnecting after an error. Uses cubic, a
/// loss-based congestion control that fills whatever window the receiver offers (a
/// model-based one such as bbr, the default on some hosts, also paces itself, which would
/// blur which limit holds the flow back).
pub fn bulk_client(ctx: Ctx, dst: SocketAddr) -> anyhow::Result<()> {
    let buf = vec![0xb5; 64 * 1024];
    while !ctx.stop.stopped() {
        let s = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
        s.set_tcp_congestion(b"cubic")
            .context("TCP_CONGESTION cubic")?;
        if s.connect_timeout(&SockAddr::from(dst), Duration::from_secs(2))
            .is_err()
        {
            ctx.stop.sleep(Duration::from_millis(200));
            continue;
        }
        let mut s = TcpStream::from(s);
        s.set_write_timeout(Some(TICK))?;
        ctx.tally.add("bulk connections", 1);
        while !ctx.stop.stopped() {
            match s.write(&buf) {
                Ok(n) => ctx.tally.add("bulk bytes sent", n as u64),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    }
    Ok(())
}

/// Opens `per_sec` connections a second to `dst` without waiting for them (non-blocking
/// connect, from `src` when given), keeps each for `hold` and at most `max_open` at once,
/// then closes it. Tallies how they ended: established, refused, unreachable, no answer.
pub fn connector(
    ctx: Ctx,
    dst: SocketAddr,
    src: Option<IpAddr>,
    per_sec: f64,
    hold: Duration,
    max_open: usize,
) -> anyhow::Result<()> {
    let mut open: VecDeque<(Socket, Instant)> = VecDeque::new();
    let mut pacer = Pacer::new(per_sec);
    while !ctx.stop.stopped() {
        for _ in 0..pacer.due(&ctx.stop) {
            while open.len() >= max_open {
                let Some((s, _)) = open.pop_front() else {
                    break;
                };
                tally_outcome(&ctx, &s);
            }
            let s = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
            s.set_nonblocking(true)?;
            if let Some(src) = src {
                s.bind(&SockAddr::from(SocketAddr::new(src, 0)))
                    .with_context(|| format!("bind {src}"))?;
            }
            match s.connect(&SockAddr::from(dst)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => {
                    tally_error(&ctx, &e);
                    continue;
                }
            }
            ctx.tally.add("tcp connects started", 1);
            open.push_back((s, Instant::now()));
        }
        while open.front().is_some_and(|(_, t)| t.elapsed() >= hold) {
            if let Some((s, _)) = open.pop_front() {
                tally_outcome(&ctx, &s);
            }
        }
    }
    Ok(())
}

fn tally_outcome(ctx: &Ctx, s: &Socket) {
    match s.take_error() {
        Ok(Some(e)) => tally_error(ctx, &e),
        _ if s.peer_addr().is_ok() => ctx.tally.add("tcp connects established", 1),
        _ => ctx.tally.add("tcp connects unanswered", 1),
    }
}

fn tally_error(ctx: &Ctx, e: &std::io::Error) {
    let what = match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "tcp connects refused (RST)",
        Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => "tcp connects unreachable (ICMP)",
        Some(libc::ETIMEDOUT) => "tcp connects timed out",
        _ => "tcp connects failed otherwise",
    };
    ctx.tally.add(what, 1);
}
