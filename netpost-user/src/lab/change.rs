//! What a scenario changes, recorded before it is made, and undone in reverse order.
use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{ns, state, topology::Node};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A sysctl in a lab namespace, or on the host when `node` is None.
    Sysctl {
        node: Option<Node>,
        key: String,
        before: String,
        after: String,
    },
    /// Something a command added in a lab namespace (a ruleset, a qdisc, an address); `undo`
    /// removes it.
    Added {
        node: Node,
        what: String,
        undo: Vec<String>,
    },
}

impl Change {
    pub fn is_host(&self) -> bool {
        matches!(self, Change::Sysctl { node: None, .. })
    }

    /// One line for stderr and `status`.
    pub fn describe(&self) -> String {
        match self {
            Change::Sysctl {
                node: None,
                key,
                before,
                after,
            } => format!("HOST (global): {key} {before} -> {after}"),
            Change::Sysctl {
                node: Some(node),
                key,
                before,
                after,
            } => format!("{}: {key} {before} -> {after}", node.label()),
            Change::Added { node, what, .. } => format!("{}: added {what}", node.label()),
        }
    }

    /// Undoes the change. A namespace that is gone took its changes with it; a host sysctl
    /// that someone else changed since is left alone (with a warning).
    pub fn undo(&self) -> anyhow::Result<()> {
        match self {
            Change::Sysctl {
                node,
                key,
                before,
                after,
            } => {
                if let Some(n) = node
                    && !ns::exists(n.netns())
                {
                    return Ok(());
                }
                let now = ns::sysctl_get(*node, key)?;
                if node.is_none() && now != *after && now != *before {
                    eprintln!(
                        "netpost: lab: warning: {key} is {now} on the host, not the {after} the lab set: someone else changed it since; left as is (it was {before})"
                    );
                    return Ok(());
                }
                if now != *before {
                    ns::sysctl_set(*node, key, before)?;
                }
                Ok(())
            }
            Change::Added { node, undo, .. } => {
                if ns::exists(node.netns()) {
                    // Already gone (a crash between recording and adding) is fine.
                    let argv: Vec<&str> = undo.iter().map(String::as_str).collect();
                    let _ = ns::exec(*node, &argv);
                }
                Ok(())
            }
        }
    }
}

/// Applies a scenario's changes, each written to the state file first.
pub struct Recorder {
    state: state::State,
}

impl Recorder {
    /// Starts recording for the scenario `name` of this process (the state file must hold
    /// no other scenario).
    pub fn start(name: &str) -> anyhow::Result<Recorder> {
        let pid = std::process::id();
        let running = state::Running {
            name: name.to_string(),
            pid,
            pid_start: state::process_start(pid).context("cannot read own /proc stat")?,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            changes: Vec::new(),
        };
        let state = state::State {
            scenario: Some(running),
        };
        state::save(&state)?;
        Ok(Recorder { state })
    }

    fn record(&mut self, change: Change) -> anyhow::Result<()> {
        eprintln!("netpost: lab: {}", change.describe());
        if let Some(r) = self.state.scenario.as_mut() {
            r.changes.push(change);
        }
        state::save(&self.state)
    }

    /// Sets a sysctl in `node` (None: the host), remembering its value.
    pub fn sysctl(&mut self, node: Option<Node>, key: &str, value: &str) -> anyhow::Result<()> {
        let before = ns::sysctl_get(node, key)?;
        self.record(Change::Sysctl {
            node,
            key: key.into(),
            before,
            after: value.into(),
        })?;
        ns::sysctl_set(node, key, value)
    }

    /// Runs `apply` in `node`; `undo` removes what it added.
    pub fn add(
        &mut self,
        node: Node,
        what: &str,
        apply: &[&str],
        undo: &[&str],
    ) -> anyhow::Result<()> {
        self.record(Change::Added {
            node,
            what: what.into(),
            undo: undo.iter().map(|s| s.to_string()).collect(),
        })?;
        ns::exec(node, apply).map(|_| ())
    }

    /// Loads an nft ruleset (the text of `nft -f`) in `node`; `table` names the table it
    /// creates, deleted on undo.
    pub fn nft(&mut self, node: Node, table: &str, ruleset: &str) -> anyhow::Result<()> {
        let mut parts = table.split_whitespace();
        let (family, name) = (
            parts.next().unwrap_or("inet"),
            parts.next().unwrap_or(table),
        );
        self.record(Change::Added {
            node,
            what: format!("nft table {family} {name}"),
            undo: ["nft", "delete", "table", family, name]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })?;
        nft_load(node, ruleset)
    }

    pub fn changes(&self) -> &[Change] {
        self.state
            .scenario
            .as_ref()
            .map(|r| r.changes.as_slice())
            .unwrap_or(&[])
    }

    /// Undoes everything in reverse order and clears the scenario from the state file.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let changes = self
            .state
            .scenario
            .take()
            .map(|r| r.changes)
            .unwrap_or_default();
        let result = undo_all(&changes);
        state::save(&self.state)?;
        result
    }
}

/// Undoes `changes` in reverse order, trying every one; the first error is returned.
pub fn undo_all(changes: &[Change]) -> anyhow::Result<()> {
    let mut first = None;
    for change in changes.iter().rev() {
        if let Err(e) = change.undo() {
            eprintln!("netpost: lab: cannot undo `{}`: {e:#}", change.describe());
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// `nft -f -` in `node` with `ruleset` on stdin.
pub fn nft_load(node: Node, ruleset: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", node.netns(), "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft (install nftables)")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(ruleset.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "nft in {node} refused the ruleset: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
