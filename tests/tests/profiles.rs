//! `--profile`: a profile loads only its probes (what it leaves out is never in the kernel),
//! says so in the JSON, and counts what it keeps exactly.
use std::net::{IpAddr, SocketAddr};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links, programs_of_pid},
    netns::VethPair,
    netpost::{Netpost, hook, num},
    require_root,
    traffic::{udp_receive, udp_receiver, udp_send},
};

/// netpost's programs loaded by the running netpost `np`, by kernel name.
fn loaded(np: &Netpost) -> Vec<String> {
    let mut names: Vec<String> = programs_of_pid(np.pid())
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    names.sort();
    names
}

#[test]
fn counters_loads_no_flow_socket_or_route_program_and_counts_exactly() {
    require_root();
    let pair = VethPair::new();
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7801);
    let np = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--profile", "counters"],
    );
    let names = loaded(&np);
    for absent in [
        "netpost_fib_lookup",
        "netpost_fib6_lookup",
        "netpost_sk_state",
    ] {
        assert!(
            !names.iter().any(|n| n == absent),
            "{absent} loaded in profile counters: {names:?}"
        );
    }
    let mut present = vec!["netpost_kfree_skb", "netpost_tc_in"];
    // Kernels without netfilter links (6.1) cannot load the netfilter programs at all.
    if has_netfilter_links() {
        present.push("netpost_nf_head");
    }
    for present in present {
        assert!(
            names.iter().any(|n| n == present),
            "{present} missing in profile counters: {names:?}"
        );
    }
    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7801),
        20,
        64,
    );
    udp_receive(&rx, 20);
    let stderr = np.stderr();
    let snap = np.stop();
    assert_eq!(snap["profile"], "counters");
    for probe in ["flows", "sockets", "routes"] {
        assert_eq!(
            snap["probes"][probe], "off (profile counters)",
            "{}",
            snap["probes"]
        );
    }
    assert_eq!(snap["probes"]["interfaces"], "attached");
    assert_eq!(snap["routes_status"], "off (profile counters)");
    assert!(
        snap["handshake"].is_null(),
        "no flow probe: {}",
        snap["handshake"]
    );
    let tc = hook(&snap, &pair.b.ifname, "tc_ingress");
    assert_eq!(num(tc, &["by_proto", "udp", "packets"]), 20, "{tc}");
    if has_netfilter_links() {
        let input = &snap["netfilter"]["ipv4"]["input"];
        assert_eq!(num(input, &["by_proto", "udp", "accepted"]), 20, "{input}");
    } else {
        assert_netfilter_unavailable(&snap, &stderr);
    }
}

#[test]
fn the_default_profile_is_standard_and_full_loads_everything() {
    require_root();
    let pair = VethPair::new();
    let np = Netpost::start_with_defaults(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    let snap = np.stop();
    assert_eq!(snap["profile"], "standard");
    assert_eq!(snap["routes_status"], "off (profile standard)");
    assert_eq!(
        snap["attached"][&pair.b.ifname]["xdp_mode"], "off",
        "auto leaves XDP off on a veth: tc ingress counts the same frames"
    );
    // And says so: not "attached" with nothing attached.
    let xdp_status = snap["attached"][&pair.b.ifname]["xdp_status"]
        .as_str()
        .unwrap_or_default();
    assert!(
        xdp_status.starts_with("off (virtual device"),
        "{xdp_status}"
    );
    let np =
        Netpost::start_with_defaults(&pair.ns_b.name, &[&pair.b.ifname], &["--profile", "full"]);
    let names = loaded(&np);
    for present in ["netpost_fib_lookup", "netpost_sk_state", "netpost_tc_in"] {
        assert!(names.iter().any(|n| n == present), "{present}: {names:?}");
    }
    let snap = np.stop();
    assert_eq!(snap["profile"], "full");
    // Every probe but the drop recorder, which --record-drops turns on, not a profile.
    assert!(
        snap["probes"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| *name != "recorder")
            .all(|(_, s)| !s.as_str().unwrap().starts_with("off")),
        "{}",
        snap["probes"]
    );
}
