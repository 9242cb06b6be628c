//! End-to-end overhead: the same traffic through the veth pair without netpost and with it,
//! alternating (baseline, set, baseline, next set...) so a noisy machine's drift hits both
//! sides alike; the order of the sets flips every round.
use anyhow::Context as _;

use super::netns::Pair;
use super::netpost::Headless;
use super::traffic::{self, UdpRate};
use super::{Config, Paths, signal};

pub const BASELINE: &str = "baseline";

/// Which programs a run attaches. netpost always attaches tc (so there is no XDP-only set)
/// and its tracepoint programs (kfree_skb for drops, fib_table_lookup for routes).
pub struct HookSet {
    pub name: &'static str,
    pub flags: &'static [&'static str],
    pub means: &'static str,
}

pub const SETS: [HookSet; 4] = [
    HookSet {
        name: "tc",
        flags: &["--xdp-mode", "off", "--no-netfilter"],
        means: "tc ingress + egress only",
    },
    HookSet {
        name: "xdp+tc",
        flags: &["--no-netfilter"],
        means: "XDP (generic, netpost's choice on veth) + tc",
    },
    HookSet {
        name: "tc+netfilter",
        flags: &["--xdp-mode", "off"],
        means: "tc + netfilter head/tail programs at all five IPv4 and IPv6 hooks",
    },
    HookSet {
        name: "all",
        flags: &[],
        means: "everything (default flags): XDP + tc + netfilter",
    },
];

/// The set the targets are checked on.
pub const ALL: &str = "all";

pub struct Sample {
    pub set: &'static str,
    pub tcp_bps: f64,
    pub udp: UdpRate,
}

pub fn run(cfg: &Config, paths: &Paths, pair: &Pair) -> anyhow::Result<Vec<Sample>> {
    let _server = traffic::IperfServer::start(pair, &paths.logs)?;
    let mut samples = Vec::new();
    for round in 0..cfg.rounds {
        let order: Vec<&HookSet> = if round % 2 == 0 {
            SETS.iter().collect()
        } else {
            SETS.iter().rev().collect()
        };
        for set in order {
            for which in [None, Some(set)] {
                signal::check()?;
                let sample = measure(cfg, paths, pair, which).with_context(|| {
                    format!(
                        "round {}, {}",
                        round + 1,
                        which.map_or(BASELINE, |s| s.name)
                    )
                })?;
                eprintln!(
                    "bench: round {}/{} {:<13} TCP {:6.2} Gbit/s   UDP 64 B {:7.0}k pkt/s received ({:.0}k sent)",
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
    pair: &Pair,
    set: Option<&HookSet>,
) -> anyhow::Result<Sample> {
    let netpost = set
        .map(|s| Headless::start(&paths.netpost, pair, s.flags, &paths.logs))
        .transpose()?;
    let tcp_bps = traffic::tcp_bps(pair, cfg.secs)?;
    let udp = traffic::udp_rate(pair, &paths.bench, &paths.logs, cfg.secs)?;
    if let Some(netpost) = netpost {
        netpost.stop()?;
    }
    Ok(Sample {
        set: set.map_or(BASELINE, |s| s.name),
        tcp_bps,
        udp,
    })
}
