//! The article's "ignoring connection state tracking overhead": a steady stream of new
//! connections and flows through the router fills its conntrack table.
//!
//! `net.netfilter.nf_conntrack_max` can only be set in the initial namespace and applies to
//! every namespace's table (each is counted on its own, but against this one limit), so
//! this scenario changes the host: it needs --allow-host-changes, says so on stderr,
//! records the original value in the state file before changing it, and restores it on
//! exit, on `netpost lab down`, and after a crash through `lab down`. It refuses when the
//! host's own table already holds more than half the lab's limit (the host would start
//! dropping its own new connections).
//!
//! The client opens TCP connections that stay open (assured entries, which conntrack never
//! evicts early) and sends UDP from a new port for every datagram (unreplied entries, which
//! it could evict). Once the table is full, a new entry may evict an unreplied one
//! (`early_drop`), but conntrack only looks at a few hash buckets next to the new entry's,
//! and 256 entries in a table sized for the host's default (262144 buckets here) are rarely
//! there: in practice nearly every new connection and flow is dropped (`drop`: about 1300
//! in 3 s, against single-digit `early_drop`s). So `drop` and the count at the limit are the
//! witnesses; `early_drop` is not relied on.
use std::time::Duration;

use anyhow::Context as _;

use super::{Info, NFT_TABLE, Name, Scenario, addr, port, rises};
use crate::lab::{
    change::Recorder,
    evidence::{Expect, Source, Witness},
    ns,
    topology::{Node, SERVER},
    traffic::{Traffic, tcp, udp},
};

pub struct ConntrackPressure;

/// The limit set on the host while the scenario runs.
pub const CONNTRACK_MAX: u64 = 256;
pub const KEY: &str = "net.netfilter.nf_conntrack_max";

fn ruleset() -> String {
    format!(
        "table inet {NFT_TABLE} {{\n    chain forward {{\n        type filter hook forward priority filter; policy accept;\n        ct state established,related counter accept comment \"established\"\n        ct state new counter accept comment \"new\"\n    }}\n}}\n"
    )
}

impl Scenario for ConntrackPressure {
    fn info(&self) -> Info {
        Info {
            name: Name::ConntrackPressure,
            pitfall: "conntrack table full: every connection tracked by the router counts against nf_conntrack_max, and new ones are dropped once it is reached",
            changes: &[
                "HOST (global): net.netfilter.nf_conntrack_max=256 (restored on exit and by `netpost lab down`)",
                "router: nft table inet netpost_lab with ct state rules (turns conntrack on)",
            ],
            host_changes: true,
            traffic: "200 new TCP connections/s to server port 7400, each held open (up to 400), and 200 new UDP flows/s (a new source port per datagram) to port 7401",
            witnesses: vec![
                Witness::new(
                    Node::Router,
                    Source::ConntrackCount,
                    Expect::AtLeast {
                        value: CONNTRACK_MAX * 9 / 10,
                    },
                    "entries in the router's table: at the limit",
                ),
                Witness::new(
                    Node::Router,
                    Source::ConntrackStat { field: "drop" },
                    rises(100),
                    "packets dropped: table full and nothing evictable",
                ),
            ],
        }
    }

    fn apply(&self, rec: &mut Recorder) -> anyhow::Result<()> {
        let host_count: u64 = ns::sysctl_get(None, "net.netfilter.nf_conntrack_count")?
            .parse()
            .context("nf_conntrack_count")?;
        anyhow::ensure!(
            host_count <= CONNTRACK_MAX / 2,
            "the host's own conntrack table holds {host_count} entries: a global nf_conntrack_max of {CONNTRACK_MAX} would drop the host's new connections; not changing it"
        );
        rec.nft(Node::Router, &format!("inet {NFT_TABLE}"), &ruleset())?;
        rec.sysctl(None, KEY, &CONNTRACK_MAX.to_string())
    }

    fn traffic(&self, t: &mut Traffic) {
        t.spawn(Node::Server, "holding server", |c| {
            tcp::hold_server(c, port::HOLD_TCP, 1024, true)
        });
        t.spawn(Node::Server, "udp sink", |c| {
            udp::sink(c, port::FLOWS_UDP, "udp datagrams received")
        });
        std::thread::sleep(Duration::from_millis(100));
        let dst = addr(SERVER.v4, port::HOLD_TCP);
        t.spawn(Node::Client, "tcp connector (held)", move |c| {
            tcp::connector(c, dst, None, 200.0, Duration::from_secs(3600), 400)
        });
        let mut flows = udp::Send::to(addr(SERVER.v4, port::FLOWS_UDP), 200.0, 100);
        flows.new_flow_each = true;
        t.spawn(Node::Client, "udp new flows", move |c| {
            udp::sender(c, flows)
        });
    }
}
