//! Network namespaces and veth pairs that tests create and always remove.
use std::{
    fs::File,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::sh;

pub(crate) static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: `{prefix}{pid}x{n}`, at most 15 bytes
/// (interface names are limited to IFNAMSIZ - 1).
pub fn unique_name(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id() % 100_000);
    assert!(name.len() <= 15, "name {name} too long");
    name
}

/// A named network namespace (`ip netns add`), deleted on drop with everything in it.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = unique_name("npt");
        sh("ip", &["netns", "add", &name]);
        let ns = NetNs { name };
        // Quiet by construction: no IPv6 link-local autoconf, DAD, router solicitations.
        ns.exec(
            "sysctl",
            &[
                "-qw",
                "net.ipv6.conf.default.addr_gen_mode=1",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0",
            ],
        );
        ns.exec("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// Turns conntrack on in the namespace: any conntrack match does, this one (dropping
    /// INVALID packets in `chain`) changes nothing for well-formed traffic.
    pub fn enable_conntrack(&self, chain: &str) {
        self.exec(
            "iptables",
            &[
                "-A",
                chain,
                "-m",
                "conntrack",
                "--ctstate",
                "INVALID",
                "-j",
                "DROP",
            ],
        );
    }

    /// Runs `f` on a thread that lives in this namespace; sockets it creates stay there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Starts `f` on a thread of its own that lives in this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns on an fd we own; only this thread moves.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Quiet: a test may have deleted it already (netpost's namespace-deleted test).
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// One end of a veth pair, in a namespace, with fixed addresses.
#[derive(Clone, Debug)]
pub struct End {
    pub ns: String,
    pub ifname: String,
    pub mac: [u8; 6],
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
}

impl End {
    pub fn mac_str(&self) -> String {
        let m = self.mac;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Two namespaces joined by a veth pair that carries only the traffic a test sends: ARP
/// is off and neighbours are static, IPv6 has no link-local addresses (so no DAD, router
/// solicitations or MLD reports). Counters can then be asserted exactly.
pub struct VethPair {
    pub a: End,
    pub b: End,
    // Declared last: dropped after the ends' data, removing both namespaces (and the veth).
    pub ns_a: NetNs,
    pub ns_b: NetNs,
}

impl VethPair {
    pub fn new() -> VethPair {
        let ns_a = NetNs::new();
        let ns_b = NetNs::new();
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // 10.(200+n%50).x.y: a /24 per pair; addresses only exist inside these namespaces.
        let net = 200 + (n % 50) as u8;
        let pid = (std::process::id() % 250) as u8;
        let mk = |ns: &NetNs, host: u8| End {
            ns: ns.name.clone(),
            ifname: unique_name(if host == 1 { "npa" } else { "npb" }),
            mac: [0x02, 0x6e, 0x70, pid, net, host],
            ip4: Ipv4Addr::new(10, net, pid, host),
            ip6: Ipv6Addr::new(0xfd00, 0x6e70, pid as u16, net as u16, 0, 0, 0, host as u16),
        };
        let a = mk(&ns_a, 1);
        let b = mk(&ns_b, 2);
        add_silent_veth(&ns_a, &a, &ns_b, &b);
        ns_a.exec("ip", &["link", "set", &a.ifname, "up"]);
        ns_b.exec("ip", &["link", "set", &b.ifname, "up"]);
        VethPair { a, b, ns_a, ns_b }
    }
}

/// Creates a veth pair between `a` (in `ns_a`) and `b` (in `ns_b`) that carries only what
/// a test sends: ARP off, the ends' MACs, IPv4 /24 and IPv6 /64 addresses (no DAD), and
/// permanent neighbour entries for the peer's two addresses. Both links are left DOWN so
/// the caller can finish configuring them (sysctls, flags) before `ip link set up`.
///
/// With ARP off the kernel resolves any address without a static entry to the device's
/// own MAC (the peer then drops the frame as not for it), so every next hop that crosses
/// the link must be one of the two ends' addresses.
pub fn add_silent_veth(ns_a: &NetNs, a: &End, ns_b: &NetNs, b: &End) {
    assert_eq!(a.ns, ns_a.name, "end {} is not in {}", a.ifname, ns_a.name);
    assert_eq!(b.ns, ns_b.name, "end {} is not in {}", b.ifname, ns_b.name);
    sh(
        "ip",
        &[
            "link",
            "add",
            &a.ifname,
            "netns",
            &a.ns,
            "address",
            &a.mac_str(),
            "type",
            "veth",
            "peer",
            "name",
            &b.ifname,
            "netns",
            &b.ns,
            "address",
            &b.mac_str(),
        ],
    );
    for (me, peer, ns) in [(a, b, ns_a), (b, a, ns_b)] {
        let dev = me.ifname.as_str();
        ns.exec("ip", &["link", "set", dev, "arp", "off"]);
        ns.exec(
            "ip",
            &["addr", "add", &format!("{}/24", me.ip4), "dev", dev],
        );
        ns.exec(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/64", me.ip6),
                "dev",
                dev,
                "nodad",
            ],
        );
        for ip in [peer.ip4.to_string(), peer.ip6.to_string()] {
            ns.exec(
                "ip",
                &[
                    "neigh",
                    "replace",
                    &ip,
                    "lladdr",
                    &peer.mac_str(),
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            );
        }
    }
}

impl VethPair {
    /// Deletes the pair (both ends go together), as a container runtime does with a pod's.
    pub fn delete(&self) {
        self.ns_b.exec("ip", &["link", "del", &self.b.ifname]);
    }

    /// Creates the pair again under the same names and addresses, up.
    pub fn recreate(&self) {
        add_silent_veth(&self.ns_a, &self.a, &self.ns_b, &self.b);
        self.ns_a.exec("ip", &["link", "set", &self.a.ifname, "up"]);
        self.ns_b.exec("ip", &["link", "set", &self.b.ifname, "up"]);
    }

    /// Another pair between the same two namespaces, called `a_name` and `b_name`, with
    /// addresses of their own, up.
    pub fn another(&self, a_name: &str, b_name: &str) -> (End, End) {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let net = 200 + (n % 50) as u8;
        let pid = (std::process::id() % 250) as u8;
        let mk = |ns: &NetNs, name: &str, host: u8| End {
            ns: ns.name.clone(),
            ifname: name.to_string(),
            mac: [0x02, 0x6e, 0x71, pid, net, host],
            ip4: Ipv4Addr::new(10, net, pid, host),
            ip6: Ipv6Addr::new(0xfd00, 0x6e71, pid as u16, net as u16, 0, 0, 0, host as u16),
        };
        let a = mk(&self.ns_a, a_name, 1);
        let b = mk(&self.ns_b, b_name, 2);
        add_silent_veth(&self.ns_a, &a, &self.ns_b, &b);
        self.ns_a.exec("ip", &["link", "set", &a.ifname, "up"]);
        self.ns_b.exec("ip", &["link", "set", &b.ifname, "up"]);
        (a, b)
    }
}

impl Default for VethPair {
    fn default() -> Self {
        Self::new()
    }
}
