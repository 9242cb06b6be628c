//! `lab up`, `lab down`, and the checks `status` reports: is the lab complete, is it
//! healthy, what is left over.
use anyhow::Context as _;

use super::{
    change, ns, state,
    topology::{self, CLIENT, ENDS, LINKS, Node, PREFIX, ROUTER_CLIENT_SIDE, SERVER},
};

/// What `up` found.
#[derive(Debug, PartialEq, Eq)]
pub enum UpOutcome {
    Built,
    /// Everything was there and healthy already.
    AlreadyUp,
    /// It was there but a dead scenario's changes remained: they were undone.
    Repaired,
}

/// Builds the lab; idempotent. Partial leftovers (a crash during `up`) are removed first.
pub fn up() -> anyhow::Result<UpOutcome> {
    let _lock = state::Lock::take()?;
    let repaired = recover_dead_scenario()?;
    let present = ns::lab_namespaces();
    if !present.is_empty() {
        if problems().is_empty() && present.len() == Node::ALL.len() {
            return Ok(if repaired {
                UpOutcome::Repaired
            } else {
                UpOutcome::AlreadyUp
            });
        }
        eprintln!(
            "netpost: lab: an incomplete or changed lab is present ({}); rebuilding it",
            present.join(", ")
        );
        remove_everything();
    }
    if let Err(e) = build() {
        remove_everything();
        return Err(e.context("building the lab failed; nothing was left behind"));
    }
    let left = problems();
    anyhow::ensure!(
        left.is_empty(),
        "the lab came up wrong: {}",
        left.join("; ")
    );
    Ok(UpOutcome::Built)
}

fn build() -> anyhow::Result<()> {
    for node in Node::ALL {
        ns::host(&["ip", "netns", "add", node.netns()])?;
        for (key, value) in topology::QUIET_SYSCTLS {
            ns::sysctl_set(Some(node), key, value)?;
        }
        ns::exec(node, &["ip", "link", "set", "lo", "up"])?;
    }
    // Created straight inside the namespaces: no lab interface ever exists on the host.
    for (a, b) in LINKS {
        ns::host(&[
            "ip",
            "link",
            "add",
            a.ifname,
            "netns",
            a.node.netns(),
            "type",
            "veth",
            "peer",
            "name",
            b.ifname,
            "netns",
            b.node.netns(),
        ])?;
    }
    for (key, value) in topology::ROUTER_SYSCTLS {
        ns::sysctl_set(Some(Node::Router), key, value)?;
    }
    for end in ENDS {
        let v4 = format!("{}/24", end.v4);
        let v6 = format!("{}/64", end.v6);
        ns::exec(end.node, &["ip", "addr", "add", &v4, "dev", end.ifname])?;
        ns::exec(
            end.node,
            &["ip", "addr", "add", &v6, "dev", end.ifname, "nodad"],
        )?;
        ns::exec(end.node, &["ip", "link", "set", end.ifname, "up"])?;
    }
    for (end, gw) in [
        (CLIENT, ROUTER_CLIENT_SIDE),
        (SERVER, topology::ROUTER_SERVER_SIDE),
    ] {
        let (gw4, gw6) = (gw.v4.to_string(), gw.v6.to_string());
        ns::exec(
            end.node,
            &[
                "ip", "route", "add", "default", "via", &gw4, "dev", end.ifname,
            ],
        )?;
        ns::exec(
            end.node,
            &[
                "ip", "-6", "route", "add", "default", "via", &gw6, "dev", end.ifname,
            ],
        )?;
    }
    Ok(())
}

/// What `down` removed.
#[derive(Debug, Default)]
pub struct DownReport {
    pub stopped_scenario: Option<String>,
    pub undone: Vec<String>,
    pub namespaces: Vec<String>,
    pub host_interfaces: Vec<String>,
}

/// Removes the lab and everything a scenario left: stops a running scenario (SIGTERM, then
/// SIGKILL after 5 s), undoes recorded changes (the host's sysctl first of all), deletes
/// every `npl-` namespace and host interface, and the state directory.
pub fn down() -> anyhow::Result<DownReport> {
    let mut report = DownReport::default();
    if let Some(r) = state::load()?.scenario
        && r.alive()
    {
        stop_process(&r);
        report.stopped_scenario = Some(format!("{} (pid {})", r.name, r.pid));
    }
    let _lock = state::Lock::take()?;
    if let Some(r) = state::load()?.scenario {
        report.undone = r.changes.iter().map(|c| c.describe()).collect();
        change::undo_all(&r.changes)?;
    }
    report.namespaces = ns::lab_namespaces();
    report.host_interfaces = host_interfaces();
    remove_everything();
    let left: Vec<String> = ns::lab_namespaces()
        .into_iter()
        .chain(host_interfaces())
        .collect();
    anyhow::ensure!(left.is_empty(), "could not remove {}", left.join(", "));
    drop(_lock);
    state::remove_all();
    Ok(report)
}

fn stop_process(r: &state::Running) {
    let pid = r.pid as libc::pid_t;
    // SAFETY: kill(2) on the pid the state file names, checked alive (start time) above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while r.alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if r.alive() {
        // SAFETY: as above; it ignored SIGTERM for 5 s.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn remove_everything() {
    for name in ns::lab_namespaces() {
        let _ = ns::host(&["ip", "netns", "del", &name]);
    }
    for name in host_interfaces() {
        let _ = ns::host(&["ip", "link", "del", &name]);
    }
}

/// Undoes what a scenario whose process died left behind. True when there was one.
pub fn recover_dead_scenario() -> anyhow::Result<bool> {
    let mut st = state::load()?;
    let Some(r) = st.scenario.take_if(|r| !r.alive()) else {
        return Ok(false);
    };
    eprintln!(
        "netpost: lab: scenario {} (pid {}) ended without restoring the lab; undoing its {} change(s)",
        r.name,
        r.pid,
        r.changes.len()
    );
    change::undo_all(&r.changes)?;
    state::save(&st)?;
    Ok(true)
}

/// `npl-` interfaces in the host's namespace (the lab creates none there: any is a leftover).
pub fn host_interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    text.lines()
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .filter(|n| n.starts_with(PREFIX))
        .collect()
}

/// Everything that differs from a complete, healthy lab (empty: up and healthy).
pub fn problems() -> Vec<String> {
    let mut out = Vec::new();
    let missing: Vec<&str> = Node::ALL
        .iter()
        .map(|n| n.netns())
        .filter(|n| !ns::exists(n))
        .collect();
    if !missing.is_empty() {
        out.push(format!("namespace(s) missing: {}", missing.join(", ")));
        return out;
    }
    for end in ENDS {
        if let Err(e) = check_end(end) {
            out.push(format!("{}: {e:#}", end.node.label()));
        }
    }
    for (key, want) in topology::ROUTER_SYSCTLS {
        match ns::sysctl_get(Some(Node::Router), key) {
            Ok(v) if v == want => {}
            Ok(v) => out.push(format!("router: {key} is {v} (healthy: {want})")),
            Err(e) => out.push(format!("router: {e:#}")),
        }
    }
    for node in [Node::Client, Node::Server] {
        for (key, want) in [("net.ipv4.tcp_rmem", host_value("net.ipv4.tcp_rmem"))] {
            match ns::sysctl_get(Some(node), key) {
                Ok(v) if Some(&v) == want.as_ref() => {}
                Ok(v) => out.push(format!(
                    "{}: {key} is {v} (the host's: {want:?})",
                    node.label()
                )),
                Err(e) => out.push(format!("{}: {e:#}", node.label())),
            }
        }
    }
    for node in Node::ALL {
        if let Ok(tables) = ns::exec(node, &["nft", "list", "tables"])
            && tables.contains(super::scenario::NFT_TABLE)
        {
            out.push(format!(
                "{}: nft table {} present",
                node.label(),
                super::scenario::NFT_TABLE
            ));
        }
        if let Ok(q) = ns::exec(node, &["tc", "qdisc", "show"])
            && q.contains("tbf")
        {
            out.push(format!("{}: a tbf qdisc is present", node.label()));
        }
    }
    out
}

fn host_value(key: &str) -> Option<String> {
    ns::sysctl_get(None, key).ok()
}

/// The end's link is up with exactly its two global addresses, and client/server route
/// via the router.
fn check_end(end: topology::End) -> anyhow::Result<()> {
    let out = ns::exec(end.node, &["ip", "-j", "addr", "show", "dev", end.ifname])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("ip -j addr")?;
    let link = &v[0];
    anyhow::ensure!(
        link["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "{} is down",
        end.ifname
    );
    let mut addrs: Vec<String> = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect();
    addrs.sort();
    let mut want = vec![format!("{}/24", end.v4), format!("{}/64", end.v6)];
    want.sort();
    anyhow::ensure!(
        addrs == want,
        "{} has addresses {} (healthy: {})",
        end.ifname,
        addrs.join(" "),
        want.join(" ")
    );
    if end.node != Node::Router {
        for family in ["-4", "-6"] {
            let r = ns::exec(end.node, &["ip", family, "route", "show", "default"])?;
            anyhow::ensure!(
                r.contains("via"),
                "no {family} default route via the router"
            );
        }
    }
    Ok(())
}
