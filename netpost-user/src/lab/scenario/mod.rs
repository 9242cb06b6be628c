//! The pitfalls the lab reproduces: one module per scenario, each saying what it changes,
//! what traffic it runs, and which kernel witnesses show the pitfall ([`Info`]).
pub mod closed_port;
pub mod conntrack_pressure;
pub mod forwarding_disabled;
pub mod healthy;
pub mod listen_overflow;
pub mod no_route;
pub mod reset_storm;
pub mod rp_filter;
pub mod rule_order;
pub mod small_buffers;
pub mod syn_flood;

use serde::Serialize;

use super::{change::Recorder, evidence::Witness, traffic::Traffic};

/// The nft table (family inet) scenarios load their rules into; deleting it undoes them.
pub const NFT_TABLE: &str = "netpost_lab";

/// Ports the scenarios' servers use on the server (and, for the filler, the client).
pub mod port {
    pub const ECHO_TCP: u16 = 7000;
    pub const ECHO_UDP: u16 = 7001;
    pub const BACKLOG: u16 = 7100;
    pub const SYN: u16 = 7200;
    pub const RESET: u16 = 7300;
    pub const HOLD_TCP: u16 = 7400;
    pub const FLOWS_UDP: u16 = 7401;
    pub const BULK: u16 = 7500;
    pub const FILLER_UDP: u16 = 7501;
    pub const CLOSED_TCP: u16 = 7998;
    pub const CLOSED_UDP: u16 = 7999;
}

/// A scenario's name, as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Name {
    /// Normal mixed TCP/UDP client<->server traffic through the router
    Healthy,
    /// The router's IPv4 and IPv6 forwarding off while the client sends to the server
    ForwardingDisabled,
    /// The ESTABLISHED,RELATED accept placed after 60 other rules in the router's forward chain
    RuleOrder,
    /// New conntrack entries fill the router's table (needs --allow-host-changes)
    ConntrackPressure,
    /// The client sends to a destination the router has no route for
    NoRoute,
    /// Spoofed-source traffic dropped by the router's rp_filter=1
    RpFilter,
    /// A bulk transfer over a 100 ms path with a 16 KB receive buffer
    SmallBuffers,
    /// A server with backlog 1 that never accepts, and clients that keep connecting
    ListenOverflow,
    /// Half-open connections: SYN-ACKs dropped on the way back, from one client address
    SynFlood,
    /// Connections reset by one server port
    ResetStorm,
    /// UDP and TCP to ports nobody listens on
    ClosedPort,
}

impl Name {
    pub const ALL: [Name; 11] = [
        Name::Healthy,
        Name::ForwardingDisabled,
        Name::RuleOrder,
        Name::ConntrackPressure,
        Name::NoRoute,
        Name::RpFilter,
        Name::SmallBuffers,
        Name::ListenOverflow,
        Name::SynFlood,
        Name::ResetStorm,
        Name::ClosedPort,
    ];

    /// The command-line spelling (`forwarding-disabled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Name::Healthy => "healthy",
            Name::ForwardingDisabled => "forwarding-disabled",
            Name::RuleOrder => "rule-order",
            Name::ConntrackPressure => "conntrack-pressure",
            Name::NoRoute => "no-route",
            Name::RpFilter => "rp-filter",
            Name::SmallBuffers => "small-buffers",
            Name::ListenOverflow => "listen-overflow",
            Name::SynFlood => "syn-flood",
            Name::ResetStorm => "reset-storm",
            Name::ClosedPort => "closed-port",
        }
    }

    pub fn from_name(s: &str) -> Option<Name> {
        Name::ALL.into_iter().find(|n| n.as_str() == s)
    }

    fn imp(self) -> &'static dyn Scenario {
        match self {
            Name::Healthy => &healthy::Healthy,
            Name::ForwardingDisabled => &forwarding_disabled::ForwardingDisabled,
            Name::RuleOrder => &rule_order::RuleOrder,
            Name::ConntrackPressure => &conntrack_pressure::ConntrackPressure,
            Name::NoRoute => &no_route::NoRoute,
            Name::RpFilter => &rp_filter::RpFilter,
            Name::SmallBuffers => &small_buffers::SmallBuffers,
            Name::ListenOverflow => &listen_overflow::ListenOverflow,
            Name::SynFlood => &syn_flood::SynFlood,
            Name::ResetStorm => &reset_storm::ResetStorm,
            Name::ClosedPort => &closed_port::ClosedPort,
        }
    }

    /// What the scenario reproduces, changes, sends, and how the kernel shows it.
    pub fn info(self) -> Info {
        self.imp().info()
    }

    pub(crate) fn apply(self, rec: &mut Recorder) -> anyhow::Result<()> {
        self.imp().apply(rec)
    }

    pub(crate) fn traffic(self, t: &mut Traffic) {
        self.imp().traffic(t)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scenario described for people (stderr, docs) and programs (tests, the doctor).
#[derive(Clone, Debug, Serialize)]
pub struct Info {
    pub name: Name,
    /// The pitfall, in one sentence.
    pub pitfall: &'static str,
    /// What the scenario changes in the lab (and, with `host_changes`, on the host); all of
    /// it is undone when it stops.
    pub changes: &'static [&'static str],
    /// Whether it changes the host outside the lab's namespaces (needs --allow-host-changes).
    pub host_changes: bool,
    /// The traffic it runs.
    pub traffic: &'static str,
    /// The kernel's witnesses of the pitfall, and counters that must stay quiet.
    pub witnesses: Vec<Witness>,
}

/// One scenario's behaviour.
trait Scenario: Sync {
    fn info(&self) -> Info;
    /// Changes the lab (each change through `rec`, so it is recorded and undone).
    fn apply(&self, _rec: &mut Recorder) -> anyhow::Result<()> {
        Ok(())
    }
    /// Starts the generators.
    fn traffic(&self, t: &mut Traffic);
}

/// A witness in `node` of MIB counter `name` (nstat's spelling).
pub(crate) const fn mib(
    node: super::topology::Node,
    name: &'static str,
    expect: super::evidence::Expect,
    meaning: &'static str,
) -> Witness {
    Witness::new(
        node,
        super::evidence::Source::Nstat { name },
        expect,
        meaning,
    )
}

pub(crate) const fn rises(at_least: u64) -> super::evidence::Expect {
    super::evidence::Expect::Rises { at_least }
}

pub(crate) const QUIET: super::evidence::Expect = super::evidence::Expect::Quiet;

pub(crate) fn addr(ip: impl Into<std::net::IpAddr>, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ip.into(), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn names_match_clap_and_info() {
        for n in Name::ALL {
            let clap_name = n.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(clap_name, n.as_str());
            assert_eq!(Name::from_name(n.as_str()), Some(n));
            let info = n.info();
            assert_eq!(info.name, n);
            assert!(!info.witnesses.is_empty(), "{n} has no witness");
            assert_eq!(info.host_changes, n == Name::ConntrackPressure, "{n}");
        }
        assert_eq!(Name::value_variants().len(), Name::ALL.len());
    }
}
