//! report.md: the report.json a person reads, rendered from the JSON itself so the two never
//! disagree. `cost` has the sections on what each profile costs.
mod cost;

use std::fmt::Write as _;

use serde_json::Value;

use super::e2e::{BASELINE, FLOORS, SETS};
use super::report::TARGETS;
use super::usercost::RULES;

fn fmt(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

fn met(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    }
}

/// A ratio figure: `0.912 [0.901, 0.930]`, with `?` when the spread makes it inconclusive.
fn ratio_cell(f: &Value, value_key: &str) -> String {
    let Some(v) = f[value_key].as_f64() else {
        return "n/a".to_owned();
    };
    let iqr = match (f["iqr"][0].as_f64(), f["iqr"][1].as_f64()) {
        (Some(q1), Some(q3)) => format!(" [{q1:.3}, {q3:.3}]"),
        _ => String::new(),
    };
    let unsure = if f["inconclusive"] == true { " ?" } else { "" };
    format!("{v:.3}{iqr}{unsure}")
}

pub fn render(r: &Value) -> String {
    let mut md = String::new();
    header(&mut md, r);
    targets(&mut md, r);
    cost::profiles(&mut md, r);
    cost::inpath(&mut md, r);
    cost::startup(&mut md, r);
    programs(&mut md, r);
    end_to_end(&mut md, r);
    events(&mut md, r);
    userspace(&mut md, r);
    inpath(&mut md, r);
    md
}

fn events(md: &mut String, r: &Value) {
    let rb = &r["ringbuf_max_events_per_s"];
    let _ = writeln!(md, "## Event pipeline\n");
    let _ = writeln!(
        md,
        "`ringbuf_max_events_per_s`: {}{}\n",
        fmt(&rb["value"], 0),
        rb["reason"]
            .as_str()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default()
    );
    let Some(curve) = rb["loss_curve"].as_array().filter(|c| !c.is_empty()) else {
        return;
    };
    let _ = writeln!(
        md,
        "A producer program submits flow events to netpost's ring buffer ({} KiB, {}-byte \
         events) through BPF_PROG_TEST_RUN at each target rate for a fixed time on CPU 0, while \
         netpost's own reader, woken by the kernel as in `netpost`, drains it on CPU 1. The \
         value is the median over sweeps of the highest rate drained with zero loss (samples: \
         {}). Streaming every event as JSON (`--events`) to a discarding sink: {} events/s \
         without loss.{}\n",
        rb["ring_bytes"].as_u64().unwrap_or(0) / 1024,
        rb["event_bytes"],
        rb["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| fmt(v, 0))
            .collect::<Vec<_>>()
            .join(", "),
        fmt(&rb["streamed"]["value"], 0),
        if rb["producer_limited"] == true {
            " The producer fell short of the highest target without any loss: the pipeline's \
             limit is above what it could produce."
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| sweep | target/s | produced/s | drained/s | lost | loss % |\n|---|---|---|---|---|---|"
    );
    for step in curve {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            step["sweep"],
            step["target_per_s"],
            fmt(&step["produced_per_s"], 0),
            fmt(&step["drained_per_s"], 0),
            step["lost"],
            fmt(&step["loss_pct"], 2)
        );
    }
    md.push('\n');
}

fn header(md: &mut String, r: &Value) {
    let meta = &r["meta"];
    let m = &meta["machine"];
    let commit = meta["commit"]
        .as_str()
        .map_or("unknown".to_owned(), |c| c.chars().take(12).collect());
    let dirty = if meta["dirty"] == true {
        " + uncommitted changes"
    } else {
        ""
    };
    let _ = writeln!(
        md,
        "# netpost benchmark ({})\n",
        r["config"]["mode"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        md,
        "{} · commit {commit}{dirty} · kernel {} · {} CPUs ({}) · {} MiB RAM · took {} s\n",
        meta["date"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        m["nproc"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["mem_total_mib"],
        fmt(&r["config"]["duration_s"], 0),
    );
}

fn targets(md: &mut String, r: &Value) {
    let _ = writeln!(
        md,
        "## Targets\n\n`?`: the spread makes the figure inconclusive (report.json says why).\n\n\
         | key | value | target | met |\n|---|---|---|---|"
    );
    for (key, field, _) in TARGETS {
        let t = &r["targets"][key];
        if t.is_null() {
            continue;
        }
        let value = match field {
            "ratio_to_floor" => t["value"]
                .as_f64()
                .map_or("n/a".to_owned(), |v| format!("{v:.2}x floor")),
            "total" => t["value"]
                .as_f64()
                .map_or("n/a".to_owned(), |v| format!("{v:.0} ns")),
            _ if key == "startup_ms" => t["value"]
                .as_f64()
                .map_or("n/a".to_owned(), |v| format!("{v:.0} ms")),
            _ => {
                // Rates are whole numbers; ratios and percentages get three decimals.
                let big = t["value"].as_f64().is_some_and(|v| v >= 1000.0);
                fmt(&t["value"], if big { 0 } else { 3 })
            }
        };
        let unsure = if t["inconclusive"] == true { " ?" } else { "" };
        let _ = writeln!(
            md,
            "| `{key}` | {value}{unsure} | {} | {} |",
            t["target"].as_str().unwrap_or("?"),
            met(&t["met"])
        );
    }
    md.push('\n');
}

fn programs(md: &mut String, r: &Value) {
    let _ = writeln!(
        md,
        "## Per-program cost\n\nBPF_PROG_TEST_RUN, ns per packet: median of {} test runs of {} repetitions each. \
         In parentheses the ratio to the empty program of the same type (the floor): the median of \
         the per-round ratios, as each program ran right next to its floor in every round.\n",
        r["test_run"]["rounds"], r["test_run"]["repeat"]
    );
    // One column per program (title, its per-frame results): netpost's, then the floors.
    let mut cols: Vec<(String, &Value)> = Vec::new();
    for key in ["xdp_ns_per_pkt", "tc_ns_per_pkt", "netfilter_ns_per_pkt"] {
        if let Some(progs) = r[key]["programs"].as_object() {
            for (name, frames) in progs {
                cols.push((format!("`{name}`"), frames));
            }
        }
    }
    let floors = r["floor_ns_per_pkt"]["programs"].as_object();
    for (name, frames) in floors.into_iter().flatten() {
        cols.push((format!("`{name}`"), frames));
    }
    let titles: Vec<&str> = cols.iter().map(|(t, _)| t.as_str()).collect();
    let _ = writeln!(md, "| frame | bytes | {} |", titles.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(cols.len()));
    for frame in r["frames"].as_array().into_iter().flatten() {
        let name = frame["name"].as_str().unwrap_or("?");
        let cells: Vec<String> = cols
            .iter()
            .map(|(_, frames)| {
                let f = &frames[name];
                match (f["median"].as_f64(), f["ratio_to_floor"].as_f64()) {
                    (Some(ns), Some(ratio)) => format!("{ns:.0} ({ratio:.1}x)"),
                    (Some(ns), None) => format!("{ns:.0}"),
                    _ => "-".to_owned(),
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "| {name} | {} | {} |",
            frame["bytes"],
            cells.join(" | ")
        );
    }
    if let Some(reason) = r["netfilter_ns_per_pkt"]["reason"].as_str() {
        let _ = writeln!(md, "\nNetfilter programs not measured: {reason}");
    } else {
        let _ = writeln!(
            md,
            "\nNetfilter runs use hook PREROUTING; a VLAN-tagged frame never reaches netfilter (`-`). \
             A packet runs both `netpost_nf_head` and `netpost_nf_tail` at every hook it passes."
        );
    }
    md.push('\n');
}

fn end_to_end(md: &mut String, r: &Value) {
    let _ = writeln!(
        md,
        "## End to end\n\nThrough {}; {} rounds of {} s per measurement, without netpost and with each \
         hook set interleaved (baseline, set, baseline, next set...). `ratio` is the median of \
         the ratios of each run to the baseline run just before it, with their interquartile \
         range; `?` marks a figure the spread makes inconclusive. TCP: iperf3, one stream. \
         Small packets: 64-byte UDP payloads from {} flows (a sendmmsg generator), counted \
         where they arrive.\n",
        r["topology"].as_str().unwrap_or("?"),
        r["config"]["rounds"],
        r["config"]["secs"],
        r["small_pkt_rate_ratio"]["flows"],
    );
    table(md, &r["tcp_throughput_ratio"], &r["small_pkt_rate_ratio"]);
    floors_note(md, r);
    let router = &r["router"];
    if let Some(why) = router["reason"].as_str() {
        let _ = writeln!(md, "\nRouter case not measured: {why}\n");
    } else if router.is_object() {
        let _ = writeln!(
            md,
            "\n### Router ({})\n",
            router["topology"].as_str().unwrap_or("?")
        );
        table(
            md,
            &router["tcp_throughput_ratio"],
            &router["small_pkt_rate_ratio"],
        );
    }
    let _ = writeln!(
        md,
        "\nEvery hook set also runs netpost's tracepoint programs (kfree_skb for drops, \
         fib_table_lookup for routes...) that its profile loads."
    );
    md.push('\n');
}

/// What the `floors` set says about the ratio targets: with nothing but empty programs at
/// netpost's attach points the traffic keeps that much, so no profile can keep more.
fn floors_note(md: &mut String, r: &Value) {
    let ratio = |metric: &str| r[metric]["sets"][FLOORS]["ratio"].as_f64();
    let (Some(udp), Some(tcp)) = (ratio("small_pkt_rate_ratio"), ratio("tcp_throughput_ratio"))
    else {
        return;
    };
    let _ = writeln!(
        md,
        "
`floors` is the ceiling: empty programs where netpost's default run attaches on a veth \
         (tc ingress and egress, a netfilter head and tail at each hook of both families) keep \
         {udp:.3} of the small-packet rate and {tcp:.3} of TCP throughput. What the attach \
         points cost (tcx, nf_hook_slow and an indirect call per program) is outside the \
         programs' run time, and no profile with these attach points keeps more than they do."
    );
}

/// One topology's baseline and hook sets (those measured).
fn table(md: &mut String, tcp: &Value, udp: &Value) {
    let _ = writeln!(
        md,
        "| hook set | netpost flags | TCP Gbit/s | ratio [IQR] | 64 B UDP kpkt/s | ratio [IQR] |\n|---|---|---|---|---|---|"
    );
    let kpps = |v: &Value| {
        v.as_f64()
            .map_or("n/a".to_owned(), |v| format!("{:.0}", v / 1e3))
    };
    let _ = writeln!(
        md,
        "| {BASELINE} | (not running) | {} | 1 | {} | 1 |",
        fmt(&tcp["baseline"]["median"], 2),
        kpps(&udp["baseline"]["median"])
    );
    for set in &SETS {
        let (t, u) = (&tcp["sets"][set.name], &udp["sets"][set.name]);
        if t["ratio"].is_null() && u["ratio"].is_null() {
            continue;
        }
        let flags = if set.floors {
            "(not netpost: empty programs at its hooks)".to_owned()
        } else if set.flags.is_empty() {
            "(defaults)".to_owned()
        } else {
            format!("`{}`", set.flags.join(" "))
        };
        let _ = writeln!(
            md,
            "| {} | {flags} | {} | {} | {} | {} |",
            set.name,
            fmt(&t["median"], 2),
            ratio_cell(t, "ratio"),
            kpps(&u["median"]),
            ratio_cell(u, "ratio")
        );
    }
    let range = |v: &Value, scale: f64| {
        let s: Vec<f64> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let (lo, hi) = (
            s.iter().copied().fold(f64::INFINITY, f64::min),
            s.iter().copied().fold(0.0, f64::max),
        );
        if s.is_empty() {
            "n/a".to_owned()
        } else {
            format!("{:.1}-{:.1}", lo / scale, hi / scale)
        }
    };
    let _ = writeln!(
        md,
        "\nThe baseline alone ranged {} Gbit/s and {} kpkt/s; one baseline run over the one \
         before it spread (IQR width) {} for TCP and {} for small packets: a figure closer \
         than that to its target (or to 1) is inconclusive.",
        range(&tcp["baseline"]["samples"], 1.0),
        range(&udp["baseline"]["samples"], 1e3),
        fmt(&tcp["baseline"]["spread"], 3),
        fmt(&udp["baseline"]["spread"], 3),
    );
}

fn userspace(md: &mut String, r: &Value) {
    let (cpu, rss) = (&r["user_cpu_pct"], &r["user_rss_mib"]);
    let _ = writeln!(
        md,
        "## Userspace cost\n\nnetpost at the default 1 s interval for {} s under {}; CPU from utime+stime, \
         peak RSS from VmHWM (reached while loading), steady RSS the median VmRSS once a second.\n",
        cpu["window_s"],
        cpu["load"].as_str().unwrap_or("load")
    );
    let _ = writeln!(
        md,
        "| view | CPU % of one core | peak RSS MiB | steady RSS MiB |\n|---|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| TUI off (`--no-tui`) | {} | {} | {} |",
        fmt(&cpu["value"], 2),
        fmt(&rss["value"], 1),
        fmt(&rss["steady"], 1)
    );
    let on = &cpu["tui_on"];
    match on["reason"].as_str() {
        Some(why) => {
            let _ = writeln!(
                md,
                "| TUI on | n/a | n/a | n/a |\n\nTUI on not measured: {why}"
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| TUI on (terminal in tmux) | {} | {} | {} |",
                fmt(&on["value"], 2),
                fmt(&rss["tui_on"]["value"], 1),
                fmt(&rss["tui_on"]["steady"], 1)
            );
        }
    }
    let rules = &cpu["rules_10k"];
    match rules["reason"].as_str() {
        Some(why) => {
            let _ = writeln!(md, "\nWith a {RULES}-rule ruleset: not measured: {why}");
        }
        None => {
            let _ = writeln!(
                md,
                "\nWith {} (TUI off, over {} s): {}% of one core, peak RSS {} MiB; netpost saw {} \
                 rules, IPv4 INPUT dropped {} and attributed {} to the rule (as of its last read of \
                 the rule counters), whose own counter says {} at the end (rule counters read \
                 every {} ms, {} us of CPU per read).",
                rules["ruleset"].as_str().unwrap_or("a large ruleset"),
                rules["window_s"],
                fmt(&rules["value"], 2),
                fmt(&rules["rss_mib"], 1),
                rules["ruleset_rules"],
                rules["dropped"],
                rules["attributed_drops"],
                rules["rule_counter"],
                rules["read_every_ms"],
                rules["read_cpu_us"],
            );
        }
    }
    let _ = writeln!(
        md,
        "\nnetpost's flow table held up to {} flows at once during the TUI-off run (its \
         `flows_active`){}.",
        cpu["flows_active"],
        cpu["flows_active_reason"]
            .as_str()
            .map(|w| format!(" (not read: {w})"))
            .unwrap_or_default()
    );
}

fn inpath(md: &mut String, r: &Value) {
    let p = &r["inpath_programs"];
    let _ = writeln!(md, "\n## Programs during the userspace run\n");
    if let Some(why) = p["reason"].as_str() {
        let _ = writeln!(md, "Not measured: {why}");
        return;
    }
    let _ = writeln!(
        md,
        "The kernel's run-time statistics of netpost's programs during the TUI-off run above \
         (every hook attached, {} s of the small-packet flood), busiest first. Timing each run \
         adds a little to it.\n",
        fmt(&p["window_s"], 0)
    );
    let _ = writeln!(
        md,
        "| program | runs/s | ns per run | % of one core |\n|---|---|---|---|"
    );
    let mut progs: Vec<(&String, &Value)> =
        p["programs"].as_object().into_iter().flatten().collect();
    progs.sort_by(|a, b| {
        b.1["cpu_pct"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a.1["cpu_pct"].as_f64().unwrap_or(0.0))
    });
    for (name, v) in progs {
        let _ = writeln!(
            md,
            "| `{name}` | {} | {} | {} |",
            fmt(
                &v["runs_per_s"],
                if v["runs_per_s"].as_f64().unwrap_or(0.0) < 100.0 {
                    1
                } else {
                    0
                }
            ),
            fmt(&v["ns_per_run"], 0),
            fmt(&v["cpu_pct"], 2)
        );
    }
    let _ = writeln!(md, "| total | | | {} |", fmt(&p["total_cpu_pct"], 2));
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample_report;
    use super::*;

    #[test]
    fn renders_every_section_from_the_json() {
        let md = render(&sample_report());
        for needle in [
            "## Targets",
            "| `tcp_throughput_ratio` | 0.980 ? | >= 0.97 | yes |",
            "| `inpath_ns_per_pkt` | 425 ns ? | <= 350 | **no** |",
            "| `profiles.counters.small_pkt_rate_ratio` | 0.960 ? | >= 0.95 | yes |",
            "| `startup_ms` | 600 ms | <= 400 | **no** |",
            "| counters | --profile counters | 300 [52, 58] ? | 0.960 [0.960, 0.960] ? | 1.000 [1.000, 1.000] ? |",
            "| full | --profile full | n/a | n/a | n/a |",
            "| `netpost_nf_head` | 250 (2.00 x 150 ns) | 250 (2.00 x 150 ns) | - | 300 (2.00 x 150 ns) |",
            "| floors, ns per run | netfilter 25, tc 40, xdp 30 |",
            "full: not measured: netpost failed",
            "median 600 ms of 3 starts (samples 500, 700, 600)",
            "`netpost_kfree_skb` 50, `netpost_xdp` 250 (900 insns verified), `netpost_tc_in` last",
            "### Router (client -> router -> server)",
            "| `tc_ns_per_pkt` | 1.33x floor | <= 2x floor | yes |",
            "| `ringbuf_max_events_per_s` | 2000000 | >= 1000000 | yes |",
            "| 1 | 2000000 | 2000000 | 2000000 | 5 | 0.00 |",
            "samples: 2000000, 1000000, 3000000",
            "| udp_64 | 106 | 55 (2.4x) |",
            "Netfilter programs not measured: no netfilter test run",
            "| baseline | (not running) | 10.00 | 1 | 1000 | 1 |",
            "| all | (defaults) | 9.80 | 0.980 [0.980, 0.980] ? | 800 | 0.800 [0.800, 0.800] ? |",
            "spread (IQR width) 0.183 for TCP",
            "TUI on not measured: no tmux",
            "held up to 10002 flows at once",
            "| `netpost_xdp` | 500 | 150 | 0.01 |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        assert!(!md.contains("is the ceiling"), "no floors set measured");
    }

    #[test]
    fn the_floors_set_is_shown_as_the_ceiling_of_every_profile() {
        let mut r = sample_report();
        r["small_pkt_rate_ratio"]["sets"][FLOORS] = serde_json::json!({"ratio": 0.875});
        r["tcp_throughput_ratio"]["sets"][FLOORS] = serde_json::json!({"ratio": 0.964});
        let md = render(&r);
        for needle in [
            "| floors | (not netpost: empty programs at its hooks) |",
            "keep 0.875 of the small-packet rate and 0.964 of TCP throughput",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }
}
