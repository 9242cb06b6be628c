//! The article's "blocking I/O for high-concurrency servers", at its worst: a server that
//! listens with a backlog of 1 and never gets round to accept(). Its accept queue holds 2
//! connections; every further SYN (and handshake-completing ACK) is dropped and counted in
//! `TcpExt: ListenOverflows` and `ListenDrops`. The clients see SYN retransmits and slow
//! or failed connects.
use std::time::Duration;

use super::{Info, Name, Scenario, addr, mib, port, rises};
use crate::lab::{
    evidence::{Expect, Source, Witness},
    topology::{Node, SERVER},
    traffic::{Traffic, tcp},
};

pub struct ListenOverflow;

impl Scenario for ListenOverflow {
    fn info(&self) -> Info {
        Info {
            name: Name::ListenOverflow,
            pitfall: "a server that does not keep up with accept(): its accept queue is full and SYNs are dropped",
            changes: &[],
            host_changes: false,
            traffic: "server listens on 7100 with backlog 1 and never accepts; the client starts 20 connections/s, each kept 3 s",
            witnesses: vec![
                mib(
                    Node::Server,
                    "TcpExtListenOverflows",
                    rises(5),
                    "accept queue full",
                ),
                mib(
                    Node::Server,
                    "TcpExtListenDrops",
                    rises(5),
                    "SYNs dropped at the listener",
                ),
                Witness::new(
                    Node::Server,
                    Source::AcceptQueue {
                        port: port::BACKLOG,
                    },
                    Expect::AtLeast { value: 2 },
                    "connections waiting for accept() (backlog 1 holds 2)",
                ),
            ],
        }
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Server, "listener that never accepts", |c| {
            tcp::hold_server(c, port::BACKLOG, 1, false)
        });
        std::thread::sleep(Duration::from_millis(100));
        let dst = addr(SERVER.v4, port::BACKLOG);
        t.spawn(Node::Client, "tcp connector", move |c| {
            tcp::connector(c, dst, None, 20.0, Duration::from_secs(3), 200)
        });
    }
}
