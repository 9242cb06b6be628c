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
pub fn binary() -> PathBuf {
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
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("spawn netpost");
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running netpost writing JSON Lines to a temporary file. Killed on drop if still
/// running, so a failing test leaves nothing attached.
pub struct Netpost {
    child: Child,
    pub json_path: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Netpost {
    /// Starts `netpost --netns NS -i IF... --no-tui --json FILE --interval 100 EXTRA...`
    /// and waits until it reports every interface attached.
    pub fn start(netns: &str, ifaces: &[&str], extra: &[&str]) -> Netpost {
        Netpost::start_with_env(netns, ifaces, extra, &[])
    }

    /// [`Netpost::start`] with extra environment variables for the child.
    pub fn start_with_env(
        netns: &str,
        ifaces: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let watching = np.stderr().matches("netpost: watching").count();
            if watching == ifaces.len() {
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
        let deadline = Instant::now() + Duration::from_secs(20);
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

pub fn read_lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
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
