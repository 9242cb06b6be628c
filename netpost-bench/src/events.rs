//! The event pipeline: how many flow events per second netpost's reader drains without loss.
//! A producer program (`netpost_bench_events`, one event per run) fills netpost's flow-event
//! ring buffer through BPF_PROG_TEST_RUN at a paced rate on one CPU, while netpost's own
//! reader (`FlowMaps`: woken by the kernel, draining as `netpost` does) empties it on the
//! other. Losses are the kernel's failed reserves, counted by the same code as on the packet
//! path; every step checks produced == drained + lost.
use std::{
    os::fd::{AsFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{Btf, EbpfLoader, programs::SchedClassifier};
use netpost::{
    loader::{EBPF_OBJECT, LoadOptions},
    probe::flows::{DRAIN_BATCH, FlowMaps, MAP_EVENTS},
};
use netpost_common::flows::funnel;
use serde_json::{Value, json};

use crate::{frames, nf, udp};

const PRODUCER: &str = "netpost_bench_events";
/// Most events per test run: keeps the producer's pacing fine-grained.
const MAX_BATCH: u64 = 2048;

pub struct Options {
    /// Target rates, events/s, in order.
    pub rates: Vec<u64>,
    pub secs: f64,
    /// Also stream every event as JSON (`--events`) to a sink that discards it.
    pub streamed: bool,
}

/// One step of the sweep.
struct Step {
    target: u64,
    produced: u64,
    drained: u64,
    lost: u64,
    secs: f64,
}

pub fn run(opts: &Options) -> anyhow::Result<Value> {
    let load = LoadOptions::default();
    let mut ebpf = EbpfLoader::new()
        .btf(Btf::from_sys_fs().ok().as_ref())
        .map_max_entries(MAP_EVENTS, load.events_bytes)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;
    let producer: &mut SchedClassifier = ebpf
        .program_mut(PRODUCER)
        .with_context(|| format!("{PRODUCER} missing"))?
        .try_into()?;
    producer.load().context("loading the event producer")?;
    let prog = producer.fd()?.as_fd().try_clone_to_owned()?;
    let maps = FlowMaps::take(&mut ebpf).map_err(anyhow::Error::msg)?;
    if opts.streamed {
        maps.stream_events_to(Box::new(std::io::sink()));
    }
    // Reader on CPU 1, producer (its own thread) on CPU 0, as a busy machine would have it.
    udp::pin(1)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut steps = Vec::new();
    for &target in &opts.rates {
        let step = rt.block_on(step(&maps, &prog, target, opts.secs))?;
        if step.produced != step.drained + step.lost {
            bail!(
                "{} events produced but {} drained + {} lost",
                step.produced,
                step.drained,
                step.lost
            );
        }
        steps.push(step);
    }
    let curve: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({
                "target_per_s": s.target,
                "produced_per_s": (s.produced as f64 / s.secs).round(),
                "drained_per_s": (s.drained as f64 / s.secs).round(),
                "produced": s.produced,
                "drained": s.drained,
                "lost": s.lost,
                "loss_pct": if s.produced == 0 { 0.0 } else { s.lost as f64 * 100.0 / s.produced as f64 },
            })
        })
        .collect();
    // The highest rate actually produced before the first step that lost anything.
    let best = steps
        .iter()
        .take_while(|s| s.lost == 0)
        .map(|s| (s.produced as f64 / s.secs).round())
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    Ok(json!({
        "ring_bytes": load.events_bytes,
        "event_bytes": size_of::<netpost_common::flows::FlowEvent>(),
        "streamed": opts.streamed,
        "max_lossless_per_s": best,
        "loss_curve": curve,
    }))
}

/// Produces `target` events/s for `secs` while draining them; returns the counts.
async fn step(maps: &FlowMaps, prog: &OwnedFd, target: u64, secs: f64) -> anyhow::Result<Step> {
    let ready = maps.events_ready()?;
    let name = |_: u32| String::from("bench");
    drain_all(maps, &name)?;
    let lost_before = lost(maps)?;
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let prog = prog.try_clone()?;
        let done = done.clone();
        std::thread::spawn(move || -> anyhow::Result<(u64, f64)> {
            // Ends the reader's loop however this thread ends, a panic included.
            struct Done(Arc<AtomicBool>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _done = Done(done);
            udp::pin(0)?;
            produce(&prog, target, secs)
        })
    };
    let mut drained = 0;
    // As netpost's loop: wait for a wakeup, unless the last drain stopped at its limit.
    let mut more = false;
    while !done.load(Ordering::Acquire) {
        if !more {
            // A short timeout (netpost's loop has its interval tick instead): the end of
            // production raises no event to wake on.
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(5), ready.wait()).await {
                r?;
            }
        }
        let n = maps.drain_events(&name)?;
        more = n == DRAIN_BATCH;
        drained += n;
    }
    let (produced, took) = producer.join().expect("producer thread")?;
    drained += drain_all(maps, &name)?;
    Ok(Step {
        target,
        produced,
        drained,
        lost: lost(maps)? - lost_before,
        secs: took,
    })
}

/// Drains until the ring is empty (one drain takes at most DRAIN_BATCH events).
fn drain_all(maps: &FlowMaps, name: &dyn Fn(u32) -> String) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let n = maps.drain_events(name)?;
        total += n;
        if n < DRAIN_BATCH {
            return Ok(total);
        }
    }
}

fn lost(maps: &FlowMaps) -> anyhow::Result<u64> {
    Ok(maps.funnel()?[funnel::EVENTS_LOST as usize])
}

/// Runs the producer so that `target * elapsed` events are submitted at every moment (in
/// batches of at most MAX_BATCH); returns (events, seconds).
fn produce(prog: &OwnedFd, target: u64, secs: f64) -> anyhow::Result<(u64, f64)> {
    let frame = frames::udp4(64, None);
    let start = Instant::now();
    let mut produced: u64 = 0;
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            return Ok((produced, elapsed));
        }
        let due = (target as f64 * elapsed) as u64;
        if due <= produced {
            std::hint::spin_loop();
            continue;
        }
        let batch = (due - produced).min(MAX_BATCH);
        nf::test_run(prog.as_fd(), &frame, &[], batch as u32)?;
        produced += batch;
    }
}
