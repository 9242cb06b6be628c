//! The sections on what each profile costs: the profiles side by side, their programs' cost
//! per received packet, and start-up.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::{fmt, ratio_cell};

/// The columns of the cost tables: (title, the object holding that run's figures).
fn runs(r: &Value) -> Vec<(String, &Value)> {
    let mut cols: Vec<(String, &Value)> = ["counters", "standard", "full"]
        .iter()
        .map(|p| {
            let f = &r["profiles"][p];
            let title = if f["default"] == true {
                format!("{p} (default)")
            } else {
                (*p).to_owned()
            };
            (title, f)
        })
        .collect();
    if r["router"]["inpath_ns_per_pkt"].is_object() {
        cols.push(("router (default)".to_owned(), &r["router"]));
    }
    cols
}

fn ns_cell(f: &Value) -> String {
    let Some(v) = f["total"].as_f64() else {
        return "n/a".to_owned();
    };
    let iqr = match (f["iqr"][0].as_f64(), f["iqr"][1].as_f64()) {
        (Some(q1), Some(q3)) => format!(" [{q1:.0}, {q3:.0}]"),
        _ => String::new(),
    };
    let unsure = if f["inconclusive"] == true { " ?" } else { "" };
    format!("{v:.0}{iqr}{unsure}")
}

pub fn profiles(md: &mut String, r: &Value) {
    let _ = writeln!(
        md,
        "## What each profile costs\n\n64-byte UDP from {} flows through the watched interface. \
         In-path: ns per received packet of all netpost's programs together (above the empty \
         program's run time at the same hooks), with the IQR over the window's steps. Ratios: \
         with netpost over without, median of the pairs [IQR].\n",
        r["small_pkt_rate_ratio"]["flows"]
    );
    let _ = writeln!(
        md,
        "| run | netpost flags | in-path ns/pkt | 64 B UDP rate ratio | TCP throughput ratio |\n|---|---|---|---|---|"
    );
    for (title, f) in runs(r) {
        let _ = writeln!(
            md,
            "| {title} | {} | {} | {} | {} |",
            f["flags"].as_str().unwrap_or("?"),
            ns_cell(&f["inpath_ns_per_pkt"]),
            ratio_cell(&f["small_pkt_rate_ratio"], "value"),
            ratio_cell(&f["tcp_throughput_ratio"], "value"),
        );
    }
    md.push('\n');
}

pub fn inpath(md: &mut String, r: &Value) {
    let cols = runs(r);
    let _ = writeln!(
        md,
        "## On the packet path\n\nEach program's run time per received packet (runs per packet \
         x (ns per run - the floor's)), from the kernel's run-time statistics over {} s of the \
         load; the floor is the empty program of the same kind attached at the same hooks, which \
         the statistics' clock reads cost too.\n",
        fmt(&r["inpath_ns_per_pkt"]["window_s"], 0)
    );
    let names: BTreeSet<&String> = cols
        .iter()
        .flat_map(|(_, f)| {
            f["inpath_ns_per_pkt"]["programs"]
                .as_object()
                .into_iter()
                .flatten()
        })
        .map(|(n, _)| n)
        .collect();
    let titles: Vec<&str> = cols.iter().map(|(t, _)| t.as_str()).collect();
    let _ = writeln!(md, "| program | {} |", titles.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(cols.len()));
    for name in names {
        let cells: Vec<String> = cols
            .iter()
            .map(|(_, f)| {
                let d = &f["inpath_ns_per_pkt"]["detail"][name];
                match d["ns_per_pkt"].as_f64() {
                    Some(ns) if d["runs_per_pkt"].as_f64().unwrap_or(0.0) > 0.0 => format!(
                        "{ns:.0} ({} x {} ns)",
                        fmt(&d["runs_per_pkt"], 2),
                        fmt(&d["ns_per_run"], 0)
                    ),
                    Some(_) => "0".to_owned(),
                    None => "-".to_owned(),
                }
            })
            .collect();
        let _ = writeln!(md, "| `{name}` | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = cols
        .iter()
        .map(|(_, f)| ns_cell(&f["inpath_ns_per_pkt"]))
        .collect();
    let _ = writeln!(md, "| **total** | {} |", totals.join(" | "));
    let floors: Vec<String> = cols
        .iter()
        .map(|(_, f)| {
            let fl = &f["inpath_ns_per_pkt"]["floors"];
            let kinds: Vec<String> = fl
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k} {}", fmt(&v["ns_per_run"], 0)))
                .collect();
            if kinds.is_empty() {
                "n/a".to_owned()
            } else {
                kinds.join(", ")
            }
        })
        .collect();
    let _ = writeln!(md, "| floors, ns per run | {} |", floors.join(" | "));
    let rates: Vec<String> = cols
        .iter()
        .map(|(_, f)| {
            f["inpath_ns_per_pkt"]["received_per_s"]
                .as_f64()
                .map_or("n/a".to_owned(), |v| format!("{:.0}k", v / 1e3))
        })
        .collect();
    let _ = writeln!(md, "| received pkt/s | {} |", rates.join(" | "));
    for (title, f) in &cols {
        if let Some(why) = f["inpath_ns_per_pkt"]["reason"].as_str() {
            let _ = writeln!(md, "\n{title}: not measured: {why}");
        }
    }
    md.push('\n');
}

pub fn startup(md: &mut String, r: &Value) {
    let s = &r["startup_ms"];
    let _ = writeln!(md, "## Start-up\n");
    if let Some(why) = s["reason"].as_str() {
        let _ = writeln!(md, "Not measured: {why}\n");
        return;
    }
    let b = &s["breakdown"];
    let _ = writeln!(
        md,
        "From exec to the \"watching\" line, default flags: median {} ms of {} starts \
         (samples {}). Where it goes (medians): exec to the first program load {} ms (of which \
         parsing the kernel BTF: netpost {} ms, aya {} ms), the program loads {} ms, the last \
         load to \"watching\" (its verification, attaching, first reads) {} ms.\n",
        fmt(&s["value"], 0),
        s["samples"].as_array().map_or(0, Vec::len),
        s["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| fmt(v, 0))
            .collect::<Vec<_>>()
            .join(", "),
        fmt(&b["exec_to_first_load_ms"], 0),
        fmt(&b["btf_parse_ms"]["netpost"], 0),
        fmt(&b["btf_parse_ms"]["aya"], 0),
        fmt(&b["loads_ms"], 0),
        fmt(&b["last_load_to_watching_ms"], 0),
    );
    let loads: Vec<String> = b["loads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let gap = l["gap_ms"]
                .as_f64()
                .map_or_else(|| "last".to_owned(), |g| format!("{g:.0}"));
            let insns = l["verified_insns"]
                .as_u64()
                .map(|n| format!(" ({n} insns verified)"))
                .unwrap_or_default();
            format!("`{}` {gap}{insns}", l["name"].as_str().unwrap_or("?"))
        })
        .collect();
    if loads.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "Program loads in order, ms from each to the next (its verification and what netpost \
         did in between): {}. The last one's verification is in the last phase.\n",
        loads.join(", ")
    );
}
