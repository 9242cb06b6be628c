//! Support for netpost's root-only integration tests: throwaway namespaces and veth pairs
//! (removed by Drop guards even when a test fails), the real `netpost` binary run as a
//! child, traffic from real sockets, and the kernel's own counters as an oracle.
//!
//! Every test calls [`require_root`] first: without root it fails loudly, never skips.

pub mod kernel;
pub mod netns;
pub mod netpost;
pub mod router;
pub mod traffic;

/// Fails the test (not skips it) when not running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "netpost's integration tests load eBPF programs and create network namespaces: run them as root (cargo xtask test)"
    );
}

/// Runs a command, panicking with its stderr when it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `done` every 20 ms for up to 5 s; fails the test with `what()` if it never holds.
pub fn wait_until(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
