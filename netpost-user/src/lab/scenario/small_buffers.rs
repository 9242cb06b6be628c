//! The article's "small buffers on high-latency links": a bulk transfer whose
//! bandwidth-delay product is far above what the receiver's buffer allows.
//!
//! There is no netem here to add latency, so the lab makes a slow return path instead: a
//! tbf qdisc (10 Mbit/s, 100 ms of queue) on the router's client-facing side, kept full by
//! a UDP filler from the server (12 Mbit/s). Every ACK of the bulk flow waits ~110 ms in
//! that queue, so the flow sees a ~110 ms RTT while its data path (client -> server) has no
//! limit at all. The server's tcp_rmem is capped at 16 KB (per namespace), so the window
//! never exceeds ~16 KB: the sender is limited by the receiver's window
//! (`ss -ti`: rwnd_limited near 100 %) at roughly window / RTT, about 1 Mbit/s.
use std::time::Duration;

use super::{Info, Name, Scenario, addr, port};
use crate::lab::{
    change::Recorder,
    evidence::{Expect, Source, Witness},
    topology::{CLIENT, Node, ROUTER_CLIENT_SIDE, SERVER},
    traffic::{Traffic, tcp, udp},
};

pub struct SmallBuffers;

/// The server's receive buffer range (min default max), in bytes.
pub const SERVER_TCP_RMEM: &str = "4096 16384 16384";

impl Scenario for SmallBuffers {
    fn info(&self) -> Info {
        Info {
            name: Name::SmallBuffers,
            pitfall: "small buffers on a high-latency path: the window (16 KB) is far below the bandwidth-delay product, so the sender waits for the receiver",
            changes: &[
                "server: net.ipv4.tcp_rmem=4096 16384 16384",
                "router: tbf qdisc on npl-r0 (10mbit, 100ms of queue): a slow, full return path",
            ],
            host_changes: false,
            traffic: "one bulk TCP transfer client -> server as fast as it goes; a 12 Mbit/s UDP filler server -> client keeps the return queue full",
            witnesses: vec![
                Witness::new(
                    Node::Client,
                    Source::TcpFlow {
                        port: port::BULK,
                        field: "rtt_us",
                    },
                    Expect::AtLeast { value: 50_000 },
                    "the bulk flow's RTT (the queued return path): >= 50 ms",
                ),
                Witness::new(
                    Node::Client,
                    Source::TcpFlow {
                        port: port::BULK,
                        field: "rwnd_limited_pct",
                    },
                    Expect::AtLeast { value: 50 },
                    "share of the sender's busy time limited by the receiver's window",
                ),
                Witness::new(
                    Node::Router,
                    Source::Qdisc {
                        dev: "npl-r0",
                        field: "drops",
                    },
                    super::rises(1),
                    "the return queue overflows (the filler's excess): it is full",
                ),
            ],
        }
    }

    fn apply(&self, rec: &mut Recorder) -> anyhow::Result<()> {
        rec.sysctl(Some(Node::Server), "net.ipv4.tcp_rmem", SERVER_TCP_RMEM)?;
        let dev = ROUTER_CLIENT_SIDE.ifname;
        rec.add(
            Node::Router,
            &format!("tbf qdisc on {dev} (rate 10mbit, latency 100ms)"),
            &[
                "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "10mbit", "burst", "16kb",
                "latency", "100ms",
            ],
            &["tc", "qdisc", "del", "dev", dev, "root"],
        )
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Client, "udp filler sink", |c| {
            udp::sink(c, port::FILLER_UDP, "filler datagrams received")
        });
        t.spawn(Node::Server, "bulk server", |c| {
            tcp::bulk_server(c, port::BULK)
        });
        // 12 Mbit/s of 1400-byte datagrams: above the tbf's 10, so its queue stays full.
        let filler = udp::Send::to(addr(CLIENT.v4, port::FILLER_UDP), 1071.0, 1400);
        t.spawn(Node::Server, "udp filler", move |c| udp::sender(c, filler));
        // Once the queue is full, so the handshake's RTT is the long one too: it fills at
        // the filler's 2 Mbit/s of excess, 100 ms of 10 Mbit/s (125 KB) in about 0.5 s.
        std::thread::sleep(Duration::from_millis(1000));
        let dst = addr(SERVER.v4, port::BULK);
        t.spawn(Node::Client, "bulk client", move |c| {
            tcp::bulk_client(c, dst)
        });
    }
}
