//! The collection loop: one sample per interval, turned into a Snapshot and handed to every
//! sink; a final snapshot on Ctrl-C, SIGTERM or the end of --duration.
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
    time::{Instant, interval_at, sleep_until},
};

use crate::{
    doctor::Doctor,
    loader::Attachment,
    model::{RawSample, Snapshot, build_snapshot},
    netdev::ifname,
    netns::NameWatch,
    probe::profile::Profile,
    probe::{
        api::Tick,
        flows::{DRAIN_BATCH, EventsReady},
        interfaces::links::LinksReady,
        recorder::{self, RingReady},
    },
    sink::Sink,
};

pub struct RunConfig {
    pub interval: Duration,
    /// Flows listed per ranking (`--top`).
    pub top: usize,
    pub duration: Option<Duration>,
    pub netns: Option<String>,
    /// `--profile`, for the snapshots to say which ran.
    pub profile: Profile,
    /// The doctor's thresholds (`--doctor-config`).
    pub doctor: crate::doctor::Config,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The namespace netpost watched lost its name (`ip netns del`): netpost ends, exit 1. The
/// namespace itself lives on while netpost is in it, and goes once netpost exits.
#[derive(Debug, thiserror::Error)]
#[error(
    "network namespace '{0}' was deleted while netpost watched it (`ip netns del`): stopped; the final snapshot is written"
)]
pub struct NetnsDeleted(pub String);

/// Runs until a signal, the deadline or `stop` resolves (the dashboard's quit); returns after
/// the last snapshot was written. `ready` runs once the counting window has started. Every
/// snapshot goes to `sinks` and is published on `latest` for consumers with their own pace
/// (dashboard, metrics endpoint), which see the sender dropped when collection ends. Devices
/// that come and go are followed as the kernel's link notifications tell; the `--netns`
/// namespace deleted ends the run with [`NetnsDeleted`], after the last snapshot.
pub async fn run(
    attachment: &mut Attachment,
    config: &RunConfig,
    sinks: &mut [Box<dyn Sink>],
    latest: watch::Sender<Arc<Snapshot>>,
    ready: impl FnOnce(),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let start = Instant::now();
    let mut info = attachment.run_info(config.netns.clone());
    info.profile = config.profile.name();
    // Every probe is attached now: counting from these reads on gives every hook the same
    // window. `prev` is what the first interval's rates are taken against.
    let mut prev = RawSample::default();
    for probe in attachment.probes_mut().wanted_mut() {
        probe
            .baseline(&mut prev)
            .with_context(|| format!("reading {} counters", probe.name()))?;
    }
    // The doctor's first kernel reading belongs to the same start.
    let mut doctor = Doctor::new(config.doctor.clone());
    let netns_name = match config.netns.as_deref() {
        Some(name) => Some(NameWatch::new(name).context("reading the namespace netpost entered")?),
        None => None,
    };
    // Counting starts now: say so only from here, so nothing sent after "watching" falls
    // before the baselines.
    ready();
    let tick = Tick { top: config.top };
    let mut ticker = interval_at(start + config.interval, config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = config.duration.map(|d| start + d);
    let mut emit = |attachment: &Attachment, prev: &mut RawSample| -> anyhow::Result<()> {
        let now = sample(attachment, &tick, start.elapsed())?;
        let snapshot = doctor.examine(build_snapshot(&now, prev, &info));
        for sink in sinks.iter_mut() {
            sink.emit(&snapshot).context("writing output")?;
        }
        latest.send_replace(snapshot);
        *prev = now;
        Ok(())
    };
    // A tick this close to the deadline is the last one: no near-empty extra interval.
    let slack = config.interval / 10;
    // Flow events are drained as the kernel submits them, between samples.
    let events_ready = attachment
        .flows()
        .map(|f| f.events_ready())
        .transpose()
        .context("watching the flow event ring buffer")?;
    let links_ready = attachment
        .links_ready()
        .transpose()
        .context("watching link notifications")?;
    // Set when a drain stopped at its batch limit: drain again without waiting for a wakeup
    // (none comes until the reader catches up), taking turns with ticks and signals.
    let mut more_events = false;
    let drain = |attachment: &Attachment| -> anyhow::Result<bool> {
        let Some(flows) = attachment.flows() else {
            return Ok(false);
        };
        let n = flows.drain_events(&ifname).context("reading flow events")?;
        Ok(n == DRAIN_BATCH)
    };
    // The drop recorder's ring: the kernel wakes it when it fills (else samples read it).
    let records_ready = attachment
        .recorder()
        .ready()
        .transpose()
        .context("watching the drop recorder's ring buffer")?;
    let mut more_records = false;
    let drain_records = |attachment: &Attachment| -> anyhow::Result<bool> {
        let n = attachment
            .recorder()
            .drain()
            .context("reading recorded drops")?;
        Ok(n == recorder::DRAIN_BATCH)
    };
    loop {
        tokio::select! {
            ready = wait(events_ready.as_ref()), if !more_events => {
                ready.context("waiting for flow events")?;
                more_events = drain(attachment)?;
            }
            _ = tokio::task::yield_now(), if more_events => {
                more_events = drain(attachment)?;
            }
            ready = wait_links(links_ready.as_ref()) => {
                ready.context("waiting for link notifications")?;
                let said = attachment
                    .follow_links(config.netns.as_deref())
                    .context("following interfaces")?;
                for line in said {
                    eprintln!("{line}");
                }
            }
            ready = wait_ring(records_ready.as_ref()), if !more_records => {
                ready.context("waiting for recorded drops")?;
                more_records = drain_records(attachment)?;
            }
            _ = tokio::task::yield_now(), if more_records => {
                more_records = drain_records(attachment)?;
            }
            _ = ticker.tick() => {
                if let Some(ns) = &netns_name && ns.deleted() {
                    emit(attachment, &mut prev)?;
                    return Err(NetnsDeleted(ns.name().to_string()).into());
                }
                emit(attachment, &mut prev)?;
                if deadline.is_some_and(|d| Instant::now() + slack >= d) {
                    return Ok(());
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = &mut stop => break,
            _ = sleep_until(deadline.unwrap_or(start)), if deadline.is_some() => break,
        }
    }
    emit(attachment, &mut prev)
}

/// One sample from every probe, in list order (a probe's part may depend on the parts
/// before it).
fn sample(attachment: &Attachment, tick: &Tick, elapsed: Duration) -> anyhow::Result<RawSample> {
    let began = std::time::Instant::now();
    let mut raw = RawSample::default();
    for probe in attachment.probes().wanted() {
        probe
            .sample(tick, &mut raw)
            .with_context(|| format!("reading {} counters", probe.name()))?;
    }
    raw.collection_us = began.elapsed().as_micros() as u64;
    raw.ts_ms = now_ms();
    raw.elapsed_ms = elapsed.as_millis() as u64;
    Ok(raw)
}

/// Readiness of the drop recorder's ring buffer; never, without one.
async fn wait_ring(ring: Option<&RingReady>) -> std::io::Result<()> {
    match ring {
        Some(ring) => ring.wait().await,
        None => std::future::pending().await,
    }
}

/// Readiness of the flow event ring buffer; never, without one.
async fn wait(events: Option<&EventsReady>) -> std::io::Result<()> {
    match events {
        Some(events) => events.wait().await,
        None => std::future::pending().await,
    }
}

/// Readiness of the link notifications; never, without them.
async fn wait_links(links: Option<&LinksReady>) -> std::io::Result<()> {
    match links {
        Some(links) => links.wait().await,
        None => std::future::pending().await,
    }
}
