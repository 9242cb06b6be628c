//! `netpost doctor`: watch for a while with the usual collection (the same probes, run loop
//! and doctor as the dashboard), then print the last snapshot's diagnoses. Exit 0 when
//! healthy, 1 with findings, 2 on bad input (or when netpost could not watch at all).
use std::{process::ExitCode, sync::Arc};

use clap::Parser as _;

use super::{Config, IDS};
use crate::{
    cli::{Cli, DoctorArgs},
    model::Snapshot,
};

/// Reads `--doctor-config` (defaults without one).
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| format!("--doctor-config {e}")),
        None => Ok(Config::default()),
    }
}

/// The watch command line a doctor run stands for.
fn watch_cli(args: &DoctorArgs) -> Result<Cli, clap::Error> {
    let mut argv: Vec<String> = vec!["netpost".into(), "--no-tui".into()];
    for i in &args.interfaces {
        argv.extend(["-i".into(), i.clone()]);
    }
    if let Some(ns) = &args.netns {
        argv.extend(["--netns".into(), ns.clone()]);
    }
    argv.extend(["--duration".into(), args.duration.to_string()]);
    argv.extend(["--interval".into(), args.interval.to_string()]);
    Cli::try_parse_from(argv)
}

/// Runs the doctor with `watch` (main.rs's collection: attach, run, detach) and prints the
/// report.
pub fn run(
    args: DoctorArgs,
    watch: impl FnOnce(Cli, Config) -> anyhow::Result<Arc<Snapshot>>,
) -> ExitCode {
    let mut config = match load_config(args.doctor_config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netpost: doctor: error: {e}");
            return ExitCode::from(2);
        }
    };
    // The evidence covers the whole watch.
    config.window_s = args.duration + 1.0;
    let cli = match watch_cli(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "netpost: doctor: error: {}",
                crate::cli::usage_error(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    eprintln!("netpost: doctor: watching for {} s...", args.duration);
    let snap = match watch(cli, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("netpost: doctor: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let checked: Vec<&str> = IDS.to_vec();
    if args.json {
        let out = serde_json::json!({
            "netns": snap.netns,
            "interfaces": snap.interfaces.keys().collect::<Vec<_>>(),
            "watched_s": snap.elapsed_ms as f64 / 1000.0,
            "healthy": snap.diagnoses.is_empty(),
            "checks": checked,
            "diagnoses": snap.diagnoses,
        });
        println!("{out}");
    } else {
        print!("{}", super::report::text(&snap, &checked));
    }
    if snap.diagnoses.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
