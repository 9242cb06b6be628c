//! `netpost demo`: the lab with its traffic and the router watched. Headless with JSON on
//! stdout it must show forwarded traffic, the drop rule's drops, handshakes and conntrack
//! entries, name the rule in its doctor's `rule-drops`, and leave no namespace, interface,
//! state or program behind.
use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use netpost_tests::{
    kernel::{program_exists, programs_of_pid},
    lab::LabGuard,
    netpost::binary,
    slack, slack_secs, wait_until,
};
use serde_json::Value;

#[test]
fn the_demo_shows_forwarded_traffic_drops_and_handshakes_then_removes_the_lab() {
    let guard = LabGuard::take();
    let mut child = Command::new(binary())
        .args(["demo", "--no-tui", "--json", "-", "--duration"])
        .arg(slack_secs(10.0))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netpost demo");
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
    let deadline = Instant::now() + slack(Duration::from_secs(60));
    while !stderr.lock().unwrap().contains(" in netns npl-router") {
        assert!(
            Instant::now() < deadline,
            "the demo did not start watching: {}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let programs: Vec<u64> = programs_of_pid(child.id() as i32)
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert!(!programs.is_empty());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let err = stderr.lock().unwrap().clone();
    assert!(status.success(), "{err}");
    assert!(err.contains("the lab is removed"), "{err}");
    wait_until(
        || programs.iter().all(|id| !program_exists(*id)),
        || format!("programs {programs:?} remain"),
    );

    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() >= 5, "{} snapshots", lines.len());
    let last = lines.last().unwrap();
    assert_eq!(last["netns"], "npl-router");
    assert_eq!(
        last["interfaces"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["npl-r0", "npl-r1"]
    );
    // Forwarded traffic, both families, through both interfaces.
    for family in ["ipv4", "ipv6"] {
        let fwd = &last["netfilter"][family]["forward"];
        assert!(fwd["accepted"].as_u64().unwrap() >= 500, "{family}: {fwd}");
    }
    for iface in ["npl-r0", "npl-r1"] {
        let tc = &last["interfaces"][iface]["tc_egress"];
        assert!(tc["packets"].as_u64().unwrap() >= 500, "{iface}: {tc}");
    }
    // The drop rule's drops, by reason and by rule.
    let nf_drops = last["drops"]["reasons"]["NETFILTER_DROP"]["packets"]
        .as_u64()
        .unwrap_or(0);
    assert!(nf_drops >= 500, "{}", last["drops"]);
    let rule = &last["netfilter"]["ipv4"]["forward"]["rules"][0];
    assert!(
        rule["rule"]
            .as_str()
            .unwrap()
            .contains("demo: dropped by rule"),
        "{rule}"
    );
    // Handshakes and new conntrack entries.
    let hs = &last["handshake"];
    assert!(hs["established"].as_u64().unwrap() >= 20, "{hs}");
    assert!(hs["rtt_us"]["p50"].as_u64().is_some(), "{hs}");
    let ct = &last["conntrack"];
    assert!(ct["count"].as_u64().unwrap() >= 50, "{ct}");
    assert!(ct["new"].as_u64().unwrap() >= 50, "{ct}");
    // The doctor names the rule, and nothing else is wrong on this router.
    let ids: Vec<&str> = last["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rule-drops"], "{}", last["diagnoses"]);
    assert!(
        last["diagnoses"][0]["fix"].as_str().unwrap().starts_with(
            "ip netns exec npl-router nft delete rule inet netpost_lab forward handle "
        ),
        "{}",
        last["diagnoses"][0]
    );
    drop(guard);
}
