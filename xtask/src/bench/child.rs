//! Processes the bench starts: each is owned by a guard that stops it (by its pid, SIGTERM
//! then SIGKILL) when dropped, so an error or Ctrl-C leaves nothing running.
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::signal;

pub struct Guard {
    what: String,
    child: Option<Child>,
}

impl Guard {
    pub fn spawn(what: &str, cmd: &mut Command) -> anyhow::Result<Guard> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(Guard {
            what: what.to_owned(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child's stderr, when it was spawned with `Stdio::piped()`.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.as_mut()?.stderr.take()
    }

    /// Exited already? (reaps it if so)
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits for the process to end on its own, up to `timeout`.
    pub fn wait(mut self, timeout: Duration) -> anyhow::Result<std::process::Output> {
        let mut child = self.child.take().context("already waited for")?;
        let deadline = Instant::now() + timeout;
        while child.try_wait()?.is_none() {
            if let Err(e) = signal::check() {
                self.child = Some(child);
                return Err(e);
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                bail!("{} did not finish within {timeout:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child.wait_with_output()?)
    }

    /// Sends `sig` and waits up to `grace` for the exit; SIGKILL after that.
    pub fn stop(mut self, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        let child = self.child.take()?;
        stop_child(child, sig, grace)
    }
}

fn stop_child(mut child: Child, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SAFETY: kill(2) on our own child's pid, which is not reaped yet and so not reused.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, libc::SIGTERM, Duration::from_secs(3));
        }
    }
}

/// Polls `path` until it contains `needle`; fails if `alive` says the process died first.
pub fn wait_for_text(
    path: &Path,
    needle: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        signal::check()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if !alive() {
            bail!("exited before printing '{needle}': {}", text.trim());
        }
        if Instant::now() > deadline {
            bail!("no '{needle}' within {timeout:?}: {}", text.trim());
        }
        // Often: netpost's start-up is timed by this wait.
        std::thread::sleep(Duration::from_millis(10));
    }
}
