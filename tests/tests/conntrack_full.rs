//! A conntrack table made tiny and flooded: conntrack drops the packets it has no room for,
//! and netpost shows it twice: in the conntrack failure counters and as packets dropped at
//! PREROUTING. `nf_conntrack_max` is global (writable only in the initial namespace), so
//! this test has its binary to itself (cargo runs test binaries one after another) and
//! restores the value in a guard.
use std::{
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use netpost_tests::{
    netns::VethPair,
    netpost::{Netpost, num},
    require_root,
};

const MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// Sets the global conntrack limit, restoring the old one on drop (even on panic).
struct ConntrackMax {
    old: String,
}

impl ConntrackMax {
    fn set(value: u64) -> ConntrackMax {
        let old = std::fs::read_to_string(MAX_PATH).expect("read nf_conntrack_max");
        std::fs::write(MAX_PATH, value.to_string()).expect("write nf_conntrack_max");
        ConntrackMax { old }
    }
}

impl Drop for ConntrackMax {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_PATH, self.old.trim());
    }
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
    let snap = netpost.stop();
    let ct = &snap["conntrack"];
    assert_eq!(num(ct, &["count"]), LIMIT, "{ct}");
    assert_eq!(num(ct, &["max"]), LIMIT, "{ct}");
    assert_eq!(ct["fill_pct"].as_f64(), Some(100.0));
    assert_eq!(num(ct, &["drop"]), ATTEMPTS, "one drop per SYN: {ct}");
    let pre = &snap["netfilter"]["ipv4"]["prerouting"];
    assert_eq!(num(pre, &["by_proto", "tcp", "dropped"]), ATTEMPTS, "{pre}");
    // Every SYN entered PREROUTING; only those that got an entry left it.
    assert_eq!(num(pre, &["tcp", "syn"]), LIMIT + ATTEMPTS, "{pre}");
    assert_eq!(num(pre, &["tcp_accepted", "syn"]), LIMIT, "{pre}");
    // The drop reasons see the same packets.
    let nf_drop = &snap["drops"]["reasons"]["NETFILTER_DROP"];
    assert_eq!(
        num(nf_drop, &["by_proto", "tcp"]),
        ATTEMPTS,
        "{}",
        snap["drops"]
    );
    // Entries created: the connections that fit; the refused SYNs created none.
    assert_eq!(num(ct, &["new"]), LIMIT, "{ct}");
    // The table is full, so netpost names who filled it.
    let top = ct["top_sources"].as_array().expect("top_sources");
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0]["src"], pair.a.ip4.to_string());
    assert_eq!(num(&top[0], &["new"]), LIMIT);
    drop((held, accepted));
}
