//! The event pipeline: runs `netpost-bench events` (a producer program filling netpost's
//! flow-event ring buffer at rising rates through BPF_PROG_TEST_RUN, netpost's own reader
//! draining it) several times, and turns the sweeps into `ringbuf_max_events_per_s`: the
//! median over sweeps of the highest rate drained with zero loss, and the loss curve.
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::stats::{median, round};
use super::{Config, Paths};

/// Target rates of one sweep, events/s.
const RATES: [u64; 5] = [500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000];

/// One sweep's output (netpost-bench events).
pub type Sweep = Value;

/// Measures the default reader and, once, the reader streaming JSON (`--events`); a failure
/// becomes the metric's `reason`.
pub fn measure(cfg: &Config, paths: &Paths) -> Value {
    let secs = if cfg.quick { 1.0 } else { 2.0 };
    let sweeps = if cfg.quick { 2 } else { 3 };
    let run = |streamed: bool| sweep(paths, secs, streamed);
    let plain: Result<Vec<Sweep>, String> = (0..sweeps)
        .map(|_| run(false).map_err(|e| format!("{e:#}")))
        .collect();
    let streamed = run(true).map_err(|e| format!("{e:#}"));
    metric(plain, streamed)
}

fn sweep(paths: &Paths, secs: f64, streamed: bool) -> anyhow::Result<Sweep> {
    let rates: Vec<String> = RATES.iter().map(u64::to_string).collect();
    let mut cmd = Command::new(&paths.bench);
    cmd.args(["events", "--rates", &rates.join(",")])
        .args(["--secs", &secs.to_string()]);
    if streamed {
        cmd.arg("--streamed");
    }
    let out = cmd.output().context("cannot run netpost-bench")?;
    if !out.status.success() {
        bail!(
            "netpost-bench events failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("netpost-bench events output")
}

/// The metric from the sweeps (pure, unit-tested).
pub fn metric(plain: Result<Vec<Sweep>, String>, streamed: Result<Sweep, String>) -> Value {
    let sweeps = match plain {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return not_measured("no sweep ran"),
        Err(e) => return not_measured(&e),
    };
    let best: Vec<f64> = sweeps
        .iter()
        .filter_map(|s| s["max_lossless_per_s"].as_f64())
        .collect();
    let curve: Vec<Value> = sweeps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s["loss_curve"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |step| {
                    let mut step = step.clone();
                    step["sweep"] = json!(i);
                    step
                })
        })
        .collect();
    // Every sweep lossless up to its last step, where the producer fell short of its target:
    // the producer, not the pipeline, was the limit.
    let producer_limited = sweeps.iter().all(|s| {
        s["loss_curve"]
            .as_array()
            .and_then(|c| c.last())
            .is_some_and(|last| {
                last["lost"] == 0
                    && last["produced_per_s"].as_f64().unwrap_or(0.0)
                        < 0.95 * last["target_per_s"].as_f64().unwrap_or(0.0)
            })
    });
    let mut m = json!({
        "value": median(&best).map(|v| round(v, 0)),
        "unit": "events/s",
        "samples": best,
        "loss_curve": curve,
        "ring_bytes": sweeps[0]["ring_bytes"],
        "event_bytes": sweeps[0]["event_bytes"],
        "producer_limited": producer_limited,
        "streamed": match streamed {
            Ok(s) => json!({"value": s["max_lossless_per_s"], "loss_curve": s["loss_curve"]}),
            Err(e) => json!({"value": null, "reason": e}),
        },
    });
    if best.is_empty() {
        m["reason"] = json!("every rate lost events");
    }
    m
}

fn not_measured(reason: &str) -> Value {
    json!({
        "value": null,
        "unit": "events/s",
        "samples": [],
        "loss_curve": [],
        "reason": reason,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn step(target: u64, produced: f64, lost: u64) -> Value {
        json!({"target_per_s": target, "produced_per_s": produced, "drained_per_s": produced,
               "produced": produced, "drained": produced, "lost": lost, "loss_pct": 0.0})
    }

    fn sweep(best: Option<f64>, steps: Vec<Value>) -> Value {
        json!({"ring_bytes": 4194304, "event_bytes": 72, "streamed": false,
               "max_lossless_per_s": best, "loss_curve": steps})
    }

    pub fn sample() -> Value {
        metric(
            Ok(vec![
                sweep(
                    Some(2e6),
                    vec![
                        step(1_000_000, 1e6, 0),
                        step(2_000_000, 2e6, 0),
                        step(4_000_000, 3.9e6, 10),
                    ],
                ),
                sweep(
                    Some(1e6),
                    vec![
                        step(1_000_000, 1e6, 0),
                        step(2_000_000, 2e6, 5),
                        step(4_000_000, 3.9e6, 10),
                    ],
                ),
                sweep(
                    Some(3e6),
                    vec![step(1_000_000, 1e6, 0), step(4_000_000, 3e6, 0)],
                ),
            ]),
            Ok(sweep(
                Some(5e5),
                vec![step(500_000, 5e5, 0), step(1_000_000, 1e6, 9)],
            )),
        )
    }

    #[test]
    fn the_value_is_the_median_of_each_sweeps_best_lossless_rate() {
        let m = sample();
        assert_eq!(m["value"], 2e6);
        assert_eq!(m["samples"], json!([2e6, 1e6, 3e6]));
        assert_eq!(m["loss_curve"].as_array().unwrap().len(), 8);
        assert_eq!(m["loss_curve"][7]["sweep"], 2);
        assert_eq!(m["streamed"]["value"], 5e5);
        assert_eq!(m["ring_bytes"], 4194304);
    }

    #[test]
    fn sweeps_lossless_to_the_end_with_the_producer_short_say_so() {
        assert_eq!(sample()["producer_limited"], false, "a sweep lost events");
        let short = sweep(Some(3e6), vec![step(4_000_000, 3e6, 0)]);
        let m = metric(Ok(vec![short.clone(), short]), Err("x".into()));
        assert_eq!(m["producer_limited"], true);
        let m = metric(
            Ok(vec![sweep(Some(1e6), vec![step(1_000_000, 1e6, 0)])]),
            Err("x".into()),
        );
        assert_eq!(m["producer_limited"], false);
        assert_eq!(m["streamed"]["reason"], "x");
    }

    #[test]
    fn failures_keep_the_key_with_a_reason() {
        let m = metric(
            Err("netpost-bench events failed: boom".into()),
            Err("boom".into()),
        );
        assert_eq!(m["value"], Value::Null);
        assert_eq!(m["reason"], "netpost-bench events failed: boom");
        let m = metric(
            Ok(vec![sweep(None, vec![step(500_000, 5e5, 3)])]),
            Err("x".into()),
        );
        assert_eq!(m["value"], Value::Null);
        assert_eq!(m["reason"], "every rate lost events");
    }
}
