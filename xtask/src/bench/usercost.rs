//! netpost's own cost in userspace: CPU% of one core and memory, sampled once a second from
//! /proc while small-packet traffic runs through the watched veth.
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::child::Guard;

use super::netns::Net;
use super::netpost::{Headless, InTmux};
use super::procstat::{self, Reading};
use super::traffic::{FLOWS, Load};
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
    /// TUI off again, with [`RULES`] nf_tables rules in the watched namespace and one of
    /// them dropping all the time (issue 16: a large ruleset must keep netpost within the
    /// userspace budget).
    pub rules: Result<RulesRun, String>,
}

/// Rules in the large-ruleset run: one input chain, all with counters.
pub const RULES: u32 = 10_000;
/// The rule that drops: 1% of the small-packet load, so the hook drops all the time (the
/// case that makes netpost read rule counters).
const DROPPING_RULE: &str = "udp dport 9000 numgen random mod 100 0 counter packets";

/// The large-ruleset run's window: netpost spaces its rule-counter reads so they take at most
/// 0.5% of a core (a 10,000-rule read costs 50-70 ms, so one every 10-14 s); a window of a
/// few seconds would hold one read or none, and report the burst or miss it.
pub const RULES_WINDOW_S: u32 = 40;

/// The large-ruleset run: netpost's cost, and what it made of the ruleset.
#[derive(Clone, Debug)]
pub struct RulesRun {
    pub window_s: u32,
    pub run: Run,
    /// The most rules netpost said the namespace holds (`netfilter_rules.ruleset_rules`).
    pub ruleset_rules: Option<u64>,
    /// IPv4 INPUT's `dropped` and `attributed_drops` in netpost's last snapshot.
    pub dropped: Option<u64>,
    pub attributed: Option<u64>,
    /// The dropping rule's own counter at the end (`nft list`).
    pub rule_counter: Option<u64>,
    /// `netfilter_rules.read_every_ms` and `read_cpu_us` in the last snapshot.
    pub read_every_ms: Option<u64>,
    pub read_cpu_us: Option<u64>,
}

pub fn measure(paths: &Paths, net: &Net, secs: u32) -> anyhow::Result<UserCost> {
    let json = paths.logs.join("usercost.jsonl");
    let (tui_off, inpath) = {
        let json_arg = json.display().to_string();
        let netpost = Headless::start(&paths.netpost, net, &["--json", &json_arg], &paths.logs)?;
        let (run, inpath) = under_load(paths, net, netpost.pid(), secs, true)?;
        netpost.stop()?;
        (Ok(run), inpath.unwrap_or_else(|| Err("not run".into())))
    };
    let flows_active = std::fs::read_to_string(&json)
        .map_err(|e| format!("{}: {e}", json.display()))
        .and_then(|text| most_flows_active(&text));
    signal::check()?;
    // Without tmux there is no terminal to draw on; say so rather than fail the bench.
    let tui_on = match InTmux::start(&paths.netpost, net, &paths.logs) {
        Ok(netpost) => under_load(paths, net, netpost.pid(), secs, false)
            .map(|(run, _)| run)
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!(
            "could not run netpost's terminal view in tmux: {e:#}"
        )),
    };
    signal::check()?;
    let rules = large_ruleset(paths, net, secs).map_err(|e| format!("{e:#}"));
    Ok(UserCost {
        secs,
        flows: FLOWS,
        flows_active,
        tui_off,
        tui_on,
        inpath,
        rules,
    })
}

/// The nf_tables table of the large-ruleset run, deleted on drop.
struct Ruleset {
    ns: String,
}

const TABLE: &str = "npbench_rules";

impl Ruleset {
    fn install(ns: &str) -> anyhow::Result<Ruleset> {
        let mut text = format!(
            "table inet {TABLE} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n"
        );
        // Rules that never match (TEST-NET-2 sources) but are walked for every packet and
        // listed by every read, like a big real ruleset's.
        for i in 0..RULES - 1 {
            text.push_str(&format!(
                "  ip saddr 198.51.100.{} udp dport {} counter drop\n",
                1 + i % 250,
                10_000 + i
            ));
        }
        text.push_str("  udp dport 9000 numgen random mod 100 == 0 counter drop\n }\n}\n");
        let ruleset = Ruleset { ns: ns.to_owned() };
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("nft")?;
        use std::io::Write as _;
        child
            .stdin
            .take()
            .context("nft's stdin")?
            .write_all(text.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            anyhow::bail!(
                "nft -f refused the {RULES}-rule table: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(ruleset)
    }

    /// The dropping rule's counter.
    fn dropping_packets(&self) -> Option<u64> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "nft", "list", "table", "inet", TABLE,
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains(DROPPING_RULE))?;
        line.split(DROPPING_RULE)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Ruleset {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "nft", "delete", "table", "inet", TABLE,
            ])
            .status();
    }
}

/// netpost headless under the small-packet load with [`RULES`] rules in the watched
/// namespace's INPUT, one of them dropping.
fn large_ruleset(paths: &Paths, net: &Net, secs: u32) -> anyhow::Result<RulesRun> {
    let ruleset = Ruleset::install(&net.watch_ns)?;
    let json = paths.logs.join("usercost-rules.jsonl");
    let json_arg = json.display().to_string();
    let netpost = Headless::start(&paths.netpost, net, &["--json", &json_arg], &paths.logs)?;
    let window_s = secs.max(RULES_WINDOW_S);
    let (run, _) = under_load(paths, net, netpost.pid(), window_s, false)?;
    netpost.stop()?;
    let rule_counter = ruleset.dropping_packets();
    drop(ruleset);
    let text = std::fs::read_to_string(&json).with_context(|| json.display().to_string())?;
    let snaps: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last = snaps.last();
    let input = last.map(|s| &s["netfilter"]["ipv4"]["input"]);
    let rules = last.map(|s| &s["netfilter_rules"]);
    Ok(RulesRun {
        window_s,
        run,
        ruleset_rules: snaps
            .iter()
            .filter_map(|s| s["netfilter_rules"]["ruleset_rules"].as_u64())
            .max(),
        dropped: input.and_then(|i| i["dropped"].as_u64()),
        attributed: input.and_then(|i| i["attributed_drops"].as_u64()),
        rule_counter,
        read_every_ms: rules.and_then(|r| r["read_every_ms"].as_u64()),
        read_cpu_us: rules.and_then(|r| r["read_cpu_us"].as_u64()),
    })
}

/// Samples `pid` once a second for `secs` under small-packet load; with `inpath`, also the
/// kernel's run-time statistics of its programs over the same window.
fn under_load(
    paths: &Paths,
    net: &Net,
    pid: u32,
    secs: u32,
    inpath: bool,
) -> anyhow::Result<(Run, Option<Result<Value, String>>)> {
    // A second of warm-up: the first interval and the traffic ramp are not steady state.
    let _load = Load::start(net, &paths.bench, &paths.logs, secs + 2)?;
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
