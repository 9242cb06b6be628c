//! Packets for a destination the router has no route for: the router knows only its two
//! subnets (no default route), the client sends to 10.254.99.1 and fd6e:706c:99::1. The
//! router counts them (`IpExt: InNoRoutes`, `Ip6InNoRoutes`) and answers with ICMP
//! destination unreachable, which the client counts. IPv4's answers pass two per-source
//! rate limits in series (ip_error's and icmp's, 1/s each): about one every 2-3 s here, too
//! few for a short window, so only ICMPv6's (dozens a second) is a witness.
use std::time::Duration;

use super::{Info, Name, Scenario, addr, mib, port, rises};
use crate::lab::{
    topology::{NOWHERE_V4, NOWHERE_V6, Node},
    traffic::{Traffic, tcp, udp},
};

pub struct NoRoute;

impl Scenario for NoRoute {
    fn info(&self) -> Info {
        Info {
            name: Name::NoRoute,
            pitfall: "no route: the router has no route for the destination (no default route, no specific one)",
            changes: &[],
            host_changes: false,
            traffic: "UDP client -> 10.254.99.1 and fd6e:706c:99::1 at 100 datagrams/s each, 5 TCP connection attempts/s to 10.254.99.1",
            witnesses: vec![
                mib(
                    Node::Router,
                    "IpExtInNoRoutes",
                    rises(50),
                    "IPv4 dropped for lack of a route",
                ),
                mib(
                    Node::Router,
                    "Ip6InNoRoutes",
                    rises(50),
                    "IPv6 dropped for lack of a route",
                ),
                mib(
                    Node::Client,
                    "Icmp6InDestUnreachs",
                    rises(1),
                    "the router's ICMPv6 no route",
                ),
            ],
        }
    }

    fn traffic(&self, t: &mut Traffic) {
        for ip in [std::net::IpAddr::from(NOWHERE_V4), NOWHERE_V6.into()] {
            let send = udp::Send::to(addr(ip, port::ECHO_UDP), 100.0, 200);
            t.spawn(Node::Client, "udp client", move |c| udp::sender(c, send));
        }
        let dst = addr(NOWHERE_V4, port::ECHO_TCP);
        t.spawn(Node::Client, "tcp connector", move |c| {
            tcp::connector(c, dst, None, 5.0, Duration::from_secs(2), 100)
        });
    }
}
