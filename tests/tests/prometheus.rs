//! A real Prometheus scrapes netpost's `--prometheus` endpoint and reports the numbers
//! netpost's own JSON reports. netpost enters `--netns`, so its listening socket lives in
//! that namespace: Prometheus runs there too (`ip netns exec`), scraping over that
//! namespace's loopback, and every HTTP request of this test is made from a thread inside it.
use std::{
    fs,
    io::Write as _,
    net::{IpAddr, SocketAddr},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use netpost_tests::{
    netns::{NetNs, VethPair},
    netpost::{Netpost, hook, num},
    prometheus::{Prometheus, free_port, http_get},
    require_root,
    traffic::{udp_receive, udp_receiver, udp_send},
};
use serde_json::Value;

const UDP_PACKETS: usize = 37;
const UDP_PAYLOAD: usize = 100;

/// /metrics of netpost once it serves a snapshot (it binds right after attaching; the
/// first snapshot follows one interval later).
fn scrape(ns: &NetNs, port: u16, accept: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((status, body)) = http_get(ns, port, "/metrics", accept) {
            assert_eq!(status, 200, "{body}");
            if body.contains("netpost_snapshot_timestamp_seconds") {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "netpost's /metrics never served a snapshot"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every PromQL expression of the Grafana dashboard, with its variables set to "all".
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana-dashboard.json"
    );
    let text = fs::read_to_string(path).expect("read the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$interface", ".*")
                .replace("$hook", ".*")
        })
        .collect()
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {} {said}",
        out.status
    );
}

#[test]
fn prometheus_reports_the_same_counts_as_the_json_and_promtool_is_clean() {
    require_root();
    let pair = VethPair::new();
    let ns = &pair.ns_b;
    let port = free_port(ns);
    let rx = udp_receiver(ns, IpAddr::V4(pair.b.ip4), 7301);
    let netpost = Netpost::start(
        &ns.name,
        &[&pair.b.ifname],
        &["--prometheus", &format!("127.0.0.1:{port}")],
    );

    let text = scrape(ns, port, None);
    assert!(
        text.contains("# TYPE netpost_packets_total counter"),
        "{text}"
    );
    promtool_check(&text);
    let om = scrape(ns, port, Some("application/openmetrics-text;version=1.0.0"));
    assert!(om.ends_with("# EOF\n"), "{om}");

    let prom = Prometheus::start(ns, port);
    prom.wait_for("up{job=\"netpost\"}", 1.0);

    udp_send(
        &pair.ns_a,
        SocketAddr::new(IpAddr::V4(pair.b.ip4), 7301),
        UDP_PACKETS,
        UDP_PAYLOAD,
    );
    udp_receive(&rx, UDP_PACKETS);

    // Nothing else crosses the veth: once Prometheus has scraped the count, every XDP and tc
    // counter is final, and so is the JSON line written when netpost stops.
    let iface = pair.b.ifname.clone();
    let series = |metric: &str, hook: &str| {
        format!("{metric}{{job=\"netpost\",interface=\"{iface}\",hook=\"{hook}\",proto=\"udp\"}}")
    };
    prom.wait_for(&series("netpost_packets_total", "xdp"), UDP_PACKETS as f64);
    let metrics = [
        ("netpost_packets_total", "packets"),
        ("netpost_bytes_total", "bytes"),
        ("netpost_header_bytes_total", "header_bytes"),
        ("netpost_payload_bytes_total", "payload_bytes"),
        ("netpost_frames_total", "frames"),
    ];
    let mut scraped = Vec::new();
    for hook in ["xdp", "tc_ingress", "tc_egress"] {
        for (metric, key) in metrics {
            let q = series(metric, hook);
            let v = prom.query(&q).unwrap_or_else(|| panic!("no {q}"));
            scraped.push((hook, key, v));
        }
        let total = format!("sum(netpost_packets_total{{interface=\"{iface}\",hook=\"{hook}\"}})");
        let v = prom.query(&total).unwrap_or_else(|| panic!("no {total}"));
        scraped.push((hook, "total packets", v));
    }
    let nf_udp = "netpost_netfilter_entered_packets_total{family=\"ipv4\",hook=\"prerouting\",proto=\"udp\"}";
    let nf_scraped = prom.query(nf_udp);
    assert_eq!(prom.query("netpost_build_info"), Some(1.0));
    assert_eq!(
        prom.query(&format!(
            "netpost_program_attached{{interface=\"{iface}\",hook=\"xdp\"}}"
        )),
        Some(1.0)
    );
    // Prometheus scrapes over TCP in netpost's namespace: local sockets the socket
    // tracepoints count (the listener's and every scrape's connection).
    let established = "netpost_socket_state_transitions_total{tcp_state=\"ESTABLISHED\"}";
    let n = prom
        .query(established)
        .unwrap_or_else(|| panic!("no {established}"));
    assert!(n >= 1.0, "{established} = {n}");
    let age = prom.query("netpost_snapshot_age_seconds").expect("age");
    assert!((0.0..5.0).contains(&age), "snapshot age {age}");
    // The example dashboard's queries are valid PromQL and find netpost's series.
    let queries = dashboard_queries();
    assert!(queries.len() > 10, "{queries:?}");
    for q in &queries {
        let found = prom.result(q).len();
        assert!(
            // Netfilter and conntrack series exist only where the kernel has them.
            found > 0 || q.contains("netfilter") || q.contains("conntrack"),
            "dashboard query finds nothing: {q}"
        );
    }

    let snap = netpost.stop();
    for (hook_name, key, v) in scraped {
        let h = hook(&snap, &iface, hook_name);
        let json = if key == "total packets" {
            num(h, &["packets"])
        } else {
            num(h, &["by_proto", "udp", key])
        };
        assert_eq!(
            v, json as f64,
            "{hook_name} {key}: prometheus {v}, JSON {json}"
        );
    }
    let wire = (14 + 20 + 8 + UDP_PAYLOAD) as u64;
    let xdp = hook(&snap, &iface, "xdp");
    assert_eq!(
        num(xdp, &["by_proto", "udp", "packets"]),
        UDP_PACKETS as u64
    );
    assert_eq!(
        num(xdp, &["by_proto", "udp", "bytes"]),
        UDP_PACKETS as u64 * wire
    );
    // The datagrams cross PREROUTING of the namespace's IPv4 netfilter, where the scrapes
    // (TCP over loopback) do not count as UDP.
    eprintln!("netfilter ipv4: {}", snap["netfilter_status"]["ipv4"]);
    if snap["netfilter_status"]["ipv4"] == "linked" {
        let json = num(
            &snap["netfilter"]["ipv4"]["prerouting"],
            &["by_proto", "udp", "entered"],
        );
        assert_eq!(json, UDP_PACKETS as u64);
        assert_eq!(nf_scraped, Some(json as f64), "{nf_udp}");
    }
    drop(prom);
}
