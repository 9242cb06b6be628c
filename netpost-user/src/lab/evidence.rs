//! The kernel's own witnesses of a pitfall, read inside a lab namespace: SNMP/MIB counters
//! (the ones `nstat` shows), conntrack's count and statistics, nft rule counters, socket
//! tables, qdisc statistics and `ss -ti` of one flow.
//!
//! Each scenario lists its [`Witness`]es: where to look, what moves, and the command that
//! shows the same number by hand. Tests check that every witness moves as declared; the
//! doctor can use the same list to know what a pitfall looks like.
use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::{ns, scenario::NFT_TABLE, topology::Node};

/// Where a number comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A MIB counter under nstat's name: group + field from /proc/net/snmp and
    /// /proc/net/netstat (`TcpExtListenOverflows`, `IpExtInNoRoutes`, `UdpNoPorts`), or a
    /// /proc/net/snmp6 name (`Ip6InNoRoutes`).
    Nstat { name: &'static str },
    /// Entries in the namespace's conntrack table (net.netfilter.nf_conntrack_count).
    ConntrackCount,
    /// A column of /proc/net/stat/nf_conntrack summed over CPUs (`drop`, `early_drop`,
    /// `insert_failed`), as `conntrack -S` prints them.
    ConntrackStat { field: &'static str },
    /// Packets counted by the rule with this comment in the lab's nft table.
    NftRule { comment: &'static str },
    /// Sockets in TCP `state` (kernel number: 3 SYN_RECV, 10 LISTEN) on local `port`, IPv4
    /// and IPv6 (/proc/net/tcp{,6}, request sockets included).
    TcpSockets { state: u8, port: u16 },
    /// Connections waiting in the accept queue of the listener on `port` (its Recv-Q).
    AcceptQueue { port: u16 },
    /// One field of `ss -ti` for the established flow to remote `port`: `rtt_us`,
    /// `rwnd_limited_pct` (share of the sender's busy time limited by the peer's window),
    /// `snd_wnd`.
    TcpFlow { port: u16, field: &'static str },
    /// A root qdisc's statistic on `dev` (`drops`, `backlog` in bytes), as `tc -s` shows.
    Qdisc {
        dev: &'static str,
        field: &'static str,
    },
}

/// How a witness must move while the scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expect {
    /// A counter grows by at least this much.
    Rises { at_least: u64 },
    /// A counter does not move (the pitfall is not something else).
    Quiet,
    /// A level reaches at least this value while the scenario runs.
    AtLeast { value: u64 },
}

/// One piece of kernel evidence for a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Witness {
    pub node: Node,
    pub source: Source,
    pub expect: Expect,
    /// What it means, in a few words.
    pub meaning: &'static str,
}

impl Witness {
    pub const fn new(node: Node, source: Source, expect: Expect, meaning: &'static str) -> Self {
        Witness {
            node,
            source,
            expect,
            meaning,
        }
    }

    /// The command that shows the same number by hand.
    pub fn command(&self) -> String {
        let ns = self.node.netns();
        match self.source {
            Source::Nstat { name } => format!("ip netns exec {ns} nstat -az {name}"),
            Source::ConntrackCount => format!("ip netns exec {ns} conntrack -C"),
            Source::ConntrackStat { field } => {
                format!("ip netns exec {ns} conntrack -S  # {field}=, summed over CPUs")
            }
            Source::NftRule { comment } => {
                format!("ip netns exec {ns} nft list table inet {NFT_TABLE}  # rule \"{comment}\"")
            }
            Source::TcpSockets { state, port } => format!(
                "ip netns exec {ns} ss -Htan state {} sport = :{port}",
                tcp_state_name(state)
            ),
            Source::AcceptQueue { port } => {
                format!("ip netns exec {ns} ss -Hltn sport = :{port}  # Recv-Q")
            }
            Source::TcpFlow { port, field } => {
                format!("ip netns exec {ns} ss -Htin dport = :{port}  # {field}")
            }
            Source::Qdisc { dev, field } => {
                format!("ip netns exec {ns} tc -s qdisc show dev {dev}  # {field}")
            }
        }
    }

    pub fn read(&self) -> anyhow::Result<u64> {
        read(self.node, self.source)
    }
}

/// A witness read at the start and at the end of a window.
#[derive(Clone, Debug, Serialize)]
pub struct Reading {
    pub witness: Witness,
    pub before: u64,
    pub after: u64,
}

impl Reading {
    /// The delta for counters, the final level for levels.
    pub fn value(&self) -> u64 {
        match self.witness.expect {
            Expect::Rises { .. } | Expect::Quiet => self.after.saturating_sub(self.before),
            Expect::AtLeast { .. } => self.after,
        }
    }

    pub fn holds(&self) -> bool {
        match self.witness.expect {
            Expect::Rises { at_least } => self.value() >= at_least,
            Expect::Quiet => self.value() == 0,
            Expect::AtLeast { value } => self.after >= value,
        }
    }
}

/// Reads `witnesses` (levels only at the end), waits `window`, reads them again.
pub fn watch(witnesses: &[Witness], window: std::time::Duration) -> anyhow::Result<Vec<Reading>> {
    let before = witnesses
        .iter()
        .map(|w| match w.expect {
            Expect::AtLeast { .. } => Ok(0),
            _ => w.read(),
        })
        .collect::<anyhow::Result<Vec<u64>>>()?;
    std::thread::sleep(window);
    witnesses
        .iter()
        .zip(before)
        .map(|(w, before)| {
            Ok(Reading {
                witness: *w,
                before,
                after: w.read()?,
            })
        })
        .collect()
}

pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        6 => "time-wait",
        10 => "listening",
        _ => "all",
    }
}

/// Reads one number in `node`.
pub fn read(node: Node, source: Source) -> anyhow::Result<u64> {
    match source {
        Source::Nstat { name } => nstat(node)?
            .get(name)
            .copied()
            .with_context(|| format!("{name} is not a counter of this kernel")),
        Source::ConntrackCount => ns::sysctl_get(Some(node), "net.netfilter.nf_conntrack_count")?
            .parse()
            .context("nf_conntrack_count"),
        Source::ConntrackStat { field } => {
            let text = ns::within(node, || {
                std::fs::read_to_string("/proc/thread-self/net/stat/nf_conntrack")
            })??;
            conntrack_stat(&text, field)
        }
        Source::NftRule { comment } => {
            let out = ns::exec(node, &["nft", "-j", "list", "table", "inet", NFT_TABLE])?;
            nft_rule_packets(&out, comment)
        }
        Source::TcpSockets { state, port } => Ok(tcp_table(node)?
            .iter()
            .filter(|s| s.state == state && s.local_port == port)
            .count() as u64),
        Source::AcceptQueue { port } => Ok(tcp_table(node)?
            .iter()
            .filter(|s| s.state == 10 && s.local_port == port)
            .map(|s| s.rx_queue)
            .sum()),
        Source::TcpFlow { port, field } => {
            let filter = format!("dport = :{port}");
            let out = ns::exec(node, &["ss", "-Htin", "state", "established", &filter])?;
            ss_field(&out, field).with_context(|| format!("no flow to port {port} with {field}"))
        }
        Source::Qdisc { dev, field } => {
            let out = ns::exec(node, &["tc", "-s", "-j", "qdisc", "show", "dev", dev])?;
            let v: serde_json::Value = serde_json::from_str(&out).context("tc -j")?;
            v.as_array()
                .and_then(|q| q.iter().find(|q| q["root"] == true))
                .and_then(|q| q[field].as_u64())
                .with_context(|| format!("no root qdisc {field} on {dev}"))
        }
    }
}

/// Every MIB counter of `node`'s namespace under nstat's names.
pub fn nstat(node: Node) -> anyhow::Result<BTreeMap<String, u64>> {
    let texts = ns::within(node, || {
        ["snmp", "netstat", "snmp6"].map(|f| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default()
        })
    })?;
    let mut all = parse_snmp_pairs(&texts[0]);
    all.extend(parse_snmp_pairs(&texts[1]));
    all.extend(parse_snmp6(&texts[2]));
    Ok(all)
}

/// /proc/net/snmp and /proc/net/netstat: a header line and a value line per group.
pub fn parse_snmp_pairs(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [head, values] = pair else { continue };
        let (Some((group, names)), Some((_, values))) =
            (head.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            // A few are signed (Tcp MaxConn = -1): not counters.
            if let Ok(v) = value.parse::<u64>() {
                out.insert(format!("{group}{name}"), v);
            }
        }
    }
    out
}

/// /proc/net/snmp6: `name value` per line.
pub fn parse_snmp6(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// Sums a column of /proc/net/stat/nf_conntrack (hex, one line per CPU).
pub fn conntrack_stat(text: &str, field: &str) -> anyhow::Result<u64> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines
        .next()
        .context("empty stat")?
        .split_whitespace()
        .collect();
    let at = head
        .iter()
        .position(|h| *h == field)
        .with_context(|| format!("no conntrack statistic {field}"))?;
    let mut sum = 0;
    for line in lines {
        let v = line.split_whitespace().nth(at).context("short line")?;
        sum += u64::from_str_radix(v, 16).context("hex")?;
    }
    Ok(sum)
}

/// Packets of the rule whose comment is `comment`, from `nft -j list table`.
pub fn nft_rule_packets(json: &str, comment: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = serde_json::from_str(json).context("nft -j")?;
    for item in v["nftables"].as_array().into_iter().flatten() {
        let rule = &item["rule"];
        if rule["comment"] == comment {
            for e in rule["expr"].as_array().into_iter().flatten() {
                if let Some(p) = e["counter"]["packets"].as_u64() {
                    return Ok(p);
                }
            }
            bail!("rule \"{comment}\" has no counter");
        }
    }
    bail!("no rule \"{comment}\" in table inet {NFT_TABLE}")
}

/// The position (1-based) of the rule with `comment` in `chain`, and the rule count.
pub fn nft_rule_position(json: &str, chain: &str, comment: &str) -> Option<(usize, usize)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let rules: Vec<&serde_json::Value> = v["nftables"]
        .as_array()?
        .iter()
        .map(|i| &i["rule"])
        .filter(|r| r["chain"] == chain)
        .collect();
    let at = rules.iter().position(|r| r["comment"] == comment)?;
    Some((at + 1, rules.len()))
}

/// One line of /proc/net/tcp{,6}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSock {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    pub rx_queue: u64,
}

pub fn tcp_table(node: Node) -> anyhow::Result<Vec<TcpSock>> {
    let texts = ns::within(node, || {
        ["tcp", "tcp6"].map(|f| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default()
        })
    })?;
    Ok(texts.iter().flat_map(|t| parse_tcp_table(t)).collect())
}

pub fn parse_tcp_table(text: &str) -> Vec<TcpSock> {
    let port = |s: &str| u16::from_str_radix(s.rsplit(':').next()?, 16).ok();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (_, rx) = f.get(4)?.split_once(':')?;
            Some(TcpSock {
                local_port: port(f.get(1)?)?,
                remote_port: port(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                rx_queue: u64::from_str_radix(rx, 16).ok()?,
            })
        })
        .collect()
}

/// A field of `ss -ti` output (the first flow that has it): `rtt_us` from `rtt:A/B` (ms),
/// `rwnd_limited_pct` from `rwnd_limited:Nms(P%)`, `snd_wnd` from `snd_wnd:N`.
pub fn ss_field(text: &str, field: &str) -> Option<u64> {
    let words = text.split_whitespace();
    match field {
        "rtt_us" => words
            .filter_map(|w| w.strip_prefix("rtt:"))
            .find_map(|v| v.split('/').next()?.parse::<f64>().ok())
            .map(|ms| (ms * 1000.0) as u64),
        "rwnd_limited_pct" => words
            .filter_map(|w| w.strip_prefix("rwnd_limited:"))
            .find_map(|v| {
                let pct = v.split_once('(')?.1.trim_end_matches([')', '%']);
                pct.parse::<f64>().ok()
            })
            .map(|p| p.round() as u64),
        "snd_wnd" => words
            .filter_map(|w| w.strip_prefix("snd_wnd:"))
            .find_map(|v| v.parse().ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_pairs_take_nstat_names() {
        let text = "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 12\nTcp: RtoAlgorithm MaxConn OutRsts\nTcp: 1 -1 7\n";
        let m = parse_snmp_pairs(text);
        assert_eq!(m["IpInReceives"], 12);
        assert_eq!(m["TcpOutRsts"], 7);
        assert!(!m.contains_key("TcpMaxConn"));
        let ext = parse_snmp_pairs("TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 0 5\n");
        assert_eq!(ext["TcpExtListenOverflows"], 5);
        assert_eq!(
            parse_snmp6("Ip6InNoRoutes  \t3\nUdp6NoPorts 9\n")["Udp6NoPorts"],
            9
        );
    }

    #[test]
    fn conntrack_stat_sums_cpus() {
        let text = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop\n00000100  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000a 00000001\n00000100  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000006 00000000\n";
        assert_eq!(conntrack_stat(text, "drop").unwrap(), 16);
        assert_eq!(conntrack_stat(text, "early_drop").unwrap(), 1);
        assert!(conntrack_stat(text, "nope").is_err());
    }

    #[test]
    fn tcp_table_lines_are_parsed() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1BBC 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1\n   1: 0202FE0A:1C20 4201FE0A:9C40 03 00000000:00000000 02:00000064 00000002     0        0 0\n";
        let t = parse_tcp_table(text);
        assert_eq!(
            t,
            [
                TcpSock {
                    local_port: 7100,
                    remote_port: 0,
                    state: 10,
                    rx_queue: 2
                },
                TcpSock {
                    local_port: 7200,
                    remote_port: 40000,
                    state: 3,
                    rx_queue: 0
                },
            ]
        );
    }

    #[test]
    fn ss_fields_are_parsed() {
        let text = "0 0 10.254.1.2:40000 10.254.2.2:7500\n\t cubic wscale:7,7 rto:304 rtt:101.5/3.2 mss:1448 snd_wnd:8192 rwnd_limited:2960ms(98.7%) busy:3000ms\n";
        assert_eq!(ss_field(text, "rtt_us"), Some(101_500));
        assert_eq!(ss_field(text, "rwnd_limited_pct"), Some(99));
        assert_eq!(ss_field(text, "snd_wnd"), Some(8192));
        assert_eq!(ss_field(text, "cwnd"), None);
    }

    #[test]
    fn nft_rule_counters_and_positions_are_found() {
        let json = r#"{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"netpost_lab"}},
          {"rule":{"chain":"forward","handle":3,"expr":[{"counter":{"packets":0,"bytes":0}}]}},
          {"rule":{"chain":"forward","handle":4,"comment":"established","expr":[{"match":{}},{"counter":{"packets":42,"bytes":4200}},{"accept":null}]}}]}"#;
        assert_eq!(nft_rule_packets(json, "established").unwrap(), 42);
        assert!(nft_rule_packets(json, "new").is_err());
        assert_eq!(
            nft_rule_position(json, "forward", "established"),
            Some((2, 2))
        );
    }
}
