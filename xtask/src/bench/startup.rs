//! `startup_ms`: from exec to netpost's "watching" line (counting has started), the median
//! of several starts with the default flags, and where the time goes. The kernel stamps each
//! program's load before its verifier runs (`netpost-bench held` reads the stamps of the
//! programs netpost holds), which splits a start into: exec to the first program load (BTF
//! parses, object and maps), the loads (each program's gap to the next: its verification and
//! whatever netpost did in between), and the last load to "watching" (the last verification,
//! attaching, the first counter reads). `netpost-bench btf-parse` times the two BTF parses.
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::child::Guard;
use super::figure::iqr_json;
use super::netns::Net;
use super::netpost::{ATTACHED, args};
use super::stats::{median, round};
use super::{Paths, signal};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One start: exec and "watching" (ns since the Unix epoch) and the held programs.
pub struct Start {
    pub exec_ns: u128,
    pub watching_ns: u128,
    /// `netpost-bench held` output.
    pub held: Result<Value, String>,
}

pub struct Startup {
    pub starts: Vec<Start>,
    /// `netpost-bench btf-parse` output.
    pub btf: Result<Value, String>,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

pub fn measure(paths: &Paths, net: &Net, starts: usize) -> anyhow::Result<Startup> {
    let mut out = Vec::new();
    for _ in 0..starts {
        signal::check()?;
        out.push(start(paths, net)?);
    }
    let btf = bench(paths, &["btf-parse", "--rounds", "5"]);
    Ok(Startup { starts: out, btf })
}

fn start(paths: &Paths, net: &Net) -> anyhow::Result<Start> {
    let mut cmd = Command::new(&paths.netpost);
    cmd.args(args(net, &["--no-tui"]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let exec_ns = now_ns();
    let mut guard = Guard::spawn("netpost", &mut cmd)?;
    let stderr = guard.take_stderr().context("netpost's stderr")?;
    // Read on a thread (to the end, so netpost's later lines never meet a closed pipe);
    // the first "watching" line's arrival time comes back.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(ATTACHED) {
                let _ = tx.send(Ok(now_ns()));
            }
            text.push_str(&line);
            text.push('\n');
        }
        let _ = tx.send(Err(text));
    });
    let deadline = Instant::now() + TIMEOUT;
    let watching_ns = loop {
        signal::check()?;
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(at)) => break at,
            Ok(Err(text)) => bail!("netpost exited before counting: {}", text.trim()),
            Err(_) if Instant::now() > deadline => {
                bail!("netpost did not start within {TIMEOUT:?}")
            }
            Err(_) => {}
        }
    };
    let held = bench(paths, &["held", "--pid", &guard.pid().to_string()]);
    guard.stop(libc::SIGINT, Duration::from_secs(10));
    Ok(Start {
        exec_ns,
        watching_ns,
        held,
    })
}

fn bench(paths: &Paths, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(&paths.bench)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run netpost-bench: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "netpost-bench {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("netpost-bench {}: {e}", args[0]))
}

fn ms(ns: i128) -> f64 {
    round(ns as f64 / 1e6, 1)
}

/// One start's phases (ms) and its program loads in order: when each began (ms after exec)
/// and its gap to the next (none for the last, whose verification ends in
/// `last_load_to_watching_ms`).
fn phases(s: &Start) -> Value {
    let total = ms(s.watching_ns as i128 - s.exec_ns as i128);
    let mut loads: Vec<(String, i128, &Value)> = s
        .held
        .as_ref()
        .ok()
        .and_then(|h| h["programs"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_owned(),
                p["loaded_at_ns"].as_u64()? as i128,
                &p["verified_insns"],
            ))
        })
        .collect();
    loads.sort_by_key(|l| l.1);
    let (Some(first), Some(last)) = (loads.first(), loads.last()) else {
        let why = s.held.as_ref().err().cloned();
        return json!({"total_ms": total, "reason": why.unwrap_or_else(|| "no program load times".into())});
    };
    let exec = s.exec_ns as i128;
    let list: Vec<Value> = loads
        .iter()
        .enumerate()
        .map(|(i, (name, at, insns))| {
            let gap = loads.get(i + 1).map(|next| ms(next.1 - at));
            json!({"name": name, "at_ms": ms(at - exec), "gap_ms": gap, "verified_insns": insns})
        })
        .collect();
    json!({
        "total_ms": total,
        "exec_to_first_load_ms": ms(first.1 - exec),
        "loads_ms": ms(last.1 - first.1),
        "last_load_to_watching_ms": ms(s.watching_ns as i128 - last.1),
        "last_program": last.0,
        "loads": list,
    })
}

/// The median of a field over the starts that have it.
fn median_of(starts: &[Value], pick: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
    median(&starts.iter().filter_map(pick).collect::<Vec<_>>())
}

/// The programs' loads in the order of the first start, each with its medians.
fn median_loads(starts: &[Value]) -> Vec<Value> {
    let Some(order) = starts.iter().find_map(|p| p["loads"].as_array()) else {
        return Vec::new();
    };
    let field = |name: &Value, key: &str| {
        median_of(starts, |p| {
            p["loads"].as_array()?.iter().find(|l| l["name"] == *name)?[key].as_f64()
        })
        .map(|v| round(v, 1))
    };
    order
        .iter()
        .map(|l| {
            json!({
                "name": l["name"],
                "at_ms": field(&l["name"], "at_ms"),
                "gap_ms": field(&l["name"], "gap_ms"),
                "verified_insns": l["verified_insns"],
            })
        })
        .collect()
}

pub fn to_json(s: &Startup) -> Value {
    let starts: Vec<Value> = s.starts.iter().map(phases).collect();
    let totals: Vec<f64> = starts
        .iter()
        .filter_map(|p| p["total_ms"].as_f64())
        .collect();
    let Some(value) = median(&totals) else {
        return json!({"unit": "ms", "value": null, "samples": [], "reason": "no start measured"});
    };
    let phase = |key: &str| median_of(&starts, |p| p[key].as_f64()).map(|v| round(v, 1));
    let btf = match &s.btf {
        Ok(b) => {
            let med = |k: &str| {
                let v: Vec<f64> = b[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect();
                median(&v).map(|v| round(v, 1))
            };
            json!({"netpost": med("netpost_ms"), "aya": med("aya_ms")})
        }
        Err(e) => json!({"reason": e}),
    };
    json!({
        "unit": "ms",
        "value": round(value, 1),
        "samples": totals,
        "iqr": iqr_json(super::stats::iqr(&totals), 1),
        "flags": "(defaults)",
        "breakdown": {
            "exec_to_first_load_ms": phase("exec_to_first_load_ms"),
            "loads_ms": phase("loads_ms"),
            "last_load_to_watching_ms": phase("last_load_to_watching_ms"),
            "last_program": starts.iter().find_map(|p| p["last_program"].as_str()),
            "loads": median_loads(&starts),
            "btf_parse_ms": btf,
        },
        "starts": starts,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    const MS: u128 = 1_000_000;

    pub fn sample() -> Startup {
        // Three starts, the same loads, 500, 700 and 600 ms in all.
        let start = |total: u128, base: u128| Start {
            exec_ns: base,
            watching_ns: base + total * MS,
            held: Ok(json!({"programs": [
                {"name": "netpost_xdp", "loaded_at_ns": (base + 150 * MS) as u64, "verified_insns": 900},
                {"name": "netpost_kfree_skb", "loaded_at_ns": (base + 100 * MS) as u64},
                {"name": "netpost_tc_in", "loaded_at_ns": (base + 400 * MS) as u64},
            ]})),
        };
        Startup {
            starts: vec![
                start(500, 0),
                start(700, 10_000 * MS),
                start(600, 20_000 * MS),
            ],
            btf: Ok(json!({"netpost_ms": [3.0, 2.0, 9.0], "aya_ms": [20.0, 25.0, 30.0]})),
        }
    }

    #[test]
    fn a_start_splits_at_the_first_and_last_program_load() {
        let p = phases(&sample().starts[0]);
        assert_eq!(p["total_ms"], 500.0);
        assert_eq!(p["exec_to_first_load_ms"], 100.0);
        assert_eq!(p["loads_ms"], 300.0);
        assert_eq!(p["last_load_to_watching_ms"], 100.0);
        // In load order, each program's gap to the next; the last has none.
        assert_eq!(
            p["loads"],
            json!([
                {"name": "netpost_kfree_skb", "at_ms": 100.0, "gap_ms": 50.0, "verified_insns": null},
                {"name": "netpost_xdp", "at_ms": 150.0, "gap_ms": 250.0, "verified_insns": 900},
                {"name": "netpost_tc_in", "at_ms": 400.0, "gap_ms": null, "verified_insns": null},
            ])
        );
        assert_eq!(p["last_program"], "netpost_tc_in");
    }

    #[test]
    fn the_report_takes_medians_over_starts() {
        let r = to_json(&sample());
        assert_eq!(r["value"], 600.0);
        assert_eq!(r["samples"], json!([500.0, 700.0, 600.0]));
        assert_eq!(r["iqr"], json!([550.0, 650.0]));
        assert_eq!(r["breakdown"]["last_load_to_watching_ms"], 200.0);
        assert_eq!(
            r["breakdown"]["loads"][1],
            json!({"name": "netpost_xdp", "at_ms": 150.0, "gap_ms": 250.0, "verified_insns": 900})
        );
        assert_eq!(r["breakdown"]["last_program"], "netpost_tc_in");
        assert_eq!(
            r["breakdown"]["btf_parse_ms"],
            json!({"netpost": 3.0, "aya": 25.0})
        );
    }

    #[test]
    fn a_start_without_load_times_keeps_its_total() {
        let s = Start {
            exec_ns: 0,
            watching_ns: 300 * MS,
            held: Err("no held".into()),
        };
        assert_eq!(phases(&s), json!({"total_ms": 300.0, "reason": "no held"}));
    }
}
