//! `netpost lab`: the real binary builds the lab, each scenario produces its pitfall as the
//! kernel itself witnesses it (nstat, conntrack, nft, ss, tc), the lab is restored after
//! every scenario, and nothing remains after `lab down`, even after a kill -9.
//!
//! The lab has fixed names: every test holds [`LabGuard`] (one at a time), which also runs
//! `lab down` when a test ends or fails and checks the host's sysctls are untouched.
use std::time::Duration;

use netpost::lab::{
    Name,
    evidence::{Expect, Reading, Witness},
    setup,
};
use netpost_tests::lab::{LabGuard, Running, assert_nothing_left, lab, tool_read};

/// How long each scenario's witnesses are watched.
const WINDOW: Duration = Duration::from_secs(3);

/// Runs `name` for WINDOW, checks each witness with the tools and with the library's
/// reader, stops it with SIGTERM, and checks the lab is healthy again.
fn scenario_produces_its_pitfall(name: Name, extra: &[&str]) {
    let guard = LabGuard::take();
    guard.up();
    let info = name.info();
    let run = Running::start(name.as_str(), extra);
    // Levels are judged on their final value only (a flow may not exist yet).
    let is_level = |w: &Witness| matches!(w.expect, Expect::AtLeast { .. });
    let lib_read = |w: &Witness| w.read().unwrap_or_else(|e| panic!("{:?}: {e:#}", w.source));
    let before: Vec<(u64, u64)> = info
        .witnesses
        .iter()
        .map(|w| {
            if is_level(w) {
                (0, 0)
            } else {
                (lib_read(w), tool_read(w))
            }
        })
        .collect();
    std::thread::sleep(WINDOW);
    let mut failed = Vec::new();
    for (w, (lib0, tool0)) in info.witnesses.iter().zip(before) {
        let tool = Reading {
            witness: *w,
            before: tool0,
            after: tool_read(w),
        };
        let library = Reading {
            witness: *w,
            before: lib0,
            after: lib_read(w),
        };
        println!(
            "{name}: {:<6} {:<48} tool {:>7} -> {:>7} = {:>7}, library {:>7}  {} [{}]",
            w.node.label(),
            format!("{:?}", w.source),
            tool.before,
            tool.after,
            tool.value(),
            library.value(),
            if tool.holds() && library.holds() {
                "ok"
            } else {
                "FAILED"
            },
            w.meaning
        );
        if !(tool.holds() && library.holds()) {
            failed.push(format!(
                "{:?} in {} ({:?}): {}",
                w.source,
                w.node,
                w.expect,
                w.command()
            ));
        }
    }
    let (ok, stderr) = run.terminate();
    assert!(
        failed.is_empty(),
        "{name}: witnesses did not move as expected: {failed:?}\n{stderr}"
    );
    assert!(ok, "{name} did not exit cleanly: {stderr}");
    assert!(stderr.contains("the lab is restored"), "{stderr}");
    assert_eq!(
        setup::problems(),
        Vec::<String>::new(),
        "{name} left the lab changed"
    );
    drop(guard);
}

#[test]
fn healthy() {
    scenario_produces_its_pitfall(Name::Healthy, &[]);
}

#[test]
fn forwarding_disabled() {
    scenario_produces_its_pitfall(Name::ForwardingDisabled, &[]);
}

#[test]
fn rule_order() {
    scenario_produces_its_pitfall(Name::RuleOrder, &[]);
}

#[test]
fn conntrack_pressure() {
    scenario_produces_its_pitfall(Name::ConntrackPressure, &["--allow-host-changes"]);
}

#[test]
fn no_route() {
    scenario_produces_its_pitfall(Name::NoRoute, &[]);
}

#[test]
fn rp_filter() {
    scenario_produces_its_pitfall(Name::RpFilter, &[]);
}

#[test]
fn small_buffers() {
    scenario_produces_its_pitfall(Name::SmallBuffers, &[]);
}

#[test]
fn listen_overflow() {
    scenario_produces_its_pitfall(Name::ListenOverflow, &[]);
}

#[test]
fn syn_flood() {
    scenario_produces_its_pitfall(Name::SynFlood, &[]);
}

#[test]
fn reset_storm() {
    scenario_produces_its_pitfall(Name::ResetStorm, &[]);
}

#[test]
fn closed_port() {
    scenario_produces_its_pitfall(Name::ClosedPort, &[]);
}

/// One line on stderr, exit 2, naming the fix.
fn assert_refused(args: &[&str], fix: &str) {
    let r = lab(args);
    assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    assert!(
        r.stderr.contains(fix),
        "{args:?} does not say `{fix}`: {}",
        r.stderr
    );
}

#[test]
fn bad_input_is_refused_with_exit_2_and_leaves_nothing() {
    let guard = LabGuard::take();
    assert_refused(
        &["scenario", "healthy", "--duration", "1"],
        "netpost lab up",
    );
    assert_refused(&["scenario", "no-such-pitfall"], "choose one of: healthy,");
    assert_refused(&["scenario", "healthy", "--duration=0"], "positive number");
    assert_nothing_left();

    guard.up();
    let again = lab(&["up"]);
    assert!(
        again.status.success() && again.stderr.contains("already up"),
        "{}",
        again.stderr
    );
    let max = netpost_tests::sh("sysctl", &["-n", "net.netfilter.nf_conntrack_max"]);
    assert_refused(&["scenario", "conntrack-pressure"], "--allow-host-changes");
    assert_eq!(
        netpost_tests::sh("sysctl", &["-n", "net.netfilter.nf_conntrack_max"]),
        max
    );

    // One scenario at a time.
    let run = Running::start("healthy", &[]);
    assert_refused(
        &["scenario", "no-route", "--duration", "1"],
        "already running",
    );
    let status = lab(&["status"]);
    assert!(
        status.stdout.contains("scenario: healthy (pid"),
        "{}",
        status.stdout
    );
    drop(run);
    assert_eq!(setup::problems(), Vec::<String>::new());

    // --duration ends it by itself, restored.
    let timed = lab(&["scenario", "closed-port", "--duration", "1"]);
    assert!(timed.status.success(), "{}", timed.stderr);
    assert!(
        timed.stderr.contains("--duration reached"),
        "{}",
        timed.stderr
    );
    assert!(
        timed.stderr.contains("the lab is restored"),
        "{}",
        timed.stderr
    );
    let status = lab(&["status"]);
    assert!(status.stdout.starts_with("lab: up\n"), "{}", status.stdout);
    assert!(
        status.stdout.contains("scenario: none"),
        "{}",
        status.stdout
    );
    drop(guard);
}

#[test]
fn kill_9_then_down_restores_the_host() {
    let guard = LabGuard::take();
    guard.up();
    let max = || netpost_tests::sh("sysctl", &["-n", "net.netfilter.nf_conntrack_max"]);
    let before = max();
    let mut run = Running::start("conntrack-pressure", &["--allow-host-changes"]);
    assert!(
        run.stderr()
            .contains("HOST (global): net.netfilter.nf_conntrack_max"),
        "{}",
        run.stderr()
    );
    assert_eq!(max().trim(), "256");
    run.signal(libc::SIGKILL);
    run.wait();
    let status = lab(&["status"]);
    assert!(status.stdout.contains("DEAD"), "{}", status.stdout);
    assert!(
        status.stdout.contains("nf_conntrack_max"),
        "{}",
        status.stdout
    );
    assert_eq!(max().trim(), "256", "kill -9 left no chance to restore");

    let down = lab(&["down"]);
    assert!(down.status.success(), "{}", down.stderr);
    assert!(
        down.stderr
            .contains("undone: HOST (global): net.netfilter.nf_conntrack_max"),
        "{}",
        down.stderr
    );
    assert_eq!(max(), before);
    assert_nothing_left();
    drop(guard);
}

#[test]
fn kill_9_then_up_repairs_the_lab() {
    let guard = LabGuard::take();
    guard.up();
    let mut run = Running::start("rule-order", &[]);
    run.signal(libc::SIGKILL);
    run.wait();
    assert!(
        !setup::problems().is_empty(),
        "the killed scenario's nft table should remain"
    );
    let up = lab(&["up"]);
    assert!(up.status.success(), "{}", up.stderr);
    assert!(up.stderr.contains("changes were undone"), "{}", up.stderr);
    assert_eq!(setup::problems(), Vec::<String>::new());
    drop(guard);
}

#[test]
fn down_stops_a_running_scenario_first() {
    let guard = LabGuard::take();
    guard.up();
    let mut run = Running::start("syn-flood", &[]);
    let down = lab(&["down"]);
    assert!(down.status.success(), "{}", down.stderr);
    assert!(
        down.stderr.contains("stopped scenario syn-flood"),
        "{}",
        down.stderr
    );
    let (ok, stderr) = run.wait();
    assert!(
        ok,
        "the scenario should exit cleanly on down's SIGTERM: {stderr}"
    );
    assert_nothing_left();
    drop(guard);
}

#[test]
fn up_rebuilds_a_partial_lab_and_down_removes_leftovers() {
    let guard = LabGuard::take();
    // What a crash in the middle of `up` leaves, plus a stray lab-named namespace.
    netpost_tests::sh("ip", &["netns", "add", "npl-router"]);
    netpost_tests::sh("ip", &["netns", "add", "npl-stray"]);
    let status = lab(&["status"]);
    assert!(status.stdout.contains("not healthy"), "{}", status.stdout);
    assert!(
        status.stdout.contains("namespace npl-stray (leftover)"),
        "{}",
        status.stdout
    );
    let up = lab(&["up"]);
    assert!(up.status.success(), "{}", up.stderr);
    assert!(up.stderr.contains("rebuilding"), "{}", up.stderr);
    assert_eq!(setup::problems(), Vec::<String>::new());
    let down = lab(&["down"]);
    assert!(down.status.success(), "{}", down.stderr);
    assert_nothing_left();
    drop(guard);
}
