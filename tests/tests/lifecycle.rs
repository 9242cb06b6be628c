//! Bad input gives one clear line and a non-zero exit with nothing attached; a running
//! netpost detaches on SIGTERM/SIGINT/--duration and leaves nothing behind after SIGKILL.
use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use netpost_tests::{
    kernel::{
        Attached, attached_programs, has_clsact, has_netfilter_links, has_tcx, program_exists,
        programs_of_pid,
    },
    netns::{NetNs, VethPair},
    netpost::{Netpost, binary, hook, num, run},
    require_root, slack, slack_secs,
    traffic::{udp_receive, udp_receiver, udp_send},
    wait_until,
};

/// The single line netpost printed on stderr for a refused run.
fn one_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr:?}");
    assert!(lines[0].starts_with("netpost: error: "), "{stderr:?}");
    lines[0]
}

fn ours() -> Attached {
    Attached {
        xdp: vec!["netpost_xdp".into()],
        tc_ingress: vec!["netpost_tc_in".into()],
        tc_egress: vec!["netpost_tc_out".into()],
    }
}

/// Links are released when their last fd closes; give the kernel a moment.
fn wait_until_clean(ns: &NetNs, ifname: &str) {
    wait_until(
        || attached_programs(ns, ifname).is_empty(),
        || {
            format!(
                "still attached to {ifname}: {:?}",
                attached_programs(ns, ifname)
            )
        },
    );
}

#[test]
fn unknown_interface_is_refused_before_anything_is_attached() {
    require_root();
    let pair = VethPair::new();
    let out = run(&[
        "--netns",
        &pair.ns_b.name,
        "-i",
        &pair.b.ifname,
        "-i",
        "nosuch0",
        "--no-tui",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out.stderr);
    assert!(
        line.contains("interface 'nosuch0' does not exist"),
        "{line}"
    );
    assert!(
        line.contains(&format!("ip -n {} link", pair.ns_b.name)),
        "{line}"
    );
    assert!(attached_programs(&pair.ns_b, &pair.b.ifname).is_empty());
}

#[test]
fn unknown_namespace_is_refused() {
    require_root();
    let out = run(&["--netns", "netpost-no-such-ns", "-i", "lo", "--no-tui"]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out.stderr);
    assert!(
        line.contains("network namespace 'netpost-no-such-ns' does not exist"),
        "{line}"
    );
}

#[test]
fn unprivileged_user_is_told_to_use_root() {
    require_root();
    let bin = binary();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args(["-i", "lo", "--no-tui"])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(one_error_line(&stderr).contains("needs root"), "{stderr}");
}

#[test]
fn missing_btf_is_refused() {
    require_root();
    let out = std::process::Command::new(binary())
        .env("NETPOST_BTF", "/nonexistent/vmlinux")
        .args(["-i", "lo", "--no-tui"])
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&stderr);
    assert!(
        line.contains("kernel BTF not found at /nonexistent/vmlinux"),
        "{line}"
    );
}

#[test]
fn bad_flags_get_one_line_and_exit_2() {
    require_root();
    // Never without -i or --netns of a test namespace: netpost would watch every interface
    // that is up in the host's namespace.
    for args in [
        vec!["-i", "lo", "--interval", "0"],
        vec!["-i", "lo", "--duration", "-1"],
        vec!["-i", "lo", "--xdp-mode", "turbo"],
        vec!["-i", "lo", "--bogus"],
        vec!["-i", "lo", "--json", "-", "--events", "-"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        one_error_line(&out.stderr);
    }
    let out = run(&["-i", "lo", "-i", "lo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_error_line(&out.stderr).contains("given twice"));
}

#[test]
fn without_i_every_interface_that_is_up_is_watched_lo_aside() {
    require_root();
    let pair = VethPair::new();
    let out = run(&[
        "--netns",
        &pair.ns_b.name,
        "--no-tui",
        "--json",
        "-",
        "--interval",
        "100",
        "--duration",
        "0.3",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "no -i given: watching every interface that is up here, lo aside: {}\n",
            pair.b.ifname
        )),
        "{}",
        out.stderr
    );
    let last: serde_json::Value =
        serde_json::from_str(out.stdout.lines().last().expect("JSON")).unwrap();
    let watched: Vec<&String> = last["interfaces"].as_object().unwrap().keys().collect();
    assert_eq!(watched, [&pair.b.ifname], "lo is left out");
    wait_until_clean(&pair.ns_b, &pair.b.ifname);

    // A namespace where only lo is up: nothing to watch, and the fix is named.
    let lonely = NetNs::new();
    let out = run(&["--netns", &lonely.name, "--no-tui"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let line = one_error_line(&out.stderr);
    assert!(
        line.contains("no -i given and no interface but lo is up")
            && line.contains(&format!("ip -n {} link", lonely.name)),
        "{line}"
    );
}

#[test]
fn unwritable_json_path_attaches_nothing() {
    require_root();
    let pair = VethPair::new();
    let ns = pair.ns_b.name.clone();
    let out = run(&[
        "--netns",
        &ns,
        "-i",
        &pair.b.ifname,
        "--json",
        "/nonexistent/dir/out.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_error_line(&out.stderr).contains("cannot open --json /nonexistent/dir/out.jsonl"));
    assert!(attached_programs(&pair.ns_b, &pair.b.ifname).is_empty());
}

#[test]
fn foreign_xdp_program_is_refused_and_partial_attachments_are_undone() {
    require_root();
    let pair = VethPair::new();
    let first = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
    assert_eq!(attached_programs(&pair.ns_b, &pair.b.ifname), ours());
    // lo attaches fine, then the busy veth fails: lo must be released again.
    let out = run(&[
        "--netns",
        &pair.ns_b.name,
        "-i",
        "lo",
        "-i",
        &pair.b.ifname,
        "--no-tui",
        // auto leaves XDP off on a veth: ask for it, as a user who wants XDP there would.
        "--xdp-mode",
        "generic",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let line = one_error_line(&out.stderr);
    assert!(
        line.contains(&format!(
            "interface '{}' already has an XDP program",
            pair.b.ifname
        )),
        "{line}"
    );
    assert!(line.contains("--xdp-mode off"), "the fix is named: {line}");
    wait_until_clean(&pair.ns_b, "lo");
    // The first netpost is untouched and still counting.
    assert_eq!(attached_programs(&pair.ns_b, &pair.b.ifname), ours());
    first.stop();
    wait_until_clean(&pair.ns_b, &pair.b.ifname);
}

#[test]
fn sigkill_leaves_nothing_attached() {
    require_root();
    let pair = VethPair::new();
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname, "lo"], &[]);
    assert_eq!(attached_programs(&pair.ns_b, &pair.b.ifname), ours());
    assert_eq!(attached_programs(&pair.ns_b, "lo"), ours());
    let programs = programs_of_pid(netpost.pid());
    let mut names: Vec<&str> = programs.iter().map(|(_, n)| n.as_str()).collect();
    names.sort();
    let mut want = vec![
        "netpost_fib6_lookup",
        "netpost_fib_lookup",
        "netpost_kfree_skb",
        "netpost_nf_head",
        "netpost_nf_tail",
        "netpost_rst_recv",
        "netpost_rst_sent",
        "netpost_sk_state",
        "netpost_synack_rtx",
        "netpost_tc_after",
        "netpost_tc_in",
        "netpost_tc_out",
        "netpost_xdp",
    ];
    // Kernels without netfilter links (6.1) cannot load the netfilter programs at all.
    if !has_netfilter_links() {
        want.retain(|name| !name.starts_with("netpost_nf_"));
    }
    // A program this kernel's verifier refused is said, and the run goes on without it (the
    // kernel matrix fails on the refusal itself): this test is about what stays behind.
    let stderr = netpost.stderr();
    want.retain(|name| !stderr.contains(&format!("netpost: {name} unavailable on this kernel")));
    assert_eq!(names, want);
    netpost.kill9();
    if has_tcx() {
        wait_until_clean(&pair.ns_b, &pair.b.ifname);
        wait_until_clean(&pair.ns_b, "lo");
    } else {
        // Without TCX (< 6.6) tc programs hang on a clsact qdisc as netlink filters, which
        // outlive the process (its XDP link does not): the next netpost's start removes
        // netpost's stale filters of the interfaces it watches, `netpost cleanup` those of
        // the whole namespace.
        clean_after_sigkill_without_tcx(&pair);
    }
    // A program lives as long as an fd or a link holds it: gone means no link survived,
    // the netfilter and tracepoint links included (they are not visible per device).
    wait_until(
        || !programs.iter().any(|(id, _)| program_exists(*id)),
        || format!("programs outlived SIGKILL: {programs:?}"),
    );
}

fn clean_after_sigkill_without_tcx(pair: &VethPair) {
    let (ns, veth) = (&pair.ns_b, pair.b.ifname.as_str());
    let stale = Attached {
        xdp: vec![],
        ..ours()
    };
    assert_eq!(
        attached_programs(ns, veth),
        stale,
        "the killed netpost's filters"
    );
    assert_eq!(attached_programs(ns, "lo"), stale);
    let next = Netpost::start(&ns.name, &[veth], &[]);
    for side in [
        "netpost_tc_in from {veth} ingress",
        "netpost_tc_out from {veth} egress",
    ] {
        let line = format!(
            "netpost: removed tc filter {}",
            side.replace("{veth}", veth)
        );
        assert!(next.stderr().contains(&line), "{line}: {}", next.stderr());
    }
    assert_eq!(
        attached_programs(ns, veth),
        ours(),
        "its own programs once each, nothing stale beside them"
    );
    next.stop();
    wait_until_clean(ns, veth);
    assert!(
        !has_clsact(ns, veth),
        "the clsact qdisc netpost added is gone"
    );

    // lo was not watched by the next start: its stale filters wait for a cleanup.
    assert_eq!(attached_programs(ns, "lo"), stale);
    let out = run(&["cleanup", "--netns", &ns.name]);
    assert!(out.status.success(), "{}", out.stderr);
    for line in [
        "removed tc filter netpost_tc_in from lo ingress",
        "removed tc filter netpost_tc_out from lo egress",
        "removed the clsact qdisc of lo: nothing else was attached to it",
    ] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
    assert!(attached_programs(ns, "lo").is_empty());
    assert!(!has_clsact(ns, "lo"));
    let again = run(&["cleanup", "--netns", &ns.name]);
    assert_eq!(
        again.stdout,
        format!(
            "nothing of netpost's is attached in network namespace {}\n",
            ns.name
        )
    );
}

/// Two netposts on one interface (the second at tc only: a device runs one XDP program)
/// both count every frame; the first to leave takes only its own programs, and where tc
/// needs a clsact qdisc (no TCX before 6.6) the last one removes it.
#[test]
fn two_netposts_on_one_interface_count_alike_and_the_last_cleans_up() {
    require_root();
    let pair = VethPair::new();
    let (ns, veth) = (&pair.ns_b, pair.b.ifname.as_str());
    let dst = SocketAddr::new(IpAddr::V4(pair.b.ip4), 7701);
    let rx = udp_receiver(ns, dst.ip(), dst.port());
    let first = Netpost::start(&ns.name, &[veth], &[]);
    let second = Netpost::start(&ns.name, &[veth], &["--xdp-mode", "off"]);
    let both = Attached {
        tc_ingress: vec!["netpost_tc_in".into(); 2],
        tc_egress: vec!["netpost_tc_out".into(); 2],
        ..ours()
    };
    assert_eq!(attached_programs(ns, veth), both);
    udp_send(&pair.ns_a, dst, 25, 64);
    udp_receive(&rx, 25);
    let udp_in = |snap: &serde_json::Value| {
        num(
            hook(snap, veth, "tc_ingress"),
            &["by_proto", "udp", "packets"],
        )
    };
    let snap = first.stop();
    assert_eq!(udp_in(&snap), 25, "the first netpost");
    assert_eq!(
        attached_programs(ns, veth),
        Attached {
            xdp: vec![],
            ..ours()
        },
        "the second netpost's programs stay"
    );
    udp_send(&pair.ns_a, dst, 15, 64);
    udp_receive(&rx, 15);
    let snap = second.stop();
    assert_eq!(
        udp_in(&snap),
        40,
        "the second netpost, before and after the first left"
    );
    wait_until_clean(ns, veth);
    assert!(!has_clsact(ns, veth));
}

#[test]
fn sigterm_sigint_and_duration_exit_zero_with_the_last_object_flushed() {
    require_root();
    let pair = VethPair::new();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &[]);
        std::thread::sleep(Duration::from_millis(250));
        let lines = netpost.stop_with(signal);
        assert!(lines.len() >= 2, "interval lines plus the final one");
        let ts: Vec<u64> = lines.iter().map(|l| l["ts_ms"].as_u64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
        wait_until_clean(&pair.ns_b, &pair.b.ifname);
    }
    let started = Instant::now();
    let out = run(&[
        "--netns",
        &pair.ns_b.name,
        "-i",
        &pair.b.ifname,
        "--no-tui",
        "--json",
        "-",
        "--interval",
        "100",
        "--duration",
        &slack_secs(0.5),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    // --duration ended the run (load and attach included: slack for slow VMs).
    assert!(started.elapsed() < slack(Duration::from_secs(10)));
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is JSON Lines"))
        .collect();
    assert!(lines.len() >= 4, "~5 intervals + final: {}", out.stdout);
    let last = lines.last().unwrap();
    assert!(last["elapsed_ms"].as_u64().unwrap() >= 500);
    assert!(out.stderr.contains("netpost: detached"));
    wait_until_clean(&pair.ns_b, &pair.b.ifname);
}

#[test]
fn live_table_is_printed_without_no_tui() {
    require_root();
    let pair = VethPair::new();
    let out = run(&[
        "--netns",
        &pair.ns_b.name,
        "-i",
        &pair.b.ifname,
        "--interval",
        "100",
        "--duration",
        &slack_secs(0.35),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let rows = out
        .stdout
        .lines()
        .filter(|l| l.starts_with(pair.b.ifname.as_str()));
    let hooks: Vec<&str> = rows.filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(hooks.len() >= 6, "a table per interval: {}", out.stdout);
    assert_eq!(&hooks[..3], ["xdp", "tc_ingress", "tc_egress"]);
    assert!(out.stdout.contains("netns "), "{}", out.stdout);
}

#[test]
fn xdp_mode_flag_forces_native_or_off() {
    require_root();
    let pair = VethPair::new();
    let native = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--xdp-mode", "native"],
    );
    let out = pair
        .ns_b
        .exec("ip", &["-j", "-d", "link", "show", "dev", &pair.b.ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["xdp"]["mode"], 1, "XDP_ATTACHED_DRV: {out}");
    assert_eq!(
        native.stop()["attached"][pair.b.ifname.as_str()]["xdp_mode"],
        "native"
    );
    wait_until_clean(&pair.ns_b, &pair.b.ifname);

    let off = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname], &["--xdp-mode", "off"]);
    let now = attached_programs(&pair.ns_b, &pair.b.ifname);
    assert!(now.xdp.is_empty(), "{now:?}");
    assert_eq!(now.tc_ingress, ["netpost_tc_in"]);
    assert_eq!(
        off.stop()["attached"][pair.b.ifname.as_str()]["xdp_mode"],
        "off"
    );
}

#[test]
fn a_watched_interface_deleted_while_netpost_runs_is_reported() {
    require_root();
    let pair = VethPair::new();
    let netpost = Netpost::start(&pair.ns_b.name, &[&pair.b.ifname, "lo"], &[]);
    pair.ns_b.exec("ip", &["link", "del", &pair.b.ifname]);
    wait_until(
        || netpost.stderr().contains("was deleted"),
        || format!("no word of the deletion: {}", netpost.stderr()),
    );
    assert!(
        netpost.stderr().contains(&format!(
            "netpost: interface '{}' was deleted: its totals stay",
            pair.b.ifname
        )),
        "{}",
        netpost.stderr()
    );
    let stderr = netpost.stderr();
    let last = netpost.stop();
    assert_eq!(
        last["interfaces_gone"],
        serde_json::json!([pair.b.ifname]),
        "lo is still there: {stderr}"
    );
    assert_eq!(last["interfaces"][pair.b.ifname.as_str()]["status"], "gone");
    assert_eq!(last["interfaces"]["lo"]["status"], "watching");
    assert_eq!(
        stderr.matches("was deleted").count(),
        1,
        "said once: {stderr}"
    );
}
