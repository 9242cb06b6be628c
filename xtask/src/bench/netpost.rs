//! The real netpost binary, run as a user would: headless as a child, or with its terminal
//! view inside a private tmux server. Stopped with SIGINT, as Ctrl-C would.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::child::{self, Guard};
use super::netns::Pair;
use super::signal;

const ATTACHED: &str = "netpost: watching";
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

fn args(pair: &Pair, flags: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--netns".into(),
        pair.rx_ns.clone(),
        "-i".into(),
        pair.rx_if.clone(),
    ];
    v.extend(flags.iter().map(|f| f.to_string()));
    v
}

/// netpost with `--no-tui`, watching the receiving veth.
pub struct Headless {
    guard: Guard,
    log: PathBuf,
}

impl Headless {
    /// Returns once every hook is attached.
    pub fn start(bin: &Path, pair: &Pair, flags: &[&str], logs: &Path) -> anyhow::Result<Headless> {
        let log = logs.join("netpost.log");
        let mut cmd = Command::new(bin);
        cmd.args(args(pair, flags))
            .arg("--no-tui")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let mut guard = Guard::spawn("netpost", &mut cmd)?;
        child::wait_for_text(&log, ATTACHED, ATTACH_TIMEOUT, || guard.exited().is_none())
            .context("netpost")?;
        Ok(Headless { guard, log })
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// SIGINT, then checks that netpost detached and exited 0.
    pub fn stop(self) -> anyhow::Result<()> {
        let status = self.guard.stop(libc::SIGINT, Duration::from_secs(10));
        if status.is_some_and(|s| s.success()) {
            return Ok(());
        }
        bail!(
            "netpost exited with {status:?}: {}",
            std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .trim()
        )
    }
}

/// netpost with its terminal view (stdout a tty), in a tmux server of its own (`-L`), so
/// only sessions this bench made are touched.
pub struct InTmux {
    socket: String,
    /// The server's socket file, which tmux leaves behind after `kill-server`.
    socket_path: Option<PathBuf>,
    pid: u32,
}

fn tmux(socket: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run tmux")?;
    if !out.status.success() {
        bail!(
            "`tmux {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl InTmux {
    pub fn start(bin: &Path, pair: &Pair) -> anyhow::Result<InTmux> {
        let socket = format!("npbench-{}", std::process::id());
        // `exec`, so the pane's process is netpost itself.
        let line = std::iter::once(format!("exec {}", bin.display()))
            .chain(args(pair, &[]))
            .collect::<Vec<_>>()
            .join(" ");
        tmux(
            &socket,
            &[
                "new-session",
                "-d",
                "-s",
                "netpost",
                "-x",
                "160",
                "-y",
                "50",
                &line,
            ],
        )?;
        let mut me = InTmux {
            socket,
            socket_path: None,
            pid: 0,
        };
        let info = tmux(
            &me.socket,
            &[
                "display-message",
                "-p",
                "-t",
                "netpost",
                "#{pane_pid} #{socket_path}",
            ],
        )?;
        let (pid, path) = info.trim().split_once(' ').context("tmux pane pid")?;
        me.socket_path = Some(PathBuf::from(path));
        me.pid = pid.parse().context("tmux pane pid")?;
        // The dashboard takes over the screen, so netpost's stderr line may never show: ask
        // the kernel instead whether XDP (attached after tc) is on the device.
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        while !xdp_attached(pair) {
            signal::check()?;
            if !me.is_netpost() || Instant::now() > deadline {
                let screen =
                    tmux(&me.socket, &["capture-pane", "-p", "-t", "netpost"]).unwrap_or_default();
                bail!("netpost in tmux did not attach: {}", screen.trim());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the pane's process is still netpost (never signal a reused pid).
    fn is_netpost(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .is_ok_and(|c| c.trim() == "netpost")
    }
}

impl Drop for InTmux {
    fn drop(&mut self) {
        if self.pid != 0 && self.is_netpost() {
            // SAFETY: kill(2) on the netpost this bench started in its own tmux pane.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.is_netpost() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = tmux(&self.socket, &["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn xdp_attached(pair: &Pair) -> bool {
    Command::new("ip")
        .args(["-n", &pair.rx_ns, "link", "show", "dev", &pair.rx_if])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(" xdp"))
}
