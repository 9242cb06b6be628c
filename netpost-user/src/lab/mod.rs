//! The lab: a client - router - server topology in network namespaces netpost creates
//! (`npl-client`, `npl-router`, `npl-server`), and scenarios that reproduce the article's
//! pitfalls in it with real traffic (docs/lab.md).
//!
//! - [`setup`]: `up`, `down`, what is missing or unhealthy ([`setup::problems`]).
//! - [`scenario`]: the pitfalls, each with what it changes and its kernel witnesses.
//! - [`runner`]: runs one scenario until stopped, then restores the lab.
//! - [`evidence`]: reads the witnesses (MIB counters, conntrack, nft counters, sockets).
//! - [`state`]/[`change`]: every change is recorded before it is made, so `down` undoes it
//!   even after a kill -9.
//!
//! The lab never touches the host's interfaces, routes or sysctls, except
//! `net.netfilter.nf_conntrack_max` for `conntrack-pressure` with --allow-host-changes.
pub mod change;
pub mod cli;
pub mod evidence;
pub mod ns;
pub mod runner;
pub mod scenario;
pub mod setup;
pub mod state;
pub mod topology;
pub mod traffic;

use std::{process::ExitCode, time::Duration};

use thiserror::Error;

pub use cli::{LabArgs, LabCommand};
pub use scenario::{Info, Name};

/// Why a lab command failed. Bad input (exit 2) leaves nothing behind.
#[derive(Debug, Error)]
pub enum LabError {
    #[error(
        "netpost lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces; run it with sudo"
    )]
    NotPrivileged,
    #[error("the lab is not up; run `netpost lab up` first")]
    NotUp,
    #[error("the lab is not healthy ({0}); rebuild it with `netpost lab down && netpost lab up`")]
    Unhealthy(String),
    #[error(
        "scenario {name} changes the host outside the lab ({what}); rerun with --allow-host-changes to allow it"
    )]
    NeedsHostChanges { name: String, what: String },
    #[error(
        "scenario {name} is already running (pid {pid}); stop it first (Ctrl-C there, or `kill {pid}`), or remove the lab with `netpost lab down`"
    )]
    Busy { name: String, pid: u32 },
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl LabError {
    /// 2 for input the user can fix by running something else first, 1 for failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::NotUp
            | LabError::Unhealthy(_)
            | LabError::NeedsHostChanges { .. }
            | LabError::Busy { .. } => 2,
            LabError::NotPrivileged | LabError::Failed(_) => 1,
        }
    }
}

/// `netpost lab ...`: prints to stderr (and `status` to stdout), returns the exit code.
pub fn run(args: LabArgs) -> ExitCode {
    match run_command(args.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netpost: lab: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_command(cmd: LabCommand) -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotPrivileged);
    }
    match cmd {
        LabCommand::Up => {
            let outcome = setup::up()?;
            let what = match outcome {
                setup::UpOutcome::Built => "is up",
                setup::UpOutcome::AlreadyUp => "is already up",
                setup::UpOutcome::Repaired => {
                    "is already up (a dead scenario's changes were undone)"
                }
            };
            eprintln!(
                "netpost: lab {what}: npl-client (npl-c0 {}, {}) - npl-router (npl-r0, npl-r1) - npl-server (npl-s0 {}, {}); watch the router with `netpost --netns npl-router -i npl-r0 -i npl-r1`",
                topology::CLIENT.v4,
                topology::CLIENT.v6,
                topology::SERVER.v4,
                topology::SERVER.v6
            );
        }
        LabCommand::Down => {
            let r = setup::down()?;
            if let Some(s) = &r.stopped_scenario {
                eprintln!("netpost: lab: stopped scenario {s}");
            }
            for u in &r.undone {
                eprintln!("netpost: lab: undone: {u}");
            }
            if r.namespaces.is_empty() && r.host_interfaces.is_empty() && r.undone.is_empty() {
                eprintln!("netpost: lab is not up; nothing to remove");
            } else {
                let removed: Vec<String> = r
                    .namespaces
                    .iter()
                    .chain(&r.host_interfaces)
                    .cloned()
                    .collect();
                eprintln!("netpost: lab removed: {}", removed.join(", "));
            }
        }
        LabCommand::Status => print!("{}", status_text()?),
        LabCommand::Scenario {
            name,
            duration,
            allow_host_changes,
        } => {
            runner::run(
                name,
                duration.map(Duration::from_secs_f64),
                allow_host_changes,
            )?;
        }
    }
    Ok(())
}

/// What exists, what runs, what differs from a healthy lab.
#[derive(Debug)]
pub struct Status {
    /// `npl-` namespaces that exist.
    pub namespaces: Vec<String>,
    /// `npl-` interfaces in the host namespace (leftovers: the lab creates none there).
    pub host_interfaces: Vec<String>,
    pub scenario: Option<state::Running>,
    pub scenario_alive: bool,
    /// Differences from a complete, healthy lab (empty when up and healthy).
    pub problems: Vec<String>,
}

pub fn status() -> anyhow::Result<Status> {
    let scenario = state::load()?.scenario;
    let namespaces = ns::lab_namespaces();
    Ok(Status {
        scenario_alive: scenario.as_ref().is_some_and(|r| r.alive()),
        scenario,
        problems: if namespaces.is_empty() {
            Vec::new()
        } else {
            setup::problems()
        },
        host_interfaces: setup::host_interfaces(),
        namespaces,
    })
}

fn status_text() -> anyhow::Result<String> {
    let s = status()?;
    let mut out = String::new();
    let known: Vec<&str> = topology::Node::ALL.iter().map(|n| n.netns()).collect();
    let up = known.iter().all(|k| s.namespaces.iter().any(|n| n == k));
    let running = s.scenario.as_ref().filter(|_| s.scenario_alive);
    out += &match (s.namespaces.is_empty(), up, s.problems.is_empty()) {
        (true, _, _) => "lab: down\n".to_string(),
        (false, true, true) => "lab: up\n".to_string(),
        (false, true, false) if running.is_some() => {
            "lab: up (changed by the running scenario)\n".to_string()
        }
        (false, _, _) => "lab: up, but not healthy (`netpost lab down` removes it)\n".to_string(),
    };
    for n in &s.namespaces {
        let leftover = if known.contains(&n.as_str()) {
            ""
        } else {
            " (leftover)"
        };
        out += &format!("  namespace {n}{leftover}\n");
    }
    for i in &s.host_interfaces {
        out += &format!("  host interface {i} (leftover)\n");
    }
    match &s.scenario {
        Some(r) => {
            let state = if s.scenario_alive {
                "running"
            } else {
                "DEAD: its changes remain until `netpost lab down` or the next `lab up`/`lab scenario`"
            };
            out += &format!("scenario: {} (pid {}, {state})\n", r.name, r.pid);
            for c in &r.changes {
                out += &format!("  change: {}\n", c.describe());
            }
        }
        None => out += "scenario: none\n",
    }
    for p in &s.problems {
        out += &format!("  differs from healthy: {p}\n");
    }
    Ok(out)
}
