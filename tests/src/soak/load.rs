//! The soak's traffic through the router: short TCP connections by the thousand per second
//! (the server closes first, so the client's ports never sit in TIME_WAIT), UDP to closed
//! ports, and bursts of new flows that fill the router's conntrack table. Each generator runs
//! on threads in the client and server namespaces until the stop flag is set, and counts what
//! it did.
use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use socket2::{Domain, Socket, Type};

use crate::router::Router;

/// The port the TCP server listens on.
pub const TCP_PORT: u16 = 8000;
/// Closed ports the UDP flood cycles through.
const CLOSED_PORTS: std::ops::RangeInclusive<u16> = 20_000..=60_000;
/// Destination ports per socket of a fill burst: each (source port, destination port) is a
/// conntrack entry of its own.
const FILL_PORTS_PER_SOCKET: u32 = 40_000;

/// What a generator did.
#[derive(Debug, Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

impl Counts {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Calls `step` `rate` times a second (spread over time) until `stop`; a generator that falls
/// behind by more than a second gives the backlog up rather than bursting.
fn paced(rate: f64, stop: &AtomicBool, mut step: impl FnMut()) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            next = now;
        }
        step();
        next += period;
    }
}

/// Short TCP connections from the client to the server: connect, 16 bytes up, 64 bytes down,
/// the server closes, the client closes.
pub struct TcpChurn {
    pub counts: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl TcpChurn {
    /// `rate` connections a second over `clients` client threads.
    pub fn start(r: &Router, rate: u32, clients: u32, stop: &Arc<AtomicBool>) -> TcpChurn {
        let addr = SocketAddr::new(IpAddr::V4(r.server.ip4), TCP_PORT);
        let listener = r.ns_server.run(move || {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("tcp socket");
            s.set_reuse_address(true).expect("SO_REUSEADDR");
            s.bind(&addr.into()).expect("bind the server");
            s.listen(4096).expect("listen");
            // accept() honours the receive timeout: the acceptors look at the stop flag.
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("SO_RCVTIMEO");
            std::net::TcpListener::from(s)
        });
        let mut threads = Vec::new();
        for _ in 0..2 {
            let listener = listener.try_clone().expect("clone the listener");
            let stop = stop.clone();
            threads.push(r.ns_server.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut conn, _)) = listener.accept() else {
                        continue;
                    };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut request = [0u8; 64];
                    if conn.read(&mut request).is_ok() {
                        let _ = conn.write_all(&[0x42; 64]);
                    }
                }
            }));
        }
        let counts = Arc::new(Counts::default());
        for _ in 0..clients {
            let (stop, counts) = (stop.clone(), counts.clone());
            let per_thread = f64::from(rate) / f64::from(clients);
            threads.push(r.ns_client.spawn(move || {
                paced(per_thread, &stop, || {
                    let done = (|| -> std::io::Result<()> {
                        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                        c.set_read_timeout(Some(Duration::from_secs(3)))?;
                        c.write_all(&[0x17; 16])?;
                        let mut reply = Vec::new();
                        c.read_to_end(&mut reply)?;
                        if reply.len() == 64 {
                            Ok(())
                        } else {
                            Err(std::io::ErrorKind::UnexpectedEof.into())
                        }
                    })();
                    let counter = if done.is_ok() {
                        &counts.ok
                    } else {
                        &counts.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }));
        }
        TcpChurn { counts, threads }
    }

    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Datagrams to closed ports of the server, `pps` a second in batches of 50, each to the next
/// port: the server answers port unreachable (as its ICMP rate limit lets it).
pub fn udp_flood(r: &Router, pps: u32, stop: &Arc<AtomicBool>) -> (Arc<Counts>, JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let (stop, c) = (stop.clone(), counts.clone());
    let server = r.server.ip4;
    let thread = r.ns_client.spawn(move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind the flood socket");
        let mut port = *CLOSED_PORTS.start();
        paced(f64::from(pps) / 50.0, &stop, || {
            for _ in 0..50 {
                let sent = sock.send_to(&[0u8; 32], SocketAddr::new(IpAddr::V4(server), port));
                let counter = if sent.is_ok() { &c.ok } else { &c.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                port = if port == *CLOSED_PORTS.end() {
                    *CLOSED_PORTS.start()
                } else {
                    port + 1
                };
            }
        });
    });
    (counts, thread)
}

/// Sends one datagram per new flow, `flows` of them at about `pps`: each socket (a source
/// port) to 40,000 closed destination ports (10000-49999). Returns the datagrams sent.
pub fn fill(r: &Router, flows: u32, pps: u32) -> u64 {
    let server = r.server.ip4;
    r.ns_client.run(move || {
        let mut sent = 0u64;
        let period = Duration::from_secs_f64(1000.0 / f64::from(pps));
        let mut next = Instant::now();
        let sockets = flows.div_ceil(FILL_PORTS_PER_SOCKET);
        for s in 0..sockets {
            let sock = UdpSocket::bind("0.0.0.0:0").expect("bind a fill socket");
            let ports = FILL_PORTS_PER_SOCKET.min(flows - s * FILL_PORTS_PER_SOCKET);
            for i in 0..ports {
                if i % 1000 == 0 {
                    // 1000 datagrams per `period`.
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += period;
                }
                // Clear of the ports of the rules' streams (9998, 9999) and the others.
                let port = 10_000 + i as u16;
                if sock
                    .send_to(&[0u8; 16], SocketAddr::new(IpAddr::V4(server), port))
                    .is_ok()
                {
                    sent += 1;
                }
            }
        }
        sent
    })
}

/// Datagrams from the router itself to `to` (over the restart link), 200 a second while
/// `on` is set: whatever the link carries is compared with its device counters.
pub fn restart_link_sender(
    r: &Router,
    to: Ipv4Addr,
    on: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
) -> (Arc<Counts>, JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let (on, stop, c) = (on.clone(), stop.clone(), counts.clone());
    let thread = r.ns_router.spawn(move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind the restart-link socket");
        paced(10.0, &stop, || {
            if !on.load(Ordering::SeqCst) {
                return;
            }
            for _ in 0..20 {
                let sent = sock.send_to(&[0u8; 48], SocketAddr::new(IpAddr::V4(to), 7000));
                let counter = if sent.is_ok() { &c.ok } else { &c.failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    });
    (counts, thread)
}
