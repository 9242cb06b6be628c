//! netpost's own cost in userspace: CPU% of one core and memory, sampled once a second from
//! /proc while small-packet traffic runs through the watched veth.
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::child::Guard;

use super::netns::Pair;
use super::netpost::{Headless, InTmux};
use super::procstat::{self, Reading};
use super::traffic::Load;
use super::{Paths, signal};

/// One measured run.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// CPU% over the whole window (ticks are too coarse for one second alone).
    pub cpu_pct: f64,
    /// CPU% of each one-second step.
    pub cpu_samples: Vec<f64>,
    /// VmRSS at each step, MiB.
    pub rss_samples: Vec<f64>,
    /// VmHWM at the end: the peak resident set.
    pub hwm_mib: f64,
}

/// Flows in the userspace-cost load: the "10k active flows".
pub const FLOWS: u32 = 10_000;

pub struct UserCost {
    pub secs: u32,
    /// Flows generated, and the most netpost's flow table held at once (its `flows_active`,
    /// from its JSON output during the TUI-off run).
    pub flows: u32,
    pub flows_active: Result<u64, String>,
    pub tui_off: Result<Run, String>,
    pub tui_on: Result<Run, String>,
    /// Kernel run-time statistics of netpost's programs during the TUI-off run
    /// (`netpost-bench inpath` output).
    pub inpath: Result<Value, String>,
}

pub fn measure(paths: &Paths, pair: &Pair, secs: u32) -> anyhow::Result<UserCost> {
    let json = paths.logs.join("usercost.jsonl");
    let (tui_off, inpath) = {
        let json_arg = json.display().to_string();
        let netpost = Headless::start(&paths.netpost, pair, &["--json", &json_arg], &paths.logs)?;
        let (run, inpath) = under_load(paths, pair, netpost.pid(), secs, true)?;
        netpost.stop()?;
        (Ok(run), inpath.unwrap_or_else(|| Err("not run".into())))
    };
    let flows_active = std::fs::read_to_string(&json)
        .map_err(|e| format!("{}: {e}", json.display()))
        .and_then(|text| most_flows_active(&text));
    signal::check()?;
    // Without tmux there is no terminal to draw on; say so rather than fail the bench.
    let tui_on = match InTmux::start(&paths.netpost, pair) {
        Ok(netpost) => under_load(paths, pair, netpost.pid(), secs, false)
            .map(|(run, _)| run)
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!(
            "could not run netpost's terminal view in tmux: {e:#}"
        )),
    };
    Ok(UserCost {
        secs,
        flows: FLOWS,
        flows_active,
        tui_off,
        tui_on,
        inpath,
    })
}

/// Samples `pid` once a second for `secs` under small-packet load; with `inpath`, also the
/// kernel's run-time statistics of its programs over the same window.
fn under_load(
    paths: &Paths,
    pair: &Pair,
    pid: u32,
    secs: u32,
    inpath: bool,
) -> anyhow::Result<(Run, Option<Result<Value, String>>)> {
    // A second of warm-up: the first interval and the traffic ramp are not steady state.
    let _load = Load::start(pair, &paths.bench, &paths.logs, secs + 2, FLOWS)?;
    std::thread::sleep(Duration::from_secs(1));
    let stats = inpath
        .then(|| {
            let mut cmd = Command::new(&paths.bench);
            cmd.args([
                "inpath",
                "--pid",
                &pid.to_string(),
                "--secs",
                &secs.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            Guard::spawn("netpost-bench inpath", &mut cmd)
        })
        .transpose()?;
    let ticks = procstat::clock_ticks_per_sec();
    let read = || procstat::read(pid).context("netpost's /proc entry vanished");
    let first = read()?;
    let mut prev: Reading = first;
    let mut run = Run::default();
    for _ in 0..secs {
        signal::check()?;
        std::thread::sleep(Duration::from_secs(1));
        let now = read()?;
        run.cpu_samples
            .extend(procstat::cpu_pct(&prev, &now, ticks));
        run.rss_samples.push(now.rss_mib);
        run.hwm_mib = now.hwm_mib;
        prev = now;
    }
    run.cpu_pct = procstat::cpu_pct(&first, &prev, ticks).unwrap_or_default();
    let stats = stats.map(|guard| {
        let out = guard
            .wait(Duration::from_secs(10))
            .map_err(|e| format!("{e:#}"))?;
        serde_json::from_slice(&out.stdout)
            .map_err(|_| format!("inpath: {}", String::from_utf8_lossy(&out.stderr).trim()))
    });
    Ok((run, stats))
}

/// The largest `flows_active` in netpost's JSON lines.
fn most_flows_active(jsonl: &str) -> Result<u64, String> {
    jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["flows_active"].as_u64())
        .max()
        .ok_or_else(|| "netpost wrote no flows_active".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_flows_netpost_saw_at_once() {
        let jsonl = "{\"flows_active\": 3}\n{\"flows_active\": 10001}\nnot json\n{\"flows_active\": 9000}\n";
        assert_eq!(most_flows_active(jsonl), Ok(10001));
        assert!(most_flows_active("{}\n").is_err());
    }
}
