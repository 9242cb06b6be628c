//! `cargo xtask test`: what CI runs. Stops at the first failing step with its exit code.

use std::ffi::OsString;

use anyhow::bail;

use crate::apt::Apt;
use crate::cmd::Cmd;
use crate::{bootstrap, probe, workspace};

/// The default members except netpost-tests, whose tests need root.
const UNIT_PACKAGES: [&str; 3] = ["netpost-common", "netpost-user", "xtask"];

/// `unit` leaves out the integration tests; `harness_args` go after `cargo test --`.
pub fn test(unit: bool, harness_args: &[OsString]) -> anyhow::Result<()> {
    // Fail before installing anything: skipping the integration tests would hide them.
    if !unit && !probe::is_root() {
        bail!(
            "the integration tests need root (BPF, network namespaces): run as root, \
             or `cargo xtask test --unit` for the rest"
        );
    }
    let mut apt = Apt::default();
    bootstrap::ensure_toolchain(&mut apt)?;
    bootstrap::ensure_lint_components()?;
    if !unit {
        bootstrap::ensure_test_tools(&mut apt)?;
    }

    Cmd::cargo().args(["fmt", "--all", "--", "--check"]).run()?;
    Cmd::cargo()
        .args(["clippy", "--all-targets", "--", "-D", "warnings"])
        .run()?;
    // The eBPF crate is not a default member and only builds for the BPF target.
    Cmd::new("cargo")
        .args(["+nightly", "clippy", "--target", "bpfel-unknown-none"])
        .args(["-Z", "build-std=core", "--", "-D", "warnings"])
        .current_dir(&workspace::root().join("netpost-ebpf"))
        .run()?;

    if !unit {
        // The integration tests run the real `netpost` binary, which cargo does not build
        // for another package's tests.
        Cmd::cargo().args(["build", "-p", "netpost-user"]).run()?;
    }
    // Every binary runs even after one fails, so one CI log names every failing test.
    let mut cargo_test = Cmd::cargo().args(["test", "--no-fail-fast"]);
    if unit {
        cargo_test = cargo_test.args(UNIT_PACKAGES.iter().flat_map(|package| ["-p", package]));
    }
    if !harness_args.is_empty() {
        cargo_test = cargo_test.arg("--").args(harness_args);
    }
    // One closing line over every test binary, so a reader of the log (CI) sees the total
    // rather than the last binary's count.
    let mut total = Tally::default();
    let result = cargo_test.run_tee(|line| total.add_line(line));
    println!("total: {} passed, {} failed", total.passed, total.failed);
    result
}

/// Sums libtest's `test result:` lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next())
                && let Ok(n) = n.parse::<u64>()
            {
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_libtest_result_lines() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 84 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s");
        t.add_line("running 7 tests");
        t.add_line("test result: FAILED. 6 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.58s");
        assert_eq!(
            t,
            Tally {
                passed: 90,
                failed: 1
            }
        );
    }
}
