//! Changes under a running netpost: the ruleset replaced whole (`iptables-restore`, `nft -f`),
//! conntrack turned on and off in the namespace (the kernel's conntrack is built in here: it
//! runs in a namespace while a rule or NAT needs it), IPv6 disabled. netpost keeps counting,
//! every count stays exact, and the figures that depend on each other stay consistent.
//! (`nf_conntrack_max` changed: conntrack_full.rs, whose binary owns that global value.)
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netns::VethPair,
    netpost::{Netpost, hook, num},
    require_root,
    router::Router,
    traffic::{send_frames, udp_receive, udp_receiver, udp_send},
    wait_until,
};
use serde_json::Value;

fn nf<'a>(snap: &'a Value, family: &str, hook: &str) -> &'a Value {
    let n = &snap["netfilter"][family][hook];
    assert!(n.is_object(), "no netfilter.{family}.{hook} in {snap}");
    n
}

/// The `rules[]` row of `hook` whose rule text is `text`, if listed.
fn rule<'a>(hook: &'a Value, text: &str) -> Option<&'a Value> {
    hook["rules"].as_array()?.iter().find(|r| r["rule"] == text)
}

/// Waits until netpost's newest snapshot attributes `packets` drops to `text` at FORWARD: a
/// read of the rules between the drops and the next change of the ruleset.
fn wait_attributed(netpost: &Netpost, text: &str, packets: u64) {
    let last = std::cell::RefCell::new(Value::Null);
    wait_until(
        || {
            let Some(snap) = netpost.lines().pop() else {
                return false;
            };
            let done = snap["netfilter"]["ipv4"]["forward"]["rules"]
                .as_array()
                .is_some_and(|rows| {
                    rows.iter()
                        .any(|r| r["rule"] == text && r["packets"] == packets)
                });
            *last.borrow_mut() = snap;
            done
        },
        || {
            format!(
                "{text} never had {packets} packets: {:#}",
                last.borrow()["netfilter"]["ipv4"]["forward"]["rules"]
            )
        },
    );
}

/// Every snapshot's drops add up: attributed + unattributed = dropped at every hook.
fn assert_drops_add_up(lines: &[Value]) {
    for snap in lines {
        for family in ["ipv4", "ipv6"] {
            for hook in ["prerouting", "input", "forward", "output", "postrouting"] {
                let h = nf(snap, family, hook);
                if h["attributed_drops"].is_null() {
                    continue;
                }
                assert_eq!(
                    num(h, &["attributed_drops"]) + num(h, &["unattributed_drops"]),
                    num(h, &["dropped"]),
                    "{family} {hook} at {}: {h:#}",
                    snap["elapsed_ms"]
                );
            }
        }
    }
}

#[test]
fn a_ruleset_replaced_whole_is_followed_and_every_count_stays_exact() {
    require_root();
    let r = Router::new();
    let ns = &r.ns_router;
    let to = |port| SocketAddr::new(IpAddr::V4(r.server.ip4), port);
    ns.exec(
        "iptables",
        &[
            "-A", "FORWARD", "-p", "udp", "--dport", "7811", "-j", "DROP",
        ],
    );
    let netpost = Netpost::start(
        &ns.name,
        &[&r.router_client.ifname, &r.router_server.ifname],
        &[],
    );
    if !has_netfilter_links() {
        // Attribution follows the drops the netfilter programs measure: without them netpost
        // says why, and the ruleset replaced under it leaves tc's counts exact.
        udp_send(&r.ns_client, to(7811), 10, 64);
        ns.exec("iptables", &["-F", "FORWARD"]);
        ns.exec(
            "iptables",
            &[
                "-A", "FORWARD", "-p", "udp", "--dport", "7812", "-j", "DROP",
            ],
        );
        let pass = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7811);
        udp_send(&r.ns_client, to(7811), 6, 64);
        udp_receive(&pass, 6);
        udp_send(&r.ns_client, to(7812), 8, 64);
        let udp = |snap: &Value, ifname: &str, h: &str| {
            num(hook(snap, ifname, h), &["by_proto", "udp", "packets"])
        };
        wait_until(
            || {
                netpost.lines().pop().is_some_and(|s| {
                    s["interfaces"].is_object()
                        && udp(&s, &r.router_client.ifname, "tc_ingress") == 10 + 6 + 8
                })
            },
            || format!("{:?}", netpost.lines().pop()),
        );
        let stderr = netpost.stderr();
        let last = netpost.stop();
        assert_netfilter_unavailable(&last, &stderr);
        assert_eq!(
            udp(&last, &r.router_client.ifname, "tc_ingress"),
            10 + 6 + 8
        );
        assert_eq!(udp(&last, &r.router_server.ifname, "tc_egress"), 6);
        return;
    }
    udp_send(&r.ns_client, to(7811), 10, 64);
    wait_attributed(
        &netpost,
        "-A FORWARD -p udp -m udp --dport 7811 -j DROP",
        10,
    );

    // iptables-restore replaces the filter table: 7811 passes now, 7812 is dropped.
    let rules = std::env::temp_dir().join(netpost_tests::netns::unique_name("nprs"));
    std::fs::write(
        &rules,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -p udp -m udp --dport 7812 -j DROP\nCOMMIT\n",
    )
    .unwrap();
    ns.exec("iptables-restore", &[&rules.display().to_string()]);
    let pass_7811 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7811);
    udp_send(&r.ns_client, to(7811), 6, 64);
    udp_receive(&pass_7811, 6);
    udp_send(&r.ns_client, to(7812), 8, 64);
    wait_attributed(&netpost, "-A FORWARD -p udp -m udp --dport 7812 -j DROP", 8);

    // nft -f flushes everything (the iptables-nft tables too) and loads a table of its own.
    std::fs::write(
        &rules,
        "flush ruleset\ntable inet t {\n  chain fw {\n    type filter hook forward priority 0;\n    \
         udp dport 7813 counter drop\n  }\n}\n",
    )
    .unwrap();
    ns.exec("nft", &["-f", &rules.display().to_string()]);
    let _ = std::fs::remove_file(&rules);
    let pass_7812 = udp_receiver(&r.ns_server, IpAddr::V4(r.server.ip4), 7812);
    udp_send(&r.ns_client, to(7812), 4, 64);
    udp_receive(&pass_7812, 4);
    udp_send(&r.ns_client, to(7813), 5, 64);
    wait_attributed(&netpost, "udp dport 7813 counter drop", 5);

    let lines = netpost.stop_with(libc::SIGTERM);
    let last = lines.last().unwrap();
    let fwd = nf(last, "ipv4", "forward");
    assert_eq!(num(fwd, &["dropped"]), 10 + 8 + 5, "{fwd:#}");
    assert_eq!(num(fwd, &["attributed_drops"]), 10 + 8 + 5, "{fwd:#}");
    assert_eq!(num(fwd, &["unattributed_drops"]), 0);
    for (text, packets) in [
        ("-A FORWARD -p udp -m udp --dport 7811 -j DROP", 10),
        ("-A FORWARD -p udp -m udp --dport 7812 -j DROP", 8),
        ("udp dport 7813 counter drop", 5),
    ] {
        let row = rule(fwd, text).unwrap_or_else(|| panic!("no {text}: {fwd:#}"));
        assert_eq!(num(row, &["packets"]), packets, "{row}");
    }
    // The kernel's counter of the rule in force agrees.
    let listing = ns.exec("nft", &["list", "chain", "inet", "t", "fw"]);
    assert!(
        listing.contains("udp dport 7813 counter packets 5 "),
        "{listing}"
    );
    assert_drops_add_up(&lines);
    // Every datagram crossed the client-side link; those forwarded left by the server side.
    let udp = |ifname: &str, h: &str| num(hook(last, ifname, h), &["by_proto", "udp", "packets"]);
    assert_eq!(
        udp(&r.router_client.ifname, "tc_ingress"),
        10 + 6 + 8 + 4 + 5
    );
    assert_eq!(udp(&r.router_server.ifname, "tc_egress"), 6 + 4);
    assert_eq!(num(fwd, &["accepted"]), 6 + 4);
}

/// `ct` of INPUT in the newest snapshot.
fn input_ct(snap: &Value) -> &Value {
    &nf(snap, "ipv4", "input")["ct"]
}

#[test]
fn conntrack_turned_on_and_off_keeps_the_states_consistent() {
    require_root();
    let pair = VethPair::new();
    let b = &pair.b;
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(b.ip4), 7821);
    let to = SocketAddr::new(IpAddr::V4(b.ip4), 7821);
    let netpost = Netpost::start(&pair.ns_b.name, &[&b.ifname], &[]);
    // Without conntrack: no entry, and nothing to call invalid.
    udp_send(&pair.ns_a, to, 4, 64);
    udp_receive(&rx, 4);
    // A rule that needs conntrack turns it on in the namespace.
    pair.ns_b.enable_conntrack("INPUT");
    udp_send(&pair.ns_a, to, 5, 64);
    udp_receive(&rx, 5);
    if !has_netfilter_links() {
        // The states are the netfilter programs' readings: without them netpost says why;
        // the table's own figures (from /proc) still follow conntrack.
        wait_until(
            || {
                netpost
                    .lines()
                    .pop()
                    .is_some_and(|s| s["conntrack"]["count"] == 1)
            },
            || format!("conntrack never seen: {:?}", netpost.lines().pop()),
        );
        let stderr = netpost.stderr();
        let last = netpost.stop();
        assert_netfilter_unavailable(&last, &stderr);
        assert!(last["conntrack"]["new"].is_null(), "{}", last["conntrack"]);
        let ingress = hook(&last, &b.ifname, "tc_ingress");
        assert_eq!(num(ingress, &["by_proto", "udp", "packets"]), 4 + 5);
        return;
    }
    let on = || {
        let snap = netpost.lines().pop().unwrap_or_default();
        snap["netfilter"]["ipv4"]["input"]["ct"]["new"] == 5
    };
    wait_until(on, || {
        format!("conntrack never seen: {:?}", netpost.lines().pop())
    });
    let count = pair
        .ns_b
        .exec("cat", &["/proc/sys/net/netfilter/nf_conntrack_count"]);
    assert_eq!(count.trim(), "1", "one UDP flow tracked");
    // SYN+FIN is no valid TCP: conntrack calls it invalid, and the rule drops it at INPUT.
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(pair.a.mac, b.mac)
        .ipv4(pair.a.ip4.octets(), b.ip4.octets(), 64)
        .tcp(40000, 7821, 1, 1024)
        .syn()
        .fin()
        .write(&mut frame, &[])
        .unwrap();
    send_frames(&pair.ns_a, &pair.a.ifname, vec![frame; 2]);
    wait_until(
        || {
            let snap = netpost.lines().pop().unwrap_or_default();
            snap["netfilter"]["ipv4"]["input"]["dropped"] == 2
        },
        || format!("the invalid segments: {:?}", netpost.lines().pop()),
    );
    // The last rule that needs it gone: conntrack stops in the namespace (its entry stays
    // until it times out).
    pair.ns_b.exec(
        "iptables",
        &[
            "-D",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID",
            "-j",
            "DROP",
        ],
    );
    udp_send(&pair.ns_a, to, 6, 64);
    udp_receive(&rx, 6);
    let lines = netpost.stop_with(libc::SIGTERM);
    let last = lines.last().unwrap();
    let ct = input_ct(last);
    assert_eq!(num(ct, &["new"]), 5, "{ct}");
    assert_eq!(num(ct, &["none"]), 4 + 6, "{ct}");
    assert_eq!(
        num(ct, &["invalid"]),
        0,
        "before conntrack ran and after it stopped, none is none; the invalid ones were dropped before: {ct}"
    );
    let pre = &nf(last, "ipv4", "prerouting")["ct"];
    assert_eq!(num(pre, &["none"]), 4 + 2 + 6, "{pre}");
    assert_eq!(num(pre, &["invalid"]), 2, "{pre}");
    assert_eq!(
        num(nf(last, "ipv4", "input"), &["by_proto", "tcp", "dropped"]),
        2
    );
    for snap in &lines {
        for hook in ["prerouting", "input"] {
            let h = nf(snap, "ipv4", hook);
            let states: u64 = [
                "new",
                "established",
                "related",
                "reply",
                "untracked",
                "none",
            ]
            .iter()
            .map(|s| num(&h["ct"], &[s]))
            .sum();
            assert_eq!(states, num(h, &["accepted"]), "{hook}: {h:#}");
            assert!(num(&h["ct"], &["invalid"]) <= num(&h["ct"], &["none"]));
        }
    }
    let ingress = hook(last, &b.ifname, "tc_ingress");
    assert_eq!(num(ingress, &["by_proto", "udp", "packets"]), 15);
    assert_eq!(num(ingress, &["by_proto", "tcp", "packets"]), 2);
    assert_eq!(last["conntrack"]["count"], 1, "the entry outlives the rule");
}

#[test]
fn ipv6_disabled_under_netpost_is_counted_as_the_kernel_drops_it() {
    require_root();
    let pair = VethPair::new();
    let b = &pair.b;
    let rx6 = udp_receiver(&pair.ns_b, IpAddr::V6(b.ip6), 7831);
    let rx4 = udp_receiver(&pair.ns_b, IpAddr::V4(b.ip4), 7832);
    let to6 = SocketAddr::new(IpAddr::V6(b.ip6), 7831);
    let to4 = SocketAddr::new(IpAddr::V4(b.ip4), 7832);
    let netpost = Netpost::start(&pair.ns_b.name, &[&b.ifname], &[]);
    udp_send(&pair.ns_a, to6, 7, 64);
    udp_receive(&rx6, 7);
    pair.ns_b.exec(
        "sysctl",
        &[
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", b.ifname),
        ],
    );
    // a still sends IPv6 (its neighbour entry for b is permanent); b's stack drops it.
    udp_send(&pair.ns_a, to6, 9, 64);
    udp_send(&pair.ns_a, to4, 3, 64);
    udp_receive(&rx4, 3);
    let ingress = |snap: &Value, family: &str| {
        num(
            hook(snap, &b.ifname, "tc_ingress"),
            &["by_family", family, "packets"],
        )
    };
    let dropped = std::cell::RefCell::new(Value::Null);
    wait_until(
        || {
            let snap = netpost.lines().pop().unwrap_or_default();
            let done = snap["interfaces"].is_object()
                && ingress(&snap, "ipv6") == 16
                && snap["drops"]["reasons"]["IPV6DISABLED"]["packets"] == 9;
            *dropped.borrow_mut() = snap;
            done
        },
        || format!("IPv6 after disabling: {:#}", dropped.borrow()["drops"]),
    );
    let stderr = netpost.stderr();
    let last = netpost.stop();
    assert_eq!(ingress(&last, "ipv6"), 7 + 9, "the wire still carries it");
    assert_eq!(ingress(&last, "ipv4"), 3);
    assert_eq!(
        num(
            hook(&last, &b.ifname, "xdp"),
            &["by_family", "ipv6", "packets"]
        ),
        7 + 9
    );
    if !has_netfilter_links() {
        assert_netfilter_unavailable(&last, &stderr);
        return;
    }
    // Only what arrived while IPv6 was on reached netfilter.
    let pre6 = nf(&last, "ipv6", "prerouting");
    assert_eq!(num(pre6, &["by_proto", "udp", "entered"]), 7, "{pre6:#}");
    assert_eq!(
        num(
            nf(&last, "ipv4", "prerouting"),
            &["by_proto", "udp", "entered"]
        ),
        3
    );
    assert_eq!(last["netfilter_status"]["ipv6"], "linked");
}
