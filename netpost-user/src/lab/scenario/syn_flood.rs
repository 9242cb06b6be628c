//! Half-open connections: the client (from a dedicated address, 10.254.1.66, so the source
//! is identifiable) starts 50 connections/s to the server, whose SYN-ACKs the router drops
//! on the way back. The server keeps each in SYN-RECV and retransmits its SYN-ACK
//! (`TcpExt: TCPSynRetrans`); past its backlog (64) it answers with SYN cookies
//! (`TCPReqQFullDoCookies`), as under a real SYN flood.
use std::{net::Ipv4Addr, time::Duration};

use super::{Info, NFT_TABLE, Name, Scenario, addr, mib, port, rises};
use crate::lab::{
    change::Recorder,
    evidence::{Expect, Source, Witness},
    topology::{CLIENT, Node, SERVER},
    traffic::{Traffic, tcp},
};

pub struct SynFlood;

/// The flooding source, an extra address of the client.
pub const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 254, 1, 66);

fn ruleset() -> String {
    format!(
        "table inet {NFT_TABLE} {{\n    chain forward {{\n        type filter hook forward priority filter; policy accept;\n        ip saddr {} ip daddr {SOURCE} tcp sport {} tcp flags & (syn | ack) == syn | ack counter drop comment \"syn-ack dropped\"\n    }}\n}}\n",
        SERVER.v4,
        port::SYN
    )
}

impl Scenario for SynFlood {
    fn info(&self) -> Info {
        Info {
            name: Name::SynFlood,
            pitfall: "half-open connections pile up: SYNs whose handshakes never complete, from one source",
            changes: &[
                "client: address 10.254.1.66/32 on npl-c0 (the flood's source)",
                "router: nft table inet netpost_lab dropping the server's SYN-ACKs to 10.254.1.66",
            ],
            host_changes: false,
            traffic: "50 connection attempts/s from 10.254.1.66 to server port 7200 (a listener with backlog 64)",
            witnesses: vec![
                Witness::new(
                    Node::Server,
                    Source::TcpSockets {
                        state: 3,
                        port: port::SYN,
                    },
                    Expect::AtLeast { value: 20 },
                    "half-open (SYN-RECV) connections on the server",
                ),
                mib(
                    Node::Server,
                    "TcpExtTCPSynRetrans",
                    rises(10),
                    "SYN-ACK retransmits",
                ),
                mib(
                    Node::Server,
                    "TcpExtTCPReqQFullDoCookies",
                    rises(1),
                    "SYN queue full: SYN cookies sent",
                ),
                Witness::new(
                    Node::Router,
                    Source::NftRule {
                        comment: "syn-ack dropped",
                    },
                    rises(50),
                    "SYN-ACKs the router dropped",
                ),
            ],
        }
    }

    fn apply(&self, rec: &mut Recorder) -> anyhow::Result<()> {
        let a = format!("{SOURCE}/32");
        rec.add(
            Node::Client,
            &format!("address {a} on {}", CLIENT.ifname),
            &["ip", "addr", "add", &a, "dev", CLIENT.ifname],
            &["ip", "addr", "del", &a, "dev", CLIENT.ifname],
        )?;
        rec.nft(Node::Router, &format!("inet {NFT_TABLE}"), &ruleset())
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Server, "listener", |c| {
            tcp::hold_server(c, port::SYN, 64, true)
        });
        std::thread::sleep(Duration::from_millis(100));
        let dst = addr(SERVER.v4, port::SYN);
        t.spawn(Node::Client, "tcp connector (10.254.1.66)", move |c| {
            tcp::connector(
                c,
                dst,
                Some(SOURCE.into()),
                50.0,
                Duration::from_secs(2),
                500,
            )
        });
    }
}
