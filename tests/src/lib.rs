//! Support for netpost's root-only integration tests: throwaway namespaces and veth pairs
//! (removed by Drop guards even when a test fails), the real `netpost` binary run as a
//! child, traffic from real sockets, and the kernel's own counters as an oracle.
//!
//! Every test calls [`require_root`] first: without root it fails loudly, never skips.

pub mod capture;
pub mod conntrack;
pub mod kernel;
pub mod lab;
pub mod netns;
pub mod netpost;
pub mod prometheus;
pub mod router;
pub mod soak;
pub mod tap;
pub mod tmux;
pub mod traffic;
pub mod tshark;

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

/// Environment variable multiplying the harness's deadlines (never its counts): the kernel
/// matrix sets it in its VMs, where qemu's TCG makes everything several times slower
/// (netpost's start on 6.1 there: ~14 s instead of ~1 s).
pub const ENV_SLACK: &str = "NETPOST_TEST_SLACK";

/// `d` times [`ENV_SLACK`] (1 when unset). Only for deadlines of waits that end as soon as
/// their condition holds, so a slower machine gets time without tests getting slower.
pub fn slack(d: std::time::Duration) -> std::time::Duration {
    d * slack_factor()
}

/// [`ENV_SLACK`]'s factor (1 when unset): above 1 the tests run in an emulated VM, where
/// CPU shares and rates say nothing about netpost's cost on real hardware.
pub fn slack_factor() -> u32 {
    std::env::var(ENV_SLACK)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// A `--duration` of `secs` times [`ENV_SLACK`], as netpost's argument: for tests that
/// count intervals within a run, which a slow VM's late ticks would leave short.
pub fn slack_secs(secs: f64) -> String {
    format!(
        "{}",
        slack(std::time::Duration::from_secs_f64(secs)).as_secs_f64()
    )
}

/// Polls `done` every 20 ms for up to 5 s (times [`slack`]); fails the test with `what()`
/// if it never holds.
pub fn wait_until(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + slack(std::time::Duration::from_secs(5));
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
