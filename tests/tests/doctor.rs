//! `netpost doctor` against the lab: for every scenario, the real binary watches the node
//! that shows the pitfall (the router, or the server for the local stack's pitfalls) while
//! the scenario runs, and must report exactly that scenario's diagnosis with its evidence
//! and fix; `healthy` must yield none. After every test no lab namespace, interface,
//! state, host change or BPF program of the doctor's remains (the lab's [`LabGuard`]).
use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use netpost::lab::{Name, topology::Node};
use netpost_tests::{
    kernel::{program_exists, programs_of_pid},
    lab::{LabGuard, Running},
    netpost::binary,
    slack, slack_secs,
};
use serde_json::Value;

/// How long each doctor run watches.
const WATCH_S: f64 = 6.0;

/// A running `netpost doctor --json`.
struct Doctor {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Doctor {
    fn start(node: Node) -> Doctor {
        let mut child = Command::new(binary())
            .args(["doctor", "--netns", node.netns(), "--json", "--duration"])
            .arg(slack_secs(WATCH_S))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netpost doctor");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Doctor { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until counting started (netpost names what it watches then); returns the ids
    /// of the BPF programs it holds.
    fn attached(&self) -> Vec<u64> {
        let deadline = Instant::now() + slack(Duration::from_secs(30));
        while !self.stderr().contains(" in netns ") {
            assert!(
                Instant::now() < deadline,
                "doctor did not attach: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let ids: Vec<u64> = programs_of_pid(self.child.id() as i32)
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert!(!ids.is_empty(), "the doctor holds no program");
        ids
    }

    /// Waits for the exit: (exit code, the JSON report, stderr).
    fn finish(mut self) -> (i32, Value, String) {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let status = self.child.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr();
        let report: Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("doctor's JSON ({e}): {out}\n{stderr}"));
        (status.code().unwrap_or(-1), report, stderr)
    }
}

impl Drop for Doctor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scenario runs; the doctor watches `node` (started first with `doctor_first`, for a
/// flow whose handshake it must see). Returns the report; checks every program went.
fn diagnose(name: Name, node: Node, extra: &[&str], doctor_first: bool) -> Value {
    let guard = LabGuard::take();
    guard.up();
    let (run, doctor, programs) = if doctor_first {
        let doctor = Doctor::start(node);
        let programs = doctor.attached();
        (Running::start(name.as_str(), extra), doctor, programs)
    } else {
        let run = Running::start(name.as_str(), extra);
        // The pitfall's counters get going (a table to fill, queues to overflow).
        std::thread::sleep(Duration::from_secs(2));
        let doctor = Doctor::start(node);
        let programs = doctor.attached();
        (run, doctor, programs)
    };
    let (code, report, stderr) = doctor.finish();
    let (ok, scenario) = run.terminate();
    assert!(ok, "{name} did not stop cleanly: {scenario}");
    println!(
        "{name} at {node}:\n{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    // The kernel frees a program once its last reference goes, a moment after the exit.
    netpost_tests::wait_until(
        || programs.iter().all(|id| !program_exists(*id)),
        || format!("programs {programs:?} remain after the doctor exited"),
    );
    let found = report["diagnoses"].as_array().map_or(0, |d| d.len());
    assert_eq!(code, if found == 0 { 0 } else { 1 }, "exit code: {stderr}");
    assert_eq!(report["healthy"], found == 0);
    drop(guard);
    report
}

/// The one diagnosis of the report, which must be `id`.
fn only<'a>(report: &'a Value, id: &str) -> &'a Value {
    let ids: Vec<&str> = report["diagnoses"]
        .as_array()
        .expect("diagnoses")
        .iter()
        .map(|d| d["id"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(ids, [id], "exactly the expected diagnosis");
    let d = &report["diagnoses"][0];
    for key in ["severity", "since", "summary", "fix"] {
        assert!(!d[key].is_null(), "{key} missing: {d}");
    }
    assert!(
        d["evidence"]["window_s"].as_f64().unwrap() >= WATCH_S - 1.0,
        "{d}"
    );
    d
}

fn fix(d: &Value) -> &str {
    d["fix"].as_str().unwrap()
}

#[test]
fn healthy_yields_no_diagnosis_at_the_router() {
    let report = diagnose(Name::Healthy, Node::Router, &[], false);
    assert_eq!(report["diagnoses"], Value::Array(vec![]), "{report}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 11);
}

#[test]
fn healthy_yields_no_diagnosis_at_the_server() {
    let report = diagnose(Name::Healthy, Node::Server, &[], false);
    assert_eq!(report["diagnoses"], Value::Array(vec![]), "{report}");
}

#[test]
fn forwarding_disabled() {
    let report = diagnose(Name::ForwardingDisabled, Node::Router, &[], false);
    let d = only(&report, "forwarding-disabled");
    assert_eq!(d["severity"], "critical");
    let e = &d["evidence"];
    assert!(
        e["families"]["ipv4"]["dropped"].as_u64().unwrap() >= 100,
        "{e}"
    );
    assert!(
        e["families"]["ipv6"]["dropped"].as_u64().unwrap() >= 100,
        "{e}"
    );
    assert!(
        e["drop_reasons"]["IP_INADDRERRORS"].as_u64().unwrap() >= 100,
        "{e}"
    );
    assert!(
        e["destinations"]
            .as_array()
            .unwrap()
            .contains(&"10.254.2.2".into()),
        "{e}"
    );
    assert_eq!(
        fix(d),
        "ip netns exec npl-router sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
    );
}

#[test]
fn rule_order() {
    let report = diagnose(Name::RuleOrder, Node::Router, &[], false);
    let d = only(&report, "rule-order");
    let e = &d["evidence"];
    assert_eq!(e["chain"], "inet netpost_lab forward");
    assert_eq!(
        (e["rules_before"].as_u64(), e["rules"].as_u64()),
        (Some(60), Some(62))
    );
    assert!(e["established_share"].as_f64().unwrap() >= 0.9, "{e}");
    assert!(
        fix(d).starts_with(
            "ip netns exec npl-router nft insert rule inet netpost_lab forward ct state established,related accept && ip netns exec npl-router nft delete rule inet netpost_lab forward handle "
        ),
        "{}",
        fix(d)
    );
}

#[test]
fn conntrack_pressure() {
    let report = diagnose(
        Name::ConntrackPressure,
        Node::Router,
        &["--allow-host-changes"],
        false,
    );
    let d = only(&report, "conntrack-pressure");
    let e = &d["evidence"];
    assert_eq!(e["max"], 256);
    assert!(e["fill_pct"].as_f64().unwrap() >= 90.0, "{e}");
    assert!(e["drop"].as_u64().unwrap() >= 100, "{e}");
    assert_eq!(e["top_sources"][0]["src"], "10.254.1.2", "{e}");
    assert_eq!(d["severity"], "critical");
    assert!(fix(d).starts_with("sysctl -w net.netfilter.nf_conntrack_max="));
}

#[test]
fn no_route() {
    let report = diagnose(Name::NoRoute, Node::Router, &[], false);
    let d = only(&report, "no-route");
    let e = &d["evidence"];
    assert!(e["dropped"].as_u64().unwrap() >= 100, "{e}");
    let dsts = e["destinations"].as_array().unwrap();
    assert!(
        dsts.contains(&"10.254.99.1".into()) && dsts.contains(&"fd6e:706c:99::1".into()),
        "{e}"
    );
    assert!(
        fix(d) == "ip -n npl-router route add 10.254.99.0/24 via NEXT_HOP"
            || fix(d) == "ip -n npl-router -6 route add fd6e:706c:99::/64 via NEXT_HOP",
        "{}",
        fix(d)
    );
}

#[test]
fn rp_filter() {
    let report = diagnose(Name::RpFilter, Node::Router, &[], false);
    let d = only(&report, "rp-filter");
    let e = &d["evidence"];
    assert!(
        e["TcpExtIPReversePathFilter"].as_u64().unwrap() >= 100,
        "{e}"
    );
    assert_eq!(e["sources"], serde_json::json!(["10.254.2.77"]));
    assert!(
        fix(d).contains("net.ipv4.conf.npl-r0.rp_filter=2"),
        "{}",
        fix(d)
    );
}

#[test]
fn small_buffers() {
    // The doctor sees the bulk flow's handshake (its RTT) only if it watches first.
    let report = diagnose(Name::SmallBuffers, Node::Server, &[], true);
    let d = only(&report, "small-buffers");
    let f = &d["evidence"]["flows"][0];
    assert_eq!(
        (f["buffer"].as_str(), f["buffer_max_bytes"].as_u64()),
        (Some("net.ipv4.tcp_rmem"), Some(16384))
    );
    assert!(f["rtt_ms"].as_f64().unwrap() >= 50.0, "{f}");
    assert!(
        f["flow"].as_str().unwrap().ends_with("10.254.2.2:7500"),
        "{f}"
    );
    assert!(
        fix(d).starts_with("ip netns exec npl-server sysctl -w net.ipv4.tcp_rmem=\"4096 16384 "),
        "{}",
        fix(d)
    );
}

#[test]
fn listen_overflow() {
    let report = diagnose(Name::ListenOverflow, Node::Server, &[], false);
    let d = only(&report, "listen-overflow");
    let e = &d["evidence"];
    assert!(e["TcpExtListenOverflows"].as_u64().unwrap() >= 20, "{e}");
    let l = e["listeners_with_waiting_connections"][0]["listener"]
        .as_str()
        .unwrap();
    assert!(l.ends_with(":7100"), "{e}");
    assert_eq!(fix(d), "ip netns exec npl-server ss -ltnp 'sport = :7100'");
}

#[test]
fn syn_flood() {
    let report = diagnose(Name::SynFlood, Node::Server, &[], false);
    let d = only(&report, "syn-flood");
    let e = &d["evidence"];
    assert_eq!(e["sources"][0]["src"], "10.254.1.66", "{e}");
    assert!(e["synack_retransmits"].as_u64().unwrap() >= 20, "{e}");
    assert!(e["half_open"].as_u64().unwrap() >= 20, "{e}");
    assert_eq!(
        fix(d),
        "ip netns exec npl-server iptables -I INPUT -s 10.254.1.66 -p tcp --syn -j DROP"
    );
}

#[test]
fn reset_storm() {
    let report = diagnose(Name::ResetStorm, Node::Server, &[], false);
    let d = only(&report, "reset-storm");
    let e = &d["evidence"];
    assert!(e["resets"].as_u64().unwrap() >= 100, "{e}");
    assert!(d["summary"].as_str().unwrap().contains("port 7300"), "{d}");
    assert_eq!(e["by"][0]["reset_by"], "server");
    assert!(fix(d).contains("sport = :7300"), "{}", fix(d));
}

#[test]
fn closed_port() {
    let report = diagnose(Name::ClosedPort, Node::Server, &[], false);
    let d = only(&report, "closed-port");
    let e = &d["evidence"];
    assert!(e["dropped"].as_u64().unwrap() >= 100, "{e}");
    let ports: Vec<(u64, &str)> = e["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["proto"].as_str().unwrap()))
        .collect();
    assert!(ports.contains(&(7999, "udp")), "{e}");
    assert!(ports.contains(&(7998, "tcp")), "{e}");
}

#[test]
fn bad_input_exits_2_and_leaves_nothing() {
    netpost_tests::require_root();
    let r = netpost_tests::netpost::run(&["doctor", "--duration", "-1"]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    let r = netpost_tests::netpost::run(&[
        "doctor",
        "--netns",
        "npl-no-such-namespace",
        "--duration",
        "1",
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    let cfg = std::env::temp_dir().join("netpost-doctor-bad.toml");
    std::fs::write(&cfg, "[rule-drops]\nmin-shar = 0.5\n").unwrap();
    let r = netpost_tests::netpost::run(&["doctor", "--doctor-config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("min-shar"), "{}", r.stderr);
}
