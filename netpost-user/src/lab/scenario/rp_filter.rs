//! Reverse-path filtering (the multi-homed pitfall): the client sends from 10.254.2.77, an
//! address of the server's subnet, which the router would route out of npl-r1, not back
//! out of npl-r0 where it arrived. With strict rp_filter (1) the router drops it and counts
//! `TcpExt: IPReversePathFilter` (IPv4 only: IPv6 has no rp_filter sysctl).
use std::{net::Ipv4Addr, time::Duration};

use super::{Info, Name, QUIET, Scenario, addr, mib, port, rises};
use crate::lab::{
    change::Recorder,
    topology::{CLIENT, Node, SERVER},
    traffic::{Traffic, tcp, udp},
};

pub struct RpFilter;

/// The source the client uses: inside the server's subnet.
pub const SPOOFED: Ipv4Addr = Ipv4Addr::new(10, 254, 2, 77);

impl Scenario for RpFilter {
    fn info(&self) -> Info {
        Info {
            name: Name::RpFilter,
            pitfall: "reverse-path filter: traffic whose source the router would route out of another interface is dropped (asymmetric paths, multi-homed hosts)",
            changes: &[
                "router: net.ipv4.conf.all.rp_filter=1, net.ipv4.conf.npl-r0.rp_filter=1",
                "client: address 10.254.2.77/32 on npl-c0 (inside the server's subnet)",
                "client: net.ipv4.conf.npl-c0.arp_announce=2 (ARP from its real address)",
            ],
            host_changes: false,
            traffic: "UDP from 10.254.2.77 to the server at 100 datagrams/s, 5 TCP connection attempts/s from the same source",
            witnesses: vec![
                mib(
                    Node::Router,
                    "TcpExtIPReversePathFilter",
                    rises(50),
                    "datagrams dropped by rp_filter",
                ),
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
        rec.sysctl(Some(Node::Router), "net.ipv4.conf.all.rp_filter", "1")?;
        rec.sysctl(Some(Node::Router), "net.ipv4.conf.npl-r0.rp_filter", "1")?;
        // ARP requests would otherwise carry the spoofed source too, and the router's
        // rp_filter would refuse to answer them: no datagram would ever reach it.
        rec.sysctl(Some(Node::Client), "net.ipv4.conf.npl-c0.arp_announce", "2")?;
        let a = format!("{SPOOFED}/32");
        rec.add(
            Node::Client,
            &format!("address {a} on {}", CLIENT.ifname),
            &["ip", "addr", "add", &a, "dev", CLIENT.ifname],
            &["ip", "addr", "del", &a, "dev", CLIENT.ifname],
        )
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Server, "udp sink", |c| {
            udp::sink(c, port::ECHO_UDP, "udp datagrams received")
        });
        let mut send = udp::Send::to(addr(SERVER.v4, port::ECHO_UDP), 100.0, 200);
        send.src = Some(SPOOFED.into());
        t.spawn(Node::Client, "udp client (spoofed source)", move |c| {
            udp::sender(c, send)
        });
        let dst = addr(SERVER.v4, port::ECHO_TCP);
        t.spawn(Node::Client, "tcp connector (spoofed source)", move |c| {
            tcp::connector(
                c,
                dst,
                Some(SPOOFED.into()),
                5.0,
                Duration::from_secs(2),
                100,
            )
        });
    }
}
