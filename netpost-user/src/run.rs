//! The collection loop: one sample per interval, turned into a Snapshot and handed to every
//! sink; a final snapshot on Ctrl-C, SIGTERM or the end of --duration.
use std::{
    collections::BTreeMap,
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
    conntrack::{self, HIGH_FILL_PCT},
    loader::Attachment,
    model::{RawSample, RunInfo, Snapshot, build_snapshot},
    nf_model,
    sink::Sink,
};

/// How many top sources of new conntrack entries a snapshot names.
const TOP_SOURCES: usize = 5;

pub struct RunConfig {
    pub interval: Duration,
    /// Flows listed per ranking (`--top`).
    pub top: usize,
    pub duration: Option<Duration>,
    pub netns: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs until a signal, the deadline or `stop` resolves (the dashboard's quit); returns after
/// the last snapshot was written. `ready` runs once the counting window has started. Every snapshot goes to `sinks` and is published on
/// `latest` for consumers with their own pace (dashboard, metrics endpoint), which see the
/// sender dropped when collection ends.
pub async fn run(
    attachment: &Attachment,
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
    let info = RunInfo {
        netns: config.netns.clone(),
        attached: attachment.attach_info(),
        netfilter_status: attachment.netfilter_status().clone(),
        drops_status: attachment.drops_status().to_string(),
        routes_status: attachment.routes_status().to_string(),
        sockets_status: attachment.sockets_status().to_string(),
    };
    // Hooks are attached one after another; counting from this read on gives every hook
    // the same window.
    let baseline = attachment.read().context("reading counters")?;
    let nf_baseline = attachment.read_netfilter().context("reading counters")?;
    let drop_baseline = attachment.drop_counts().context("reading counters")?;
    let funnel_baseline = attachment.flows().funnel().context("reading counters")?;
    let sock_baseline = attachment.read_sockets().context("reading counters")?;
    let route_baseline = attachment
        .read_routes()
        .context("reading counters")?
        .unwrap_or_default();
    // Counting starts now: say so only from here, so nothing sent after "watching" falls
    // before the baselines.
    ready();
    let sample = |elapsed: Duration| -> anyhow::Result<RawSample> {
        let began = std::time::Instant::now();
        let now = attachment.read().context("reading counters")?;
        let nf_now = attachment.read_netfilter().context("reading counters")?;
        let conntrack = conntrack::read();
        let filling = conntrack
            .as_ref()
            .is_some_and(|c| c.max > 0 && c.count as f64 * 100.0 / c.max as f64 >= HIGH_FILL_PCT);
        let ct_sources = if filling {
            attachment
                .top_ct_sources(TOP_SOURCES)
                .context("reading counters")?
        } else {
            Vec::new()
        };
        let routes = attachment
            .read_routes()
            .context("reading counters")?
            .map(|r| r.since(&route_baseline));
        let ifnames = routes
            .iter()
            .flat_map(|r| r.oifs())
            .map(|i| (i, crate::route_watch::ifname(i)))
            .collect();
        let flows = attachment
            .flows()
            .read(&funnel_baseline, config.top, &crate::route_watch::ifname)
            .context("reading flows")?;
        let sockets = match (
            attachment.read_sockets().context("reading counters")?,
            &sock_baseline,
        ) {
            (Some(now), Some(base)) => Some(crate::sock_watch::stats(&now, base)),
            _ => None,
        };
        Ok(RawSample {
            collection_us: began.elapsed().as_micros() as u64,
            sockets,
            flows: Some(flows),
            routes,
            ifnames,
            drops: attachment
                .read_drops(&drop_baseline)
                .context("reading counters")?,
            conntrack,
            ct_sources,
            netfilter: nf_now
                .into_iter()
                .map(|(family, raw)| {
                    let since = nf_baseline
                        .get(&family)
                        .map(|b| nf_model::since(&raw, b))
                        .unwrap_or(raw);
                    (family, since)
                })
                .collect(),
            ts_ms: now_ms(),
            elapsed_ms: elapsed.as_millis() as u64,
            interfaces: now
                .into_iter()
                .map(|(name, c)| {
                    let since = baseline.get(&name).map(|b| c.since(b)).unwrap_or(c);
                    (name, since)
                })
                .collect(),
        })
    };
    let mut prev = RawSample {
        conntrack: conntrack::read(),
        interfaces: attachment
            .watched()
            .iter()
            .map(|w| (w.dev.name.clone(), Default::default()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    let mut ticker = interval_at(start + config.interval, config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = config.duration.map(|d| start + d);
    let mut emit = |prev: &mut RawSample| -> anyhow::Result<()> {
        let now = sample(start.elapsed())?;
        let snapshot = build_snapshot(&now, prev, &info);
        for sink in sinks.iter_mut() {
            sink.emit(&snapshot).context("writing output")?;
        }
        latest.send_replace(Arc::new(snapshot));
        *prev = now;
        Ok(())
    };
    // A tick this close to the deadline is the last one: no near-empty extra interval.
    let slack = config.interval / 10;
    let events_ready = attachment
        .flows()
        .events_ready()
        .context("watching the flow event ring buffer")?;
    // Set when a drain stopped at its batch limit: drain again without waiting for a wakeup
    // (none comes until the reader catches up), taking turns with ticks and signals.
    let mut more_events = false;
    let drain = || -> anyhow::Result<bool> {
        let n = attachment
            .flows()
            .drain_events(&crate::route_watch::ifname)
            .context("reading flow events")?;
        Ok(n == crate::flow_watch::DRAIN_BATCH)
    };
    loop {
        tokio::select! {
            ready = events_ready.wait(), if !more_events => {
                ready.context("waiting for flow events")?;
                more_events = drain()?;
            }
            _ = tokio::task::yield_now(), if more_events => {
                more_events = drain()?;
            }
            _ = ticker.tick() => {
                emit(&mut prev)?;
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
    emit(&mut prev)
}
