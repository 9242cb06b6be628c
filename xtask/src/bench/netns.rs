//! The networks the bench sends through, private to one bench run: names carry the bench's
//! pid, and the guard deletes the namespaces (and with them their veth pairs) when dropped.
//!
//! - `pair`: sender (tx) and receiver (rx) joined by a veth pair; netpost watches the
//!   receiving end, so the packets it sees are delivered locally (PREROUTING, INPUT).
//! - `router`: client -> router -> server, two veth pairs; netpost watches both interfaces
//!   of the router, whose packets are forwarded (PREROUTING, FORWARD, POSTROUTING).
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

const PREFIX: &str = "npbench-";
/// The last part of every namespace name the bench makes (what `remove_stale` looks for).
const ROLES: [&str; 5] = ["tx", "rx", "client", "router", "server"];

pub struct Net {
    /// "pair" or "router".
    pub kind: &'static str,
    /// Where the senders run (iperf3 client, UDP generator).
    pub tx_ns: String,
    /// Where the receivers run (iperf3 server, UDP sink).
    pub rx_ns: String,
    /// The receivers' address.
    pub rx_ip: &'static str,
    /// Where netpost runs, and the interfaces it watches there.
    pub watch_ns: String,
    pub watch_ifs: Vec<String>,
    /// The watched interface the traffic enters by: its received packets are what the
    /// in-path figures are "per".
    pub ingress_if: String,
    /// Namespaces created so far (the guard deletes exactly these).
    created: Vec<String>,
}

pub(super) fn ip(args: &[&str]) -> anyhow::Result<()> {
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

fn ns_name(role: &str) -> String {
    format!("{PREFIX}{}-{role}", std::process::id())
}

fn if_name(role: &str) -> String {
    format!("npb{}{role}", std::process::id())
}

impl Net {
    fn add_ns(&mut self, role: &str) -> anyhow::Result<String> {
        let ns = ns_name(role);
        ip(&["netns", "add", &ns])?;
        self.created.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A veth pair between two namespaces, each end with its address, up.
    fn link(a: (&str, &str, &str), b: (&str, &str, &str)) -> anyhow::Result<()> {
        let ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)) = (a, b);
        ip(&[
            "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
        ])?;
        for (ns, dev, addr) in [(ns_a, if_a, addr_a), (ns_b, if_b, addr_b)] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    fn empty(kind: &'static str, rx_ip: &'static str) -> Net {
        Net {
            kind,
            tx_ns: String::new(),
            rx_ns: String::new(),
            rx_ip,
            watch_ns: String::new(),
            watch_ifs: Vec::new(),
            ingress_if: String::new(),
            created: Vec::new(),
        }
    }

    /// Sender namespace (tx) and receiver namespace (rx), 10.213.0.1 -> 10.213.0.2; netpost
    /// watches the receiving end.
    pub fn pair() -> anyhow::Result<Net> {
        let mut net = Net::empty("pair", "10.213.0.2");
        net.tx_ns = net.add_ns("tx")?;
        net.rx_ns = net.add_ns("rx")?;
        let (tx_if, rx_if) = (if_name("tx"), if_name("rx"));
        Net::link(
            (&net.tx_ns, &tx_if, "10.213.0.1/24"),
            (&net.rx_ns, &rx_if, "10.213.0.2/24"),
        )?;
        net.watch_ns = net.rx_ns.clone();
        net.watch_ifs = vec![rx_if.clone()];
        net.ingress_if = rx_if;
        Ok(net)
    }

    /// Client 10.213.1.1 -> router (10.213.1.254 | 10.213.2.254) -> server 10.213.2.1;
    /// netpost watches both router interfaces, client side first.
    pub fn router() -> anyhow::Result<Net> {
        let mut net = Net::empty("router", "10.213.2.1");
        net.tx_ns = net.add_ns("client")?;
        let router = net.add_ns("router")?;
        net.rx_ns = net.add_ns("server")?;
        let (rc, rs) = (if_name("rc"), if_name("rs"));
        Net::link(
            (&net.tx_ns, &if_name("c"), "10.213.1.1/24"),
            (&router, &rc, "10.213.1.254/24"),
        )?;
        Net::link(
            (&router, &rs, "10.213.2.254/24"),
            (&net.rx_ns, &if_name("s"), "10.213.2.1/24"),
        )?;
        ip(&[
            "-n",
            &net.tx_ns,
            "route",
            "add",
            "default",
            "via",
            "10.213.1.254",
        ])?;
        ip(&[
            "-n",
            &net.rx_ns,
            "route",
            "add",
            "default",
            "via",
            "10.213.2.254",
        ])?;
        sysctl(&router, "net.ipv4.ip_forward=1")?;
        net.watch_ns = router;
        net.watch_ifs = vec![rc.clone(), rs];
        net.ingress_if = rc;
        Ok(net)
    }

    /// What the topology is, for the report.
    pub fn describe(&self) -> String {
        match self.kind {
            "router" => format!(
                "client -> router -> server namespaces ({} -> {}), netpost in the router watching {}",
                self.tx_ns,
                self.rx_ns,
                self.watch_ifs.join(" and ")
            ),
            _ => format!(
                "a veth pair between two namespaces ({} -> {}), netpost watching the receiving end {}",
                self.tx_ns, self.rx_ns, self.ingress_if
            ),
        }
    }
}

fn sysctl(ns: &str, setting: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-qw", setting])
        .stdin(Stdio::null())
        .output()
        .context("cannot run sysctl")?;
    if !out.status.success() {
        bail!(
            "sysctl {setting} in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Drop for Net {
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
            ROLES.contains(&role) && pid.parse().is_ok_and(|pid| !alive(pid))
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_benches_namespaces_are_stale() {
        let list = "npbench-12-rx (id: 3)\nnpbench-12-tx (id: 2)\nnpbench-12-router\nnpbench-99-rx\nnpt15734x55\nnpbench-x-rx\nnpbench-12-other\nmy-ns\n";
        assert_eq!(
            stale(list, |pid| pid == 99),
            ["npbench-12-rx", "npbench-12-tx", "npbench-12-router"]
        );
        assert!(stale(list, |_| true).is_empty());
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        // IFNAMSIZ is 16 with the NUL; pids go up to 4194304 (7 digits).
        assert!(format!("npb{}rc", 4_194_304).len() <= 15);
    }
}
