//! Support for the lab's tests: the real `netpost lab ...` binary, and the kernel's witnesses
//! read with the kernel's own tools (nstat, conntrack, nft, ss, tc), independently of the
//! library's readers.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use netpost::lab::{
    evidence::{Source, Witness},
    topology::Node,
};

/// The lab has fixed names: its tests take this lock, one at a time.
static LAB: Mutex<()> = Mutex::new(());
/// ...and this file lock, so that test binaries (lab, doctor, demo), which cargo may run
/// while another holds the lab, wait for each other too.
const LAB_TESTS_LOCK: &str = "/run/netpost-lab-tests.lock";

/// Host sysctls the lab must never leave changed.
pub const HOST_SYSCTLS: [&str; 6] = [
    "net.netfilter.nf_conntrack_max",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.tcp_rmem",
    "net.core.rmem_max",
    "net.ipv6.conf.all.forwarding",
];

/// Holds the lab for one test: removes any lab on entry and on drop (a failing test leaves
/// nothing behind), and checks on drop that the host's sysctls are as they were.
pub struct LabGuard {
    host: Vec<String>,
    // Dropped after `drop` ran `lab down`: fields drop after the Drop impl.
    _file_lock: std::fs::File,
    _lock: MutexGuard<'static, ()>,
}

impl LabGuard {
    pub fn take() -> LabGuard {
        crate::require_root();
        let lock = LAB.lock().unwrap_or_else(|e| e.into_inner());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LAB_TESTS_LOCK)
            .expect("open the lab tests' lock file");
        // SAFETY: flock on an fd we own; released when the file is closed.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {LAB_TESTS_LOCK}");
        let down = lab(&["down"]);
        assert!(down.status.success(), "lab down: {}", down.stderr);
        LabGuard {
            host: host_sysctls(),
            _file_lock: file,
            _lock: lock,
        }
    }

    /// `lab up`, asserted.
    pub fn up(&self) {
        let up = lab(&["up"]);
        assert!(up.status.success(), "lab up: {}", up.stderr);
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let down = lab(&["down"]);
        if std::thread::panicking() {
            return;
        }
        assert!(down.status.success(), "lab down: {}", down.stderr);
        assert_nothing_left();
        assert_eq!(host_sysctls(), self.host, "host sysctls changed");
    }
}

pub fn host_sysctls() -> Vec<String> {
    HOST_SYSCTLS
        .iter()
        .map(|k| format!("{k}={}", crate::sh("sysctl", &["-n", k]).trim()))
        .collect()
}

/// No lab namespace, host interface or state directory remains.
pub fn assert_nothing_left() {
    let netns = crate::sh("ip", &["netns", "list"]);
    assert!(
        !netns.lines().any(|l| l.starts_with("npl-")),
        "lab namespaces remain: {netns}"
    );
    let links = crate::sh("ip", &["-o", "link", "show"]);
    assert!(
        !links.contains("npl-"),
        "lab interfaces on the host: {links}"
    );
    assert!(
        !std::path::Path::new("/run/netpost-lab").exists(),
        "/run/netpost-lab remains"
    );
}

/// `netpost lab ARGS...` to completion.
pub fn lab(args: &[&str]) -> crate::netpost::Finished {
    let mut all = vec!["lab"];
    all.extend_from_slice(args);
    crate::netpost::run(&all)
}

/// A running `netpost lab scenario ...`. Killed (SIGKILL) on drop if still running; the
/// guard's `lab down` then cleans up.
pub struct Running {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Starts the scenario and waits (up to 10 s) for its "running" line.
    pub fn start(name: &str, extra: &[&str]) -> Running {
        let mut child = Command::new(crate::netpost::binary())
            .args(["lab", "scenario", name])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netpost lab scenario");
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
        let run = Running { child, stderr };
        let deadline = Instant::now() + Duration::from_secs(10);
        let marker = format!("scenario {name} running");
        while !run.stderr().contains(&marker) {
            if let Ok(Some(status)) = run.try_status() {
                panic!("scenario {name} exited ({status}): {}", run.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "scenario {name} did not start: {}",
                run.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        run
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn try_status(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        // SAFETY: waitpid with WNOHANG on our own child; std's Child is not used to wait
        // elsewhere while this runs.
        let mut status = 0;
        let pid = self.child.id() as libc::pid_t;
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::WNOWAIT) } {
            0 => Ok(None),
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(Some(std::os::unix::process::ExitStatusExt::from_raw(
                status,
            ))),
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Sends SIGTERM and waits (up to 15 s) for the exit; returns (success, stderr).
    pub fn terminate(mut self) -> (bool, String) {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    pub fn wait(&mut self) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(50));
                return (status.success(), self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "scenario did not exit: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn in_ns(node: Node, argv: &[&str]) -> String {
    let mut all = vec!["netns", "exec", node.netns()];
    all.extend_from_slice(argv);
    crate::sh("ip", &all)
}

/// Reads a witness with the kernel's own command-line tools.
pub fn tool_read(w: &Witness) -> u64 {
    let ns = w.node;
    match w.source {
        Source::Nstat { name } => {
            let out = in_ns(ns, &["nstat", "-asz", name]);
            out.lines()
                .find_map(|l| {
                    let mut f = l.split_whitespace();
                    (f.next()? == name).then(|| f.next()?.parse().ok())?
                })
                .unwrap_or_else(|| panic!("nstat has no {name}: {out}"))
        }
        Source::ConntrackCount => in_ns(ns, &["conntrack", "-C"])
            .trim()
            .parse()
            .expect("conntrack -C"),
        Source::ConntrackStat { field } => {
            let out = in_ns(ns, &["conntrack", "-S"]);
            let key = format!("{field}=");
            out.split_whitespace()
                .filter_map(|w| w.strip_prefix(&key)?.parse::<u64>().ok())
                .sum()
        }
        Source::NftRule { comment } => {
            let out = in_ns(ns, &["nft", "-j", "list", "table", "inet", "netpost_lab"]);
            let v: serde_json::Value = serde_json::from_str(&out).expect("nft json");
            v["nftables"]
                .as_array()
                .expect("nftables")
                .iter()
                .map(|i| &i["rule"])
                .find(|r| r["comment"] == comment)
                .and_then(|r| {
                    r["expr"]
                        .as_array()?
                        .iter()
                        .find_map(|e| e["counter"]["packets"].as_u64())
                })
                .unwrap_or_else(|| panic!("no counted rule {comment}: {out}"))
        }
        Source::TcpSockets { state, port } => {
            let state = netpost::lab::evidence::tcp_state_name(state);
            let filter = format!("sport = :{port}");
            in_ns(ns, &["ss", "-Htan", "state", state, &filter])
                .lines()
                .count() as u64
        }
        Source::AcceptQueue { port } => {
            let filter = format!("sport = :{port}");
            let out = in_ns(ns, &["ss", "-Hltn", &filter]);
            // State Recv-Q Send-Q Local Peer (State may be left out): the first number.
            out.split_whitespace()
                .find_map(|w| w.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no listener on {port}: {out}"))
        }
        Source::TcpFlow { port, field } => {
            let filter = format!("dport = :{port}");
            let out = in_ns(ns, &["ss", "-Htin", "state", "established", &filter]);
            let words = out.split_whitespace();
            let v = match field {
                "rtt_us" => words
                    .filter_map(|w| w.strip_prefix("rtt:"))
                    .find_map(|v| v.split('/').next()?.parse::<f64>().ok())
                    .map(|ms| (ms * 1000.0) as u64),
                "rwnd_limited_pct" => words
                    .filter_map(|w| w.strip_prefix("rwnd_limited:"))
                    .find_map(|v| v.split(['(', '%']).nth(1)?.parse::<f64>().ok())
                    .map(|p| p.round() as u64),
                _ => None,
            };
            v.unwrap_or_else(|| panic!("no {field} for port {port}: {out}"))
        }
        Source::Qdisc { dev, field } => {
            let out = in_ns(ns, &["tc", "-s", "qdisc", "show", "dev", dev]);
            let words: Vec<&str> = out.split_whitespace().collect();
            let (key, strip): (&str, &[char]) = match field {
                "drops" => ("(dropped", &[',']),
                "backlog" => ("backlog", &['b']),
                other => panic!("qdisc field {other}"),
            };
            let at = words
                .iter()
                .position(|w| *w == key)
                .unwrap_or_else(|| panic!("{out}"));
            words[at + 1]
                .trim_end_matches(strip)
                .parse()
                .expect("qdisc number")
        }
    }
}
