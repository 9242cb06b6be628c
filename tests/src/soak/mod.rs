//! The soak (`cargo xtask soak`): netpost watches a router for minutes under churn and must
//! hold its memory, serve every scrape and end with the kernel's counts.
//!
//! The router of [`Router`] carries, all at once: short TCP connections by the thousand per
//! second, UDP to closed ports, bursts of new flows that fill its conntrack table (which is
//! then flushed), a link deleted and created again under the same name, pod-like interfaces
//! created under new names that netpost's `-i` pattern takes, and its ruleset reloaded whole
//! (iptables-restore, nft -f) while drop rules count. netpost runs with its dashboard in a
//! tmux pane, writes JSON Lines to a FIFO the soak reads, and serves `--prometheus` to a real
//! Prometheus scraping every second. The report: RSS and CPU over time, events lost, scrape
//! failures, and netpost's final counts against the devices' /proc/net/dev counters and the
//! rules' own counters.
pub mod links;
pub mod load;
pub mod observe;
pub mod report;
pub mod rules;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    netns::unique_name,
    prometheus::{Prometheus, free_port},
    router::Router,
    tmux::Tmux,
};
use links::{Dev, Names, RestartLink};
use observe::{JsonTail, Latest, Sampler};
use report::{CountRow, Fill, Load, Report, Scrapes};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub minutes: f64,
    /// The netpost binary to soak.
    pub netpost: PathBuf,
    /// What the report calls it (version, build).
    pub label: String,
    /// Short TCP connections asked per second.
    pub tcp_rate: u32,
    /// Datagrams per second to closed ports.
    pub udp_pps: u32,
}

impl Options {
    pub fn new(minutes: f64, netpost: PathBuf) -> Options {
        Options {
            minutes,
            netpost,
            label: String::new(),
            tcp_rate: 2000,
            udp_pps: 5000,
        }
    }
}

/// Entries a fill creates: more than the table holds (nf_conntrack_max is 262,144 here).
const FILL_FLOWS: u32 = 300_000;
const FILL_PPS: u32 = 60_000;

/// Per-namespace sysctls: short conntrack timeouts in the router (thousands of connections a
/// second would otherwise keep its table full of TIME_WAIT entries), room for a burst of
/// connections at the server, every ephemeral port at the client.
fn tune(r: &Router) {
    r.ns_router.exec(
        "sysctl",
        &[
            "-qw",
            "net.netfilter.nf_conntrack_tcp_timeout_time_wait=5",
            "net.netfilter.nf_conntrack_tcp_timeout_fin_wait=5",
            "net.netfilter.nf_conntrack_tcp_timeout_last_ack=5",
            "net.netfilter.nf_conntrack_tcp_timeout_close=5",
            "net.netfilter.nf_conntrack_udp_timeout=10",
            "net.netfilter.nf_conntrack_udp_timeout_stream=10",
            // Links created later do not join the all-routers groups (IPv6 forwarding stays on
            // through `all`): they send no MLD reports when they come up (see router.rs).
            "net.ipv6.conf.default.forwarding=0",
        ],
    );
    r.ns_server.exec(
        "sysctl",
        &[
            "-qw",
            "net.core.somaxconn=4096",
            "net.ipv4.tcp_max_syn_backlog=4096",
        ],
    );
    r.ns_client.exec(
        "sysctl",
        &["-qw", "net.ipv4.ip_local_port_range=1024 65000"],
    );
}

/// A hook's `frames` of `ifname` in `snap` (what the hook ran on: the device's unit).
fn frames(snap: &Value, ifname: &str, hook: &str) -> u64 {
    snap["interfaces"][ifname][hook]["frames"]
        .as_u64()
        .unwrap_or_else(|| panic!("no {ifname}/{hook} in the final snapshot"))
}

/// Whether netpost had XDP on `ifname` at the end (`--xdp-mode auto` leaves it off on veth).
fn xdp_attached(snap: &Value, ifname: &str) -> bool {
    snap["attached"][ifname]["xdp_mode"]
        .as_str()
        .is_some_and(|mode| mode != "off")
}

/// The XDP (where attached), tc ingress and tc egress rows of one device.
fn device_rows(snap: &Value, what: &str, ifname: &str, now: &Dev, before: &Dev) -> Vec<CountRow> {
    let row = |hook: &str, kernel: u64, before: u64, dropped: u64| CountRow {
        what: format!("{what} {hook} frames"),
        netpost: frames(snap, ifname, hook),
        kernel,
        before_attach: before,
        dropped,
    };
    let xdp = xdp_attached(snap, ifname).then(|| {
        row(
            "xdp",
            now.rx_packets - before.rx_packets,
            before.rx_packets,
            now.rx_dropped,
        )
    });
    xdp.into_iter()
        .chain([
            row(
                "tc_ingress",
                now.rx_packets - before.rx_packets,
                before.rx_packets,
                now.rx_dropped,
            ),
            row(
                "tc_egress",
                now.tx_packets - before.tx_packets,
                before.tx_packets,
                now.tx_dropped,
            ),
        ])
        .collect()
}

/// Fills the router's conntrack table, waits for netpost to show it full, flushes it and
/// waits for netpost to show it drained.
fn fill_and_drain(r: &Router, latest: &Latest, at_s: f64) -> Fill {
    let datagrams = load::fill(r, FILL_FLOWS, FILL_PPS);
    let pct = |v: &Value| v["conntrack"]["fill_pct"].as_f64().unwrap_or(0.0);
    let mut fill = Fill {
        at_s,
        datagrams,
        ..Fill::default()
    };
    let peak = latest.wait(30, |v| pct(v) >= 99.0);
    fill.peak_pct = peak.map_or_else(|| latest.get().map_or(0.0, |v| pct(&v)), |v| pct(&v));
    r.ns_router.exec("conntrack", &["-F"]);
    let drained = latest.wait(30, |v| pct(v) < 50.0);
    fill.drained_pct = drained.map_or(100.0, |v| pct(&v));
    fill
}

/// Runs the soak and returns its report; `out` gets the dashboard's last screen and
/// netpost's messages.
pub fn run(opts: &Options, out: &std::path::Path) -> Report {
    crate::require_root();
    let duration = Duration::from_secs_f64(opts.minutes * 60.0);
    let r = Router::new();
    tune(&r);
    let ruleset = rules::Ruleset::install(&r);
    let names = Names::new();
    let link = RestartLink::new(&r, &names);
    link.create(&r);

    let tmp = std::env::temp_dir();
    let tail = JsonTail::start(&tmp.join(unique_name("npsj")));
    let stderr = tmp.join(unique_name("npse"));
    let port = free_port(&r.ns_router);
    let command = format!(
        "{} --netns {} -i {} -i {} -i '{}' --interval 1000 --json {} --prometheus 127.0.0.1:{port} 2>{}",
        opts.netpost.display(),
        r.ns_router.name,
        r.router_client.ifname,
        r.router_server.ifname,
        names.pattern(),
        tail.path.display(),
        stderr.display()
    );
    let tmux = Tmux::start(120, 40, &command);
    let pane: i32 = tmux.display("#{pane_pid}").parse().expect("tmux pane pid");
    let pid = observe::child_named(pane, "netpost", 30).unwrap_or_else(|| {
        panic!(
            "netpost did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });
    if tail.latest.wait(60, |_| true).is_none() {
        panic!(
            "netpost wrote no snapshot: {}\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default(),
            tmux.screen()
        );
    }
    let ends = [
        ("router, client side", r.router_client.ifname.clone()),
        ("router, server side", r.router_server.ifname.clone()),
    ];
    let at_attach: Vec<Dev> = ends
        .iter()
        .map(|(_, ifname)| links::dev(&r.ns_router, ifname))
        .collect();
    let prom = Prometheus::start(&r.ns_router, port);
    prom.wait_for("up{job=\"netpost\"}", 1.0);
    let prom_started = Instant::now();

    let sampler = Sampler::start(pid, Duration::from_secs(1));
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tcp = load::TcpChurn::start(&r, opts.tcp_rate, 8, &stop);
    let (udp, udp_thread) = load::udp_flood(&r, opts.udp_pps, &stop);
    let sender_on = Arc::new(AtomicBool::new(false));
    let (_sent, sender) = load::restart_link_sender(&r, link.server.ip4, &sender_on, &stop);
    let fill_every = if opts.minutes <= 5.0 {
        Duration::from_secs(45)
    } else {
        Duration::from_secs(300)
    };
    let mut fills = Vec::new();
    let mut screens = (0u64, 0u64);
    let (reloads, churn) = std::thread::scope(|s| {
        let reloads =
            s.spawn(|| rules::run(&r, &ruleset, Duration::from_secs(20), &tail.latest, &stop));
        let churn = s.spawn(|| {
            links::run(
                &r,
                &names,
                &link,
                &sender_on,
                &tail.latest,
                Duration::from_secs(8),
                &stop,
            )
        });
        let mut next_fill = started + Duration::from_secs(30);
        let mut next_screen = started + Duration::from_secs(10);
        while started.elapsed() < duration {
            let now = Instant::now();
            if now >= next_fill && started.elapsed() + Duration::from_secs(40) < duration {
                fills.push(fill_and_drain(
                    &r,
                    &tail.latest,
                    started.elapsed().as_secs_f64(),
                ));
                next_fill += fill_every;
            }
            if now >= next_screen {
                let screen = tmux.screen();
                screens.0 += 1;
                screens.1 += u64::from(screen.contains("● live"));
                next_screen += Duration::from_secs(30);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::SeqCst);
        (
            reloads.join().expect("the rules thread"),
            churn.join().expect("the churn thread"),
        )
    });
    let tcp_counts = tcp.counts.clone();
    tcp.join();
    let _ = udp_thread.join();
    let _ = sender.join();
    // Every packet delivered, then the kernel's counts: nothing moves any more.
    std::thread::sleep(Duration::from_secs(2));
    let at_end: Vec<Dev> = ends
        .iter()
        .map(|(_, ifname)| links::dev(&r.ns_router, ifname))
        .collect();
    let window = prom_started.elapsed().as_secs().saturating_sub(1);
    let up = |f: &str| {
        prom.query(&format!("{f}(up{{job=\"netpost\"}}[{window}s])"))
            .unwrap_or(0.0)
    };
    let scrapes = Scrapes {
        total: up("count_over_time") as u64,
        failed: (up("count_over_time") - up("sum_over_time")) as u64,
        slowest_s: prom
            .query(&format!(
                "max_over_time(scrape_duration_seconds{{job=\"netpost\"}}[{window}s])"
            ))
            .unwrap_or(0.0),
    };
    // An interval for netpost to read what settled.
    std::thread::sleep(Duration::from_millis(2500));
    let screen = tmux.screen();
    let _ = std::fs::write(out.join("dashboard.txt"), &screen);
    // SAFETY: signalling the netpost this soak started, by its pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let exit_status = tmux.exit_status();
    let last = tail.latest.get().expect("a final snapshot");
    let _ = std::fs::write(out.join("last.json"), last.to_string());
    let points = tail.finish();
    let usage = sampler.finish();
    drop(prom);
    keep_messages(&stderr, out);

    let mut counts = Vec::new();
    for (((what, ifname), now), before) in ends.iter().zip(&at_end).zip(&at_attach) {
        counts.extend(device_rows(&last, what, ifname, now, before));
    }
    counts.extend(device_rows(
        &last,
        "restart link (every incarnation)",
        &link.router.ifname,
        &churn.restart_dev,
        &churn.restart_before_attach,
    ));
    for (i, (text, what)) in [
        (rules::IPT_RULE, "iptables rule (every reload)"),
        (rules::NFT_RULE, "nft rule (every reload)"),
    ]
    .into_iter()
    .enumerate()
    {
        counts.push(CountRow {
            what: format!("{what} packets"),
            netpost: rules::attributed(&last, text),
            kernel: reloads.kernel[i],
            before_attach: 0,
            dropped: 0,
        });
    }
    let pods_alive_watched = churn
        .pods_alive
        .iter()
        .filter(|p| last["interfaces"][p.as_str()]["status"] == "watching")
        .filter(|p| last["attached"][p.as_str()].is_object())
        .count();
    Report {
        minutes: opts.minutes,
        kernel: format!(
            "Linux {}",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
        ),
        netpost: opts.label.clone(),
        load: Load {
            tcp_rate: opts.tcp_rate,
            tcp_ok: tcp_counts.ok(),
            tcp_failed: tcp_counts.failed(),
            udp_pps: opts.udp_pps,
            udp_sent: udp.ok(),
            fills,
            restarts: churn.restarts,
            not_attached: churn.not_attached,
            pods_created: churn.pods_created,
            iptables_restore: reloads.iptables_restore,
            nft_f: reloads.nft_f,
            blocked_sent: reloads.sent,
        },
        usage,
        points,
        scrapes,
        counts,
        dashboard: screens,
        exit_status,
        interfaces_end: last["interfaces"].as_object().map_or(0, |m| m.len()),
        pods_alive_watched,
        pods_alive: churn.pods_alive.len(),
    }
}

/// Moves netpost's messages into `out` (the dashboard keeps them in a file of its own past
/// 64 KiB, and names it).
fn keep_messages(stderr: &std::path::Path, out: &std::path::Path) {
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    let _ = std::fs::remove_file(stderr);
    let kept = text
        .lines()
        .find_map(|l| l.split_once("while the dashboard was open: "))
        .map(|(_, path)| PathBuf::from(path.trim()));
    let mut all = text.clone();
    if let Some(path) = kept
        && path.starts_with(std::env::temp_dir())
    {
        all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::write(out.join("netpost-stderr.log"), all);
}
