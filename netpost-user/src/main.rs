use std::{io::IsTerminal as _, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser as _, error::ErrorKind};
use netpost::{
    cli::Cli,
    error::SetupError,
    loader::{self, Attachment},
    netdev::{self, NetDev},
    netns, preflight,
    run::{self, RunConfig},
    sink::{Sink, json::JsonLines, prometheus, table::Table},
    tui,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: clap's first line, without its usage block.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("netpost: error: {first} (see netpost --help)");
            return ExitCode::from(2);
        }
    };
    match run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netpost: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<()> {
    preflight::check_privileges()?;
    preflight::check_btf()?;
    if let Some(ns) = &cli.netns {
        // Before any thread exists, so the runtime's threads start in the namespace too.
        netns::enter(ns)?;
    }
    let devs = resolve_interfaces(&cli.interfaces, cli.netns.as_deref())?;
    // Outputs are opened before attaching so a bad --json path leaves nothing behind.
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(target) = &cli.json {
        let sink =
            JsonLines::open(target).with_context(|| format!("cannot open --json {target}"))?;
        sinks.push(Box::new(sink));
    }
    if cli.json.as_deref() == Some("-") && cli.events.as_deref() == Some("-") {
        anyhow::bail!("--json - and --events - cannot both write to stdout: send one to a file");
    }
    let events_out: Option<Box<dyn std::io::Write>> = match cli.events.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot open --events {path}"))?,
        ))),
    };
    // stdout is either the dashboard (a terminal), the text table (a pipe), or a JSON stream.
    let stdout_free =
        !cli.no_tui && cli.json.as_deref() != Some("-") && cli.events.as_deref() != Some("-");
    let dashboard = stdout_free && std::io::stdout().is_terminal();
    if stdout_free && !dashboard {
        sinks.push(Box::new(Table::new(std::io::stdout())));
    }
    let options = loader::LoadOptions {
        max_flows: cli.max_flows,
        events_bytes: cli.events_buffer * 1024,
    };
    let attachment = loader::attach_all(&devs, cli.xdp_mode, !cli.no_netfilter, &options)?;
    if let Some(out) = events_out {
        attachment.flows().stream_events_to(out);
    }
    let config = RunConfig {
        interval: Duration::from_millis(cli.interval),
        top: cli.top,
        duration: cli.duration.map(Duration::from_secs_f64),
        netns: cli.netns.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (latest, _) = tokio::sync::watch::channel(Default::default());
    // Opened before collection starts; serves from its own thread so scrapes never delay it.
    let _metrics = match cli.prometheus {
        Some(addr) => Some(
            prometheus::serve(addr, latest.subscribe())
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    runtime.block_on(async {
        if dashboard {
            let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<()>();
            let snapshots = latest.subscribe();
            let view = async {
                let result = tui::run(snapshots).await;
                let _ = quit_tx.send(());
                result
            };
            let collect = run::run(
                &attachment,
                &config,
                &mut sinks,
                latest,
                || report_attached(&attachment, cli.netns.as_deref()),
                async {
                    let _ = quit_rx.await;
                },
            );
            let (collected, viewed) = tokio::join!(collect, view);
            collected.and(viewed)
        } else {
            run::run(
                &attachment,
                &config,
                &mut sinks,
                latest,
                || report_attached(&attachment, cli.netns.as_deref()),
                std::future::pending(),
            )
            .await
        }
    })?;
    drop(attachment);
    eprintln!("netpost: detached");
    Ok(())
}

fn resolve_interfaces(names: &[String], ns: Option<&str>) -> Result<Vec<NetDev>, SetupError> {
    let mut devs: Vec<NetDev> = Vec::new();
    for name in names {
        if devs.iter().any(|d| &d.name == name) {
            return Err(SetupError::DuplicateInterface(name.clone()));
        }
        let dev = netdev::lookup(name).map_err(|_| SetupError::NoSuchInterface {
            name: name.clone(),
            where_: ns
                .map(|n| format!(" in network namespace '{n}'"))
                .unwrap_or_default(),
            hint: ns.map(|n| format!(" -n {n}")).unwrap_or_default(),
        })?;
        devs.push(dev);
    }
    Ok(devs)
}

fn report_attached(attachment: &Attachment, ns: Option<&str>) {
    match attachment.drops_status() {
        "attached" => eprintln!(
            "netpost: drop reasons: kfree_skb tracepoint attached (this namespace's drops only)"
        ),
        why => eprintln!("netpost: drop reasons: {why}; the other counters continue"),
    }
    if attachment.sockets_status() != "attached" {
        eprintln!(
            "netpost: socket tracepoints: {}; the other counters continue",
            attachment.sockets_status()
        );
    }
    if attachment.routes_status() != "attached" {
        eprintln!(
            "netpost: routing decisions: {}; the other counters continue",
            attachment.routes_status()
        );
    }
    for (family, status) in attachment.netfilter_status() {
        if status == "linked" {
            eprintln!(
                "netpost: netfilter {family}: linked at PREROUTING INPUT FORWARD OUTPUT POSTROUTING (first and last priority)"
            );
        } else {
            eprintln!("netpost: netfilter {family}: {status}; XDP and tc counting continues");
        }
    }
    for w in attachment.watched() {
        let why = match (w.info.xdp_mode.as_str(), w.dev.is_virtual()) {
            ("generic", true) => " (virtual device: generic XDP costs its traffic least)",
            ("generic", false) => " (driver has no native XDP)",
            _ => "",
        };
        eprintln!(
            "netpost: watching {}{} (ifindex {}, driver {}): XDP {}{}, tc ingress+egress via {}",
            w.dev.name,
            ns.map(|n| format!(" in netns {n}")).unwrap_or_default(),
            w.dev.ifindex,
            if w.dev.driver.is_empty() {
                "?"
            } else {
                &w.dev.driver
            },
            w.info.xdp_mode,
            why,
            w.info.tc_mode,
        );
    }
}
