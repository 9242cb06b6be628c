//! Normal mixed traffic: short and long-lived TCP connections and UDP request/response,
//! IPv4 and IPv6, client <-> server through the router. Nothing is wrong: every pitfall's
//! counter stays quiet.
use super::{Info, Name, QUIET, Scenario, addr, mib, port, rises};
use crate::lab::{
    topology::{Node, SERVER},
    traffic::{Traffic, tcp, udp},
};

pub struct Healthy;

impl Scenario for Healthy {
    fn info(&self) -> Info {
        Info {
            name: Name::Healthy,
            pitfall: "none: the reference the other scenarios are compared with",
            changes: &[],
            host_changes: false,
            traffic: "TCP echo (5 new connections/s per family, 5 exchanges each, and one long-lived connection at 50 exchanges/s) and UDP echo (100 datagrams/s per family), client <-> server",
            witnesses: vec![
                mib(
                    Node::Router,
                    "IpForwDatagrams",
                    rises(100),
                    "IPv4 forwarded by the router",
                ),
                mib(
                    Node::Router,
                    "Ip6OutForwDatagrams",
                    rises(100),
                    "IPv6 forwarded by the router",
                ),
                mib(
                    Node::Server,
                    "TcpPassiveOpens",
                    rises(5),
                    "connections the server accepted",
                ),
                mib(
                    Node::Client,
                    "UdpInDatagrams",
                    rises(50),
                    "UDP echoes back at the client",
                ),
                mib(
                    Node::Router,
                    "IpInAddrErrors",
                    QUIET,
                    "no datagram dropped for forwarding off",
                ),
                mib(
                    Node::Router,
                    "IpExtInNoRoutes",
                    QUIET,
                    "no datagram without a route",
                ),
                mib(
                    Node::Router,
                    "TcpExtIPReversePathFilter",
                    QUIET,
                    "no rp_filter drop",
                ),
                mib(
                    Node::Server,
                    "TcpExtListenOverflows",
                    QUIET,
                    "no accept queue overflow",
                ),
                mib(
                    Node::Server,
                    "UdpNoPorts",
                    QUIET,
                    "no datagram to a closed port",
                ),
                mib(
                    Node::Server,
                    "TcpOutRsts",
                    QUIET,
                    "no reset sent by the server",
                ),
                mib(Node::Client, "TcpEstabResets", QUIET, "no connection reset"),
            ],
        }
    }

    fn traffic(&self, t: &mut Traffic) {
        mix(t, 5.0, 50.0);
    }
}

/// The healthy mix; `rule-order` runs it too. `new_per_sec` short connections per family,
/// `exchanges_per_sec` on one long-lived IPv4 connection.
pub fn mix(t: &mut Traffic, new_per_sec: f64, exchanges_per_sec: f64) {
    t.spawn(Node::Server, "tcp echo server", |c| {
        tcp::echo_server(c, port::ECHO_TCP)
    });
    t.spawn(Node::Server, "udp echo server", |c| {
        udp::echo_server(c, port::ECHO_UDP)
    });
    // Servers first: a connection before the listener exists would be reset.
    std::thread::sleep(std::time::Duration::from_millis(100));
    for ip in crate::lab::topology::server_addrs() {
        let tcp_dst = addr(ip, port::ECHO_TCP);
        t.spawn(Node::Client, "tcp echo client", move |c| {
            tcp::echo_client(c, tcp_dst, new_per_sec, 5, 512)
        });
        let mut send = udp::Send::to(addr(ip, port::ECHO_UDP), 100.0, 200);
        send.count_echoes = true;
        t.spawn(Node::Client, "udp client", move |c| udp::sender(c, send));
    }
    let long = addr(SERVER.v4, port::ECHO_TCP);
    t.spawn(Node::Client, "long-lived tcp client", move |c| {
        tcp::persistent_client(c, long, exchanges_per_sec, 256)
    });
}
