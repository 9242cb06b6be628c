//! `netpost lab ...` arguments (a subcommand of the main CLI; see docs/lab.md).
use clap::{Args, Subcommand};

use super::scenario::Name;

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the client - router - server lab in namespaces npl-client, npl-router,
    /// npl-server (idempotent).
    Up,
    /// Remove the lab and everything a scenario changed (also after a crash or kill -9).
    Down,
    /// Show what exists (leftovers included), the running scenario and its changes.
    Status,
    /// Reproduce a pitfall with real traffic until Ctrl-C / SIGTERM / --duration, then
    /// restore the lab.
    Scenario {
        /// The pitfall to reproduce: healthy, forwarding-disabled, rule-order,
        /// conntrack-pressure, no-route, rp-filter, small-buffers, listen-overflow,
        /// syn-flood, reset-storm, closed-port (docs/lab.md).
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS", value_parser = crate::cli::parse_secs)]
        duration: Option<f64>,
        /// Allow changes outside the lab's namespaces (conntrack-pressure sets the host's
        /// global net.netfilter.nf_conntrack_max, and restores it).
        #[arg(long)]
        allow_host_changes: bool,
    },
}

/// A scenario name; an unknown one gets the list in the error's first line (the only line
/// netpost prints).
fn parse_name(s: &str) -> Result<Name, String> {
    Name::from_name(s).ok_or_else(|| {
        let all: Vec<&str> = Name::ALL.iter().map(|n| n.as_str()).collect();
        format!("unknown scenario; choose one of: {}", all.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn help_lists_every_scenario() {
        let mut cmd = crate::cli::Cli::command();
        let lab = cmd.find_subcommand_mut("lab").expect("lab");
        let help = lab
            .find_subcommand_mut("scenario")
            .expect("scenario")
            .render_help()
            .to_string();
        for n in Name::ALL {
            assert!(help.contains(n.as_str()), "{n} missing from: {help}");
        }
        let err = parse_name("nope").unwrap_err();
        assert!(
            err.contains("rule-order") && err.contains("closed-port"),
            "{err}"
        );
    }
}
