//! The kernel matrix: the integration tests, built on the host, run inside VMs that boot
//! other kernels (virtme-ng shares the host's filesystem, so the same binaries run there as
//! root). One VM per kernel; results per kernel and a summary table.
mod guest;
mod report;
pub mod smoke;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use crate::cmd::{Cmd, Failed};
pub use guest::Run;
pub use report::{KernelResult, Outcome, table};

/// Minutes a VM may run before it is killed: the smoke set takes a few minutes per kernel
/// under TCG (docs/kernels.md), the whole suite much longer.
pub const SMOKE_TIMEOUT_MIN: u32 = 20;
pub const FULL_TIMEOUT_MIN: u32 = 120;

/// What every kernel's VM gets.
pub struct Setup<'a> {
    pub vng: &'a Path,
    /// netpost-bench, for its verifier report.
    pub verifier: &'a Path,
    pub workspace: &'a Path,
    pub runs: &'a [Run],
    pub harness: &'a [String],
    pub timeout_min: u32,
}

/// Boots `vmlinuz`, runs the tests and collects what they reported. `out` is emptied first.
pub fn run_kernel(
    setup: &Setup,
    asked: &str,
    vmlinuz: &Path,
    out: &Path,
) -> anyhow::Result<KernelResult> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path_env = std::env::var("PATH").unwrap_or_default();
    let script_path = out.join("guest.sh");
    let script = guest::script(
        setup.workspace,
        out,
        &path_env,
        setup.verifier,
        guest::nofile_limit(),
        setup.runs,
        setup.harness,
    );
    std::fs::write(&script_path, script)
        .with_context(|| format!("writing {}", script_path.display()))?;

    eprintln!(
        "matrix: booting {} ({asked}) under qemu TCG",
        vmlinuz.display()
    );
    let start = Instant::now();
    let console_path = out.join("console.log");
    let mut console = std::fs::File::create(&console_path)
        .with_context(|| format!("creating {}", console_path.display()))?;
    let status = guest::vng(setup.vng, vmlinuz, out, &script_path, setup.timeout_min)
        .run_merged(&mut console);
    let total_s = start.elapsed().as_secs_f64();

    let mut problems = Vec::new();
    if let Err(err) = status {
        problems.push(match err.downcast_ref::<Failed>() {
            // timeout(1)'s codes: 124 after TERM, 137 after the KILL that followed.
            Some(f) if f.code == 124 || f.code == 137 => {
                format!("the VM was stopped after {} minutes", setup.timeout_min)
            }
            Some(f) => format!("virtme-ng exited with {}", f.code),
            None => format!("{err:#}"),
        });
    }
    let read = |name: &str| std::fs::read_to_string(out.join(name)).ok();
    let release = read(guest::files::RELEASE).map(|s| s.trim().to_owned());
    let uptime = |name| read(name).and_then(|s| s.trim().parse::<f64>().ok());
    let tests_s = match (uptime(guest::files::STARTED), uptime(guest::files::ENDED)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    let mut tests = BTreeMap::new();
    for run in setup.runs {
        let log = read(&guest::files::log(&run.binary)).unwrap_or_default();
        let found = report::parse_log(&log);
        let failed = found.values().any(|o| *o == Outcome::Failed);
        for (name, outcome) in found {
            tests.insert(format!("{}::{name}", run.binary), outcome);
        }
        for filter in &run.filters {
            tests
                .entry(format!("{}::{filter}", run.binary))
                .or_insert(Outcome::Missing);
        }
        match read(&guest::files::exit_code(&run.binary)).map(|s| s.trim().to_owned()) {
            None => problems.push(format!("{} did not finish", run.binary)),
            Some(rc) if rc != "0" && !failed => {
                problems.push(format!(
                    "{} exited with {rc} (see {})",
                    run.binary,
                    out.join(guest::files::log(&run.binary)).display()
                ));
            }
            Some(_) => {}
        }
    }
    let verifier_json = read(guest::files::VERIFIER);
    let verifier = verifier_json.as_deref().and_then(report::verifier_summary);
    problems.extend(
        verifier_json
            .as_deref()
            .map(report::verifier_refusals)
            .unwrap_or_default(),
    );
    let known = release
        .as_deref()
        .map(|r| {
            smoke::known_failures(r)
                .map(|k| (k.test.to_owned(), k.why))
                .collect()
        })
        .unwrap_or_default();
    Ok(KernelResult {
        asked: asked.to_owned(),
        known,
        verifier,
        release,
        total_s,
        tests_s,
        tests,
        problems,
    })
}

/// Builds netpost, netpost-bench (its verifier report) and the integration tests on the
/// host; returns each test binary's target name and executable.
pub fn build_tests() -> anyhow::Result<Vec<(String, PathBuf)>> {
    Cmd::cargo()
        .args(["build", "-p", "netpost-user", "-p", "netpost-bench"])
        .run()?;
    let json = Cmd::cargo()
        .args([
            "test",
            "-p",
            "netpost-tests",
            "--no-run",
            "--message-format=json",
        ])
        .output()?;
    Ok(test_executables(&json))
}

/// The `[[test]]` executables in cargo's JSON messages (the library's unit tests need no VM).
fn test_executables(messages: &str) -> Vec<(String, PathBuf)> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "test"))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let exe = PathBuf::from(m["executable"].as_str()?);
            Some((name, exe))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_executables_in_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"netpost_tests","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"netpost_tests","kind":["lib"]},"executable":"/t/deps/netpost_tests-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"counts","kind":["test"]},"executable":"/t/deps/counts-2"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        assert_eq!(
            test_executables(messages),
            vec![("counts".to_owned(), PathBuf::from("/t/deps/counts-2"))]
        );
    }
}
