//! Doing things inside a lab namespace: commands (`ip netns exec`), closures on a thread
//! that moved there with setns(2), and sysctls.
use std::{fs::File, os::fd::AsRawFd, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use super::topology::{Node, PREFIX};
use crate::netns::NETNS_DIR;

/// Whether `/run/netns/NAME` exists.
pub fn exists(name: &str) -> bool {
    PathBuf::from(NETNS_DIR).join(name).exists()
}

/// Names under /run/netns that start with `npl-` (the lab's, including leftovers).
pub fn lab_namespaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    names.sort();
    names
}

/// Runs `argv` in the host namespace, failing with its stderr.
pub fn host(argv: &[&str]) -> anyhow::Result<String> {
    output(Command::new(argv[0]).args(&argv[1..]), argv)
}

/// Runs `argv` inside `node`'s namespace, failing with its stderr.
pub fn exec(node: Node, argv: &[&str]) -> anyhow::Result<String> {
    output(
        Command::new("ip")
            .args(["netns", "exec", node.netns()])
            .args(argv),
        argv,
    )
    .with_context(|| format!("in {node}"))
}

fn output(cmd: &mut Command, argv: &[&str]) -> anyhow::Result<String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", argv[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Moves the calling thread into `name` (only this thread: others keep their namespace).
pub fn enter_thread(name: &str) -> std::io::Result<()> {
    let file = File::open(PathBuf::from(NETNS_DIR).join(name))?;
    // SAFETY: setns on an fd we own; it changes the calling thread only.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a short-lived thread inside `node`'s namespace and returns its result.
pub fn within<T: Send + 'static>(
    node: Node,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        enter_thread(node.netns()).with_context(|| format!("cannot enter {node}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("a thread in {node} panicked"))?
}

fn sysctl_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Reads a sysctl in `node` (None: the host's initial namespace). Whitespace runs (the tabs
/// of tcp_rmem) become single spaces.
pub fn sysctl_get(node: Option<Node>, key: &str) -> anyhow::Result<String> {
    let path = sysctl_path(key);
    let read = move || std::fs::read_to_string(&path);
    let text = match node {
        None => read(),
        Some(node) => within(node, read)?,
    }
    .with_context(|| format!("cannot read {key}{}", where_(node)))?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Writes a sysctl in `node` (None: the host's initial namespace).
pub fn sysctl_set(node: Option<Node>, key: &str, value: &str) -> anyhow::Result<()> {
    let path = sysctl_path(key);
    let v = value.to_string();
    let write = move || std::fs::write(&path, v);
    match node {
        None => write(),
        Some(node) => within(node, write)?,
    }
    .with_context(|| format!("cannot set {key}={value}{}", where_(node)))
}

fn where_(node: Option<Node>) -> String {
    node.map(|n| format!(" in {n}"))
        .unwrap_or_else(|| " on the host".into())
}
