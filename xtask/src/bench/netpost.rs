//! The real netpost binary, run as a user would: headless as a child, or with its terminal
//! view inside a private tmux server. Stopped with SIGINT, as Ctrl-C would.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::child::{self, Guard};
use super::netns::Net;

/// What netpost prints on stderr once counting has started.
pub const ATTACHED: &str = "netpost: watching";
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// `--netns NS -i IF...` for the interfaces `net` watches, then `flags`.
pub fn args(net: &Net, flags: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["--netns".into(), net.watch_ns.clone()];
    for dev in &net.watch_ifs {
        v.extend(["-i".into(), dev.clone()]);
    }
    v.extend(flags.iter().map(|f| f.to_string()));
    v
}

/// netpost with `--no-tui`, watching the interfaces of `net`.
pub struct Headless {
    guard: Guard,
    log: PathBuf,
}

impl Headless {
    /// Returns once every hook is attached.
    pub fn start(bin: &Path, net: &Net, flags: &[&str], logs: &Path) -> anyhow::Result<Headless> {
        let log = logs.join("netpost.log");
        let mut cmd = Command::new(bin);
        cmd.args(args(net, flags))
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

/// `netpost-bench hold-floors` in the watched namespace: the empty programs at netpost's
/// attach points, until dropped (SIGINT; the kernel detaches its links as it exits).
pub struct HeldFloors {
    _guard: Guard,
}

/// What `netpost-bench hold-floors` prints once everything is attached.
const FLOORS_ATTACHED: &str = "floors attached";

impl HeldFloors {
    pub fn start(bench: &Path, net: &Net, logs: &Path) -> anyhow::Result<HeldFloors> {
        let log = logs.join("hold-floors.log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.watch_ns])
            .arg(bench)
            .arg("hold-floors");
        for dev in &net.watch_ifs {
            cmd.args(["-i", dev]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let mut guard = Guard::spawn("netpost-bench hold-floors", &mut cmd)?;
        child::wait_for_text(&log, FLOORS_ATTACHED, ATTACH_TIMEOUT, || {
            guard.exited().is_none()
        })
        .context("netpost-bench hold-floors")?;
        Ok(HeldFloors { _guard: guard })
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
    pub fn start(bin: &Path, net: &Net, logs: &Path) -> anyhow::Result<InTmux> {
        let socket = format!("npbench-{}", std::process::id());
        // netpost's startup lines go to a log (the dashboard owns the terminal), where the
        // "watching" line says when counting started.
        let log = logs.join("netpost-tui.log");
        std::fs::write(&log, "")?;
        // `exec`, so the pane's process is netpost itself.
        let line = std::iter::once(format!("exec {}", bin.display()))
            .chain(args(net, &[]))
            .chain([format!("2>{}", log.display())])
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
        let attached = child::wait_for_text(&log, ATTACHED, ATTACH_TIMEOUT, || me.is_netpost());
        if let Err(e) = attached {
            let screen =
                tmux(&me.socket, &["capture-pane", "-p", "-t", "netpost"]).unwrap_or_default();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "netpost in tmux did not attach ({e:#}): {} {}",
                log.trim(),
                screen.trim()
            );
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
