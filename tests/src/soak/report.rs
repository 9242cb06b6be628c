//! What a soak found, the checks it must pass, and the report (Markdown for people, JSON
//! for tools).
use serde_json::{Value, json};

use super::observe::{Point, Usage};

/// RSS may grow this much after the first minute.
pub const RSS_GROWTH_MAX_PCT: f64 = 10.0;

/// One count netpost reports beside the kernel's own.
#[derive(Clone, Debug)]
pub struct CountRow {
    pub what: String,
    pub netpost: u64,
    /// The kernel's count over netpost's window.
    pub kernel: u64,
    /// The kernel's count when netpost attached (not in netpost's window).
    pub before_attach: u64,
    /// Packets the device dropped on this side (a frame a hook saw before it was dropped).
    pub dropped: u64,
}

impl CountRow {
    pub fn agrees(&self) -> bool {
        self.netpost == self.kernel
    }
}

/// A conntrack fill and drain.
#[derive(Clone, Debug, Default)]
pub struct Fill {
    /// When it started, seconds into the run.
    pub at_s: f64,
    pub datagrams: u64,
    /// The highest fill netpost showed, %.
    pub peak_pct: f64,
    /// Its fill once drained, %.
    pub drained_pct: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Load {
    pub tcp_rate: u32,
    pub tcp_ok: u64,
    pub tcp_failed: u64,
    pub udp_pps: u32,
    pub udp_sent: u64,
    pub fills: Vec<Fill>,
    pub restarts: u64,
    pub not_attached: u64,
    pub pods_created: u64,
    pub iptables_restore: u64,
    pub nft_f: u64,
    pub blocked_sent: [u64; 2],
}

#[derive(Clone, Debug, Default)]
pub struct Scrapes {
    pub total: u64,
    pub failed: u64,
    pub slowest_s: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub minutes: f64,
    pub kernel: String,
    pub netpost: String,
    pub load: Load,
    pub usage: Vec<Usage>,
    pub points: Vec<Point>,
    pub scrapes: Scrapes,
    pub counts: Vec<CountRow>,
    /// Screens checked, and how many showed the dashboard live.
    pub dashboard: (u64, u64),
    pub exit_status: i32,
    /// Interfaces watched at the end, the pods among them, and the pods alive then.
    pub interfaces_end: usize,
    pub pods_alive_watched: usize,
    pub pods_alive: usize,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    /// RSS at one minute (the most over the 10 s up to it: within an interval RSS rises and
    /// falls with what a collection reads), the most after it, and the growth in %.
    pub fn rss_growth(&self) -> Option<(u64, u64, f64)> {
        let at_minute = self
            .usage
            .iter()
            .filter(|u| (50.0..=60.0).contains(&u.secs))
            .map(|u| u.rss_kib)
            .max()?;
        let max = self
            .usage
            .iter()
            .filter(|u| u.secs > 60.0)
            .map(|u| u.rss_kib)
            .max()?;
        let pct = (max as f64 / at_minute as f64 - 1.0) * 100.0;
        Some((at_minute, max, pct))
    }

    /// Average CPU over the run and the busiest sampling period, % of one core.
    pub fn cpu(&self) -> (f64, f64) {
        let (Some(first), Some(last)) = (self.usage.first(), self.usage.last()) else {
            return (0.0, 0.0);
        };
        let span = last.secs - first.secs;
        let avg = if span > 0.0 {
            (last.cpu_secs - first.cpu_secs) / span * 100.0
        } else {
            0.0
        };
        let max = self
            .usage
            .windows(2)
            .map(|w| (w[1].cpu_secs - w[0].cpu_secs) / (w[1].secs - w[0].secs) * 100.0)
            .fold(0.0, f64::max);
        (avg, max)
    }

    pub fn events_lost(&self) -> u64 {
        self.points.last().map_or(0, |p| p.events_lost)
    }

    /// Every check with whether it passed.
    pub fn checks(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        match self.rss_growth() {
            Some((base, max, pct)) => out.push((
                format!(
                    "memory flat: RSS {:.1} MiB at 1 min, at most {:.1} MiB after (+{pct:.1}%, limit {RSS_GROWTH_MAX_PCT}%)",
                    mib(base),
                    mib(max)
                ),
                pct <= RSS_GROWTH_MAX_PCT,
            )),
            None => out.push(("memory flat: no sample after the first minute".into(), false)),
        }
        out.push((
            format!(
                "scrapes: {} by Prometheus every second, {} failed",
                self.scrapes.total, self.scrapes.failed
            ),
            self.scrapes.failed == 0 && self.scrapes.total > 0,
        ));
        let disagree: Vec<&str> = self
            .counts
            .iter()
            .filter(|c| !c.agrees())
            .map(|c| c.what.as_str())
            .collect();
        out.push((
            if disagree.is_empty() {
                format!("counts: all {} agree with the kernel's", self.counts.len())
            } else {
                format!(
                    "counts: {} disagree: {}",
                    disagree.len(),
                    disagree.join("; ")
                )
            },
            disagree.is_empty() && !self.counts.is_empty(),
        ));
        out.push((
            format!(
                "interfaces: restart link re-attached {} times ({} missed), {} pods created, the {} alive at the end all watched",
                self.load.restarts, self.load.not_attached, self.load.pods_created, self.pods_alive
            ),
            self.load.not_attached == 0 && self.pods_alive_watched == self.pods_alive,
        ));
        let fills_ok = self
            .load
            .fills
            .iter()
            .all(|f| f.peak_pct >= 99.0 && f.drained_pct < 50.0);
        out.push((
            format!(
                "conntrack: filled and drained {} times (peaks {}%)",
                self.load.fills.len(),
                self.load
                    .fills
                    .iter()
                    .map(|f| format!("{:.0}", f.peak_pct))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fills_ok && !self.load.fills.is_empty(),
        ));
        out.push((
            format!(
                "dashboard: live on {} of {} screens",
                self.dashboard.1, self.dashboard.0
            ),
            self.dashboard.0 > 0 && self.dashboard.0 == self.dashboard.1,
        ));
        out.push((
            format!("netpost exited with {}", self.exit_status),
            self.exit_status == 0,
        ));
        out
    }

    pub fn passed(&self) -> bool {
        self.checks().iter().all(|(_, ok)| *ok)
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let (avg, max) = self.cpu();
        let l = &self.load;
        let minutes = self.minutes;
        s.push_str(&format!(
            "## Soak: {minutes} minutes under churn ({}; {})\n\n",
            self.kernel, self.netpost
        ));
        s.push_str(&format!(
            "Load through a client - router - server topology, netpost watching the router \
             (`--interval 1000`, the dashboard in a 120x40 tmux, `--prometheus` scraped every \
             second): {} short TCP connections made ({:.0}/s asked, {:.0}/s made, {} failed), \
             {} datagrams to closed ports ({}/s), the conntrack table filled and drained {} times, \
             a link deleted and created again {} times, {} pod interfaces created (8 alive at a time), \
             the ruleset reloaded {} times (iptables-restore {}, nft -f {}).\n\n",
            l.tcp_ok,
            f64::from(l.tcp_rate),
            l.tcp_ok as f64 / (minutes * 60.0),
            l.tcp_failed,
            l.udp_sent,
            l.udp_pps,
            l.fills.len(),
            l.restarts,
            l.pods_created,
            l.iptables_restore + l.nft_f,
            l.iptables_restore,
            l.nft_f,
        ));
        s.push_str("| check | |\n|---|---|\n");
        for (what, ok) in self.checks() {
            s.push_str(&format!(
                "| {what} | {} |\n",
                if ok { "ok" } else { "FAILED" }
            ));
        }
        s.push_str(&format!(
            "| CPU: {avg:.1}% of a core on average, {max:.1}% at most over 1 s | |\n"
        ));
        s.push_str(&format!(
            "| events lost (flow events, drop samples): {} | |\n",
            self.events_lost()
        ));
        let slowest = self
            .points
            .iter()
            .map(|p| p.collection_us)
            .max()
            .unwrap_or(0);
        s.push_str(&format!(
            "| slowest collection {:.1} ms, slowest scrape {:.1} ms | |\n\n",
            slowest as f64 / 1000.0,
            self.scrapes.slowest_s * 1000.0
        ));
        s.push_str(
            "Counts at the end, netpost's against the kernel's own (an XDP row only where \
             netpost attached XDP: `--xdp-mode auto` leaves it off on veth, where tc ingress \
             counts the same frames):\n\n",
        );
        s.push_str("| what | netpost | kernel | before attach | device drops | |\n|---|---|---|---|---|---|\n");
        for c in &self.counts {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                c.what,
                c.netpost,
                c.kernel,
                c.before_attach,
                c.dropped,
                if c.agrees() { "=" } else { "≠" }
            ));
        }
        s.push_str("\nnetpost's memory (RSS) and CPU, per minute:\n\n| minute | RSS MiB | CPU % |\n|---|---|---|\n");
        let mut minute = 0.0;
        let mut prev: Option<&Usage> = None;
        for u in &self.usage {
            if u.secs + 0.5 >= minute {
                let cpu = prev.map_or(0.0, |p| {
                    (u.cpu_secs - p.cpu_secs) / (u.secs - p.secs).max(0.001) * 100.0
                });
                s.push_str(&format!(
                    "| {:.0} | {:.1} | {cpu:.1} |\n",
                    u.secs / 60.0,
                    mib(u.rss_kib)
                ));
                prev = Some(u);
                minute += 60.0;
            }
        }
        s
    }

    pub fn json(&self) -> Value {
        let (avg, max) = self.cpu();
        json!({
            "minutes": self.minutes,
            "kernel": self.kernel,
            "netpost": self.netpost,
            "passed": self.passed(),
            "checks": self.checks().iter().map(|(w, ok)| json!({"check": w, "ok": ok})).collect::<Vec<_>>(),
            "rss_kib": self.usage.iter().map(|u| json!([u.secs, u.rss_kib])).collect::<Vec<_>>(),
            "snapshots": self.points.iter().map(|p| json!({
                "elapsed_ms": p.elapsed_ms, "interfaces": p.interfaces, "over_cap": p.over_cap,
                "events_lost": p.events_lost, "ct_count": p.ct_count, "ct_fill_pct": p.ct_fill_pct,
                "collection_us": p.collection_us,
            })).collect::<Vec<_>>(),
            "cpu_pct": {"avg": avg, "max": max},
            "events_lost": self.events_lost(),
            "scrapes": {"total": self.scrapes.total, "failed": self.scrapes.failed, "slowest_s": self.scrapes.slowest_s},
            "counts": self.counts.iter().map(|c| json!({
                "what": c.what, "netpost": c.netpost, "kernel": c.kernel,
                "before_attach": c.before_attach, "dropped": c.dropped, "agrees": c.agrees(),
            })).collect::<Vec<_>>(),
            "load": {
                "tcp_rate": self.load.tcp_rate, "tcp_ok": self.load.tcp_ok, "tcp_failed": self.load.tcp_failed,
                "udp_pps": self.load.udp_pps, "udp_sent": self.load.udp_sent,
                "fills": self.load.fills.iter().map(|f| json!({"at_s": f.at_s, "datagrams": f.datagrams, "peak_pct": f.peak_pct, "drained_pct": f.drained_pct})).collect::<Vec<_>>(),
                "restarts": self.load.restarts, "not_attached": self.load.not_attached,
                "pods_created": self.load.pods_created,
                "iptables_restore": self.load.iptables_restore, "nft_f": self.load.nft_f,
                "blocked_sent": self.load.blocked_sent,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(secs: f64, rss_kib: u64, cpu_secs: f64) -> Usage {
        Usage {
            secs,
            rss_kib,
            cpu_secs,
        }
    }

    #[test]
    fn growth_counts_from_the_first_minute() {
        let r = Report {
            usage: vec![
                usage(0.0, 5000, 0.0),
                usage(30.0, 12_000, 3.0),
                usage(55.0, 9_000, 5.5),
                usage(60.0, 10_000, 6.0),
                usage(90.0, 10_500, 9.0),
                usage(120.0, 10_200, 12.0),
            ],
            ..Default::default()
        };
        let (base, max, pct) = r.rss_growth().unwrap();
        assert_eq!((base, max), (10_000, 10_500));
        assert!((pct - 5.0).abs() < 1e-9);
        let (avg, peak) = r.cpu();
        assert!((avg - 10.0).abs() < 1e-9 && (peak - 10.0).abs() < 1e-9);
        let early = Report {
            usage: vec![usage(0.0, 5000, 0.0), usage(40.0, 6000, 1.0)],
            ..Default::default()
        };
        assert_eq!(early.rss_growth(), None, "nothing after the first minute");
    }
}
