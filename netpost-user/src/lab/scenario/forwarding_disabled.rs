//! The article's "forgetting to enable ip_forward": the router's IPv4 and IPv6 forwarding
//! are off, so everything the client sends to the server dies in the router. IPv4 drops
//! them silently (no ICMP: a host that does not forward does not answer) and counts them
//! in `Ip: InAddrErrors`; IPv6 in `Ip6InAddrErrors`.
use std::time::Duration;

use super::{Info, Name, QUIET, Scenario, addr, mib, port, rises};
use crate::lab::{
    change::Recorder,
    topology::{Node, SERVER},
    traffic::{Traffic, tcp, udp},
};

pub struct ForwardingDisabled;

impl Scenario for ForwardingDisabled {
    fn info(&self) -> Info {
        Info {
            name: Name::ForwardingDisabled,
            pitfall: "forgetting to enable ip_forward: the router drops every packet for another host",
            changes: &[
                "router: net.ipv4.ip_forward=0",
                "router: net.ipv6.conf.all.forwarding=0",
            ],
            host_changes: false,
            traffic: "UDP client -> server at 200 datagrams/s per family, and 5 TCP connection attempts/s",
            witnesses: vec![
                mib(
                    Node::Router,
                    "IpInAddrErrors",
                    rises(100),
                    "IPv4 for other hosts dropped: forwarding off",
                ),
                mib(
                    Node::Router,
                    "Ip6InAddrErrors",
                    rises(100),
                    "IPv6 for other hosts dropped: forwarding off",
                ),
                mib(Node::Router, "IpForwDatagrams", QUIET, "nothing forwarded"),
                mib(
                    Node::Server,
                    "UdpInDatagrams",
                    QUIET,
                    "nothing reaches the server",
                ),
            ],
        }
    }

    fn apply(&self, rec: &mut Recorder) -> anyhow::Result<()> {
        rec.sysctl(Some(Node::Router), "net.ipv4.ip_forward", "0")?;
        rec.sysctl(Some(Node::Router), "net.ipv6.conf.all.forwarding", "0")
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Server, "udp sink", |c| {
            udp::sink(c, port::ECHO_UDP, "udp datagrams received")
        });
        t.spawn(Node::Server, "tcp echo server", |c| {
            tcp::echo_server(c, port::ECHO_TCP)
        });
        for ip in crate::lab::topology::server_addrs() {
            let send = udp::Send::to(addr(ip, port::ECHO_UDP), 200.0, 200);
            t.spawn(Node::Client, "udp client", move |c| udp::sender(c, send));
        }
        let dst = addr(SERVER.v4, port::ECHO_TCP);
        t.spawn(Node::Client, "tcp connector", move |c| {
            tcp::connector(c, dst, None, 5.0, Duration::from_secs(3), 100)
        });
    }
}
