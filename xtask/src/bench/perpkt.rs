//! `inpath_ns_per_pkt`: what netpost's programs cost each packet the watched interface
//! received, from one in-path window (inpath.rs): for every program its run time per run
//! less the floor's of the same kind (the empty program at the same hooks: the statistics'
//! own clock reads and the call), times its runs, over the received packets. `total` sums
//! the programs; each step of the window gives one more sample of it, for its spread.
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::figure::{Spread, Target, inconclusive, iqr_json, why_json};
use super::stats::round;

/// A floor that ran fewer times than this says nothing about one run.
const MIN_FLOOR_RUNS: f64 = 1000.0;
/// Steps a window needs before its spread means anything.
const MIN_STEPS: usize = 3;

/// ns per run of each kind's empty program, where it ran often enough.
pub fn floors(floor: &Value) -> BTreeMap<String, (String, f64, f64)> {
    floor["programs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, p)| {
            let runs = p["runs"].as_f64().filter(|r| *r >= MIN_FLOOR_RUNS)?;
            let ns = p["run_ns"].as_f64()? / runs;
            Some((p["kind"].as_str()?.to_owned(), (name.clone(), ns, runs)))
        })
        .collect()
}

/// A program's ns per received packet: its runs times what each run cost above the floor.
fn per_pkt(runs: f64, run_ns: f64, floor_ns: f64, received: f64) -> f64 {
    if runs <= 0.0 || received <= 0.0 {
        return 0.0;
    }
    runs * (run_ns / runs - floor_ns).max(0.0) / received
}

/// The floor a program of `kind` is measured against: its kind's, or when that did not run
/// (no such program at these hooks got enough packets) the lowest of the others.
fn floor_for(kind: &str, floors: &BTreeMap<String, (String, f64, f64)>) -> Option<f64> {
    floors
        .get(kind)
        .map(|f| f.1)
        .or_else(|| floors.values().map(|f| f.1).min_by(f64::total_cmp))
}

/// The sum over programs of ns per received packet in one window or step.
fn total(
    programs: &Value,
    kinds: &Map<String, Value>,
    floors: &BTreeMap<String, (String, f64, f64)>,
    received: f64,
) -> f64 {
    programs
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, p)| {
            let kind = kinds
                .get(name)
                .and_then(|k| k["kind"].as_str())
                .unwrap_or("");
            per_pkt(
                p["runs"].as_f64().unwrap_or(0.0),
                p["run_ns"].as_f64().unwrap_or(0.0),
                floor_for(kind, floors).unwrap_or(0.0),
                received,
            )
        })
        .sum()
}

pub fn figure(
    window: Result<&Value, String>,
    floor: Result<&Value, String>,
    target: Option<Target>,
) -> Value {
    let w = match window {
        Ok(w) => w,
        Err(reason) => {
            return json!({"unit": "ns per received packet", "value": null, "total": null, "programs": {}, "reason": reason});
        }
    };
    let received = w["rx_packets"].as_f64().unwrap_or(0.0);
    if received <= 0.0 {
        return json!({"unit": "ns per received packet", "value": null, "total": null, "programs": {},
            "reason": format!("{} received no packets during the window", w["iface"])});
    }
    let (floors, floor_reason, skipped) = match floor {
        Ok(f) => (floors(f), None, f["skipped"].clone()),
        Err(e) => (BTreeMap::new(), Some(e), Value::Null),
    };
    let kinds = w["programs"].as_object().cloned().unwrap_or_default();
    let (mut programs, mut detail) = (Map::new(), Map::new());
    let mut with_stats = 0.0;
    for (name, p) in &kinds {
        let runs = p["runs"].as_f64().unwrap_or(0.0);
        let run_ns = p["run_ns"].as_f64().unwrap_or(0.0);
        let kind = p["kind"].as_str().unwrap_or("");
        let floor_ns = floor_for(kind, &floors);
        let ns = per_pkt(runs, run_ns, floor_ns.unwrap_or(0.0), received);
        with_stats += per_pkt(runs, run_ns, 0.0, received);
        programs.insert(name.clone(), json!(round(ns, 1)));
        detail.insert(
            name.clone(),
            json!({
                "kind": kind,
                "runs_per_pkt": round(runs / received, 3),
                "ns_per_run": (runs > 0.0).then(|| round(run_ns / runs, 1)),
                "floor_ns_per_run": floor_ns.map(|f| round(f, 1)),
                "floor_of_kind": floors.contains_key(kind),
                "ns_per_pkt": round(ns, 1),
                "ns_per_pkt_with_stats": round(per_pkt(runs, run_ns, 0.0, received), 1),
            }),
        );
    }
    let total_ns = total(&w["programs"], &kinds, &floors, received);
    let steps: Vec<f64> = w["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let rx = s["rx_packets"].as_f64().filter(|r| *r > 0.0)?;
            Some(total(&s["programs"], &kinds, &floors, rx))
        })
        .collect();
    let mut spread = Spread::of(&steps);
    // The figure is the whole window's; the steps give its spread.
    spread.median = Some(total_ns);
    let mut why = inconclusive(&spread, MIN_STEPS, target, None, 0.0);
    if let Some(e) = &floor_reason {
        why.push(format!(
            "no floor was measured ({e}): the statistics' own cost is not subtracted"
        ));
    }
    let secs = w["secs"].as_f64().unwrap_or(0.0);
    json!({
        "unit": "ns per received packet",
        "value": round(total_ns, 1),
        "total": round(total_ns, 1),
        "iqr": iqr_json(spread.iqr, 1),
        "steps": steps.iter().map(|v| round(*v, 1)).collect::<Vec<_>>(),
        "inconclusive": !why.is_empty(),
        "inconclusive_why": why_json(&why),
        "programs": programs,
        "detail": detail,
        "floors": floors.iter().map(|(k, (name, ns, runs))| (k.clone(), json!({"program": name, "ns_per_run": round(*ns, 1), "runs": runs}))).collect::<Map<_, _>>(),
        "floors_skipped": skipped,
        "stats_cost_ns_per_pkt": round(with_stats - total_ns, 1),
        "received_pkts": received,
        "received_per_s": (secs > 0.0).then(|| round(received / secs, 0)),
        "window_s": round(secs, 2),
        "interface": w["iface"],
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn window() -> Value {
        json!({
            "secs": 2.0, "iface": "rx", "rx_packets": 1000,
            "programs": {
                "netpost_xdp": {"kind": "xdp", "runs": 1000, "run_ns": 80_000},
                "netpost_nf_head": {"kind": "netfilter", "runs": 2000, "run_ns": 300_000},
                "netpost_fib_lookup": {"kind": "raw_tp", "runs": 1000, "run_ns": 150_000},
                "netpost_kfree_skb": {"kind": "raw_tp", "runs": 0, "run_ns": 0},
                "netpost_tc_out": {"kind": "tc", "runs": 0, "run_ns": 0},
            },
            "steps": [
                {"rx_packets": 500, "programs": {"netpost_xdp": {"runs": 500, "run_ns": 40_000}}},
                {"rx_packets": 500, "programs": {"netpost_xdp": {"runs": 500, "run_ns": 45_000}}},
                {"rx_packets": 0, "programs": {}},
            ],
        })
    }

    pub fn floor() -> Value {
        json!({"programs": {
            "netpost_floor_xdp": {"kind": "xdp", "runs": 1000, "run_ns": 30_000},
            "netpost_floor_nf": {"kind": "netfilter", "runs": 2000, "run_ns": 50_000},
            "netpost_floor_raw_tp": {"kind": "raw_tp", "runs": 10, "run_ns": 10_000},
            "netpost_floor_tc": {"kind": "tc", "runs": 1000, "run_ns": 40_000},
        }})
    }

    #[test]
    fn each_program_costs_its_runs_above_the_floor_per_received_packet() {
        let f = figure(Ok(&window()), Ok(&floor()), Some(Target::at_most(350.0)));
        // xdp: 80 ns per run, floor 30: 50 ns per packet.
        assert_eq!(f["programs"]["netpost_xdp"], 50.0);
        // netfilter: two runs per packet of 150 ns, floor 25: 250 ns per packet.
        assert_eq!(f["programs"]["netpost_nf_head"], 250.0);
        assert_eq!(f["detail"]["netpost_nf_head"]["runs_per_pkt"], 2.0);
        // The raw tracepoint floor ran too rarely: the lowest other floor (25) stands in.
        assert_eq!(f["programs"]["netpost_fib_lookup"], 125.0);
        assert_eq!(f["detail"]["netpost_fib_lookup"]["floor_of_kind"], false);
        assert_eq!(f["programs"]["netpost_kfree_skb"], 0.0);
        assert_eq!(f["total"], 425.0);
        assert_eq!(f["value"], 425.0);
        // Without floors: 80 + 300 + 150 = 530; the statistics cost 105 of it.
        assert_eq!(f["stats_cost_ns_per_pkt"], 105.0);
        assert_eq!(f["received_per_s"], 500.0);
        assert_eq!(f["floors"]["tc"]["ns_per_run"], 40.0);
        assert!(f["floors"].get("raw_tp").is_none());
    }

    #[test]
    fn steps_give_the_spread_and_too_few_make_it_inconclusive() {
        let f = figure(Ok(&window()), Ok(&floor()), Some(Target::at_most(350.0)));
        // The steps with packets: xdp alone, 50 and 60 ns.
        assert_eq!(f["steps"], json!([50.0, 60.0]));
        assert_eq!(f["iqr"], json!([52.5, 57.5]));
        assert_eq!(f["inconclusive"], true);
        assert_eq!(f["inconclusive_why"], "only 2 samples (at least 3 needed)");
    }

    #[test]
    fn missing_measurements_say_why() {
        let f = figure(Err("netpost failed".into()), Ok(&floor()), None);
        assert_eq!(f["value"], Value::Null);
        assert_eq!(f["reason"], "netpost failed");
        let f = figure(Ok(&window()), Err("no BTF".into()), None);
        assert_eq!(f["total"], 530.0, "nothing subtracted");
        assert!(
            f["inconclusive_why"]
                .as_str()
                .unwrap()
                .contains("no floor was measured (no BTF)")
        );
        let mut silent = window();
        silent["rx_packets"] = json!(0);
        assert_eq!(
            figure(Ok(&silent), Ok(&floor()), None)["value"],
            Value::Null
        );
    }
}
