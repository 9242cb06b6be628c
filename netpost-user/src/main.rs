use std::{io::IsTerminal as _, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser as _, error::ErrorKind};
use netpost::{
    cli::{self, Cli, Command},
    doctor, loader,
    model::Snapshot,
    netdev, netns, pcapng, preflight,
    probe::{self, api::RecordOptions, interfaces::watchlist::Spec},
    run::{self, RunConfig},
    sink::{Sink, json::JsonLines, prometheus, table::Table},
    tui,
};

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("netpost: error: {}", cli::usage_error(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    if let Some(conflict) = cli.conflicts() {
        eprintln!("netpost: error: {conflict}");
        return ExitCode::from(2);
    }
    match cli.command.take() {
        Some(Command::Lab(args)) => return netpost::lab::run(args),
        Some(Command::Cleanup(args)) => return netpost::cleanup::run(args),
        Some(Command::Doctor(args)) => {
            return doctor::cli::run(args, |cli, config| run_cli(cli, config, false));
        }
        Some(Command::Demo(args)) => {
            return netpost::demo::run(args, |cli, config| run_cli(cli, config, true));
        }
        None => {}
    }
    let config = match doctor::cli::load_config(cli.doctor_config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netpost: error: {e}");
            return ExitCode::from(2);
        }
    };
    match run_cli(cli, config, true) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netpost: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Watches as `cli` says, with the doctor's `thresholds`; `table`: the text table on a
/// stdout that is not a terminal (the doctor prints its own report there). Returns the last
/// snapshot.
fn run_cli(cli: Cli, thresholds: doctor::Config, table: bool) -> anyhow::Result<Arc<Snapshot>> {
    preflight::check_privileges()?;
    preflight::check_btf()?;
    if let Some(ns) = &cli.netns {
        // Before any thread exists, so the runtime's threads start in the namespace too.
        netns::enter(ns)?;
    }
    let spec = Spec::new(&cli.interfaces);
    let (devs, auto) = netdev::resolve(
        spec.names(),
        !spec.patterns().is_empty(),
        &|name| spec.wants(name).is_some(),
        cli.netns.as_deref(),
    )?;
    let names: Vec<String> = devs.iter().map(|d| d.name.clone()).collect();
    // Without -i, the interfaces up now are the names watched (again, should one come back).
    let spec = if auto { Spec::new(&names) } else { spec };
    if auto {
        eprintln!(
            "netpost: no -i given: watching every interface that is up here, lo aside: {}",
            names.join(", ")
        );
    }
    // Outputs are opened before attaching so a bad --json path leaves nothing behind.
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(target) = &cli.json {
        let sink = JsonLines::open(target).map_err(|e| cli::open_error("--json", target, &e))?;
        sinks.push(Box::new(sink));
    }
    let events_out: Option<Box<dyn std::io::Write>> = match cli.events.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| cli::open_error("--events", path, &e))?,
        ))),
    };
    // stdout is either the dashboard (a terminal), the text table (a pipe), or a JSON stream.
    let stdout_free =
        !cli.no_tui && cli.json.as_deref() != Some("-") && cli.events.as_deref() != Some("-");
    let dashboard = stdout_free && std::io::stdout().is_terminal();
    if stdout_free && !dashboard && table {
        sinks.push(Box::new(Table::new(std::io::stdout())));
    }
    let record_file = match &cli.record_drops {
        Some(path) => Some(
            pcapng::RotatingFile::create(path, cli.record_max_mib << 20, cli.snaplen).map_err(
                |e| {
                    anyhow::anyhow!(
                        "cannot create --record-drops {}: {e}; give a path in an existing directory you can write to",
                        path.display()
                    )
                },
            )?,
        ),
        None => None,
    };
    let mut off = cli.profile.off();
    if cli.no_netfilter {
        off.push((probe::netfilter::model::NAME, "--no-netfilter".to_string()));
        off.push((probe::rules::model::NAME, "--no-netfilter".to_string()));
    }
    // The recorder runs for --record-drops, and for the dashboard's flight recorder.
    let flight = if dashboard {
        cli.flight_recorder as usize
    } else {
        0
    };
    let record = (cli.record_drops.is_some() || flight > 0).then(|| RecordOptions {
        file: cli.record_drops.clone(),
        snaplen: cli.snaplen,
        rate: cli.record_rate,
        reasons: cli.record_reasons.clone(),
        flight,
    });
    if record.is_none() {
        off.push((
            probe::recorder::model::NAME,
            "no --record-drops".to_string(),
        ));
    }
    let options = loader::LoadOptions {
        max_flows: cli.max_flows,
        events_bytes: cli.events_buffer * 1024,
        off,
        record,
    };
    let mut attachment =
        loader::attach_all(&devs, &spec, cli.xdp_mode, cli.netns.as_deref(), &options)?;
    if let Some(file) = record_file {
        attachment.probes_mut().recorder.write_to(file);
    }
    if let Some(out) = events_out
        && let Some(flows) = attachment.flows()
    {
        flows.stream_events_to(out);
    }
    // What runs and what does not, printed once counting starts.
    let report = attachment.report(cli.netns.as_deref());
    let report_attached = || {
        for line in &report {
            eprintln!("{line}");
        }
    };
    let config = RunConfig {
        interval: Duration::from_millis(cli.interval),
        top: cli.top,
        duration: cli.duration.map(Duration::from_secs_f64),
        netns: cli.netns.clone(),
        profile: cli.profile,
        doctor: thresholds,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (latest, last) = tokio::sync::watch::channel(Default::default());
    // Opened before collection starts; serves from its own thread so scrapes never delay it.
    let _metrics = match cli.prometheus {
        Some(addr) => Some(
            prometheus::serve(addr, latest.subscribe())
                .map_err(|e| cli::serve_error(addr, cli.netns.as_deref(), &e))?,
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
                &mut attachment,
                &config,
                &mut sinks,
                latest,
                report_attached,
                async {
                    let _ = quit_rx.await;
                },
            );
            let (collected, viewed) = tokio::join!(collect, view);
            collected.and(viewed)
        } else {
            run::run(
                &mut attachment,
                &config,
                &mut sinks,
                latest,
                report_attached,
                std::future::pending(),
            )
            .await
        }
    })?;
    drop(attachment);
    eprintln!("netpost: detached");
    let last = last.borrow().clone();
    Ok(last)
}
