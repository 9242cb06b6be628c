//! Entering a named network namespace, as `ip netns` makes them (/run/netns/NAME).
use std::{fs::File, os::fd::AsRawFd, path::PathBuf};

use crate::error::SetupError;

pub const NETNS_DIR: &str = "/run/netns";

/// Moves the calling thread into namespace `name`. Call it before spawning threads: they
/// inherit the namespace of the thread that creates them.
pub fn enter(name: &str) -> Result<(), SetupError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(SetupError::NoSuchNetns(name.to_string()));
    }
    let path = PathBuf::from(NETNS_DIR).join(name);
    let file = File::open(&path).map_err(|_| SetupError::NoSuchNetns(name.to_string()))?;
    // SAFETY: setns on an fd we own; CLONE_NEWNET checks that it is a network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(SetupError::EnterNetns {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
