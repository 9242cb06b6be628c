//! The lab's state file and lock, under /run/netpost-lab/ (tmpfs: gone after a reboot, as
//! are the namespaces it describes).
//!
//! A scenario writes every change to the state file *before* making it, so after a crash or
//! kill -9 `netpost lab down` (or the next `up`/`scenario`) can still undo it: the global
//! host sysctl above all, whose namespace does not disappear with the lab.
use std::{fs::File, io::Write as _, os::fd::AsRawFd, path::PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::change::Change;

pub const STATE_DIR: &str = "/run/netpost-lab";

fn state_path() -> PathBuf {
    PathBuf::from(STATE_DIR).join("state.json")
}

/// What the state file records.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The scenario running (or that was running when its process died).
    pub scenario: Option<Running>,
}

/// A scenario's process and the changes it made, in the order made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Running {
    pub name: String,
    pub pid: u32,
    /// The process's start time (field 22 of /proc/PID/stat), so a reused pid is not taken
    /// for the scenario.
    pub pid_start: u64,
    pub started_unix: u64,
    pub changes: Vec<Change>,
}

impl Running {
    pub fn alive(&self) -> bool {
        process_start(self.pid) == Some(self.pid_start)
    }
}

/// Field 22 (starttime) of /proc/PID/stat.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn load() -> anyhow::Result<State> {
    match std::fs::read_to_string(state_path()) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is corrupt", state_path().display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", state_path().display())),
    }
}

/// Writes the state atomically (a temporary file renamed over the old one).
pub fn save(state: &State) -> anyhow::Result<()> {
    std::fs::create_dir_all(STATE_DIR).with_context(|| format!("cannot create {STATE_DIR}"))?;
    let tmp = state_path().with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(state)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, state_path())?;
    Ok(())
}

/// Removes the state directory (after `down`).
pub fn remove_all() {
    let _ = std::fs::remove_dir_all(STATE_DIR);
}

/// An exclusive lock over the lab (flock on /run/netpost-lab/lock), held while it is built,
/// removed, or changed by a scenario. Released on drop, and by the kernel if the process dies.
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    pub fn take() -> anyhow::Result<Lock> {
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("cannot create {STATE_DIR}"))?;
        let path = PathBuf::from(STATE_DIR).join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot lock the lab");
        }
        Ok(Lock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_start_is_read_and_stable() {
        let me = std::process::id();
        let a = process_start(me).expect("own stat");
        assert_eq!(process_start(me), Some(a));
        assert_eq!(process_start(u32::MAX), None);
    }

    #[test]
    fn state_round_trips_through_json() {
        let state = State {
            scenario: Some(Running {
                name: "rule-order".into(),
                pid: 42,
                pid_start: 7,
                started_unix: 1,
                changes: vec![Change::Sysctl {
                    node: None,
                    key: "net.netfilter.nf_conntrack_max".into(),
                    before: "262144".into(),
                    after: "256".into(),
                }],
            }),
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), state);
        assert!(text.contains("\"node\":null"), "{text}");
    }
}
