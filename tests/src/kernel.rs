//! The kernel's own counters, read inside a namespace: the oracle the tests compare
//! netpost's numbers with.
use crate::netns::NetNs;

/// Per-interface counters from /proc/net/dev (frames as the device counted them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl DevStats {
    pub fn delta(&self, before: &DevStats) -> DevStats {
        DevStats {
            rx_packets: self.rx_packets - before.rx_packets,
            rx_bytes: self.rx_bytes - before.rx_bytes,
            tx_packets: self.tx_packets - before.tx_packets,
            tx_bytes: self.tx_bytes - before.tx_bytes,
        }
    }
}

/// Parses the line of `ifname` in /proc/net/dev text.
pub fn parse_dev_stats(text: &str, ifname: &str) -> Option<DevStats> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        Some(DevStats {
            rx_bytes: f[0],
            rx_packets: f[1],
            tx_bytes: f[8],
            tx_packets: f[9],
        })
    })
}

pub fn dev_stats(ns: &NetNs, ifname: &str) -> DevStats {
    let ifname = ifname.to_string();
    ns.run(move || {
        // thread-self: this thread's namespace, not the process's.
        let text = std::fs::read_to_string("/proc/thread-self/net/dev").expect("read net/dev");
        parse_dev_stats(&text, &ifname).unwrap_or_else(|| panic!("{ifname} not in /proc/net/dev"))
    })
}

/// A field of /proc/net/snmp, e.g. ("Tcp", "InSegs").
pub fn snmp(ns: &NetNs, group: &str, field: &str) -> u64 {
    paired_counter(ns, "snmp", group, field)
}

/// A field of /proc/net/netstat, e.g. ("TcpExt", "TCPSynRetrans"): the extended counters
/// `nstat` shows with their group prefix (`TcpExtTCPSynRetrans`).
pub fn netstat(ns: &NetNs, group: &str, field: &str) -> u64 {
    paired_counter(ns, "netstat", group, field)
}

/// A counter of a /proc/net file made of `Group: names` / `Group: values` line pairs.
fn paired_counter(ns: &NetNs, file: &'static str, group: &str, field: &str) -> u64 {
    let (group, field) = (group.to_string(), field.to_string());
    ns.run(move || {
        // thread-self: this thread's namespace, not the process's.
        let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
            .unwrap_or_else(|e| panic!("read {file}: {e}"));
        parse_paired(&text, &group, &field)
            .unwrap_or_else(|| panic!("{group}:{field} is not in this kernel's /proc/net/{file}"))
    })
}

/// Finds `group`'s `field` in /proc/net/snmp or /proc/net/netstat text.
pub fn parse_paired(text: &str, group: &str, field: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// A counter of /proc/net/snmp6 (one `name value` pair a line), e.g. "Ip6OutForwDatagrams".
pub fn snmp6(ns: &NetNs, field: &str) -> u64 {
    let field = field.to_string();
    ns.run(move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp6").expect("read snmp6");
        parse_snmp6(&text, &field).unwrap_or_else(|| panic!("{field} not in snmp6"))
    })
}

/// Finds `field` in /proc/net/snmp6 text.
pub fn parse_snmp6(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == field).then(|| words.next()?.parse().ok())?
    })
}

/// Names of the programs attached to `ifname` in `ns`: (XDP, tc ingress, tc egress).
/// XDP comes from `ip -d link` (netlink); tc from BPF_PROG_QUERY (TCX links, >= 6.6) and
/// from `tc filter show` (netlink filters, how tc attaches on older kernels). All ask the
/// kernel, so a leftover shows up whoever made it.
pub fn attached_programs(ns: &NetNs, ifname: &str) -> Attached {
    let out = ns.exec("ip", &["-j", "-d", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link json");
    let xdp = v[0]["xdp"]["attached"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["prog"]["name"].as_str().unwrap_or("?").to_string())
        .collect();
    let name = ifname.to_string();
    let (mut tc_ingress, mut tc_egress) = ns.run(move || {
        let query = |t| {
            match aya::programs::SchedClassifier::query_tcx(&name, t) {
                Ok((_, progs)) => progs
                    .iter()
                    .map(|p| p.name_as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>(),
                // No TCX in this kernel (< 6.6): nothing can be attached that way.
                Err(_) if !has_tcx() => Vec::new(),
                Err(e) => panic!("query tcx on {name}: {e}"),
            }
        };
        (
            query(aya::programs::TcAttachType::Ingress),
            query(aya::programs::TcAttachType::Egress),
        )
    });
    tc_ingress.extend(tc_filters(ns, ifname, "ingress"));
    tc_egress.extend(tc_filters(ns, ifname, "egress"));
    Attached {
        xdp,
        tc_ingress,
        tc_egress,
    }
}

/// Program names of the netlink tc filters on one side of `ifname` (none without a clsact
/// qdisc).
fn tc_filters(ns: &NetNs, ifname: &str, side: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "tc", "-j", "filter", "show", "dev", ifname, side,
        ])
        .output()
        .expect("run tc");
    parse_tc_filters(&String::from_utf8_lossy(&out.stdout))
}

/// The BPF program names in `tc -j filter show` output.
pub fn parse_tc_filters(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == "bpf")
        .filter_map(|f| {
            let options = &f["options"];
            options["prog"]["name"]
                .as_str()
                .or_else(|| options["bpf_name"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// Whether this kernel has TCX (tc BPF links, 6.6+): the kernel is asked for lo's TCX
/// programs, a query kernels without TCX refuse.
pub fn has_tcx() -> bool {
    aya::programs::SchedClassifier::query_tcx("lo", aya::programs::TcAttachType::Ingress).is_ok()
}

/// Whether `ifname` in `ns` has a clsact qdisc (where netlink tc filters hang, < 6.6).
pub fn has_clsact(ns: &NetNs, ifname: &str) -> bool {
    let out = ns.exec("tc", &["-j", "qdisc", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("tc -j qdisc json");
    v.as_array()
        .into_iter()
        .flatten()
        .any(|q| q["kind"] == "clsact")
}

/// Whether this kernel has netfilter BPF links (BPF_PROG_TYPE_NETFILTER, 6.4+ with
/// CONFIG_NETFILTER_BPF_LINK): the kernel is asked to load a trivial netfilter program.
pub fn has_netfilter_links() -> bool {
    aya::sys::is_program_supported(aya::programs::ProgramType::Netfilter).unwrap_or(false)
}

/// Whether the running kernel's version is at least `major.minor` (/proc/sys/kernel/osrelease).
pub fn at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || -> u32 { parts.next().and_then(|p| p.parse().ok()).expect("version") };
    (next(), next()) >= (major, minor)
}

/// How netpost's netfilter programs read headers on this kernel, as JSON's
/// `netfilter_reads` says: in place from Linux 6.17 on (`skb->head` readable), else copied.
pub fn netfilter_reads() -> &'static str {
    if at_least(6, 17) {
        "in_place"
    } else {
        "copied"
    }
}

/// What netpost says where the kernel has no netfilter links.
pub const NO_NETFILTER_LINKS: &str =
    "this kernel has no BPF netfilter links (Linux >= 6.4 built with CONFIG_NETFILTER_BPF_LINK)";

/// Asserts what a test whose subject is netfilter traversal checks on a kernel without
/// netfilter links: both families unavailable with the kernel's limit as the reason, said
/// once on stderr, and no numbers that would look like zero traffic.
pub fn assert_netfilter_unavailable(snap: &serde_json::Value, stderr: &str) {
    let want = format!("unavailable: {NO_NETFILTER_LINKS}");
    for family in ["ipv4", "ipv6"] {
        assert_eq!(snap["netfilter_status"][family], want.as_str(), "{family}");
        assert!(snap["netfilter"][family].is_null(), "{family}: {snap}");
    }
    let line = format!("netpost: netfilter (ipv4, ipv6): {want}; XDP and tc counting continues");
    assert_eq!(stderr.matches(&line).count(), 1, "said once: {stderr}");
}

/// Program names attached to one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub xdp: Vec<String>,
    pub tc_ingress: Vec<String>,
    pub tc_egress: Vec<String>,
}

impl Attached {
    pub fn is_empty(&self) -> bool {
        self.xdp.is_empty() && self.tc_ingress.is_empty() && self.tc_egress.is_empty()
    }
}

/// (id, name) of every BPF program the process `pid` holds through a program or link fd,
/// from the `prog_id:` lines of /proc/PID/fdinfo.
pub fn programs_of_pid(pid: i32) -> Vec<(u64, String)> {
    let mut ids: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("fdinfo")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
                .collect::<Vec<u64>>()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let out = crate::sh("bpftool", &["-j", "prog", "show", "id", &id.to_string()]);
            let v: serde_json::Value = serde_json::from_str(&out).expect("bpftool json");
            (id, v["name"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

/// Whether a BPF program with this id still exists (held by an fd, a link or a pin).
pub fn program_exists(id: u64) -> bool {
    std::process::Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_line_is_parsed() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\nnpb1x2: 4200 30 0 0 0 0 0 0 980 7 0 0 0 0 0 0\n";
        let s = parse_dev_stats(text, "npb1x2").unwrap();
        assert_eq!(
            s,
            DevStats {
                rx_packets: 30,
                rx_bytes: 4200,
                tx_packets: 7,
                tx_bytes: 980
            }
        );
        assert!(parse_dev_stats(text, "eth9").is_none());
    }

    #[test]
    fn paired_lines_are_parsed() {
        let text =
            "TcpExt: SyncookiesSent TCPSynRetrans\nTcpExt: 0 3\nIpExt: InNoRoutes\nIpExt: 7\n";
        assert_eq!(parse_paired(text, "TcpExt", "TCPSynRetrans"), Some(3));
        assert_eq!(parse_paired(text, "IpExt", "InNoRoutes"), Some(7));
        assert_eq!(parse_paired(text, "TcpExt", "TCPFastOpenActive"), None);
        assert_eq!(parse_paired(text, "Tcp", "InSegs"), None);
    }

    #[test]
    fn tc_filter_listing_is_parsed() {
        let json = r#"[{"protocol":"all","pref":49152,"kind":"bpf","chain":0},{"protocol":"all","pref":49152,"kind":"bpf","chain":0,"options":{"handle":"0x1","bpf_name":"netpost_tc_in","direct-action":true,"not_in_hw":true,"prog":{"id":42,"name":"netpost_tc_in","tag":"ab","jited":1}}},{"kind":"u32","options":{}}]"#;
        assert_eq!(parse_tc_filters(json), ["netpost_tc_in"]);
        assert!(parse_tc_filters("").is_empty());
    }

    #[test]
    fn snmp6_line_is_parsed() {
        let text = "Ip6InReceives                   \t12\nIp6OutForwDatagrams             \t7\nIp6OutForwDatagramsX 1\n";
        assert_eq!(parse_snmp6(text, "Ip6OutForwDatagrams"), Some(7));
        assert_eq!(parse_snmp6(text, "Ip6InReceives"), Some(12));
        assert_eq!(parse_snmp6(text, "Ip6InDelivers"), None);
    }
}
