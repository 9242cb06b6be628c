//! Which rule dropped it: in a router namespace, rules of every backend drop known numbers of
//! forwarded datagrams, and netpost must name each rule with exactly its count (checked
//! against the kernel's own rule counters too), add them up to the hook's measured drops with
//! the rule that has no counter left unattributed, and list the hook's registered chains at
//! their priorities (oracle: `nft list hooks`, or where this kernel has no hook list, the
//! chains `nft -j list chains` and the legacy tables of the namespace).
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netpost::{Netpost, num},
    require_root,
    router::Router,
    traffic::{udp_receive, udp_receiver, udp_send},
};
use serde_json::Value;

fn watch_router(r: &Router, extra: &[&str]) -> Netpost {
    Netpost::start(
        &r.ns_router.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        extra,
    )
}

fn nf<'a>(snap: &'a Value, family: &str, hook: &str) -> &'a Value {
    let n = &snap["netfilter"][family][hook];
    assert!(n.is_object(), "no netfilter.{family}.{hook} in {snap}");
    n
}

/// The row of `rules[]` whose rule text is `text`.
fn row<'a>(hook: &'a Value, text: &str) -> &'a Value {
    hook["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == text)
        .unwrap_or_else(|| panic!("no rule {text:?} in {:#}", hook["rules"]))
}

fn v4(end: &netpost_tests::netns::End, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(end.ip4), port)
}

fn v6(end: &netpost_tests::netns::End, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(end.ip6), port)
}

/// Packets of the first rule with `needle` in an `iptables -nvxL` listing.
fn iptables_packets(listing: &str, needle: &str) -> u64 {
    listing
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in {listing}"))
}

/// Packets of the nft rule with `needle` in an `nft list` listing.
fn nft_packets(listing: &str, needle: &str) -> u64 {
    let line = listing
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle} in {listing}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "packets").unwrap();
    words[at + 1].parse().unwrap()
}

/// The oracle of a hook's registered nf_tables chains and legacy tables: (priority, what),
/// `what` being `chain FAMILY TABLE CHAIN` or `iptables-legacy TABLE`.
fn oracle_registered(r: &Router, family: &str, hook: &str) -> (Vec<(i64, String)>, bool) {
    let hooks = r.ns_router.exec("nft", &["list", "hooks", family]);
    if !hooks.trim().is_empty() {
        // `nft list hooks ip`: "hook forward {" then "<priority> chain ip filter FORWARD [...]"
        // or "<priority> ipt_do_table [ip_tables]".
        let mut out = Vec::new();
        let mut inside = false;
        for line in hooks.lines() {
            let l = line.trim();
            if l.starts_with("hook ") {
                inside = l == format!("hook {hook} {{");
                continue;
            }
            if !inside || l == "}" {
                continue;
            }
            let (prio, rest) = l.split_once(' ').unwrap();
            let prio: i64 = prio.parse().unwrap();
            if let Some(chain) = rest.strip_prefix("chain ") {
                let chain = chain.split(" [").next().unwrap();
                out.push((prio, format!("chain {chain}")));
            } else if rest.starts_with("ipt_do_table") || rest.starts_with("ip6t_do_table") {
                out.push((prio, "iptables-legacy filter".into()));
            }
        }
        return (out, true);
    }
    // This kernel has no hook list (CONFIG_NETFILTER_NETLINK_HOOK): base chains as nft lists
    // them, legacy tables as the namespace lists them (filter registers at priority 0).
    let chains: Value = serde_json::from_str(&r.ns_router.exec("nft", &["-j", "list", "chains"]))
        .expect("nft -j list chains");
    let mut out = Vec::new();
    for item in chains["nftables"].as_array().unwrap() {
        let c = &item["chain"];
        if c["hook"] != hook {
            continue;
        }
        let fam = c["family"].as_str().unwrap();
        let wanted = if family == "ip" { "ip" } else { "ip6" };
        if fam != wanted && fam != "inet" {
            continue;
        }
        out.push((
            c["prio"].as_i64().unwrap(),
            format!(
                "chain {fam} {} {}",
                c["table"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            ),
        ));
    }
    let names = r.ns_router.exec(
        "cat",
        &[if family == "ip" {
            "/proc/net/ip_tables_names"
        } else {
            "/proc/net/ip6_tables_names"
        }],
    );
    if names.lines().any(|n| n == "filter") {
        out.push((0, "iptables-legacy filter".into()));
    }
    (out, false)
}

/// netpost's `registered[]` in the oracle's terms (nf_tables chains and legacy tables only).
fn registered(hook: &Value) -> Vec<(i64, String)> {
    hook["registered"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let prio = r["priority"].as_i64().unwrap();
            match r["owner"].as_str().unwrap() {
                "nftables" | "iptables-nft" => Some((
                    prio,
                    format!(
                        "chain {} {} {}",
                        r["family"].as_str().unwrap(),
                        r["table"].as_str().unwrap(),
                        r["chain"].as_str().unwrap()
                    ),
                )),
                "iptables-legacy" => Some((
                    prio,
                    format!("iptables-legacy {}", r["table"].as_str().unwrap()),
                )),
                _ => None,
            }
        })
        .collect()
}

fn sorted(mut v: Vec<(i64, String)>) -> Vec<(i64, String)> {
    v.sort();
    v
}

#[test]
fn each_backend_s_rule_is_named_with_exactly_its_drops() {
    require_root();
    let r = Router::new();
    let ns = &r.ns_router;
    ns.exec(
        "iptables",
        &[
            "-A", "FORWARD", "-p", "udp", "--dport", "7711", "-j", "DROP",
        ],
    );
    ns.exec(
        "iptables-legacy",
        &[
            "-A", "FORWARD", "-p", "udp", "--dport", "7712", "-j", "DROP",
        ],
    );
    let nft = |args: &[&str]| ns.exec("nft", args);
    nft(&["add", "table", "inet", "t"]);
    nft(&[
        "add", "chain", "inet", "t", "fw", "{", "type", "filter", "hook", "forward", "priority",
        "5", ";", "}",
    ]);
    nft(&[
        "add", "rule", "inet", "t", "fw", "udp", "dport", "7713", "counter", "drop",
    ]);
    nft(&[
        "add", "rule", "inet", "t", "fw", "udp", "dport", "7714", "drop",
    ]);
    let pass = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7715);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.server, 7711), 20, 64);
    udp_send(&r.ns_client, v4(&r.server, 7712), 13, 64);
    udp_send(&r.ns_client, v4(&r.server, 7713), 11, 64);
    udp_send(&r.ns_client, v4(&r.server, 7714), 7, 64);
    udp_send(&r.ns_client, v4(&r.server, 7715), 9, 64);
    udp_receive(&pass, 9);
    let stderr = netpost.stderr();
    let snap = netpost.stop();

    // The kernel's own counters agree with what was sent.
    let ipt = ns.exec("iptables", &["-nvxL", "FORWARD"]);
    assert_eq!(iptables_packets(&ipt, "dpt:7711"), 20);
    let legacy = ns.exec("iptables-legacy", &["-nvxL", "FORWARD"]);
    assert_eq!(iptables_packets(&legacy, "dpt:7712"), 13);
    let listing = nft(&["list", "chain", "inet", "t", "fw"]);
    assert_eq!(nft_packets(&listing, "dport 7713"), 11);
    if !has_netfilter_links() {
        // Rules are named against the hook's measured drops, which need netfilter links:
        // netpost says why, and the drop reasons count every drop all the same.
        assert_netfilter_unavailable(&snap, &stderr);
        let nf_drop = &snap["drops"]["reasons"]["NETFILTER_DROP"];
        assert_eq!(num(nf_drop, &["packets"]), 20 + 13 + 11 + 7, "{nf_drop}");
        return;
    }

    let fwd = nf(&snap, "ipv4", "forward");
    assert_eq!(num(fwd, &["dropped"]), 51, "{fwd:#}");
    let ipt_row = row(fwd, "-A FORWARD -p udp -m udp --dport 7711 -j DROP");
    assert_eq!(ipt_row["backend"], "iptables-nft");
    assert_eq!(
        (ipt_row["table"].as_str(), ipt_row["chain"].as_str()),
        (Some("filter"), Some("FORWARD"))
    );
    assert_eq!(
        ipt_row["handle_or_index"], 1,
        "iptables numbers rules: {ipt_row}"
    );
    assert_eq!(ipt_row["verdict"], "drop");
    assert_eq!(num(ipt_row, &["packets"]), 20);
    let legacy_row = row(fwd, "-A FORWARD -p udp -m udp --dport 7712 -j DROP");
    assert_eq!(legacy_row["backend"], "iptables-legacy");
    assert_eq!(num(legacy_row, &["packets"]), 13);
    let nft_row = row(fwd, "udp dport 7713 counter drop");
    assert_eq!(nft_row["backend"], "nft");
    assert_eq!(
        (
            nft_row["family"].as_str(),
            nft_row["table"].as_str(),
            nft_row["chain"].as_str()
        ),
        (Some("inet"), Some("t"), Some("fw"))
    );
    assert_eq!(num(nft_row, &["packets"]), 11);
    assert_eq!(nft_row["shared_packets"], 0);
    // The rule without a counter: listed, no packets, unattributed.
    let blind = row(fwd, "udp dport 7714 drop");
    assert!(blind["packets"].is_null(), "{blind}");
    assert!(
        blind["note"].as_str().unwrap().contains("add `counter`"),
        "{blind}"
    );
    assert_eq!(num(fwd, &["attributed_drops"]), 20 + 13 + 11);
    assert_eq!(num(fwd, &["unattributed_drops"]), 7);
    assert_eq!(
        num(fwd, &["attributed_drops"]) + num(fwd, &["unattributed_drops"]),
        num(fwd, &["dropped"])
    );
    // Every drop here was a rule's, inside FORWARD: none after netpost's last program.
    assert_eq!(num(fwd, &["dropped_after_last"]), 0, "{fwd}");
    // Busiest first (the same interval: by packets), the rule without a counter last.
    let order: Vec<&str> = fwd["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(order.last(), Some(&"udp dport 7714 drop"), "{order:?}");
    // Hooks that dropped nothing list no rules.
    for hook in ["prerouting", "input", "output", "postrouting"] {
        let h = nf(&snap, "ipv4", hook);
        assert_eq!(num(h, &["attributed_drops"]), 0, "{hook}");
        assert_eq!(h["rules"], serde_json::json!([]), "{hook}");
    }

    // registered[]: the test's chains and tables at their priorities, netpost at both ends.
    let (oracle, from_kernel) = oracle_registered(&r, "ip", "forward");
    assert_eq!(
        sorted(registered(fwd)),
        sorted(oracle.clone()),
        "{:#}",
        fwd["registered"]
    );
    assert!(
        oracle.contains(&(5, "chain inet t fw".into())),
        "{oracle:?}"
    );
    assert!(
        oracle.contains(&(0, "chain ip filter FORWARD".into())),
        "{oracle:?}"
    );
    assert!(
        oracle.contains(&(0, "iptables-legacy filter".into())),
        "{oracle:?}"
    );
    let reg = fwd["registered"].as_array().unwrap();
    assert_eq!(reg.first().unwrap()["owner"], "netpost");
    assert_eq!(reg.first().unwrap()["priority"], i32::MIN as i64 + 1);
    assert_eq!(reg.last().unwrap()["owner"], "netpost");
    assert_eq!(reg.last().unwrap()["priority"], i32::MAX as i64 - 1);
    let owners: Vec<&str> = reg.iter().map(|r| r["owner"].as_str().unwrap()).collect();
    assert!(
        owners.contains(&"iptables-nft") && owners.contains(&"nftables"),
        "{owners:?}"
    );
    let hook_list = snap["netfilter_rules"]["hook_list"].as_str().unwrap();
    assert_eq!(hook_list == "kernel", from_kernel, "{hook_list}");
    assert_eq!(snap["netfilter_rules_status"], "reading");
}

#[test]
fn an_inet_rule_is_attributed_to_the_family_that_dropped() {
    require_root();
    let r = Router::new();
    let nft = |args: &[&str]| r.ns_router.exec("nft", args);
    nft(&["add", "table", "inet", "t"]);
    nft(&[
        "add", "chain", "inet", "t", "fw", "{", "type", "filter", "hook", "forward", "priority",
        "0", ";", "}",
    ]);
    nft(&[
        "add", "rule", "inet", "t", "fw", "udp", "dport", "7721", "counter", "drop",
    ]);
    let netpost = watch_router(&r, &[]);
    udp_send(&r.ns_client, v4(&r.server, 7721), 12, 64);
    // Several intervals (100 ms) apart: IPv4 dropped in one, IPv6 in another.
    std::thread::sleep(std::time::Duration::from_millis(600));
    udp_send(&r.ns_client, v6(&r.server, 7721), 5, 64);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    let listing = nft(&["list", "chain", "inet", "t", "fw"]);
    assert_eq!(nft_packets(&listing, "dport 7721"), 17);
    if !has_netfilter_links() {
        assert_netfilter_unavailable(&snap, &stderr);
        let nf_drop = &snap["drops"]["reasons"]["NETFILTER_DROP"];
        assert_eq!(num(nf_drop, &["packets"]), 17, "{nf_drop}");
        return;
    }
    for (family, want) in [("ipv4", 12), ("ipv6", 5)] {
        let fwd = nf(&snap, family, "forward");
        assert_eq!(num(fwd, &["dropped"]), want, "{family}");
        let rule = row(fwd, "udp dport 7721 counter drop");
        assert_eq!(num(rule, &["packets"]), want, "{family}: {rule}");
        assert_eq!(num(fwd, &["attributed_drops"]), want, "{family}");
        assert_eq!(num(fwd, &["unattributed_drops"]), 0, "{family}");
        let reg = registered(fwd);
        assert!(
            reg.contains(&(0, "chain inet t fw".into())),
            "{family}: {reg:?}"
        );
    }
}

#[test]
fn no_netfilter_reads_no_rules() {
    require_root();
    let r = Router::new();
    let netpost = watch_router(&r, &["--no-netfilter"]);
    let snap = netpost.stop();
    assert_eq!(snap["netfilter_rules_status"], "off (--no-netfilter)");
    assert!(snap["netfilter_rules"].is_null());
}

/// The chain of `chains[]` named `table chain` with its backend.
fn chain<'a>(hook: &'a Value, backend: &str, table: &str, name: &str) -> &'a Value {
    hook["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == backend && c["table"] == table && c["chain"] == name)
        .unwrap_or_else(|| panic!("no {backend} {table} {name} in {:#}", hook["chains"]))
}

#[test]
fn chains_say_where_the_established_accept_is_for_every_backend() {
    require_root();
    let r = Router::new();
    let ns = &r.ns_router;
    ns.exec("nft", &["add", "table", "inet", "t"]);
    ns.exec(
        "nft",
        &[
            "add", "chain", "inet", "t", "fw", "{", "type", "filter", "hook", "forward",
            "priority", "5", ";", "}",
        ],
    );
    for port in ["20001", "20002", "20003"] {
        ns.exec(
            "nft",
            &[
                "add", "rule", "inet", "t", "fw", "tcp", "dport", port, "accept",
            ],
        );
    }
    ns.exec(
        "nft",
        &[
            "add",
            "rule",
            "inet",
            "t",
            "fw",
            "ct",
            "state",
            "established,related",
            "accept",
        ],
    );
    // iptables (nf_tables backend): the accept second; legacy: first, on INPUT too.
    let ipt = |tool: &str, args: &[&str]| ns.exec(tool, args);
    ipt(
        "iptables",
        &[
            "-A", "FORWARD", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
        ],
    );
    ipt(
        "iptables",
        &[
            "-A",
            "FORWARD",
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
    );
    ipt(
        "iptables-legacy",
        &[
            "-A",
            "FORWARD",
            "-m",
            "state",
            "--state",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ],
    );
    ipt(
        "iptables-legacy",
        &["-A", "FORWARD", "-p", "udp", "-j", "ACCEPT"],
    );
    let netpost = watch_router(&r, &[]);
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    if !has_netfilter_links() {
        // The chains are listed under each hook's netfilter figures, which need the links.
        assert_netfilter_unavailable(&snap, &stderr);
        return;
    }
    let fwd = nf(&snap, "ipv4", "forward");
    let nft = chain(fwd, "nft", "t", "fw");
    assert_eq!(
        (nft["rules"].as_u64(), nft["priority"].as_i64()),
        (Some(4), Some(5))
    );
    assert_eq!(nft["established_accept"]["position"], 4, "{nft}");
    let handles = ns.exec("nft", &["-a", "list", "chain", "inet", "t", "fw"]);
    let handle = handles
        .lines()
        .find(|l| l.contains("ct state established,related accept"))
        .and_then(|l| l.rsplit("handle ").next()?.trim().parse::<u64>().ok())
        .expect("the accept's handle");
    assert_eq!(nft["established_accept"]["handle_or_index"], handle);
    let ipt_nft = chain(fwd, "iptables-nft", "filter", "FORWARD");
    assert_eq!(ipt_nft["rules"], 2);
    assert_eq!(ipt_nft["established_accept"]["position"], 2, "{ipt_nft}");
    let legacy = chain(fwd, "iptables-legacy", "filter", "FORWARD");
    assert_eq!(legacy["rules"], 2);
    assert_eq!(legacy["established_accept"]["position"], 1, "{legacy}");
    // The inet chain runs for IPv6 too; iptables' tables are IPv4's.
    let fwd6 = nf(&snap, "ipv6", "forward");
    assert_eq!(
        chain(fwd6, "nft", "t", "fw")["established_accept"]["position"],
        4
    );
    assert!(
        fwd6["chains"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["backend"] == "nft")
    );
}
