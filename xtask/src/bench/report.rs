//! report.json: every measurement as a stable key (docs/bench.md) with its raw samples, the
//! medians and ratios derived from them, and whether each target was met. Pure: built from
//! the measurements' results, so its shape is unit-tested.
use serde_json::{Map, Value, json};

use super::e2e::{self, ALL, BASELINE, DEFAULT_PROFILE, PROFILES, Sample};
use super::figure::{self, Target};
use super::inpath::InPath;
use super::perpkt;
use super::progcost::ProgCost;
use super::stats::{median, min, paired_ratios, ratio, round};
use super::traffic::FLOWS;
use super::usercost::{RULES, RulesRun, Run, UserCost};

pub const SCHEMA_VERSION: u64 = 1;

/// The metric keys; later versions add keys, never rename or remove these (the tests check
/// every one is built).
#[cfg(test)]
pub const KEYS: [&str; 11] = [
    "xdp_ns_per_pkt",
    "tc_ns_per_pkt",
    "netfilter_ns_per_pkt",
    "floor_ns_per_pkt",
    "tcp_throughput_ratio",
    "small_pkt_rate_ratio",
    "ringbuf_max_events_per_s",
    "user_cpu_pct",
    "user_rss_mib",
    "inpath_ns_per_pkt",
    "startup_ms",
];

/// Each target: the metric's path in the report (dots between levels), the field of the
/// metric it reads, and the target (from issue 14 and before).
pub const TARGETS: [(&str, &str, Target); 16] = [
    ("tcp_throughput_ratio", "value", Target::at_least(0.97)),
    ("small_pkt_rate_ratio", "value", Target::at_least(0.90)),
    ("inpath_ns_per_pkt", "total", Target::at_most(350.0)),
    (
        "profiles.counters.inpath_ns_per_pkt",
        "total",
        Target::at_most(120.0),
    ),
    (
        "profiles.counters.small_pkt_rate_ratio",
        "value",
        Target::at_least(0.95),
    ),
    (
        "router.tcp_throughput_ratio",
        "value",
        Target::at_least(0.97),
    ),
    (
        "router.small_pkt_rate_ratio",
        "value",
        Target::at_least(0.90),
    ),
    ("router.inpath_ns_per_pkt", "total", Target::at_most(350.0)),
    ("startup_ms", "value", Target::at_most(400.0)),
    ("xdp_ns_per_pkt", "ratio_to_floor", Target::at_most(2.0)),
    ("tc_ns_per_pkt", "ratio_to_floor", Target::at_most(2.0)),
    (
        "netfilter_ns_per_pkt",
        "ratio_to_floor",
        Target::at_most(2.0),
    ),
    ("ringbuf_max_events_per_s", "value", Target::at_least(1e6)),
    ("user_cpu_pct", "worst", Target::at_most(2.0)),
    ("user_cpu_pct.rules_10k", "value", Target::at_most(2.0)),
    ("user_rss_mib", "worst", Target::at_most(40.0)),
];

/// The target of the metric at `path`, if it has one.
pub fn target_of(path: &str) -> Option<Target> {
    TARGETS.iter().find(|(p, _, _)| *p == path).map(|t| t.2)
}

/// One topology's end-to-end samples and in-path windows.
pub struct NetRun {
    /// What the topology is (netns::Net::describe).
    pub topology: String,
    pub e2e: Vec<Sample>,
    pub inpath: InPath,
}

pub struct Inputs<'a> {
    /// date, commit, kernel, machine (machine::describe).
    pub meta: Value,
    /// The run's settings (mode, rounds, durations...).
    pub config: Value,
    pub prog: &'a ProgCost,
    /// The veth pair: the default figures and the profiles.
    pub pair: &'a NetRun,
    /// client -> router -> server, or why it was not measured.
    pub router: Result<&'a NetRun, String>,
    /// startup::to_json.
    pub startup: Value,
    pub user: &'a UserCost,
    pub ringbuf: Value,
}

pub fn build(inp: &Inputs) -> Value {
    let pair = inp.pair;
    let mut report = json!({
        "schema_version": SCHEMA_VERSION,
        "meta": inp.meta,
        "config": inp.config,
        "frames": inp.prog.frames.iter().map(|(name, len)| json!({"name": name, "bytes": len})).collect::<Vec<_>>(),
        "test_run": {"repeat": inp.prog.repeat, "rounds": inp.prog.rounds},
        "hook_sets": e2e::SETS.iter().map(|s| (s.name.to_owned(), json!({"flags": s.flags.join(" "), "means": s.means}))).collect::<Map<_, _>>(),
        "topology": pair.topology,
        "xdp_ns_per_pkt": program_metric(inp.prog, "xdp"),
        "tc_ns_per_pkt": program_metric(inp.prog, "tc"),
        "netfilter_ns_per_pkt": program_metric(inp.prog, "netfilter"),
        "floor_ns_per_pkt": floor_metric(inp.prog),
        "tcp_throughput_ratio": tcp_metric(&pair.e2e, ""),
        "small_pkt_rate_ratio": small_pkt_metric(&pair.e2e, ""),
        "inpath_ns_per_pkt": inpath_figure(&pair.inpath, ALL, "inpath_ns_per_pkt"),
        "startup_ms": inp.startup,
        "ringbuf_max_events_per_s": inp.ringbuf,
        "user_cpu_pct": user_metric(inp.user, "% of one core", |r| (r.cpu_pct, r.cpu_samples.clone())),
        "user_rss_mib": user_metric(inp.user, "MiB", |r| (r.hwm_mib, r.rss_samples.clone())),
        "inpath_programs": inpath_metric(&inp.user.inpath),
    });
    report["user_cpu_pct"]["rules_10k"] = rules_metric(&inp.user.rules);
    report["profiles"] = profiles(&report, pair);
    report["router"] = match &inp.router {
        Ok(r) => json!({
            "topology": r.topology,
            "flags": "(defaults)",
            "inpath_ns_per_pkt": inpath_figure(&r.inpath, ALL, "router.inpath_ns_per_pkt"),
            "small_pkt_rate_ratio": small_pkt_metric(&r.e2e, "router."),
            "tcp_throughput_ratio": tcp_metric(&r.e2e, "router."),
        }),
        Err(reason) => json!({"reason": reason}),
    };
    report["targets"] = targets(&report);
    report
}

fn inpath_figure(inpath: &InPath, set: &str, path: &str) -> Value {
    let floor = inpath.floor.as_ref().map_err(Clone::clone);
    let mut f = perpkt::figure(inpath.window(set), floor, target_of(path));
    f["load"] = json!(format!("64-byte UDP from {FLOWS} flows"));
    f
}

/// `profiles.<name>`: each profile's in-path cost and its two end-to-end figures (the
/// default profile's are the default run's).
fn profiles(report: &Value, pair: &NetRun) -> Value {
    PROFILES
        .iter()
        .map(|&(profile, set)| {
            let flags = e2e::set(set).map_or(String::new(), |s| s.flags.join(" "));
            let path = |metric: &str| {
                if profile == DEFAULT_PROFILE {
                    metric.to_owned()
                } else {
                    format!("profiles.{profile}.{metric}")
                }
            };
            let ratio = |metric: &str| {
                let mut f = report[metric]["sets"][set].clone();
                f["value"] = f["ratio"].clone();
                f
            };
            let entry = json!({
                "set": set,
                "flags": if flags.is_empty() { "(defaults)".to_owned() } else { flags },
                "default": profile == DEFAULT_PROFILE,
                "inpath_ns_per_pkt": inpath_figure(&pair.inpath, set, &path("inpath_ns_per_pkt")),
                "small_pkt_rate_ratio": ratio("small_pkt_rate_ratio"),
                "tcp_throughput_ratio": ratio("tcp_throughput_ratio"),
            });
            (profile.to_owned(), entry)
        })
        .collect::<Map<_, _>>()
        .into()
}

fn num(v: Option<f64>, digits: i32) -> Value {
    v.map_or(Value::Null, |v| json!(round(v, digits)))
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// netpost's programs of one kind, per frame, next to the floor of that kind: `value` is the
/// highest per-frame median, `ratio_to_floor` the highest per-frame ratio (the target says
/// *each* program, so the worst frame counts). A frame's ratio is the median of the per-round
/// ratios: a program and its floor ran back to back in each round, so a slow round (another
/// tenant on the VM) slows both.
fn program_metric(prog: &ProgCost, kind: &str) -> Value {
    let floor = prog.programs.iter().find(|p| p.kind == kind && p.floor);
    let ours: Vec<_> = prog
        .programs
        .iter()
        .filter(|p| p.kind == kind && !p.floor)
        .collect();
    if ours.is_empty() {
        let reason = prog
            .netfilter_error
            .clone()
            .unwrap_or_else(|| format!("no {kind} program was measured"));
        return json!({"unit": "ns", "value": null, "ratio_to_floor": null, "reason": reason, "programs": {}});
    }
    let (mut worst_ns, mut worst_ratio) = (None, None);
    let mut programs = Map::new();
    for p in ours {
        let mut frames = Map::new();
        for (frame, _) in &prog.frames {
            let Some(samples) = p.samples.get(frame) else {
                continue;
            };
            let med = median(samples);
            let floor_samples = floor.and_then(|f| f.samples.get(frame));
            let floor_med = floor_samples.and_then(|f| median(f));
            let r = floor_samples.and_then(|f| median(&paired_ratios(samples, f)));
            worst_ns = max(worst_ns, med);
            worst_ratio = max(worst_ratio, r);
            frames.insert(
                frame.clone(),
                json!({
                    "median": num(med, 1),
                    "min": num(min(samples), 1),
                    "floor_median": num(floor_med, 1),
                    "ratio_to_floor": num(r, 2),
                    "samples": samples,
                }),
            );
        }
        programs.insert(p.name.clone(), Value::Object(frames));
    }
    json!({
        "unit": "ns",
        "value": num(worst_ns, 1),
        "ratio_to_floor": num(worst_ratio, 2),
        "floor_program": floor.map(|f| f.name.clone()),
        "programs": programs,
    })
}

/// The empty programs: per frame, and per kind the median over all their samples.
fn floor_metric(prog: &ProgCost) -> Value {
    let mut programs = Map::new();
    let mut by_kind = Map::new();
    let mut worst = None;
    for p in prog.programs.iter().filter(|p| p.floor) {
        let mut frames = Map::new();
        for (frame, _) in &prog.frames {
            if let Some(samples) = p.samples.get(frame) {
                let med = median(samples);
                worst = max(worst, med);
                frames.insert(
                    frame.clone(),
                    json!({"median": num(med, 1), "samples": samples}),
                );
            }
        }
        let all: Vec<f64> = p.samples.values().flatten().copied().collect();
        by_kind.insert(p.kind.clone(), num(median(&all), 1));
        programs.insert(p.name.clone(), Value::Object(frames));
    }
    json!({"unit": "ns", "value": num(worst, 1), "by_kind": by_kind, "programs": programs})
}

/// The path (for its target) of one hook set's figure of `metric`: the default set's is the
/// metric itself, a profile's sits under `profiles.<name>`; `prefix` is the topology's.
fn set_path(prefix: &str, set: &str, metric: &str) -> String {
    if set == ALL {
        format!("{prefix}{metric}")
    } else if PROFILES.iter().any(|(_, s)| *s == set) {
        format!("{prefix}profiles.{set}.{metric}")
    } else {
        format!("{prefix}sets.{set}.{metric}")
    }
}

/// With/without of one end-to-end measure for every hook set; `value` is the ratio with
/// the default flags. A set's `ratio` is the median of its paired ratios: each measurement
/// divided by the baseline measured just before it (e2e runs them in that order), which
/// cancels the machine's drift between rounds; with its IQR and whether the spread makes it
/// inconclusive (figure.rs). `ratio_of_medians` is given beside it.
fn e2e_metric(
    samples: &[Sample],
    unit: &str,
    key: &str,
    prefix: &str,
    pick: impl Fn(&Sample) -> f64,
) -> Value {
    let base: Vec<f64> = samples
        .iter()
        .filter(|s| s.set == BASELINE)
        .map(&pick)
        .collect();
    let base_med = median(&base);
    let sets: Map<String, Value> = e2e::SETS
        .iter()
        .map(|set| {
            let (mut with, mut before) = (Vec::new(), Vec::new());
            let mut last_base = None;
            for s in samples {
                if s.set == BASELINE {
                    last_base = Some(pick(s));
                } else if s.set == set.name {
                    with.push(pick(s));
                    before.push(last_base.unwrap_or(f64::NAN));
                }
            }
            if with.is_empty() {
                let entry = json!({"ratio": null, "reason": "not measured in this run"});
                return (set.name.to_owned(), entry);
            }
            let target = target_of(&set_path(prefix, set.name, key));
            let mut entry = figure::paired(&with, &before, &base, target);
            let med = median(&with);
            entry["ratio"] = entry["value"].take();
            entry["median"] = num(med, 3);
            entry["ratio_of_medians"] = num(ratio(med, base_med), 3);
            entry["samples"] = json!(with);
            entry.as_object_mut().map(|e| e.remove("value"));
            (set.name.to_owned(), entry)
        })
        .collect();
    let all = &sets[ALL];
    json!({
        "unit": "ratio",
        "value": all["ratio"],
        "iqr": all["iqr"],
        "pairs": all["pairs"],
        "inconclusive": all["inconclusive"],
        "inconclusive_why": all.get("inconclusive_why").cloned().unwrap_or_else(|| all["reason"].clone()),
        "hook_set": ALL,
        "measure_unit": unit,
        "baseline": {
            "median": num(base_med, 3),
            "samples": base,
            "spread": num(figure::baseline_noise(&base), 3),
        },
        "sets": sets,
    })
}

fn tcp_metric(samples: &[Sample], prefix: &str) -> Value {
    e2e_metric(samples, "Gbit/s", "tcp_throughput_ratio", prefix, |s| {
        s.tcp_bps / 1e9
    })
}

fn small_pkt_metric(samples: &[Sample], prefix: &str) -> Value {
    let key = "small_pkt_rate_ratio";
    let mut m = e2e_metric(samples, "packets/s received", key, prefix, |s| {
        s.udp.received_pps
    });
    // What the generator managed to send, beside what arrived.
    let sent = e2e_metric(samples, "packets/s sent", key, prefix, |s| s.udp.sent_pps);
    m["sent"] = json!({"baseline": sent["baseline"], "sets": sent["sets"]});
    m["flows"] = json!(FLOWS);
    m
}

/// TUI off is the headline `value`; `worst` (what the target checks) covers TUI on too.
fn user_metric(user: &UserCost, unit: &str, pick: impl Fn(&Run) -> (f64, Vec<f64>)) -> Value {
    let one = |run: &Result<Run, String>| match run {
        Ok(r) => {
            let (value, samples) = pick(r);
            json!({
                "value": round(value, 2),
                "steady": num(median(&samples), 2),
                "samples": samples.iter().map(|v| round(*v, 2)).collect::<Vec<_>>(),
            })
        }
        Err(reason) => json!({"value": null, "samples": [], "reason": reason}),
    };
    let (off, on) = (one(&user.tui_off), one(&user.tui_on));
    let worst = max(off["value"].as_f64(), on["value"].as_f64());
    json!({
        "unit": unit,
        "value": off["value"],
        "samples": off["samples"],
        "steady": off["steady"],
        "worst": num(worst, 2),
        "tui_on": on,
        "interval_ms": 1000,
        "window_s": user.secs,
        "load": format!("small-packet UDP from {} flows (one socket each, sendmmsg) through the watched veth", user.flows),
        "flows": user.flows,
        "flows_active": match &user.flows_active {
            Ok(n) => json!(n),
            Err(_) => Value::Null,
        },
        "flows_active_reason": user.flows_active.as_ref().err(),
    })
}

/// netpost's CPU with a 10,000-rule ruleset whose INPUT drops all the time, and what it made
/// of the ruleset (its attributed drops against the rule's own counter).
fn rules_metric(run: &Result<RulesRun, String>) -> Value {
    match run {
        Ok(r) => json!({
            "value": round(r.run.cpu_pct, 2),
            "steady": num(median(&r.run.cpu_samples), 2),
            "samples": r.run.cpu_samples.iter().map(|v| round(*v, 2)).collect::<Vec<_>>(),
            "rss_mib": round(r.run.hwm_mib, 1),
            "window_s": r.window_s,
            "rules": RULES,
            "ruleset_rules": r.ruleset_rules,
            "dropped": r.dropped,
            "attributed_drops": r.attributed,
            "rule_counter": r.rule_counter,
            "read_every_ms": r.read_every_ms,
            "read_cpu_us": r.read_cpu_us,
            "ruleset": format!("one inet input chain of {RULES} rules with counters, the last dropping 1% of the load"),
        }),
        Err(reason) => json!({"value": null, "samples": [], "reason": reason}),
    }
}

/// netpost's programs on the real path during the TUI-off run (every hook attached, the
/// small-packet flood running): the kernel's run count and run time per program name.
fn inpath_metric(raw: &Result<Value, String>) -> Value {
    let raw = match raw {
        Ok(raw) => raw,
        Err(reason) => return json!({"unit": "ns per run", "programs": {}, "reason": reason}),
    };
    let secs = raw["secs"].as_f64().filter(|s| *s > 0.0).unwrap_or(1.0);
    let programs: Map<String, Value> = raw["programs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, p)| {
            // Keyed by the kernel's name for the program, as this key always was.
            let name = p["kernel_name"].as_str().unwrap_or(name);
            let runs = p["runs"].as_f64().unwrap_or(0.0);
            let ns = p["run_ns"].as_f64().unwrap_or(0.0);
            let per_run = (runs > 0.0).then(|| ns / runs);
            let entry = json!({
                "runs_per_s": round(runs / secs, 1),
                "ns_per_run": num(per_run, 1),
                "cpu_pct": round(ns / secs / 1e7, 2),
                "runs": runs,
                "run_ns": ns,
            });
            (name.to_owned(), entry)
        })
        .collect();
    let total = raw["total_run_ns"].as_f64().unwrap_or(0.0);
    json!({
        "unit": "ns per run",
        "window_s": secs,
        "total_cpu_pct": round(total / secs / 1e7, 2),
        "programs": programs,
        "source": "kernel BPF run-time statistics (BPF_ENABLE_STATS) for the programs netpost holds, \
                   during the TUI-off userspace run; names as the kernel keeps them (15 characters)",
    })
}

/// The metric at a dotted path.
fn at<'a>(report: &'a Value, path: &str) -> &'a Value {
    report
        .pointer(&format!("/{}", path.replace('.', "/")))
        .unwrap_or(&Value::Null)
}

fn targets(report: &Value) -> Value {
    TARGETS
        .iter()
        .map(|&(path, field, target)| {
            let metric = at(report, path);
            let value = metric[field].as_f64();
            let mut described = target.describe();
            if field == "ratio_to_floor" {
                described.push_str("x floor");
            }
            (
                path.to_owned(),
                json!({
                    "target": described,
                    "checks": field,
                    "value": value,
                    "met": value.map(|v| target.met(v)),
                    "inconclusive": metric.get("inconclusive"),
                }),
            )
        })
        .collect::<Map<_, _>>()
        .into()
}

#[cfg(test)]
pub mod tests {
    use std::collections::BTreeMap;

    use super::super::progcost::Program;
    use super::super::traffic::UdpRate;
    use super::*;

    fn program(name: &str, kind: &str, floor: bool, ns: &[f64]) -> Program {
        let samples = BTreeMap::from([("udp_64".to_owned(), ns.to_vec())]);
        Program {
            name: name.into(),
            kind: kind.into(),
            floor,
            samples,
        }
    }

    pub fn sample_report() -> Value {
        let prog = ProgCost {
            repeat: 1000,
            rounds: 3,
            frames: vec![("udp_64".into(), 106)],
            programs: vec![
                program("netpost_xdp", "xdp", false, &[60.0, 50.0, 55.0]),
                program("netpost_floor_xdp", "xdp", true, &[25.0, 20.0, 30.0]),
                program("netpost_tc_in", "tc", false, &[40.0, 40.0, 40.0]),
                program("netpost_floor_tc", "tc", true, &[30.0, 30.0, 30.0]),
            ],
            netfilter_error: Some("no netfilter test run".into()),
        };
        let sample = |set, gbit: f64, pps| Sample {
            set,
            tcp_bps: gbit * 1e9,
            udp: UdpRate {
                sent_pps: pps * 1.1,
                received_pps: pps,
            },
        };
        let e2e = vec![
            sample(BASELINE, 10.0, 1e6),
            sample("all", 9.8, 0.8e6),
            sample(BASELINE, 12.0, 1e6),
            sample("tc", 12.0, 0.95e6),
            sample(BASELINE, 10.0, 1e6),
            sample("counters", 10.0, 0.96e6),
        ];
        let user = UserCost {
            secs: 3,
            flows: 10_000,
            flows_active: Ok(10_002),
            tui_off: Ok(Run {
                cpu_pct: 0.5,
                cpu_samples: vec![0.0, 1.0, 0.5],
                rss_samples: vec![10.0, 10.0, 10.5],
                hwm_mib: 11.0,
            }),
            tui_on: Err("no tmux".into()),
            rules: Err("not measured".into()),
            inpath: Ok(json!({"secs": 2.0, "total_run_ns": 4e8,
                "programs": {"netpost_xdp": {"runs": 1000, "run_ns": 1.5e5},
                             "netpost_kfree_skb": {"kernel_name": "netpost_kfree_s", "runs": 0, "run_ns": 0}}})),
        };
        let mut counters = perpkt::tests::window();
        counters["programs"]
            .as_object_mut()
            .unwrap()
            .remove("netpost_fib_lookup");
        let pair = NetRun {
            topology: "a veth pair".into(),
            e2e,
            inpath: InPath {
                windows: vec![
                    ("all", Ok(perpkt::tests::window())),
                    ("counters", Ok(counters)),
                    ("full", Err("netpost failed".into())),
                ],
                floor: Ok(perpkt::tests::floor()),
            },
        };
        let router = NetRun {
            topology: "client -> router -> server".into(),
            e2e: vec![sample(BASELINE, 8.0, 5e5), sample("all", 7.84, 4e5)],
            inpath: InPath {
                windows: vec![("all", Ok(perpkt::tests::window()))],
                floor: Err("no floor".into()),
            },
        };
        build(&Inputs {
            meta: json!({"commit": "abc"}),
            config: json!({"mode": "quick"}),
            prog: &prog,
            pair: &pair,
            router: Ok(&router),
            startup: super::super::startup::to_json(&super::super::startup::tests::sample()),
            user: &user,
            ringbuf: super::super::ringbuf::tests::sample(),
        })
    }

    #[test]
    fn every_documented_key_is_there_with_value_and_samples() {
        let r = sample_report();
        for key in KEYS {
            let m = &r[key];
            assert!(m.is_object(), "{key} missing");
            assert!(m.get("value").is_some(), "{key}.value missing");
            assert!(m.get("unit").is_some(), "{key}.unit missing");
        }
        assert_eq!(r["schema_version"], 1);
        assert!(r["user_cpu_pct"]["samples"].is_array());
        assert!(r["ringbuf_max_events_per_s"]["samples"].is_array());
        assert_eq!(
            r["xdp_ns_per_pkt"]["programs"]["netpost_xdp"]["udp_64"]["samples"],
            json!([60.0, 50.0, 55.0])
        );
        assert_eq!(
            r["tcp_throughput_ratio"]["baseline"]["samples"],
            json!([10.0, 12.0, 10.0])
        );
        for group in [
            "profiles.counters",
            "profiles.standard",
            "profiles.full",
            "router",
        ] {
            for key in [
                "inpath_ns_per_pkt",
                "small_pkt_rate_ratio",
                "tcp_throughput_ratio",
            ] {
                let m = at(&r, &format!("{group}.{key}"));
                assert!(m.get("value").is_some(), "{group}.{key}.value missing");
            }
        }
    }

    #[test]
    fn medians_and_ratios_are_derived_from_the_samples() {
        let r = sample_report();
        let xdp = &r["xdp_ns_per_pkt"];
        assert_eq!(xdp["value"], 55.0);
        assert_eq!(
            xdp["programs"]["netpost_xdp"]["udp_64"]["floor_median"],
            25.0
        );
        // Per-round ratios 60/25, 50/20, 55/30: median 2.4.
        assert_eq!(xdp["ratio_to_floor"], 2.4);
        assert_eq!(xdp["programs"]["netpost_xdp"]["udp_64"]["min"], 50.0);
        assert_eq!(r["floor_ns_per_pkt"]["by_kind"]["tc"], 30.0);
        // `all` ran right after a 10 Gbit/s baseline; the baseline median is 10.
        assert_eq!(r["tcp_throughput_ratio"]["value"], 0.98);
        assert_eq!(
            r["tcp_throughput_ratio"]["sets"]["all"]["ratio_of_medians"],
            0.98
        );
        // One pair is no figure: the median stands, marked inconclusive.
        assert_eq!(r["tcp_throughput_ratio"]["pairs"], 1);
        assert_eq!(r["tcp_throughput_ratio"]["iqr"], json!([0.98, 0.98]));
        assert_eq!(r["tcp_throughput_ratio"]["inconclusive"], true);
        // Baseline over baseline: 1.2, 0.833.
        assert_eq!(r["tcp_throughput_ratio"]["baseline"]["spread"], 0.183);
        assert_eq!(
            r["tcp_throughput_ratio"]["sets"]["tc"]["paired_ratios"],
            json!([1.0])
        );
        assert_eq!(r["small_pkt_rate_ratio"]["sets"]["tc"]["ratio"], 0.95);
        assert_eq!(r["small_pkt_rate_ratio"]["value"], 0.8);
        assert_eq!(r["user_rss_mib"]["value"], 11.0);
        assert_eq!(r["user_cpu_pct"]["flows"], 10_000);
        assert_eq!(r["user_cpu_pct"]["flows_active"], 10_002);
    }

    #[test]
    fn inpath_costs_per_run_and_share_of_a_core() {
        let r = sample_report();
        let p = &r["inpath_programs"];
        assert_eq!(p["programs"]["netpost_xdp"]["ns_per_run"], 150.0);
        assert_eq!(p["programs"]["netpost_xdp"]["runs_per_s"], 500.0);
        assert_eq!(p["programs"]["netpost_kfree_s"]["ns_per_run"], Value::Null);
        assert_eq!(p["total_cpu_pct"], 20.0);
    }

    #[test]
    fn targets_say_met_missed_or_unknown() {
        let t = &sample_report()["targets"];
        assert_eq!(t["tcp_throughput_ratio"]["met"], true);
        assert_eq!(t["small_pkt_rate_ratio"]["met"], false);
        assert_eq!(t["xdp_ns_per_pkt"]["met"], false);
        assert_eq!(t["tc_ns_per_pkt"]["met"], true);
        assert_eq!(t["tc_ns_per_pkt"]["target"], "<= 2x floor");
        assert_eq!(
            t["netfilter_ns_per_pkt"]["met"],
            Value::Null,
            "not measured"
        );
        assert_eq!(t["ringbuf_max_events_per_s"]["met"], true);
        assert_eq!(t["user_cpu_pct"]["met"], true);
        assert_eq!(t["user_rss_mib"]["met"], true);
        // perpkt's sample window: 425 ns per packet; counters without the route lookup: 300.
        assert_eq!(t["inpath_ns_per_pkt"]["value"], 425.0);
        assert_eq!(t["inpath_ns_per_pkt"]["checks"], "total");
        assert_eq!(t["inpath_ns_per_pkt"]["met"], false);
        assert_eq!(t["profiles.counters.inpath_ns_per_pkt"]["value"], 300.0);
        assert_eq!(t["profiles.counters.small_pkt_rate_ratio"]["value"], 0.96);
        assert_eq!(t["profiles.counters.small_pkt_rate_ratio"]["met"], true);
        assert_eq!(
            t["profiles.counters.small_pkt_rate_ratio"]["inconclusive"],
            true
        );
        assert_eq!(t["router.small_pkt_rate_ratio"]["value"], 0.8);
        assert_eq!(t["router.tcp_throughput_ratio"]["met"], true);
        assert_eq!(t["startup_ms"]["value"], 600.0);
        assert_eq!(t["startup_ms"]["met"], false);
        assert_eq!(t["startup_ms"]["inconclusive"], Value::Null);
        assert_eq!(
            TARGETS.iter().filter(|t| target_of(t.0).is_some()).count(),
            TARGETS.len()
        );
    }

    #[test]
    fn profiles_carry_their_sets_figures() {
        let r = sample_report();
        let p = &r["profiles"];
        assert_eq!(p["standard"]["default"], true);
        assert_eq!(p["standard"]["flags"], "(defaults)");
        assert_eq!(p["standard"]["small_pkt_rate_ratio"]["value"], 0.8);
        assert_eq!(p["standard"]["inpath_ns_per_pkt"]["total"], 425.0);
        assert_eq!(p["counters"]["flags"], "--profile counters");
        assert_eq!(p["counters"]["tcp_throughput_ratio"]["value"], 1.0);
        assert_eq!(
            p["counters"]["tcp_throughput_ratio"]["paired_ratios"],
            json!([1.0])
        );
        assert_eq!(p["full"]["small_pkt_rate_ratio"]["value"], Value::Null);
        assert_eq!(
            p["full"]["small_pkt_rate_ratio"]["reason"],
            "not measured in this run"
        );
        assert_eq!(p["full"]["inpath_ns_per_pkt"]["reason"], "netpost failed");
    }

    #[test]
    fn the_router_case_has_the_same_keys() {
        let r = &sample_report()["router"];
        assert_eq!(r["topology"], "client -> router -> server");
        assert_eq!(r["tcp_throughput_ratio"]["value"], 0.98);
        assert_eq!(r["small_pkt_rate_ratio"]["flows"], 10_000);
        // No floor: nothing subtracted, and said so.
        assert_eq!(r["inpath_ns_per_pkt"]["total"], 530.0);
        assert!(
            r["inpath_ns_per_pkt"]["inconclusive_why"]
                .as_str()
                .unwrap()
                .contains("no floor was measured")
        );
    }

    #[test]
    fn a_missing_measurement_keeps_its_key_with_a_reason() {
        let r = sample_report();
        let nf = &r["netfilter_ns_per_pkt"];
        assert_eq!(nf["value"], Value::Null);
        assert_eq!(nf["reason"], "no netfilter test run");
        assert_eq!(r["user_cpu_pct"]["tui_on"]["reason"], "no tmux");
    }
}
