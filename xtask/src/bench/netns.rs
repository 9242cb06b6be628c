//! Two namespaces joined by a veth pair, private to one bench run: names carry the bench's
//! pid, and the guard deletes both namespaces (and with them the veth pair) when dropped.
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

const PREFIX: &str = "npbench-";

pub struct Pair {
    pub tx_ns: String,
    pub rx_ns: String,
    pub tx_if: String,
    pub rx_if: String,
    pub rx_ip: &'static str,
    /// Namespaces created so far (the guard deletes exactly these).
    created: Vec<String>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run ip")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Pair {
    /// Sender namespace (tx) and receiver namespace (rx), 10.213.0.1 -> 10.213.0.2.
    pub fn create() -> anyhow::Result<Pair> {
        let pid = std::process::id();
        let mut pair = Pair {
            tx_ns: format!("{PREFIX}{pid}-tx"),
            rx_ns: format!("{PREFIX}{pid}-rx"),
            tx_if: format!("npb{pid}tx"),
            rx_if: format!("npb{pid}rx"),
            rx_ip: "10.213.0.2",
            created: Vec::new(),
        };
        for ns in [pair.tx_ns.clone(), pair.rx_ns.clone()] {
            ip(&["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        let (tx_ns, rx_ns, tx_if, rx_if) = (&pair.tx_ns, &pair.rx_ns, &pair.tx_if, &pair.rx_if);
        ip(&[
            "link", "add", tx_if, "netns", tx_ns, "type", "veth", "peer", "name", rx_if, "netns",
            rx_ns,
        ])?;
        for (ns, dev, addr) in [
            (tx_ns, tx_if, "10.213.0.1/24"),
            (rx_ns, rx_if, "10.213.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// Namespaces an earlier bench left behind (killed with SIGKILL, so no guard ran): those
/// whose bench process no longer exists. Only names this module creates are considered.
pub fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for ns in stale(&String::from_utf8_lossy(&out.stdout), |pid| {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }) {
        eprintln!("removing namespace {ns} left by an earlier bench");
        let _ = ip(&["netns", "del", &ns]);
    }
}

/// Names in `ip netns list` output made by a bench whose pid is not alive.
fn stale(list: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                return false;
            };
            let Some((pid, role)) = rest.split_once('-') else {
                return false;
            };
            matches!(role, "tx" | "rx") && pid.parse().is_ok_and(|pid| !alive(pid))
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_benches_namespaces_are_stale() {
        let list = "npbench-12-rx (id: 3)\nnpbench-12-tx (id: 2)\nnpbench-99-rx\nnpt15734x55\nnpbench-x-rx\nnpbench-12-other\nmy-ns\n";
        assert_eq!(
            stale(list, |pid| pid == 99),
            ["npbench-12-rx", "npbench-12-tx"]
        );
        assert!(stale(list, |_| true).is_empty());
    }
}
