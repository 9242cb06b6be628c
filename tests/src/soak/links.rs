//! Interfaces that come and go on the router. A "restarting container": a link between the
//! router and the server deleted and created again under the same name, carrying datagrams
//! from the router while it exists; netpost must attach to each new device and count on into
//! the same totals, which must equal the sum of every incarnation's device counters. "Pods":
//! veth pairs under new names that netpost's `-i` pattern matches, a few alive at a time,
//! hundreds over a run: more than netpost's 64 slots, so deleted ones give theirs up.
use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::observe::Latest;
use crate::{
    netns::{End, NetNs, add_silent_veth},
    router::Router,
};

/// Pods alive at once.
const PODS_ALIVE: usize = 8;

/// A device's counters from /proc/net/dev, drops included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dev {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

impl Dev {
    pub fn add(&mut self, other: &Dev) {
        self.rx_packets += other.rx_packets;
        self.rx_dropped += other.rx_dropped;
        self.tx_packets += other.tx_packets;
        self.tx_dropped += other.tx_dropped;
    }
}

/// `ifname`'s counters in `ns`.
pub fn dev(ns: &NetNs, ifname: &str) -> Dev {
    let ifname = ifname.to_string();
    ns.run(move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/dev").expect("read net/dev");
        text.lines()
            .find_map(|line| {
                let (name, rest) = line.split_once(':')?;
                (name.trim() == ifname).then(|| {
                    let f: Vec<u64> = rest
                        .split_whitespace()
                        .map(|v| v.parse().unwrap_or(0))
                        .collect();
                    Dev {
                        rx_packets: f[1],
                        rx_dropped: f[3],
                        tx_packets: f[9],
                        tx_dropped: f[11],
                    }
                })
            })
            .unwrap_or_else(|| panic!("{ifname} not in /proc/net/dev"))
    })
}

/// `ifname`'s ifindex in `ns`.
pub fn ifindex(ns: &NetNs, ifname: &str) -> u64 {
    let out = ns.exec("ip", &["-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link");
    v[0]["ifindex"].as_u64().expect("an ifindex")
}

/// The names of the churned interfaces: the router's ends match `pattern()`.
#[derive(Clone, Debug)]
pub struct Names {
    tag: String,
}

impl Names {
    pub fn new() -> Names {
        Names {
            tag: format!("{}", std::process::id() % 1000),
        }
    }

    /// netpost's `-i` for them.
    pub fn pattern(&self) -> String {
        format!("npk{}*", self.tag)
    }

    fn router_end(&self, what: &str) -> String {
        format!("npk{}{what}", self.tag)
    }

    fn server_end(&self, what: &str) -> String {
        format!("npj{}{what}", self.tag)
    }
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

/// The restarting container's link: the router's end and the server's.
pub struct RestartLink {
    pub router: End,
    pub server: End,
}

impl RestartLink {
    pub fn new(r: &Router, names: &Names) -> RestartLink {
        let pid = (std::process::id() % 250) as u8;
        let end = |ns: &NetNs, name: String, host: u8| End {
            ns: ns.name.clone(),
            ifname: name,
            mac: [0x02, 0x6e, 0x73, pid, 90, host],
            ip4: Ipv4Addr::new(10, 90, pid, host),
            ip6: std::net::Ipv6Addr::new(0xfd00, 0x6e73, pid as u16, 90, 0, 0, 0, host as u16),
        };
        RestartLink {
            router: end(&r.ns_router, names.router_end("r"), 1),
            server: end(&r.ns_server, names.server_end("r"), 2),
        }
    }

    /// Creates the pair, silent (see router.rs: multicast off on the router's end), up.
    pub fn create(&self, r: &Router) {
        add_silent_veth(&r.ns_router, &self.router, &r.ns_server, &self.server);
        r.ns_router.exec(
            "ip",
            &["link", "set", &self.router.ifname, "multicast", "off"],
        );
        r.ns_router
            .exec("ip", &["link", "set", &self.router.ifname, "up"]);
        r.ns_server
            .exec("ip", &["link", "set", &self.server.ifname, "up"]);
    }

    fn delete(&self, r: &Router) {
        r.ns_router
            .exec("ip", &["link", "del", &self.router.ifname]);
    }
}

/// What the churn did.
#[derive(Debug, Default, Clone)]
pub struct Churn {
    /// Times the restart link was deleted and created again.
    pub restarts: u64,
    /// Incarnations netpost had not attached to within 10 s (no traffic sent over them).
    pub not_attached: u64,
    /// The restart link's device counters, summed over every incarnation (the last one read
    /// at the end, still alive).
    pub restart_dev: Dev,
    /// Their part before netpost had attached to each incarnation.
    pub restart_before_attach: Dev,
    pub pods_created: u64,
    /// Pods alive at the end (the router's ends).
    pub pods_alive: Vec<String>,
}

/// Whether netpost's newest snapshot has `ifname` attached at `ifindex`.
fn attached(latest: &Latest, ifname: &str, ifindex: u64) -> bool {
    latest
        .get()
        .is_some_and(|snap| snap["attached"][ifname]["ifindex"].as_u64() == Some(ifindex))
}

/// Runs until `stop`: the restart link lives `up` per turn (the pods change every 2 s).
/// `sender` is the restart-link sender's switch.
pub fn run(
    r: &Router,
    names: &Names,
    link: &RestartLink,
    sender: &Arc<AtomicBool>,
    latest: &Latest,
    up: Duration,
    stop: &Arc<AtomicBool>,
) -> Churn {
    let mut out = Churn::default();
    let mut pods: std::collections::VecDeque<(String, String)> = Default::default();
    let mut pod_clock = Instant::now();
    loop {
        let index = ifindex(&r.ns_router, &link.router.ifname);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !attached(latest, &link.router.ifname, index) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if attached(latest, &link.router.ifname, index) {
            out.restart_before_attach
                .add(&dev(&r.ns_router, &link.router.ifname));
            sender.store(true, Ordering::SeqCst);
        } else {
            out.not_attached += 1;
        }
        let turn = Instant::now();
        while turn.elapsed() < up && !stop.load(Ordering::Relaxed) {
            if pod_clock.elapsed() >= Duration::from_secs(2) {
                pod_clock = Instant::now();
                let n = out.pods_created;
                let pod = (
                    names.router_end(&format!("p{n}")),
                    names.server_end(&format!("p{n}")),
                );
                r.ns_router.exec(
                    "ip",
                    &[
                        "link",
                        "add",
                        &pod.0,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        &pod.1,
                        "netns",
                        &r.ns_server.name,
                    ],
                );
                r.ns_router
                    .exec("ip", &["link", "set", &pod.0, "multicast", "off"]);
                r.ns_router.exec("ip", &["link", "set", &pod.0, "up"]);
                r.ns_server.exec("ip", &["link", "set", &pod.1, "up"]);
                out.pods_created += 1;
                pods.push_back(pod);
                if pods.len() > PODS_ALIVE
                    && let Some((old, _)) = pods.pop_front()
                {
                    r.ns_router.exec("ip", &["link", "del", &old]);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sender.store(false, Ordering::SeqCst);
        // The last batch on its way.
        std::thread::sleep(Duration::from_millis(150));
        out.restart_dev.add(&dev(&r.ns_router, &link.router.ifname));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        link.delete(r);
        out.restarts += 1;
        std::thread::sleep(Duration::from_millis(300));
        link.create(r);
    }
    out.pods_alive = pods.into_iter().map(|(router_end, _)| router_end).collect();
    out
}
