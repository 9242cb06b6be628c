//! What BPF programs cost on the real packet path: the kernel's own run-time statistics
//! (BPF_ENABLE_STATS; on only while the returned fd is open, so they switch off again even if
//! this process dies) for the programs one process holds, over a window cut into steps, with
//! the packets an interface received meanwhile (read from sysfs: run this inside the
//! interface's namespace, as `ip netns exec` does, which mounts that namespace's sysfs).
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::sys::{Stats, enable_stats};
use serde_json::{Map, Value, json};

use crate::held::{self, Held};

pub struct Options {
    pub pid: u32,
    pub secs: f64,
    /// Count the packets this interface receives during the window.
    pub iface: Option<String>,
    /// Length of one step of the window.
    pub step: f64,
}

fn rx_packets(iface: &str) -> anyhow::Result<u64> {
    let path = format!("/sys/class/net/{iface}/statistics/rx_packets");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("parsing {path}"))
}

/// Programs, interface counter and time, read together.
struct Reading {
    at: Instant,
    programs: Vec<Held>,
    rx: Option<u64>,
}

/// Runs and run time per program name between two readings (several programs may share a
/// name, one per attach point: they are added up).
fn delta(a: &Reading, b: &Reading) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for p in &b.programs {
        let Some(p0) = a.programs.iter().find(|q| q.id == p.id) else {
            continue;
        };
        let e = out.entry(p.name.clone()).or_default();
        e.0 += p.runs - p0.runs;
        e.1 += p.run_ns.saturating_sub(p0.run_ns);
    }
    out
}

fn programs_json(d: &BTreeMap<String, (u64, u64)>) -> Map<String, Value> {
    d.iter()
        .map(|(name, (runs, ns))| (name.clone(), json!({"runs": runs, "run_ns": ns})))
        .collect()
}

pub fn measure(opts: &Options) -> anyhow::Result<Value> {
    let _stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
    let ids = held::prog_ids(opts.pid)?;
    let names = held::object_names();
    let read = || -> anyhow::Result<Reading> {
        Ok(Reading {
            at: Instant::now(),
            programs: held::read(&ids, &names),
            rx: opts.iface.as_deref().map(rx_packets).transpose()?,
        })
    };
    let first = read()?;
    let steps = (opts.secs / opts.step).round().max(1.0) as usize;
    let mut readings = vec![first];
    for i in 1..=steps {
        let due = readings[0].at + Duration::from_secs_f64(opts.step * i as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        readings.push(read()?);
    }
    let (first, last) = (&readings[0], &readings[readings.len() - 1]);
    let total = delta(first, last);
    let mut programs = programs_json(&total);
    for p in &first.programs {
        if let Some(Value::Object(entry)) = programs.get_mut(&p.name) {
            entry.insert("kind".into(), json!(p.kind));
            entry.insert("kernel_name".into(), json!(p.kernel_name));
            let tps = entry.entry("tracepoints").or_insert_with(|| json!([]));
            for tp in &p.tracepoints {
                if let Some(list) = tps.as_array_mut()
                    && !list.contains(&json!(tp))
                {
                    list.push(json!(tp));
                }
            }
        }
    }
    let rx = |a: &Reading, b: &Reading| a.rx.zip(b.rx).map(|(a, b)| b - a);
    let steps: Vec<Value> = readings
        .windows(2)
        .map(|w| {
            json!({
                "secs": (w[1].at - w[0].at).as_secs_f64(),
                "rx_packets": rx(&w[0], &w[1]),
                "programs": programs_json(&delta(&w[0], &w[1])),
            })
        })
        .collect();
    Ok(json!({
        "secs": (last.at - first.at).as_secs_f64(),
        "iface": opts.iface,
        "rx_packets": rx(first, last),
        "programs": programs,
        "total_run_ns": total.values().map(|(_, ns)| ns).sum::<u64>(),
        "steps": steps,
    }))
}
