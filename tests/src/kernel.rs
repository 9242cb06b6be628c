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
    let (group, field) = (format!("{group}:"), field.to_string());
    ns.run(move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("read snmp");
        let mut lines = text.lines().filter(|l| l.starts_with(&group));
        let names: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
        let values: Vec<&str> = lines.next().expect("values").split_whitespace().collect();
        let at = names.iter().position(|n| *n == field).expect("field");
        values[at].parse().expect("number")
    })
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

/// Names of the programs attached to `ifname` in `ns`: (XDP, tcx ingress, tcx egress).
/// XDP comes from `ip -d link` (netlink), tcx from BPF_PROG_QUERY: both ask the kernel, so
/// a leftover link shows up whoever made it.
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
    let (tcx_ingress, tcx_egress) = ns.run(move || {
        let query = |t| {
            aya::programs::SchedClassifier::query_tcx(&name, t)
                .map(|(_, progs)| {
                    progs
                        .iter()
                        .map(|p| p.name_as_str().unwrap_or("?").to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_else(|e| panic!("query tcx on {name}: {e}"))
        };
        (
            query(aya::programs::TcAttachType::Ingress),
            query(aya::programs::TcAttachType::Egress),
        )
    });
    Attached {
        xdp,
        tcx_ingress,
        tcx_egress,
    }
}

/// Program names attached to one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub xdp: Vec<String>,
    pub tcx_ingress: Vec<String>,
    pub tcx_egress: Vec<String>,
}

impl Attached {
    pub fn is_empty(&self) -> bool {
        self.xdp.is_empty() && self.tcx_ingress.is_empty() && self.tcx_egress.is_empty()
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
    fn snmp6_line_is_parsed() {
        let text = "Ip6InReceives                   \t12\nIp6OutForwDatagrams             \t7\nIp6OutForwDatagramsX 1\n";
        assert_eq!(parse_snmp6(text, "Ip6OutForwDatagrams"), Some(7));
        assert_eq!(parse_snmp6(text, "Ip6InReceives"), Some(12));
        assert_eq!(parse_snmp6(text, "Ip6InDelivers"), None);
    }
}
