//! Traffic to ports nobody listens on: UDP to 7999 (the server answers ICMP port
//! unreachable, rate limited, and counts `Udp: NoPorts` / `Udp6NoPorts`), TCP to 7998 (the
//! server answers RST: `Tcp: OutRsts`; the client's connect fails: `Tcp: AttemptFails`).
use std::time::Duration;

use super::{Info, Name, Scenario, addr, mib, port, rises};
use crate::lab::{
    topology::{Node, SERVER, server_addrs},
    traffic::{Traffic, tcp, udp},
};

pub struct ClosedPort;

impl Scenario for ClosedPort {
    fn info(&self) -> Info {
        Info {
            name: Name::ClosedPort,
            pitfall: "traffic to closed ports: datagrams and SYNs nobody receives (NO_SOCKET drops, ICMP port unreachable, RSTs)",
            changes: &[],
            host_changes: false,
            traffic: "UDP to server port 7999 at 100 datagrams/s per family, 10 TCP connection attempts/s to port 7998",
            witnesses: vec![
                mib(
                    Node::Server,
                    "UdpNoPorts",
                    rises(50),
                    "IPv4 datagrams to a closed port",
                ),
                mib(
                    Node::Server,
                    "Udp6NoPorts",
                    rises(50),
                    "IPv6 datagrams to a closed port",
                ),
                mib(
                    Node::Server,
                    "TcpOutRsts",
                    rises(5),
                    "RSTs for SYNs to a closed port",
                ),
                mib(
                    Node::Client,
                    "TcpAttemptFails",
                    rises(5),
                    "connects refused",
                ),
                mib(
                    Node::Client,
                    "IcmpInDestUnreachs",
                    rises(1),
                    "ICMP port unreachable back at the client",
                ),
            ],
        }
    }

    fn traffic(&self, t: &mut Traffic) {
        for ip in server_addrs() {
            let send = udp::Send::to(addr(ip, port::CLOSED_UDP), 100.0, 200);
            t.spawn(Node::Client, "udp client", move |c| udp::sender(c, send));
        }
        let dst = addr(SERVER.v4, port::CLOSED_TCP);
        t.spawn(Node::Client, "tcp connector", move |c| {
            tcp::connector(c, dst, None, 10.0, Duration::from_secs(1), 100)
        });
    }
}
