//! Network namespaces: entering a named one, as `ip netns` makes them (/run/netns/NAME), and
//! telling them apart by inode number (what the tracepoint programs compare).
use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt as _},
    path::PathBuf,
};

use crate::{
    error::SetupError,
    kernel_btf::{BtfOffsetError, KernelBtf},
};

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

/// Whether the namespace netpost entered by name still has it: `ip netns del` unmounts and
/// removes /run/netns/NAME (the namespace lives on while netpost is in it). One stat per
/// check.
pub struct NameWatch {
    name: String,
    path: PathBuf,
    ino: u64,
}

impl NameWatch {
    /// Watches `name`, which the calling thread's namespace must be.
    pub fn new(name: &str) -> std::io::Result<NameWatch> {
        let ino = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
        Ok(NameWatch {
            name: name.to_string(),
            path: PathBuf::from(NETNS_DIR).join(name),
            ino,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name is gone, or names another namespace now.
    pub fn deleted(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => m.ino() != self.ino,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }
}

/// The inode number of the network namespace this thread is in (netpost entered `--netns`
/// before loading): the namespace the tracepoint programs count.
pub fn this_netns_inum() -> Result<u32, String> {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino() as u32)
        .map_err(|e| format!("reading this namespace: {e}"))
}

/// Where a `struct net` keeps its namespace's inode number (net.ns.inum, the number
/// [`this_netns_inum`] reads), for the tracepoint programs' namespace check.
pub fn inum_offset(btf: &KernelBtf) -> Result<u32, BtfOffsetError> {
    Ok(btf.member("net", "ns")?.offset + btf.member_sized("ns_common", "inum", 4)?)
}
