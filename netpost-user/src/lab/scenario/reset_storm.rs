//! Connections reset by one peer and port: the server on port 7300 accepts, reads the
//! request and closes with SO_LINGER 0, so every connection ends in a RST (`Tcp: OutRsts`
//! on the server, `Tcp: EstabResets` on the client).
use std::time::Duration;

use super::{Info, Name, Scenario, addr, mib, port, rises};
use crate::lab::{
    topology::{Node, SERVER},
    traffic::{Traffic, tcp},
};

pub struct ResetStorm;

impl Scenario for ResetStorm {
    fn info(&self) -> Info {
        Info {
            name: Name::ResetStorm,
            pitfall: "a reset storm: one server port resets every connection",
            changes: &[],
            host_changes: false,
            traffic: "50 connections/s (IPv4) and 20/s (IPv6) to server port 7300, which resets each after reading the request",
            witnesses: vec![
                mib(
                    Node::Server,
                    "TcpOutRsts",
                    rises(50),
                    "resets sent by the server",
                ),
                mib(
                    Node::Server,
                    "TcpExtTCPAbortOnData",
                    rises(50),
                    "connections the server aborted",
                ),
                mib(
                    Node::Client,
                    "TcpEstabResets",
                    rises(50),
                    "established connections reset under the client",
                ),
            ],
        }
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Server, "resetting server", |c| {
            tcp::reset_server(c, port::RESET)
        });
        std::thread::sleep(Duration::from_millis(100));
        let v4 = addr(SERVER.v4, port::RESET);
        let v6 = addr(SERVER.v6, port::RESET);
        t.spawn(Node::Client, "tcp client", move |c| {
            tcp::reset_client(c, v4, 50.0)
        });
        t.spawn(Node::Client, "tcp client", move |c| {
            tcp::reset_client(c, v6, 20.0)
        });
    }
}
