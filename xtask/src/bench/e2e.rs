//! End-to-end overhead: the same traffic through the network without netpost and with it,
//! interleaved (baseline, set, baseline, next set...) so a noisy machine's drift hits both
//! sides alike; the order of the sets flips every round. Every set gets one pair per round.
use anyhow::Context as _;

use super::netns::Net;
use super::netpost::{Headless, HeldFloors};
use super::traffic::{self, UdpRate};
use super::{Config, Paths, signal};

pub const BASELINE: &str = "baseline";

/// One way of running netpost: a profile, or a hook set (which programs it attaches).
/// netpost always attaches tc (so there is no XDP-only set) and its tracepoint programs.
pub struct HookSet {
    pub name: &'static str,
    pub flags: &'static [&'static str],
    pub means: &'static str,
    /// Not netpost: its attach points with empty programs (`netpost-bench hold-floors`).
    pub floors: bool,
}

/// The set the targets are checked on: netpost with its default flags.
pub const ALL: &str = "all";
/// The profile the defaults run (`--profile` unset), whose figures are `all`'s.
pub const DEFAULT_PROFILE: &str = "standard";

/// The empty programs at the attach points of netpost's default run on a veth.
pub const FLOORS: &str = "floors";

pub const SETS: [HookSet; 7] = [
    HookSet {
        name: ALL,
        flags: &[],
        means: "everything the defaults attach (profile standard): XDP + tc + netfilter + tracepoints",
        floors: false,
    },
    HookSet {
        name: "counters",
        flags: &["--profile", "counters"],
        means: "profile counters: per-hook counts, netfilter verdicts, drop reasons",
        floors: false,
    },
    HookSet {
        name: "full",
        flags: &["--profile", "full"],
        means: "profile full: everything, per-lookup routing decisions included",
        floors: false,
    },
    HookSet {
        name: "tc",
        flags: &["--xdp-mode", "off", "--no-netfilter"],
        means: "tc ingress + egress only",
        floors: false,
    },
    HookSet {
        name: "xdp+tc",
        flags: &["--no-netfilter"],
        means: "XDP (netpost's choice of mode on veth) + tc",
        floors: false,
    },
    HookSet {
        name: "tc+netfilter",
        flags: &["--xdp-mode", "off"],
        means: "tc + netfilter head/tail programs at all five IPv4 and IPv6 hooks",
        floors: false,
    },
    HookSet {
        name: FLOORS,
        flags: &[],
        means: "not netpost: empty programs where its default run attaches on a veth (tc ingress + egress, a netfilter head and tail at every hook): what the attach points alone cost",
        floors: true,
    },
];

/// The profiles, each with the set that runs it.
pub const PROFILES: [(&str, &str); 3] = [
    ("counters", "counters"),
    (DEFAULT_PROFILE, ALL),
    ("full", "full"),
];

pub fn set(name: &str) -> Option<&'static HookSet> {
    SETS.iter().find(|s| s.name == name)
}

pub struct Sample {
    pub set: &'static str,
    pub tcp_bps: f64,
    pub udp: UdpRate,
}

/// `cfg.rounds` rounds over `sets` through `net`; the samples in the order they ran.
pub fn run(
    cfg: &Config,
    paths: &Paths,
    net: &Net,
    sets: &[&'static HookSet],
) -> anyhow::Result<Vec<Sample>> {
    let _server = traffic::IperfServer::start(net, &paths.logs)?;
    let mut samples = Vec::new();
    for round in 0..cfg.rounds {
        let mut order = sets.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for set in order {
            for which in [None, Some(set)] {
                signal::check()?;
                let sample = measure(cfg, paths, net, which).with_context(|| {
                    format!(
                        "{} round {}, {}",
                        net.kind,
                        round + 1,
                        which.map_or(BASELINE, |s| s.name)
                    )
                })?;
                eprintln!(
                    "bench: {} round {}/{} {:<13} TCP {:6.2} Gbit/s   UDP 64 B {:7.0}k pkt/s received ({:.0}k sent)",
                    net.kind,
                    round + 1,
                    cfg.rounds,
                    sample.set,
                    sample.tcp_bps / 1e9,
                    sample.udp.received_pps / 1e3,
                    sample.udp.sent_pps / 1e3,
                );
                samples.push(sample);
            }
        }
    }
    Ok(samples)
}

fn measure(
    cfg: &Config,
    paths: &Paths,
    net: &Net,
    set: Option<&HookSet>,
) -> anyhow::Result<Sample> {
    let netpost = set
        .filter(|s| !s.floors)
        .map(|s| Headless::start(&paths.netpost, net, s.flags, &paths.logs))
        .transpose()?;
    let floors = set
        .filter(|s| s.floors)
        .map(|_| HeldFloors::start(&paths.bench, net, &paths.logs))
        .transpose()?;
    let tcp_bps = traffic::tcp_bps(net, cfg.secs)?;
    let udp = traffic::udp_rate(net, &paths.bench, &paths.logs, f64::from(cfg.secs))?;
    if let Some(netpost) = netpost {
        netpost.stop()?;
    }
    drop(floors);
    Ok(Sample {
        set: set.map_or(BASELINE, |s| s.name),
        tcp_bps,
        udp,
    })
}
