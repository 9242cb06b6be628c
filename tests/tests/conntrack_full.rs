//! The global conntrack limit, `nf_conntrack_max`, changed: made tiny and flooded (conntrack
//! drops the packets it has no room for, and netpost shows it twice: in the conntrack failure
//! counters and as packets dropped at PREROUTING), and changed under a running netpost (which
//! follows it and keeps counting). The value is global (writable only in the initial
//! namespace), so these tests have their binary to itself (cargo runs test binaries one after
//! another), take turns through a lock, and restore the value in a guard.
use std::{
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use netpost_tests::{
    kernel::{assert_netfilter_unavailable, has_netfilter_links},
    netns::VethPair,
    netpost::{Netpost, hook, num},
    require_root,
    traffic::{udp_flows, udp_receive, udp_receiver},
    wait_until,
};
use serde_json::Value;

const MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// One test at a time changes the global value.
static TURN: Mutex<()> = Mutex::new(());

/// Sets the global conntrack limit, restoring the old one on drop (even on panic).
struct ConntrackMax {
    old: String,
    _turn: MutexGuard<'static, ()>,
}

impl ConntrackMax {
    fn set(value: u64) -> ConntrackMax {
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = std::fs::read_to_string(MAX_PATH).expect("read nf_conntrack_max");
        std::fs::write(MAX_PATH, value.to_string()).expect("write nf_conntrack_max");
        ConntrackMax { old, _turn: turn }
    }

    fn old(&self) -> u64 {
        self.old
            .trim()
            .parse()
            .expect("nf_conntrack_max is a number")
    }
}

impl Drop for ConntrackMax {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_PATH, self.old.trim());
    }
}

/// The newest snapshot once `ok` holds for it.
fn wait_for(netpost: &Netpost, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let last = std::cell::RefCell::new(Value::Null);
    wait_until(
        || {
            let snap = netpost.lines().pop().unwrap_or_default();
            let done = ok(&snap);
            *last.borrow_mut() = snap;
            done
        },
        || format!("never {what}: {}", last.borrow()["conntrack"]),
    );
    last.into_inner()
}

#[test]
fn a_limit_changed_under_netpost_is_followed_and_counting_goes_on() {
    require_root();
    let pair = VethPair::new();
    pair.ns_b.enable_conntrack("INPUT");
    let rx = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), 7841);
    let to = SocketAddr::new(IpAddr::V4(pair.b.ip4), 7841);
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    // Three flows (a source port each), tracked in the namespace's table.
    udp_flows(&pair.ns_a, to, 41000, 3, 2, 64);
    udp_receive(&rx, 6);
    let max = ConntrackMax::set(1000);
    let old = max.old();
    let snap = wait_for(&netpost, "the new limit", |s| {
        s["conntrack"]["max"] == 1000 && s["conntrack"]["count"] == 3
    });
    assert_eq!(snap["conntrack"]["fill_pct"].as_f64(), Some(0.3));
    udp_flows(&pair.ns_a, to, 41003, 2, 2, 64);
    udp_receive(&rx, 4);
    wait_for(&netpost, "five entries", |s| {
        s["conntrack"]["count"] == 5 && s["conntrack"]["fill_pct"].as_f64() == Some(0.5)
    });
    drop(max);
    wait_for(&netpost, "the old limit back", |s| {
        s["conntrack"]["max"] == old
    });
    let last = netpost.stop();
    let ct = &last["conntrack"];
    assert_eq!(num(ct, &["new"]), 5, "one entry created per flow: {ct}");
    assert_eq!((num(ct, &["drop"]), num(ct, &["early_drop"])), (0, 0));
    let pre = &last["netfilter"]["ipv4"]["prerouting"];
    assert_eq!(num(&pre["ct"], &["new"]), 10, "{pre}");
    assert_eq!(num(pre, &["dropped"]), 0);
    assert_eq!(
        num(
            hook(&last, &pair.b.ifname, "tc_ingress"),
            &["by_proto", "udp", "packets"]
        ),
        10
    );
}

#[test]
fn a_full_table_drops_new_connections_and_both_views_count_them() {
    require_root();
    const LIMIT: u64 = 8;
    const ATTEMPTS: u64 = 5;
    let pair = VethPair::new();
    pair.ns_b.enable_conntrack("INPUT");
    let _max = ConntrackMax::set(LIMIT);
    let addr = SocketAddr::new(IpAddr::V4(pair.b.ip4), 7801);
    let listener = pair
        .ns_b
        .run(move || TcpListener::bind(addr).expect("listen"));
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    // Fill the table with established (assured) connections: early drop cannot evict those.
    let held: Vec<TcpStream> = pair.ns_a.run(move || {
        (0..LIMIT)
            .map(|_| TcpStream::connect(addr).expect("connect while the table has room"))
            .collect()
    });
    let accepted: Vec<TcpStream> = (0..LIMIT).map(|_| listener.accept().unwrap().0).collect();
    pair.ns_a.run(move || {
        for _ in 0..ATTEMPTS {
            // The SYN is dropped; give up before TCP retransmits it (after 1 s).
            let r = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
            assert!(
                r.is_err(),
                "the table is full: no room for a new connection"
            );
        }
    });
    let stderr = netpost.stderr();
    let snap = netpost.stop();
    let ct = &snap["conntrack"];
    assert_eq!(num(ct, &["count"]), LIMIT, "{ct}");
    assert_eq!(num(ct, &["max"]), LIMIT, "{ct}");
    assert_eq!(ct["fill_pct"].as_f64(), Some(100.0));
    assert_eq!(num(ct, &["drop"]), ATTEMPTS, "one drop per SYN: {ct}");
    // The drop reasons see the same packets.
    let nf_drop = &snap["drops"]["reasons"]["NETFILTER_DROP"];
    assert_eq!(
        num(nf_drop, &["by_proto", "tcp"]),
        ATTEMPTS,
        "{}",
        snap["drops"]
    );
    if !has_netfilter_links() {
        // The hook's view and the entries created come from the netfilter programs:
        // without them netpost says why, the table's own counters are still read.
        assert_netfilter_unavailable(&snap, &stderr);
        assert!(ct["new"].is_null(), "{ct}");
        drop((held, accepted));
        return;
    }
    let pre = &snap["netfilter"]["ipv4"]["prerouting"];
    assert_eq!(num(pre, &["by_proto", "tcp", "dropped"]), ATTEMPTS, "{pre}");
    // Every SYN entered PREROUTING; only those that got an entry left it.
    assert_eq!(num(pre, &["tcp", "syn"]), LIMIT + ATTEMPTS, "{pre}");
    assert_eq!(num(pre, &["tcp_accepted", "syn"]), LIMIT, "{pre}");
    // Entries created: the connections that fit; the refused SYNs created none.
    assert_eq!(num(ct, &["new"]), LIMIT, "{ct}");
    // The table is full, so netpost names who filled it.
    let top = ct["top_sources"].as_array().expect("top_sources");
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0]["src"], pair.a.ip4.to_string());
    assert_eq!(num(&top[0], &["new"]), LIMIT);
    drop((held, accepted));
}
