//! `netpost demo`: the lab with a mix of traffic and the dashboard of its router, so the
//! first command shows every panel working on any Linux machine without touching a real
//! interface. Nothing outside the lab's namespaces changes; the lab is removed when the
//! dashboard quits (Ctrl-C, SIGTERM, `--duration`), unless it was up before.
//!
//! The traffic through the router: the healthy mix (TCP handshakes, long-lived and short
//! connections, UDP echo, both families), UDP to a port the router's forward chain drops
//! (a counted nft rule: drops, and the doctor's `rule-drops` naming it), UDP to a port
//! nobody listens on at the server, and a steady stream of new UDP flows (new conntrack
//! entries, which expire on their own: the table stays far from full).
use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser as _;

use crate::{
    cli::{Cli, DemoArgs},
    doctor,
    lab::{
        LabError,
        change::Recorder,
        ns,
        scenario::{NFT_TABLE, addr, healthy, port},
        setup, state,
        topology::{Node, ROUTER_CLIENT_SIDE, ROUTER_SERVER_SIDE, SERVER},
        traffic::{Traffic, udp},
    },
    model::Snapshot,
};

/// The UDP port the router's demo rule drops.
pub const DROPPED_UDP: u16 = 7600;
/// The demo's rule in the router's forward chain (its comment).
pub const DROP_COMMENT: &str = "demo: dropped by rule";

/// The router's forward chain: established first (as it should be), the demo's drop rule,
/// new connections accepted; conntrack runs because of it.
pub fn ruleset() -> String {
    format!(
        "table inet {NFT_TABLE} {{\n    chain forward {{\n        type filter hook forward priority filter; policy accept;\n        ct state established,related counter accept comment \"established\"\n        udp dport {DROPPED_UDP} counter drop comment \"{DROP_COMMENT}\"\n        ct state new counter accept comment \"new\"\n    }}\n}}\n"
    )
}

fn traffic(t: &mut Traffic) {
    healthy::mix(t, 5.0, 50.0);
    for ip in crate::lab::topology::server_addrs() {
        let dropped = udp::Send::to(addr(ip, DROPPED_UDP), 150.0, 100);
        t.spawn(Node::Client, "udp to the dropped port", move |c| {
            udp::sender(c, dropped)
        });
    }
    let closed = udp::Send::to(addr(SERVER.v4, port::CLOSED_UDP), 10.0, 100);
    t.spawn(Node::Client, "udp to a closed port", move |c| {
        udp::sender(c, closed)
    });
    t.spawn(Node::Server, "udp sink", |c| {
        udp::sink(c, port::FLOWS_UDP, "udp datagrams received")
    });
    let mut flows = udp::Send::to(addr(SERVER.v4, port::FLOWS_UDP), 20.0, 100);
    flows.new_flow_each = true;
    t.spawn(Node::Client, "udp new flows", move |c| {
        udp::sender(c, flows)
    });
}

/// The watch command line of the router.
fn watch_cli(args: &DemoArgs) -> Result<Cli, clap::Error> {
    let mut argv: Vec<String> = ["netpost", "--netns", Node::Router.netns()]
        .into_iter()
        .map(String::from)
        .collect();
    for end in [ROUTER_CLIENT_SIDE, ROUTER_SERVER_SIDE] {
        argv.extend(["-i".into(), end.ifname.into()]);
    }
    argv.extend(["--interval".into(), args.interval.to_string()]);
    if let Some(d) = args.duration {
        argv.extend(["--duration".into(), d.to_string()]);
    }
    if args.no_tui {
        argv.push("--no-tui".into());
    }
    if let Some(j) = &args.json {
        argv.extend(["--json".into(), j.clone()]);
    }
    Cli::try_parse_from(argv)
}

/// Brings the lab up with its traffic, runs `watch` (main.rs's collection, on its own
/// thread: it enters the router's namespace), then removes what the demo made.
pub fn run(
    args: DemoArgs,
    watch: impl FnOnce(Cli, doctor::Config) -> anyhow::Result<Arc<Snapshot>> + Send + 'static,
) -> ExitCode {
    let config = match doctor::cli::load_config(args.doctor_config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netpost: demo: error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match watch_cli(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "netpost: demo: error: {}",
                crate::cli::usage_error(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let lab = match Lab::start() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("netpost: demo: error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    eprintln!(
        "netpost: demo: the lab is up with traffic; watching its router ({} and {})",
        ROUTER_CLIENT_SIDE.ifname, ROUTER_SERVER_SIDE.ifname
    );
    let watched = std::thread::spawn(move || watch(cli, config))
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the watch panicked")));
    let removed = lab.stop();
    match (watched, removed) {
        (Ok(_), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("netpost: demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The lab as the demo runs it; [`Lab::stop`] (or a drop) undoes it.
struct Lab {
    traffic: Option<Traffic>,
    recorder: Option<Recorder>,
    /// The lab was up before the demo: it stays up.
    was_up: bool,
}

impl Lab {
    fn start() -> Result<Lab, LabError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::NotPrivileged);
        }
        if let Some(r) = state::load()?.scenario
            && r.alive()
        {
            return Err(LabError::Busy {
                name: r.name,
                pid: r.pid,
            });
        }
        let was_up = !ns::lab_namespaces().is_empty() && setup::problems().is_empty();
        setup::up()?;
        let mut lab = Lab {
            traffic: None,
            recorder: None,
            was_up,
        };
        let lock = state::Lock::take()?;
        let mut rec = Recorder::start("demo")?;
        let applied = rec.nft(Node::Router, &format!("inet {NFT_TABLE}"), &ruleset());
        lab.recorder = Some(rec);
        applied?;
        drop(lock);
        let mut t = Traffic::default();
        traffic(&mut t);
        lab.traffic = Some(t);
        Ok(lab)
    }

    /// Stops the traffic, undoes the demo's change, removes the lab unless it was up before.
    fn stop(mut self) -> anyhow::Result<()> {
        self.undo()
    }

    fn undo(&mut self) -> anyhow::Result<()> {
        if let Some(t) = self.traffic.take() {
            t.stop(Duration::from_secs(3));
        }
        let mut result = Ok(());
        if let Some(rec) = self.recorder.take() {
            let _lock = state::Lock::take()?;
            result = rec.finish();
        }
        if !self.was_up {
            setup::down()?;
            eprintln!("netpost: demo: the lab is removed");
        }
        result
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if (self.traffic.is_some() || self.recorder.is_some())
            && let Err(e) = self.undo()
        {
            eprintln!("netpost: demo: error: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_watches_the_router_with_the_flags_given() {
        let args = DemoArgs {
            duration: Some(10.0),
            no_tui: true,
            json: Some("-".into()),
            interval: 500,
            doctor_config: None,
        };
        let cli = watch_cli(&args).unwrap();
        assert_eq!(cli.netns.as_deref(), Some("npl-router"));
        assert_eq!(cli.interfaces, ["npl-r0", "npl-r1"]);
        assert_eq!(
            (cli.duration, cli.no_tui, cli.interval),
            (Some(10.0), true, 500)
        );
        assert_eq!(cli.json.as_deref(), Some("-"));
    }

    #[test]
    fn the_ruleset_drops_one_port_after_the_established_accept() {
        let r = ruleset();
        let established = r.find("established,related").unwrap();
        let drop = r
            .find(&format!("udp dport {DROPPED_UDP} counter drop"))
            .unwrap();
        assert!(established < drop);
    }
}
