//! The real `netpost` binary, run as a child process the way users run it.
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

/// target/<profile>/netpost, next to the test binary's deps/ directory. Cargo does not build
/// another package's binary for these tests; `cargo xtask test` builds it first.
/// `NETPOST_BIN` names another build instead (e.g. an older commit's, to show that a test
/// fails there).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NETPOST_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("netpost");
    assert!(
        bin.exists(),
        "{} missing: run the tests with `cargo xtask test`, or `cargo build -p netpost-user` first",
        bin.display()
    );
    bin
}

/// Output of a finished run.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs netpost to completion with `args` (for runs that are expected to exit by
/// themselves: errors, --duration).
pub fn run(args: &[&str]) -> Finished {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netpost");
    // Read both pipes while it runs (a full pipe would stop it).
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout pipe")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr pipe")));
    // A netpost that should have exited but runs on must fail the test, not hang it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netpost {} did not exit within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A running netpost writing JSON Lines to a temporary file. Killed on drop if still
/// running, so a failing test leaves nothing attached.
pub struct Netpost {
    child: Child,
    pub json_path: PathBuf,
    stderr: Arc<Mutex<String>>,
}

/// What the tests run unless they say otherwise: every probe (`--profile full`; the default
/// `standard` leaves per-lookup routing decisions out) and XDP on the test's veths too
/// (`auto` leaves it off on virtual devices), so that every hook and probe is checked.
const COVER_EVERYTHING: [(&str, &str); 2] = [("--profile", "full"), ("--xdp-mode", "generic")];

impl Netpost {
    /// Starts `netpost --netns NS -i IF... --no-tui --json FILE --interval 100 EXTRA...`
    /// (with [`COVER_EVERYTHING`] where EXTRA does not choose) and waits until it reports
    /// every interface attached.
    pub fn start(netns: &str, ifaces: &[&str], extra: &[&str]) -> Netpost {
        Netpost::start_with_env(netns, ifaces, extra, &[])
    }

    /// [`Netpost::start`] with netpost's own defaults (profile and XDP mode).
    pub fn start_with_defaults(netns: &str, ifaces: &[&str], extra: &[&str]) -> Netpost {
        Netpost::spawn(netns, ifaces, extra, &[])
    }

    /// [`Netpost::start`] with extra environment variables for the child.
    pub fn start_with_env(
        netns: &str,
        ifaces: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Netpost {
        let want = ifaces.len();
        Netpost::start_until(netns, ifaces, extra, env, |stderr| {
            stderr.matches("netpost: watching").count() == want
        })
    }

    /// [`Netpost::start`] that waits until `counting(stderr)` holds instead (for `-i`
    /// patterns, whose matches the caller knows).
    pub fn start_until(
        netns: &str,
        ifaces: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
        counting: impl Fn(&str) -> bool,
    ) -> Netpost {
        let mut args: Vec<&str> = extra.to_vec();
        for (flag, value) in COVER_EVERYTHING {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        Netpost::launch(netns, ifaces, &args, env, counting)
    }

    /// netpost with exactly `extra`, started until every interface is attached.
    fn spawn(netns: &str, ifaces: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Netpost {
        let want = ifaces.len();
        Netpost::launch(netns, ifaces, extra, env, |stderr| {
            stderr.matches("netpost: watching").count() == want
        })
    }

    fn launch(
        netns: &str,
        ifaces: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
        counting: impl Fn(&str) -> bool,
    ) -> Netpost {
        let json_path =
            std::env::temp_dir().join(format!("{}.jsonl", crate::netns::unique_name("npj")));
        let mut args: Vec<String> = vec!["--netns".into(), netns.into()];
        for i in ifaces {
            args.extend(["-i".to_string(), i.to_string()]);
        }
        args.extend(
            ["--no-tui", "--interval", "100", "--json"]
                .iter()
                .map(|s| s.to_string()),
        );
        args.push(json_path.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(binary())
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netpost");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut np = Netpost {
            child,
            json_path,
            stderr,
        };
        let deadline = Instant::now() + crate::slack(Duration::from_secs(30));
        loop {
            if counting(&np.stderr()) {
                return np;
            }
            if let Ok(Some(status)) = np.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("netpost exited early ({status}): {}", np.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "netpost did not attach: {}",
                np.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for netpost to exit by itself (up to 20 s, times the slack) and returns its
    /// status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + crate::slack(Duration::from_secs(20));
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The stderr reader's last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "netpost did not exit: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Every JSON object written so far.
    pub fn lines(&self) -> Vec<Value> {
        read_lines(&self.json_path)
    }

    /// Sends `signal`, waits for the exit, asserts it was clean (exit 0) and returns every
    /// JSON object written (the last one holds the final cumulative counters).
    pub fn stop_with(mut self, signal: i32) -> Vec<Value> {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid(), signal) };
        let deadline = Instant::now() + crate::slack(Duration::from_secs(20));
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "netpost ignored signal {signal}");
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            status.success(),
            "netpost exited with {status}: {}",
            self.stderr()
        );
        let lines = self.lines();
        assert!(!lines.is_empty(), "no JSON written: {}", self.stderr());
        lines
    }

    /// SIGTERM, then the final snapshot.
    pub fn stop(self) -> Value {
        self.stop_with(libc::SIGTERM).pop().expect("a final line")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Netpost {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.json_path);
    }
}

/// A file path for netpost to write to (`--events`), removed on drop.
pub struct TempOutput {
    pub path: PathBuf,
}

impl TempOutput {
    pub fn new(tag: &str) -> TempOutput {
        TempOutput {
            path: std::env::temp_dir().join(crate::netns::unique_name(tag)),
        }
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }

    pub fn lines(&self) -> Vec<Value> {
        read_lines(&self.path)
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every complete JSON line of `path` (a line netpost is writing is left for later).
pub fn read_lines(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// `snapshot.interfaces[ifname][hook]`, panicking with the snapshot when absent.
pub fn hook<'a>(snapshot: &'a Value, ifname: &str, hook: &str) -> &'a Value {
    let h = &snapshot["interfaces"][ifname][hook];
    assert!(h.is_object(), "no {ifname}/{hook} in {snapshot}");
    h
}

/// A u64 field of a JSON object (by path of keys).
pub fn num(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{} is not a number in {v}", path.join(".")))
}

/// The body of netpost's `/metrics` (`--prometheus 127.0.0.1:PORT`) in `ns`, once it serves
/// a snapshot.
pub fn scrape_metrics(ns: &crate::netns::NetNs, port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = ns.run(move || {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let request = format!("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
            s.write_all(request.as_bytes()).ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).ok()?;
            let text = String::from_utf8_lossy(&out).into_owned();
            Some(text.split_once("\r\n\r\n")?.1.to_string())
        });
        if let Some(body) = body.filter(|b| b.contains("netpost_snapshot_timestamp_seconds")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "netpost's /metrics never served a snapshot"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of an unlabelled sample `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}
