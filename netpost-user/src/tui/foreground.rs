//! Whether netpost may take the terminal. A process outside the terminal's foreground
//! process group (started with `&` from an interactive shell) that switches it to raw mode
//! is stopped by the kernel (SIGTTOU) and collects nothing; so it leaves the terminal alone
//! until the shell hands it over (`fg`), and says so.
use std::{
    io::IsTerminal as _,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    sync::Arc,
    time::Duration,
};

use tokio::sync::watch;

use crate::model::Snapshot;

/// How often a background netpost checks whether it was brought to the foreground.
const POLL: Duration = Duration::from_millis(200);

/// Whether this process's group owns `fd`'s terminal now. Anything but a clear "another
/// group does" (not a terminal, no controlling terminal) counts as yes: the dashboard then
/// behaves as it always did.
pub fn owns(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: plain queries on a descriptor that stays open for the calls.
    let (owner, ours) = unsafe { (libc::tcgetpgrp(fd.as_raw_fd()), libc::getpgrp()) };
    owner < 0 || owner == ours
}

/// Whether stdout's terminal is ours to take.
pub fn owns_stdout() -> bool {
    let stdout = std::io::stdout();
    !stdout.is_terminal() || owns(stdout.as_fd())
}

/// How waiting in the background ended.
pub enum Waited {
    /// The shell gave netpost the terminal.
    Foreground,
    /// Collection ended first; the last snapshot.
    Ended(Arc<Snapshot>),
}

/// Waits until netpost owns the terminal or collection ends (the sender is dropped).
pub async fn wait(latest: &mut watch::Receiver<Arc<Snapshot>>) -> Waited {
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return Waited::Ended(latest.borrow().clone());
                }
            }
            _ = tick.tick() => {
                if owns_stdout() {
                    return Waited::Foreground;
                }
            }
        }
    }
}
