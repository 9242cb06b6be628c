//! `cargo xtask soak [--minutes N]`: builds netpost and the soak runner (release) and runs
//! netpost under churn for N minutes as root (netpost_tests::soak); writes target/soak/
//! report.md and report.json, and fails when a check did (memory not flat, a scrape failed,
//! a count that disagrees with the kernel's). Not part of `cargo xtask test`: CI runs a
//! 2-minute one as a command of its own (.ci/run).
use anyhow::bail;

use crate::apt::Apt;
use crate::cmd::Cmd;
use crate::{bootstrap, probe, workspace};

pub fn soak(minutes: f64) -> anyhow::Result<()> {
    if !probe::is_root() {
        bail!("the soak loads eBPF programs and creates network namespaces: run it as root");
    }
    let mut apt = Apt::default();
    bootstrap::ensure_toolchain(&mut apt)?;
    // The same tools as the integration tests: tmux, prometheus, conntrack, nft, iptables.
    bootstrap::ensure_test_tools(&mut apt)?;
    Cmd::cargo()
        .args([
            "build",
            "--release",
            "-p",
            "netpost-user",
            "-p",
            "netpost-tests",
            "--bin",
            "netpost",
            "--bin",
            "netpost-soak",
        ])
        .run()?;
    let target = workspace::target_dir()?;
    let netpost = target.join("release/netpost");
    let commit = Cmd::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(workspace::root())
        .probe()
        .unwrap_or_else(|| "unknown commit".into());
    let label = format!("netpost {} release build", commit.trim());
    Cmd::new(target.join("release/netpost-soak"))
        .arg("--minutes")
        .arg(minutes.to_string())
        .arg("--netpost")
        .arg(&netpost)
        .arg("--out")
        .arg(target.join("soak"))
        .arg("--label")
        .arg(label)
        .run()
}
