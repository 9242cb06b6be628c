//! `cargo xtask bench`: what netpost costs the packets it watches, each figure measured
//! against a baseline in the same run. One module per measurement; `report` and `markdown`
//! turn their results into target/bench/report.{json,md}.
mod child;
mod e2e;
mod machine;
mod markdown;
mod netns;
mod netpost;
mod procstat;
mod progcost;
mod report;
mod ringbuf;
mod signal;
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
    /// End-to-end rounds (each: baseline + every hook set).
    pub rounds: usize,
    /// Seconds per end-to-end measurement (TCP, then UDP).
    pub secs: u32,
    /// BPF_PROG_TEST_RUN repetitions per run, and runs per (program, frame).
    pub repeat: u32,
    pub prog_rounds: usize,
    /// Seconds of userspace-cost sampling, per view.
    pub user_secs: u32,
}

impl Config {
    pub fn new(quick: bool) -> Config {
        if quick {
            Config {
                quick,
                rounds: 3,
                secs: 2,
                repeat: 100_000,
                prog_rounds: 9,
                user_secs: 8,
            }
        } else {
            Config {
                quick,
                rounds: 5,
                secs: 5,
                repeat: 500_000,
                prog_rounds: 15,
                user_secs: 20,
            }
        }
    }

    fn to_json(&self, duration_s: f64) -> Value {
        json!({
            "mode": if self.quick { "quick" } else { "full" },
            "rounds": self.rounds,
            "secs": self.secs,
            "test_run_repeat": self.repeat,
            "test_run_rounds": self.prog_rounds,
            "user_secs": self.user_secs,
            "duration_s": stats::round(duration_s, 1),
        })
    }
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
    netns::remove_stale();
    eprintln!("bench: per-program cost (BPF_PROG_TEST_RUN)");
    let prog = progcost::measure(cfg, paths)?;
    signal::check()?;
    eprintln!("bench: event pipeline (flow events at rising rates)");
    let ringbuf = ringbuf::measure(cfg, paths);
    signal::check()?;
    let pair = netns::Pair::create()?;
    eprintln!("bench: end to end over {} -> {}", pair.tx_if, pair.rx_if);
    let e2e = e2e::run(cfg, paths, &pair)?;
    eprintln!("bench: userspace cost");
    let user = usercost::measure(paths, &pair, cfg.user_secs)?;
    drop(pair);
    let report = report::build(&report::Inputs {
        meta: machine::describe(),
        config: cfg.to_json(start.elapsed().as_secs_f64()),
        prog: &prog,
        e2e: &e2e,
        user: &user,
        ringbuf,
    });
    let md = markdown::render(&report);
    Ok((report, md))
}
