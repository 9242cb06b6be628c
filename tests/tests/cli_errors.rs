//! Every refused command line gets one stderr line that names the flag it is about (and,
//! for setup problems, the fix), with exit 2 for invalid flags and 1 for setup problems.
use netpost_tests::{
    netns::{NetNs, VethPair},
    netpost::run,
    require_root,
};

/// Runs netpost with `args`; checks the exit code, the single line and that it names `flag`.
fn refused(args: &[&str], code: i32, flag: &str) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one line expected: {}",
        out.stderr
    );
    let line = lines[0];
    assert!(line.starts_with("netpost: error: "), "{line}");
    assert!(
        line.contains(flag),
        "{args:?}: the line names no {flag}: {line}"
    );
    line.to_string()
}

#[test]
fn invalid_flags_name_themselves_and_exit_2() {
    require_root();
    // Each with -i: without one netpost would watch the host's interfaces.
    for (args, flag) in [
        (&["-i", "lo", "--interval", "0"][..], "--interval"),
        (&["-i", "lo", "--duration", "-1"], "--duration"),
        (&["-i", "lo", "--duration", "soon"], "--duration"),
        (&["-i", "lo", "--xdp-mode", "turbo"], "--xdp-mode"),
        (&["-i", "lo", "--top", "many"], "--top"),
        (&["-i", "lo", "--max-flows", "0"], "--max-flows"),
        (&["-i", "lo", "--events-buffer", "3"], "--events-buffer"),
        (&["-i", "lo", "--prometheus", "host:9464"], "--prometheus"),
        (&["-i", "lo", "--bogus"], "--bogus"),
        (&["-i"], "--interface"),
        (&["-i", "lo", "--json", "-", "--events", "-"], "--events -"),
    ] {
        let line = refused(args, 2, flag);
        assert!(
            line.ends_with("(see netpost --help)") || flag == "--events -",
            "{line}"
        );
    }
}

#[test]
fn setup_problems_name_the_flag_and_the_fix_and_exit_1() {
    require_root();
    let pair = VethPair::new();
    let ns = pair.ns_b.name.as_str();
    let iface = pair.b.ifname.as_str();
    let line = refused(&["-i", "lo", "-i", "lo"], 1, "-i lo");
    assert!(line.contains("name each interface once"), "{line}");
    let line = refused(&["--netns", ns, "-i", "nosuch0"], 1, "-i nosuch0");
    assert!(line.contains(&format!("`ip -n {ns} link`")), "{line}");
    let line = refused(&["--netns", "netpost-no-such-ns", "-i", "lo"], 1, "--netns");
    assert!(line.contains("ip netns add netpost-no-such-ns"), "{line}");
    for flag in ["--json", "--events"] {
        let line = refused(
            &[
                "--netns",
                ns,
                "-i",
                iface,
                "--no-tui",
                "--duration",
                "3",
                flag,
                "/nonexistent/dir/x",
            ],
            1,
            &format!("cannot open {flag} /nonexistent/dir/x"),
        );
        assert!(line.contains("existing directory"), "{line}");
    }
    // A new namespace's loopback is down, without 127.0.0.1: it cannot be bound there.
    let fresh = NetNs::new();
    fresh.exec("ip", &["addr", "flush", "dev", "lo"]);
    fresh.exec("ip", &["link", "set", "lo", "down"]);
    fresh.exec(
        "ip",
        &[
            "link", "add", "npv0", "type", "veth", "peer", "name", "npv1",
        ],
    );
    let line = refused(
        &[
            "--netns",
            &fresh.name,
            "-i",
            "npv0",
            "--no-tui",
            "--duration",
            "3",
            "--prometheus",
            "9464",
        ],
        1,
        "--prometheus 127.0.0.1:9464",
    );
    assert!(
        line.contains(&format!("`ip -n {} link set lo up`", fresh.name)),
        "{line}"
    );
}
