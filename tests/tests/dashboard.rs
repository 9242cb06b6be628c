//! The dashboard end to end: the real binary in a real terminal (a tmux pane on its own
//! server), watching the receiving end of a veth pair while UDP flows to that namespace's
//! own address. The screen is read back with `capture-pane` and parsed like a person
//! would read it: the boxes the traffic crosses (XDP, tc in, PREROUTING, INPUT) light up
//! with non-zero rates, FORWARD stays at zero, the tables count the packets. Then `q`
//! must end netpost cleanly and give the terminal back (alternate screen left).
use std::{
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use netpost_tests::{
    kernel::has_netfilter_links,
    netns::VethPair,
    netpost::binary,
    require_root,
    router::Router,
    tmux::{Tmux, panel},
    traffic::{tcp_exchange, udp_pending, udp_receiver, udp_send},
};

const PORT: u16 = 7460;
/// Words of an interface row: interface, hook, pps, rate (number and unit), packets,
/// bytes, hdr%, tcp, udp...
const PACKETS: usize = 5;
const TCP: usize = 8;
const UDP: usize = 9;

fn netpost_command(pair: &VethPair, extra: &str) -> String {
    // As Netpost::start: every probe, and XDP on the veth too, unless the test chooses.
    let mut cover = String::new();
    for (flag, value) in [("--profile", "full"), ("--xdp-mode", "generic")] {
        if !extra.contains(flag) {
            cover.push_str(&format!(" {flag} {value}"));
        }
    }
    format!(
        "{} --netns {} -i {} --interval 200{cover} {extra}",
        binary().display(),
        pair.ns_b.name,
        pair.b.ifname
    )
}

/// The text inside the diagram box titled `title` (its rows between the side borders,
/// then its bottom border), read off the captured screen.
fn boxed(screen: &str, title: &str) -> Option<Vec<String>> {
    let grid: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let want: Vec<char> = title.chars().collect();
    for (y, row) in grid.iter().enumerate() {
        let Some(at) = row.windows(want.len()).position(|w| w == want.as_slice()) else {
            continue;
        };
        let Some(left) = row[..at].iter().rposition(|c| !matches!(c, '─' | '━')) else {
            continue;
        };
        if !matches!(row[left], '┌' | '┏') {
            continue;
        }
        let right = at + row[at..].iter().position(|c| matches!(c, '┐' | '┓'))?;
        let mut out = vec![];
        for row in &grid[y + 1..] {
            out.push(row.get(left + 1..right)?.iter().collect());
            if matches!(row[left], '└' | '┗') {
                break;
            }
        }
        return Some(out);
    }
    None
}

/// The packets-per-second figure of a large box ("1.2k pps" on its first row).
fn box_pps(screen: &str, title: &str) -> Option<String> {
    let rows = boxed(screen, title)?;
    let first = rows.first()?.split_whitespace().collect::<Vec<_>>();
    (first.get(1) == Some(&"pps")).then(|| first[0].to_string())
}

/// The row of a table that starts with `first` then `second` (inside its panel border).
fn table_row(screen: &str, first: &str, second: &str) -> Option<Vec<String>> {
    screen.lines().find_map(|l| {
        l.split(['│', '║']).find_map(|cell| {
            let words: Vec<String> = cell.split_whitespace().map(String::from).collect();
            (words.len() > 2 && words[0] == first && words[1] == second).then_some(words)
        })
    })
}

#[test]
fn the_dashboard_lights_up_the_hooks_udp_crosses_and_q_gives_the_terminal_back() {
    require_root();
    let pair = VethPair::new();
    let receiver = udp_receiver(&pair.ns_b, IpAddr::V4(pair.b.ip4), PORT);
    let tmux = Tmux::start(200, 60, &netpost_command(&pair, ""));
    tmux.wait_for("the dashboard", 30, |s| s.contains("packet path"));
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "dashboard on the alternate screen"
    );

    let dst = SocketAddr::new(IpAddr::V4(pair.b.ip4), PORT);
    // Without netfilter links (before 6.4) the hooks' boxes say so and XDP and tc count on.
    let linked = has_netfilter_links();
    let lit_boxes: &[&str] = if linked {
        &["XDP", "tc in", "PREROUTING", "INPUT"]
    } else {
        &["XDP", "tc in"]
    };
    let lit = |s: &str| {
        // Keep traffic flowing between reads so the rates stay above zero.
        udp_send(&pair.ns_a, dst, 20, 200);
        udp_pending(&receiver);
        lit_boxes
            .iter()
            .all(|t| box_pps(s, t).is_some_and(|pps| pps != "0"))
            && table_row(s, &pair.b.ifname, "xdp").is_some_and(|r| r[PACKETS] != "0")
            && (!linked || table_row(s, "v4", "INPUT").is_some_and(|r| r[2] != "0"))
    };
    let screen = tmux.wait_for(&format!("non-zero rates at {lit_boxes:?}"), 30, lit);
    if !linked {
        for title in ["PREROUTING", "INPUT", "FORWARD"] {
            let inside = boxed(&screen, title).unwrap_or_default().join(" ");
            assert!(inside.contains("not linked"), "{title}: {inside}\n{screen}");
        }
        for said in ["nf v4✗", "no BPF netfilter links", "xdp generic", "● live"] {
            assert!(screen.contains(said), "{said} missing:\n{screen}");
        }
        tmux.keys("q");
        assert_eq!(tmux.exit_status(), 0, "q exits cleanly:\n{}", tmux.screen());
        return;
    }

    assert_eq!(
        box_pps(&screen, "FORWARD").as_deref(),
        Some("0"),
        "UDP to the namespace's own address is not forwarded:\n{screen}"
    );
    assert!(
        screen.contains("busiest: wire → INPUT → local process"),
        "{screen}"
    );
    let xdp = table_row(&screen, &pair.b.ifname, "xdp").unwrap();
    assert_ne!(xdp[UDP], "0", "UDP counted at XDP: {xdp:?}");
    assert_eq!(xdp[TCP], "0", "no TCP sent: {xdp:?}");
    let pre = table_row(&screen, "v4", "PREROUTING").unwrap();
    assert_ne!(pre[2], "0", "entered PREROUTING: {pre:?}");
    for header in [
        "netns",
        pair.ns_b.name.as_str(),
        "xdp generic",
        "nf v4✓",
        "● live",
    ] {
        assert!(screen.contains(header), "header lacks {header}:\n{screen}");
    }

    tmux.keys("q");
    assert_eq!(tmux.exit_status(), 0, "q exits cleanly:\n{}", tmux.screen());
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen left"
    );
    assert_eq!(
        tmux.display("#{pane_current_command}"),
        "sleep",
        "netpost is gone"
    );
    let after = tmux.screen();
    assert!(
        after.contains("netpost: detached") && !after.contains("packet path"),
        "the shell's screen is back, without the dashboard on it:\n{after}"
    );
}

#[test]
fn the_collector_stopping_ends_the_dashboard_at_80x24() {
    require_root();
    let pair = VethPair::new();
    let tmux = Tmux::start(80, 24, &netpost_command(&pair, "--duration 3"));
    let screen = tmux.wait_for("the small dashboard", 30, |s| {
        s.contains("PREROUTING") && s.contains("POSTROUTING")
    });
    for name in [
        "XDP", "tc in", "INPUT", "FORWARD", "OUTPUT", "tc out", "routing",
    ] {
        assert!(screen.contains(name), "{name} missing at 80x24:\n{screen}");
    }
    assert!(
        screen.lines().all(|l| l.chars().count() <= 80),
        "nothing past 80 columns"
    );
    // --duration ends collection; the dashboard must follow without a key press.
    assert_eq!(tmux.exit_status(), 0, "{}", tmux.screen());
    assert_eq!(tmux.display("#{alternate_on}"), "0");
}

/// Real traffic through a router until `stop`: TCP connections from the client to the
/// server (each a handshake and a conntrack entry) and UDP the router's FORWARD rule drops.
fn router_traffic(r: &Router, stop: &AtomicBool) {
    let udp_dst = SocketAddr::new(IpAddr::V4(r.server.ip4), 7461);
    while !stop.load(Ordering::Relaxed) {
        tcp_exchange(&r.ns_client, &r.ns_server, &r.server, 200_000, 2_000);
        udp_send(&r.ns_client, udp_dst, 20, 64);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Conntrack entries from the panel's gauge ("table ███░░ 1.2k/262.1k 0.5%").
fn entries(conntrack: &str) -> Option<f64> {
    let line = conntrack.lines().find(|l| l.starts_with("table "))?;
    let used = line
        .split_whitespace()
        .find(|w| w.contains('/'))?
        .split('/')
        .next()?;
    number_after(&format!("n {used}"), "n ")
}

/// The first number in `text` after `label` ("SYN 12 → ..." gives 12 for "SYN "), with
/// k/M suffixes.
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'k' | 'M'))
        .collect();
    let (digits, scale) = match token.chars().last()? {
        'k' => (&token[..token.len() - 1], 1e3),
        'M' => (&token[..token.len() - 1], 1e6),
        _ => (&token[..], 1.0),
    };
    digits.parse::<f64>().ok().map(|v| v * scale)
}

#[test]
fn at_120x40_a_router_shows_conntrack_drops_and_the_handshake_funnel_live() {
    require_root();
    let r = Router::new();
    // Conntrack on in the router, and a rule that drops the UDP it would forward.
    r.ns_router.enable_conntrack("FORWARD");
    r.ns_router
        .exec("iptables", &["-A", "FORWARD", "-p", "udp", "-j", "DROP"]);
    let command = format!(
        "{} --netns {} -i {} -i {} --interval 300",
        binary().display(),
        r.ns_router.name,
        r.router_client.ifname,
        r.router_server.ifname
    );
    let tmux = Tmux::start(120, 40, &command);
    tmux.wait_for("the dashboard", 30, |s| s.contains("packet path"));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| router_traffic(&r, &stop));
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| watch_the_router(&tmux, &r)));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    tmux.keys("q");
    assert_eq!(tmux.exit_status(), 0, "{}", tmux.screen());
}

/// What a person checks on the router's dashboard while traffic flows.
fn watch_the_router(tmux: &Tmux, r: &Router) {
    let text = |s: &str, title: &str| panel(s, title).map(|rows| rows.join("\n"));
    let screen = tmux.wait_for("live conntrack, drops and handshakes", 60, |s| {
        let conntrack = text(s, "conntrack").unwrap_or_default();
        let drops = text(s, "drop reasons").unwrap_or_default();
        let funnel = text(s, "TCP handshakes").unwrap_or_default();
        let drop_line = drops.lines().find(|l| l.contains("✗ NETFILTER_DROP"));
        entries(&conntrack).is_some_and(|n| n > 0.0)
            && drop_line.is_some_and(|l| !l.contains(" 0/s "))
            && number_after(&funnel, "established ").is_some_and(|n| n >= 2.0)
    });
    // Every mission panel is on the screen at 120x40.
    for title in [
        "packet path",
        "netfilter",
        "conntrack",
        "drop reasons",
        "TCP handshakes",
    ] {
        assert!(
            panel(&screen, title).is_some()
                || screen.contains(&format!("╔ {title}"))
                || screen.contains(&format!("┌ {title}")),
            "{title} missing at 120x40:\n{screen}"
        );
    }
    let funnel = text(&screen, "TCP handshakes").unwrap();
    let syn = number_after(&funnel, "SYN ").unwrap();
    let established = number_after(&funnel, "established ").unwrap();
    assert!(syn >= established && established >= 2.0, "{funnel}");
    assert!(funnel.contains("handshake RTT p50"), "{funnel}");
    let conntrack = text(&screen, "conntrack").unwrap();
    assert!(
        entries(&conntrack).is_some_and(|n| n > 0.0),
        "conntrack entries: {conntrack}"
    );
    // Packets by conntrack state are netfilter's view (none without links, before 6.4).
    if has_netfilter_links() {
        assert!(
            number_after(&conntrack, "est ").is_some_and(|n| n > 0.0),
            "{conntrack}"
        );
    }

    // The flows view: a forwarded connection crosses both watched interfaces, listed once.
    tmux.keys("2");
    let screen = tmux.wait_for("the flows view", 10, |s| s.contains("[2 flows]"));
    let rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains(&format!("{}:5201", r.server.ip4)))
        .collect();
    assert!(!rows.is_empty(), "{screen}");
    let mut pairs: Vec<String> = rows
        .iter()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let listed = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), listed, "a flow listed twice:\n{screen}");
    tmux.keys("Enter");
    let details = tmux.wait_for("the flow's details", 10, |s| {
        s.contains("flow · Esc closes")
    });
    let crossed = format!("{} → {}", r.router_client.ifname, r.router_server.ifname);
    assert!(
        details.contains(&format!("seen on         {crossed}")),
        "both interfaces, in the order the SYN crossed them:\n{details}"
    );
}
