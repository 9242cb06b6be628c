//! Interfaces that come and go while netpost runs: a watched one deleted and created again
//! (a container restarting) is reported and counted on into the same totals; an interface
//! created later that matches an `-i` pattern is watched and counted; the 64-interface cap
//! is said, and a deleted interface gives its slot up to one waiting; the watched namespace
//! deleted ends netpost with exit 1 and the final snapshot written. Every count is exact: the
//! pairs are silent but for what the tests send.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    netns::VethPair,
    netpost::{Netpost, hook, num},
    require_root, sh,
    traffic::{udp_receive, udp_receiver, udp_send},
    wait_until,
};
use serde_json::Value;

/// UDP datagrams `b` received at tc ingress, by netpost's count.
fn udp_in(snap: &Value, ifname: &str) -> u64 {
    num(
        hook(snap, ifname, "tc_ingress"),
        &["by_proto", "udp", "packets"],
    )
}

/// Sends `count` datagrams from a to b over `pair`'s current link and waits for them.
fn send(pair: &VethPair, b_ip: std::net::Ipv4Addr, port: u16, count: usize) {
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(b_ip), port);
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(b_ip), port),
        count,
        64,
    );
    udp_receive(&rx, count);
}

/// The newest JSON line netpost wrote, once one satisfies `ok`.
fn line_where(netpost: &Netpost, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let last = std::cell::RefCell::new(None);
    wait_until(
        || {
            let line = netpost.lines().pop();
            let done = line.as_ref().is_some_and(&ok);
            *last.borrow_mut() = line;
            done
        },
        || {
            format!(
                "no snapshot with {what}: {:?}\n{}",
                last.borrow(),
                netpost.stderr()
            )
        },
    );
    last.into_inner().unwrap()
}

#[test]
fn a_deleted_interface_created_again_is_reattached_and_its_totals_go_on() {
    require_root();
    let pair = VethPair::new();
    let b = pair.b.ifname.clone();
    let netpost = Netpost::start(&pair.ns_b.name, &[&b], &[]);
    send(&pair, pair.b.ip4, 7301, 5);

    pair.delete();
    wait_until(
        || netpost.stderr().contains("was deleted"),
        || format!("no word of the deletion: {}", netpost.stderr()),
    );
    assert!(
        netpost.stderr().contains(&format!(
            "netpost: interface '{b}' was deleted: its totals stay"
        )),
        "{}",
        netpost.stderr()
    );
    let gone = line_where(&netpost, "the interface gone", |v| {
        v["interfaces"][b.as_str()]["status"] == "gone"
    });
    assert_eq!(gone["interfaces_gone"], serde_json::json!([b]));
    assert_eq!(udp_in(&gone, &b), 5, "its totals stay: {gone}");
    assert!(
        gone["attached"].get(b.as_str()).is_none(),
        "nothing attached to a deleted device: {gone}"
    );

    pair.recreate();
    wait_until(
        || netpost.stderr().contains("is back"),
        || format!("no word of the return: {}", netpost.stderr()),
    );
    send(&pair, pair.b.ip4, 7302, 7);
    let stderr = netpost.stderr();
    let last = netpost.stop();
    let iface = &last["interfaces"][b.as_str()];
    assert_eq!(iface["status"], "reattached", "{iface}");
    assert_eq!(iface["reattached"], 1, "{iface}");
    assert_eq!(
        udp_in(&last, &b),
        5 + 7,
        "what the old one counted plus what the new one counts: {stderr}"
    );
    assert_eq!(last["interfaces_gone"], serde_json::json!([]));
    assert_eq!(
        last["attached"][b.as_str()]["ifindex"].as_u64(),
        pair.ns_b
            .exec("cat", &[&format!("/sys/class/net/{b}/ifindex")])
            .trim()
            .parse::<u64>()
            .ok(),
        "attached to the new device"
    );
    assert!(
        stderr.contains(&format!(
            "netpost: interface '{b}' is back (ifindex {}): watching it again, its totals go on (re-attached 1 time)",
            last["attached"][b.as_str()]["ifindex"]
        )),
        "{stderr}"
    );
    // XDP counts too, on the new device.
    assert_eq!(
        num(hook(&last, &b, "xdp"), &["by_proto", "udp", "packets"]),
        12,
        "{last}"
    );
}

#[test]
fn an_interface_created_after_start_that_matches_a_pattern_is_counted() {
    require_root();
    let pair = VethPair::new();
    let tag = format!("npz{}", std::process::id() % 10_000);
    let pattern = format!("{tag}*");
    let netpost = Netpost::start_until(
        &pair.ns_b.name,
        &[&pattern, &pair.b.ifname],
        &[],
        &[],
        |e| e.contains("matches no interface yet") && e.contains("netpost: watching"),
    );
    assert!(
        netpost.stderr().contains(&format!(
            "netpost: -i '{pattern}' matches no interface yet; interfaces created later that match are watched too"
        )),
        "{}",
        netpost.stderr()
    );
    let (a, b) = pair.another(
        &format!("npy{}", std::process::id() % 10_000),
        &format!("{tag}b"),
    );
    wait_until(
        || {
            netpost
                .stderr()
                .contains(&format!("(new, matches '{pattern}')"))
        },
        || format!("the new interface was not watched: {}", netpost.stderr()),
    );
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(b.ip4), 7303);
    udp_send(&pair.ns_a, SocketAddr::new(IpAddr::V4(b.ip4), 7303), 9, 64);
    udp_receive(&rx, 9);
    let last = netpost.stop();
    assert_eq!(udp_in(&last, &b.ifname), 9, "{last}");
    assert_eq!(last["interfaces"][b.ifname.as_str()]["status"], "watching");
    assert!(
        last["interfaces"].get(a.ifname.as_str()).is_none(),
        "the peer lives in the other namespace"
    );
    assert_eq!(udp_in(&last, &pair.b.ifname), 0, "the named one saw none");
}

#[test]
fn at_the_cap_a_new_match_waits_and_takes_the_slot_of_one_deleted() {
    require_root();
    const CAP: usize = 64;
    let pair = VethPair::new();
    let tag = format!("npd{}", std::process::id() % 10_000);
    // The first and the 65th can carry traffic (addresses, silent); the rest only exist.
    let (_first_a, first) = pair.another(
        &format!("npe{}f", std::process::id() % 10_000),
        &format!("{tag}f"),
    );
    for i in 1..CAP {
        sh(
            "ip",
            &[
                "-n",
                &pair.ns_b.name,
                "link",
                "add",
                &format!("{tag}x{i}"),
                "type",
                "veth",
                "peer",
                "name",
                &format!("npq{}x{i}", std::process::id() % 10_000),
            ],
        );
    }
    let pattern = format!("{tag}*");
    let netpost = Netpost::start_until(&pair.ns_b.name, &[&pattern], &[], &[], |e| {
        e.matches("netpost: watching").count() == CAP
    });
    send(&pair, first.ip4, 7304, 4);
    let (_, extra) = pair.another(
        &format!("npe{}g", std::process::id() % 10_000),
        &format!("{tag}g"),
    );
    wait_until(
        || {
            netpost
                .stderr()
                .contains(&format!("not watching '{}'", extra.ifname))
        },
        || format!("the cap went unsaid: {}", netpost.stderr()),
    );
    assert!(
        netpost.stderr().contains(&format!(
            "netpost: not watching '{}': 64 interfaces are watched, the most netpost can",
            extra.ifname
        )),
        "{}",
        netpost.stderr()
    );
    let waiting = line_where(&netpost, "the cap", |v| {
        v["interfaces_over_cap"] == serde_json::json!([extra.ifname])
    });
    assert_eq!(waiting["interfaces"].as_object().unwrap().len(), CAP);

    // The first one goes: the waiting one takes its slot, counting from zero.
    pair.ns_b.exec("ip", &["link", "del", &first.ifname]);
    wait_until(
        || netpost.stderr().contains("were dropped for it"),
        || {
            format!(
                "the waiting interface was not watched: {}",
                netpost.stderr()
            )
        },
    );
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(extra.ip4), 7305);
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(extra.ip4), 7305),
        6,
        64,
    );
    udp_receive(&rx, 6);
    let last = netpost.stop();
    assert_eq!(
        udp_in(&last, &extra.ifname),
        6,
        "nothing of the slot's old owner"
    );
    assert!(
        last["interfaces"].get(first.ifname.as_str()).is_none(),
        "forgotten"
    );
    assert_eq!(last["interfaces_over_cap"], serde_json::json!([]));
}

#[test]
fn deleting_the_watched_namespace_ends_netpost_with_exit_1_and_a_final_snapshot() {
    require_root();
    let pair = VethPair::new();
    let mut netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    send(&pair, pair.b.ip4, 7306, 3);
    sh("ip", &["netns", "del", &pair.ns_b.name]);
    let status = netpost.wait_exit();
    let stderr = netpost.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "netpost: error: network namespace '{}' was deleted while netpost watched it",
            pair.ns_b.name
        )),
        "{stderr}"
    );
    let last = netpost.lines().pop().expect("a final snapshot");
    assert_eq!(udp_in(&last, &pair.b.ifname), 3, "{last}");
}
