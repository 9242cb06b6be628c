//! netpost's automation, run as `cargo xtask <task>` (alias in .cargo/config.toml).
//! This file only parses the command line; each task lives in `tasks`.

mod apt;
mod bench;
mod bootstrap;
mod cmd;
mod kernels;
mod matrix;
mod probe;
mod tasks;
mod workspace;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run, test, benchmark and soak netpost"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install whatever the eBPF build still lacks (nightly, rust-src, LLVM 22, bpf-linker).
    Bootstrap,
    /// Bootstrap, then build the `netpost` binary.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Bootstrap, build netpost (release) and run it as root (through `sudo -E` if needed).
    Run {
        /// Build and run the debug profile instead of release.
        #[arg(long)]
        debug: bool,
        /// Arguments for netpost, after `--`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Bootstrap, then fmt, clippy (host and eBPF) and the tests; the integration tests need root.
    /// With --kernel: the integration tests' smoke set in VMs booting those kernels instead.
    Test {
        /// Only the parts that need no root: skips the integration tests (netpost-tests).
        #[arg(long, conflicts_with = "kernel")]
        unit: bool,
        /// Boot this kernel in a VM (virtme-ng, qemu TCG) and run the integration tests' smoke
        /// set inside: a vmlinuz path, or a kernel line like 6.1 (the newest installed
        /// /boot/vmlinuz-6.1.*, installed from the package repository if none is). Repeatable.
        #[arg(long, value_name = "VMLINUZ|VERSION")]
        kernel: Vec<String>,
        /// With --kernel: every integration test instead of the smoke set.
        #[arg(long, requires = "kernel")]
        full: bool,
        /// Arguments for the test harness, after `--` (e.g. `-- --test-threads=1`).
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Measure what netpost costs the packets it watches (needs root); writes
    /// target/bench/report.json and report.md.
    Bench {
        /// A shorter run (under five minutes), with fewer and shorter rounds.
        #[arg(long)]
        quick: bool,
    },
    /// netpost watching a router under churn for minutes (needs root): flat memory, every
    /// scrape served, counts that agree with the kernel's; writes target/soak/report.md.
    Soak {
        /// How long to run.
        #[arg(long, default_value_t = 30.0, value_parser = minutes)]
        minutes: f64,
    },
}

fn minutes(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m >= 1.0 && m.is_finite() => Ok(m),
        _ => Err(format!("'{s}' is not a number of minutes, at least 1")),
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Bootstrap => tasks::bootstrap(),
        Task::Build { release } => tasks::build(release),
        Task::Run { debug, args } => tasks::run(debug, &args),
        Task::Test {
            unit,
            kernel,
            full,
            args,
        } => {
            if kernel.is_empty() {
                tasks::test(unit, &args)
            } else {
                tasks::matrix(&kernel, full, &args)
            }
        }
        Task::Bench { quick } => tasks::bench(quick),
        Task::Soak { minutes } => tasks::soak(minutes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // A failed command's own exit code is forwarded, so CI sees e.g. cargo test's status.
            let code = err
                .downcast_ref::<cmd::Failed>()
                .and_then(|failed| u8::try_from(failed.code).ok())
                .filter(|&code| code != 0)
                .unwrap_or(1);
            ExitCode::from(code)
        }
    }
}
