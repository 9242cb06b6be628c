//! `netpost cleanup`: removes what a netpost that did not exit (SIGKILL, a crash) left
//! attached in a network namespace. Only kernels without TCX (< 6.6) leave anything: tc
//! filters running netpost's programs on every interface it watched, and the clsact qdisc
//! they hang on (see [`crate::loader::leftovers`]). A running netpost's filters stay.
use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    loader::{leftovers, tcnl},
    netdev, netns, preflight,
};

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// Clean this network namespace (as `ip netns add` creates them) instead of netpost's own.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
}

/// Prints what it removed (and what it left, and why) on stdout; errors on stderr, exit 1.
pub fn run(args: CleanupArgs) -> ExitCode {
    match clean(&args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netpost: cleanup: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn clean(args: &CleanupArgs) -> anyhow::Result<Vec<String>> {
    preflight::check_privileges()?;
    if let Some(ns) = &args.netns {
        netns::enter(ns)?;
    }
    let mut sock = tcnl::Socket::open().context("opening a netlink socket")?;
    let mut held = None;
    let mut lines = Vec::new();
    for (ifindex, name, _) in netdev::all_interfaces().context("listing interfaces")? {
        let cleaned = leftovers::clean(&mut sock, ifindex, &mut held)
            .with_context(|| format!("cleaning {name}"))?;
        lines.extend(cleaned.lines(&name));
    }
    if lines.is_empty() {
        lines.push(format!(
            "nothing of netpost's is attached in {}",
            args.netns
                .as_deref()
                .map_or("this network namespace".to_string(), |n| format!(
                    "network namespace {n}"
                ))
        ));
    }
    Ok(lines)
}
