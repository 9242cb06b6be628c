//! `cargo xtask bench`: what netpost costs the packets it watches, each figure measured
//! against a baseline in the same run. One module per measurement; `report` and `markdown`
//! turn their results into target/bench/report.{json,md}.
mod child;
mod e2e;
mod figure;
mod inpath;
mod machine;
mod markdown;
mod netns;
mod netpost;
mod perpkt;
mod procstat;
mod progcost;
mod report;
mod ringbuf;
mod signal;
mod startup;
mod stats;
mod traffic;
mod usercost;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

pub use signal::install as install_signal_handlers;

/// How long and how often; `--quick` trades precision for a run under five minutes.
pub struct Config {
    pub quick: bool,
    /// End-to-end rounds: each gives every hook set one pair (a baseline, then the set).
    pub rounds: usize,
    /// Seconds per end-to-end measurement (TCP, then UDP).
    pub secs: u32,
    /// BPF_PROG_TEST_RUN repetitions per run, and runs per (program, frame).
    pub repeat: u32,
    pub prog_rounds: usize,
    /// Seconds of userspace-cost sampling, per view.
    pub user_secs: u32,
    /// Seconds per in-path window (each hook set's, and the floors').
    pub inpath_secs: u32,
    /// netpost starts timed for `startup_ms`.
    pub starts: usize,
    /// Hook sets measured through the veth pair, and through the router.
    pub pair_sets: &'static [&'static str],
    pub router_sets: &'static [&'static str],
}

impl Config {
    pub fn new(quick: bool) -> Config {
        if quick {
            Config {
                quick,
                rounds: 5,
                secs: 1,
                repeat: 50_000,
                prog_rounds: 7,
                user_secs: 5,
                inpath_secs: 2,
                starts: 5,
                pair_sets: &["all", "counters", "full", "floors"],
                router_sets: &["all"],
            }
        } else {
            Config {
                quick,
                rounds: 7,
                secs: 2,
                repeat: 500_000,
                prog_rounds: 15,
                user_secs: 20,
                inpath_secs: 6,
                starts: 9,
                pair_sets: &[
                    "all",
                    "counters",
                    "full",
                    "tc",
                    "xdp+tc",
                    "tc+netfilter",
                    "floors",
                ],
                router_sets: &["all", "counters"],
            }
        }
    }

    fn to_json(&self, duration_s: f64, laps: &Laps) -> Value {
        json!({
            "mode": if self.quick { "quick" } else { "full" },
            "rounds": self.rounds,
            "secs": self.secs,
            "test_run_repeat": self.repeat,
            "test_run_rounds": self.prog_rounds,
            "user_secs": self.user_secs,
            "inpath_secs": self.inpath_secs,
            "inpath_step_s": inpath::STEP_S,
            "starts": self.starts,
            "pair_sets": self.pair_sets,
            "router_sets": self.router_sets,
            "duration_s": stats::round(duration_s, 1),
            "phases_s": laps.0.iter().map(|(name, s)| (name.to_string(), json!(stats::round(*s, 1)))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// How long each part of the run took (what `--quick` trades to stay under five minutes).
struct Laps(Vec<(&'static str, f64)>, Instant);

impl Laps {
    fn lap(&mut self, name: &'static str) {
        self.0.push((name, self.1.elapsed().as_secs_f64()));
        self.1 = Instant::now();
    }
}

fn sets(names: &[&str]) -> Vec<&'static e2e::HookSet> {
    names.iter().filter_map(|n| e2e::set(n)).collect()
}

/// The binaries the bench runs and where it writes.
pub struct Paths {
    pub netpost: PathBuf,
    pub bench: PathBuf,
    pub out: PathBuf,
    pub logs: PathBuf,
}

/// Runs every measurement and returns (report.json, report.md).
pub fn run(cfg: &Config, paths: &Paths) -> anyhow::Result<(Value, String)> {
    let start = Instant::now();
    let mut laps = Laps(Vec::new(), start);
    netns::remove_stale();
    eprintln!("bench: per-program cost (BPF_PROG_TEST_RUN)");
    let prog = progcost::measure(cfg, paths)?;
    laps.lap("progcost");
    signal::check()?;
    eprintln!("bench: event pipeline (flow events at rising rates)");
    let ringbuf = ringbuf::measure(cfg, paths);
    laps.lap("ringbuf");
    signal::check()?;

    let net = netns::Net::pair()?;
    eprintln!("bench: start-up, {} starts", cfg.starts);
    let startup = startup::measure(paths, &net, cfg.starts)?;
    laps.lap("startup");
    let pair = net_run(cfg, paths, &net, cfg.pair_sets, &mut laps)?;
    eprintln!("bench: userspace cost");
    let user = usercost::measure(paths, &net, cfg.user_secs)?;
    laps.lap("usercost");
    drop(net);

    // A router that cannot be built (no forwarding here) costs its figures, not the run.
    let router =
        netns::Net::router().and_then(|net| net_run(cfg, paths, &net, cfg.router_sets, &mut laps));
    if let Err(e) = &router {
        eprintln!("bench: router case: {e:#}");
    }
    signal::check()?;
    let report = report::build(&report::Inputs {
        meta: machine::describe(),
        config: cfg.to_json(start.elapsed().as_secs_f64(), &laps),
        prog: &prog,
        pair: &pair,
        router: router.as_ref().map_err(|e| format!("{e:#}")),
        startup: startup::to_json(&startup),
        user: &user,
        ringbuf,
    });
    let md = markdown::render(&report);
    Ok((report, md))
}

/// End to end, then in-path windows, through one network.
fn net_run(
    cfg: &Config,
    paths: &Paths,
    net: &netns::Net,
    names: &[&str],
    laps: &mut Laps,
) -> anyhow::Result<report::NetRun> {
    let sets = sets(names);
    eprintln!("bench: end to end, {}", net.describe());
    let e2e = e2e::run(cfg, paths, net, &sets)?;
    laps.lap(if net.kind == "router" {
        "router_e2e"
    } else {
        "e2e"
    });
    eprintln!("bench: on the packet path ({})", net.kind);
    // The floors set has no programs of netpost's to time (the floor window times them).
    let netpost_sets: Vec<_> = sets.iter().copied().filter(|s| !s.floors).collect();
    let inpath = inpath::measure(cfg, paths, net, &netpost_sets)?;
    laps.lap(if net.kind == "router" {
        "router_inpath"
    } else {
        "inpath"
    });
    Ok(report::NetRun {
        topology: net.describe(),
        e2e,
        inpath,
    })
}
