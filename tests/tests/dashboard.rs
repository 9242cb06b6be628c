//! The dashboard end to end: the real binary in a real terminal (a tmux pane on its own
//! server), watching the receiving end of a veth pair while UDP flows to that namespace's
//! own address. The screen is read back with `capture-pane` and parsed like a person
//! would read it: the boxes the traffic crosses (XDP, tc in, PREROUTING, INPUT) light up
//! with non-zero rates, FORWARD stays at zero, the tables count the packets. Then `q`
//! must end netpost cleanly and give the terminal back (alternate screen left).
use std::{
    net::{IpAddr, SocketAddr},
    process::Command,
    time::{Duration, Instant},
};

use netpost_tests::{
    netns::{VethPair, unique_name},
    netpost::binary,
    require_root,
    traffic::{udp_pending, udp_receiver, udp_send},
};

const PORT: u16 = 7460;
const EXIT_MARK: &str = "netpost-exit-status=";
/// Words of an interface row: interface, hook, pps, rate (number and unit), packets,
/// bytes, hdr%, tcp, udp...
const PACKETS: usize = 5;
const TCP: usize = 8;
const UDP: usize = 9;

/// A tmux server of the test's own (its socket name is unique), killed on drop with
/// everything running in it, even when the test fails.
struct Tmux {
    socket: String,
    /// The server's socket file, which kill-server leaves behind.
    socket_path: Option<String>,
}

impl Tmux {
    /// Runs `command` in a detached `width`x`height` pane. A shell line after it prints
    /// netpost's exit status and keeps the pane open so the screen can still be read.
    fn start(width: u16, height: u16, command: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: unique_name("npd"),
            socket_path: None,
        };
        let line = format!("{command}; echo {EXIT_MARK}$?; sleep 600");
        let (w, h) = (width.to_string(), height.to_string());
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &w,
            "-y",
            &h,
            &line,
        ]);
        tmux.socket_path = Some(tmux.display("#{socket_path}"));
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}): the dashboard test needs it (cargo xtask test installs it)")
            });
        assert!(
            out.status.success(),
            "tmux {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "dash"])
    }

    fn display(&self, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", "dash", format])
            .trim()
            .to_string()
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "dash", keys]);
    }

    /// Polls the screen until `done` accepts it; panics with the last screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {secs}s; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for netpost to have exited and returns its exit status.
    fn exit_status(&self) -> i32 {
        let screen = self.wait_for("netpost exiting", 20, |s| s.contains(EXIT_MARK));
        let status = screen
            .lines()
            .find_map(|l| l.trim().strip_prefix(EXIT_MARK))
            .expect("exit line");
        status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("exit status {status:?}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn netpost_command(pair: &VethPair, extra: &str) -> String {
    format!(
        "{} --netns {} -i {} --interval 200 {extra}",
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
    let lit = |s: &str| {
        // Keep traffic flowing between reads so the rates stay above zero.
        udp_send(&pair.ns_a, dst, 20, 200);
        udp_pending(&receiver);
        ["XDP", "tc in", "PREROUTING", "INPUT"]
            .iter()
            .all(|t| box_pps(s, t).is_some_and(|pps| pps != "0"))
            && table_row(s, &pair.b.ifname, "xdp").is_some_and(|r| r[PACKETS] != "0")
            && table_row(s, "v4", "INPUT").is_some_and(|r| r[2] != "0")
    };
    let screen = tmux.wait_for("non-zero rates at XDP, tc in, PREROUTING, INPUT", 30, lit);

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
