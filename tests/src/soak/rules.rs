//! The router's ruleset, reloaded whole again and again while two streams of datagrams hit
//! its drop rules: one rule iptables-restore loads (with the rule that turns conntrack on),
//! one in an nftables table `nft -f` replaces. Before each reload the streams pause, the
//! kernel's counters are read, and the reload waits (up to 10 s) for netpost to have read them
//! too (it reads rules at most every interval, less often when reads cost more than 0.5% of a
//! core; drops a reload takes away before a read cannot be attributed). The counters' sum over
//! every ruleset loaded is the oracle for the drops netpost attributes to each rule.
use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::observe::Latest;
use crate::{netns::NetNs, router::Router};

pub const IPT_PORT: u16 = 9999;
pub const NFT_PORT: u16 = 9998;
/// The two rules as netpost names them.
pub const IPT_RULE: &str = "-A FORWARD -p udp -m udp --dport 9999 -j DROP";
pub const NFT_RULE: &str = "udp dport 9998 counter drop";

const IPTABLES: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate INVALID -j DROP\n\
-A FORWARD -p udp -m udp --dport 9999 -j DROP\nCOMMIT\n";
/// Replaces its own table only (the iptables-nft tables stay).
const NFT: &str = "table inet soak\ndelete table inet soak\ntable inet soak {\n  chain fw {\n    \
type filter hook forward priority 10;\n    udp dport 9998 counter drop\n  }\n}\n";

/// What the reloads did and what the kernel counted.
#[derive(Debug, Default, Clone)]
pub struct Reloads {
    pub iptables_restore: u64,
    pub nft_f: u64,
    /// Datagrams sent to the iptables rule's port, and the nft rule's.
    pub sent: [u64; 2],
    /// The rules' kernel counters summed over every ruleset loaded.
    pub kernel: [u64; 2],
}

/// The ruleset files, written once.
pub struct Ruleset {
    dir: std::path::PathBuf,
}

impl Ruleset {
    /// Loads both parts into the router.
    pub fn install(r: &Router) -> Ruleset {
        let dir = std::env::temp_dir().join(crate::netns::unique_name("npsoak"));
        std::fs::create_dir_all(&dir).expect("ruleset dir");
        std::fs::write(dir.join("iptables"), IPTABLES).expect("write iptables rules");
        std::fs::write(dir.join("nft"), NFT).expect("write nft rules");
        let set = Ruleset { dir };
        set.restore(&r.ns_router);
        set.nft(&r.ns_router);
        set
    }

    fn restore(&self, ns: &NetNs) {
        ns.exec(
            "iptables-restore",
            &[&self.dir.join("iptables").display().to_string()],
        );
    }

    fn nft(&self, ns: &NetNs) {
        ns.exec("nft", &["-f", &self.dir.join("nft").display().to_string()]);
    }
}

impl Drop for Ruleset {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The kernel's counters of the two rules.
fn counters(ns: &NetNs) -> [u64; 2] {
    let ipt = ns.exec("iptables", &["-nvxL", "FORWARD"]);
    let ipt = ipt
        .lines()
        .find(|l| l.contains(&format!("dpt:{IPT_PORT}")))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no dpt:{IPT_PORT} rule in {ipt}"));
    let nft = ns.exec("nft", &["list", "table", "inet", "soak"]);
    let nft = nft
        .lines()
        .find(|l| l.contains(&format!("dport {NFT_PORT}")))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "packets")?;
            words.get(at + 1)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no dport {NFT_PORT} rule in {nft}"));
    [ipt, nft]
}

/// The packets netpost attributed to the rules with `text` at IPv4 FORWARD.
pub fn attributed(snap: &serde_json::Value, text: &str) -> u64 {
    snap["netfilter"]["ipv4"]["forward"]["rules"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["rule"] == text)
                .filter_map(|r| r["packets"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Sends 20 datagrams a second to each rule's port and reloads the ruleset every `every`,
/// iptables-restore and nft -f in turn, until `stop`; before each reload and at the end, the
/// kernel's counters, once netpost's attribution has caught up with them.
pub fn run(
    r: &Router,
    set: &Ruleset,
    every: Duration,
    latest: &Latest,
    stop: &Arc<AtomicBool>,
) -> Reloads {
    let server = r.server.ip4;
    // Made in the client's namespace, the socket stays there whichever thread sends.
    let sock = r
        .ns_client
        .run(|| UdpSocket::bind("0.0.0.0:0").expect("bind the blocked sender"));
    let router = &r.ns_router;
    let mut out = Reloads::default();
    let mut last = Instant::now();
    // The counters now, once netpost has read them too (up to 10 s).
    let settle = |out: &Reloads| {
        // The last datagrams reach the router.
        std::thread::sleep(Duration::from_millis(200));
        let now = counters(router);
        let want = [out.kernel[0] + now[0], out.kernel[1] + now[1]];
        latest.wait(10, |snap| {
            attributed(snap, IPT_RULE) >= want[0] && attributed(snap, NFT_RULE) >= want[1]
        });
        now
    };
    while !stop.load(Ordering::Relaxed) {
        for (i, port) in [IPT_PORT, NFT_PORT].into_iter().enumerate() {
            for _ in 0..5 {
                if sock
                    .send_to(&[0u8; 24], SocketAddr::new(IpAddr::V4(server), port))
                    .is_ok()
                {
                    out.sent[i] += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
        if last.elapsed() < every {
            continue;
        }
        let now = settle(&out);
        // A reload resets the counters of the part it replaces only.
        if (out.iptables_restore + out.nft_f).is_multiple_of(2) {
            out.kernel[0] += now[0];
            set.restore(router);
            out.iptables_restore += 1;
        } else {
            out.kernel[1] += now[1];
            set.nft(router);
            out.nft_f += 1;
        }
        last = Instant::now();
    }
    let now = settle(&out);
    out.kernel[0] += now[0];
    out.kernel[1] += now[1];
    out
}
