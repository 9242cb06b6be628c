//! On the packet path: what netpost's programs cost each packet the watched interface
//! receives, from the kernel's run-time statistics, under the small-packet load from 10,000
//! flows. One window per hook set (netpost running with its flags), then one window with the
//! empty programs attached at the same hooks instead (the floors), whose run time is what the
//! statistics' own clock reads add to every run: the report subtracts it.
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::child::Guard;
use super::e2e::HookSet;
use super::netns::Net;
use super::netpost::Headless;
use super::traffic::Load;
use super::{Config, Paths, signal};

/// netpost runs this long under load before its window opens (the flow table filling with
/// the 10,000 flows takes a fraction of it).
const WARMUP: Duration = Duration::from_millis(500);
/// Seconds per step of a window; each step gives one sample of the total.
pub const STEP_S: f64 = 0.5;

pub struct InPath {
    /// Per hook set: `netpost-bench inpath` output, or why there is none.
    pub windows: Vec<(&'static str, Result<Value, String>)>,
    /// `netpost-bench floor` output, or why there is none.
    pub floor: Result<Value, String>,
}

impl InPath {
    pub fn window(&self, set: &str) -> Result<&Value, String> {
        match self.windows.iter().find(|(s, _)| *s == set) {
            Some((_, Ok(v))) => Ok(v),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err(format!("hook set {set} not measured")),
        }
    }
}

pub fn measure(
    cfg: &Config,
    paths: &Paths,
    net: &Net,
    sets: &[&'static HookSet],
) -> anyhow::Result<InPath> {
    // One load for every window; the guard stops it.
    let _load = Load::start(net, &paths.bench, &paths.logs, 3600)?;
    std::thread::sleep(WARMUP);
    let mut windows = Vec::new();
    for set in sets {
        signal::check()?;
        let w = window(cfg, paths, net, set);
        if let Err(e) = &w {
            eprintln!("bench: in-path window of {}: {e:#}", set.name);
        }
        windows.push((set.name, w.map_err(|e| format!("{e:#}"))));
    }
    signal::check()?;
    let floor = floor(cfg, paths, net, &windows).map_err(|e| format!("{e:#}"));
    if let Err(e) = &floor {
        eprintln!("bench: floor window: {e}");
    }
    Ok(InPath { windows, floor })
}

fn window(cfg: &Config, paths: &Paths, net: &Net, set: &HookSet) -> anyhow::Result<Value> {
    let netpost = Headless::start(&paths.netpost, net, set.flags, &paths.logs)?;
    std::thread::sleep(WARMUP);
    let pid = netpost.pid().to_string();
    let secs = cfg.inpath_secs.to_string();
    let step = STEP_S.to_string();
    let out = bench_in(
        paths,
        &net.watch_ns,
        &[
            "inpath",
            "--pid",
            &pid,
            "--secs",
            &secs,
            "--step",
            &step,
            "--iface",
            &net.ingress_if,
        ],
        cfg.inpath_secs,
    );
    netpost.stop()?;
    out
}

/// The tracepoints netpost's programs of `kind` are attached to, busiest first.
pub fn tracepoints(windows: &[(&str, Result<Value, String>)], kind: &str) -> Vec<String> {
    let mut tps: Vec<(String, f64)> = Vec::new();
    for (_, w) in windows {
        let Ok(w) = w else { continue };
        for p in w["programs"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, p)| p)
        {
            if p["kind"] != kind {
                continue;
            }
            let runs = p["runs"].as_f64().unwrap_or(0.0);
            for tp in p["tracepoints"].as_array().into_iter().flatten() {
                let Some(tp) = tp.as_str() else { continue };
                match tps.iter_mut().find(|(t, _)| t == tp) {
                    Some(e) => e.1 += runs,
                    None => tps.push((tp.to_owned(), runs)),
                }
            }
        }
    }
    tps.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    tps.into_iter().map(|(t, _)| t).collect()
}

/// The floors at netpost's hooks: XDP and tc on the watched interfaces, netfilter at every
/// hook, the raw tracepoint floor at every tracepoint netpost's raw tracepoint programs use,
/// the tp_btf floor (one tracepoint per load) at the busiest of netpost's tp_btf ones.
fn floor(
    cfg: &Config,
    paths: &Paths,
    net: &Net,
    windows: &[(&str, Result<Value, String>)],
) -> anyhow::Result<Value> {
    let secs = cfg.inpath_secs.to_string();
    let step = STEP_S.to_string();
    let mut args: Vec<String> = ["floor", "--secs", &secs, "--step", &step, "--count"]
        .map(str::to_owned)
        .to_vec();
    args.push(net.ingress_if.clone());
    for dev in &net.watch_ifs {
        args.extend(["-i".to_owned(), dev.clone()]);
    }
    for tp in tracepoints(windows, "raw_tp") {
        args.extend(["--raw-tp".to_owned(), tp]);
    }
    if let Some(tp) = tracepoints(windows, "tp_btf").into_iter().next() {
        args.extend(["--tp-btf".to_owned(), tp]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bench_in(paths, &net.watch_ns, &args, cfg.inpath_secs)
}

/// Runs `netpost-bench ARGS` in namespace `ns` (with its sysfs) and reads its JSON.
fn bench_in(paths: &Paths, ns: &str, args: &[&str], secs: u32) -> anyhow::Result<Value> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(&paths.bench)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = Guard::spawn(&format!("netpost-bench {}", args[0]), &mut cmd)?
        .wait(Duration::from_secs(u64::from(secs) + 30))?;
    if !out.status.success() {
        bail!(
            "netpost-bench {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("netpost-bench {} printed no result", args[0]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tracepoints_of_a_kind_busiest_first_without_repeats() {
        let w = json!({"programs": {
            "netpost_kfree_skb": {"kind": "raw_tp", "runs": 5, "tracepoints": ["kfree_skb"]},
            "netpost_fib_lookup": {"kind": "raw_tp", "runs": 900, "tracepoints": ["fib_table_lookup"]},
            "netpost_tc_in": {"kind": "tc", "runs": 900, "tracepoints": []},
            "netpost_fib_btf": {"kind": "tp_btf", "runs": 9, "tracepoints": ["fib6_table_lookup"]},
        }});
        let windows = vec![
            ("all", Ok(w.clone())),
            ("full", Ok(w)),
            ("counters", Err("failed".to_owned())),
        ];
        assert_eq!(
            tracepoints(&windows, "raw_tp"),
            ["fib_table_lookup", "kfree_skb"]
        );
        assert_eq!(tracepoints(&windows, "tp_btf"), ["fib6_table_lookup"]);
        assert!(tracepoints(&windows, "xdp").is_empty());
    }
}
