//! A real Prometheus scrapes netpost's `--prometheus` endpoint and reports the numbers
//! netpost's own JSON reports. netpost enters `--netns`, so its listening socket lives in
//! that namespace: Prometheus runs there too (`ip netns exec`), scraping over that
//! namespace's loopback, and every HTTP request of this test is made from a thread inside it.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use netpost_tests::{
    netns::{NetNs, VethPair, unique_name},
    netpost::{Netpost, hook, num},
    require_root,
    traffic::{udp_receive, udp_receiver, udp_send},
};
use serde_json::Value;

const UDP_PACKETS: usize = 37;
const UDP_PAYLOAD: usize = 100;

/// A port nothing listens on in `ns` (the namespace is the test's own).
fn free_port(ns: &NetNs) -> u16 {
    ns.run(|| {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port()
    })
}

/// `GET path` on 127.0.0.1:`port` of `ns`: (status, body), or None when nothing answers.
fn http_get(ns: &NetNs, port: u16, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{}\r\n",
        accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default()
    );
    ns.run(move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(request.as_bytes()).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    })
}

/// Percent-encodes a query-string value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server in a namespace, scraping one target every second. Killed (by pid)
/// and its storage removed on drop.
struct Prometheus<'ns> {
    child: Child,
    dir: PathBuf,
    ns: &'ns NetNs,
    port: u16,
}

impl<'ns> Prometheus<'ns> {
    fn start(ns: &'ns NetNs, target: u16) -> Prometheus<'ns> {
        let dir = std::env::temp_dir().join(unique_name("npprom"));
        fs::create_dir_all(&dir).expect("create prometheus dir");
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: netpost\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = fs::File::create(dir.join("prometheus.log")).expect("log file");
        let port = free_port(ns);
        // `ip netns exec` execs the program in place: the child's pid is Prometheus's.
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect(
                "spawn prometheus (`cargo xtask test` installs it from Debian's prometheus package)",
            );
        let mut prom = Prometheus {
            child,
            dir,
            ns,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(prom.ns, port, "/-/ready", None).map(|(s, _)| s) != Some(200) {
            if let Ok(Some(status)) = prom.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prom.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                prom.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prom
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The series an instant query returns; panics when Prometheus refuses the query.
    fn result(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let (status, body) = http_get(self.ns, self.port, &path, None).expect("prometheus answers");
        assert_eq!(status, 200, "{promql}: {body}");
        let v: Value = serde_json::from_str(&body).expect("prometheus JSON");
        assert_eq!(v["status"], "success", "{promql}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of an instant query returning at most one series, None while it has none.
    fn query(&self, promql: &str) -> Option<f64> {
        let result = self.result(promql);
        assert!(
            result.len() <= 1,
            "{promql} matched several series: {result:?}"
        );
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `promql` until it equals `want`; panics with the last value after 30 s.
    fn wait_for(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.query(promql);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} = {got:?}, expected {want}; prometheus log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

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
