//! `cargo xtask bench [--quick]`: builds netpost and the bench helper (release), runs every
//! measurement as root and writes target/bench/report.json and report.md.
use anyhow::{Context as _, bail};

use crate::apt::Apt;
use crate::bench::{self, Config, Paths};
use crate::cmd::Cmd;
use crate::{bootstrap, probe, workspace};

pub fn bench(quick: bool) -> anyhow::Result<()> {
    if !probe::is_root() {
        bail!("the bench loads eBPF programs and creates network namespaces: run it as root");
    }
    let mut apt = Apt::default();
    bootstrap::ensure_toolchain(&mut apt)?;
    ensure_tools(&mut apt)?;
    Cmd::cargo()
        .args([
            "build",
            "--release",
            "-p",
            "netpost-user",
            "-p",
            "netpost-bench",
        ])
        .run()?;

    let target = workspace::target_dir()?;
    let out = target.join("bench");
    let paths = Paths {
        netpost: target.join("release/netpost"),
        bench: target.join("release/netpost-bench"),
        logs: out.join("logs"),
        out,
    };
    std::fs::create_dir_all(&paths.logs)
        .with_context(|| format!("creating {}", paths.logs.display()))?;
    bench::install_signal_handlers();
    let (report, md) = bench::run(&Config::new(quick), &paths)?;

    let json_path = paths.out.join("report.json");
    let md_path = paths.out.join("report.md");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(&md_path, &md)?;
    println!("{md}");
    eprintln!(
        "bench: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    Ok(())
}

/// What the bench runs, and the Debian package that provides it.
const TOOLS: [(&str, &str); 3] = [("ip", "iproute2"), ("iperf3", "iperf3"), ("tmux", "tmux")];

fn ensure_tools(apt: &mut Apt) -> anyhow::Result<()> {
    let path = std::env::var_os("PATH");
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(program, _)| probe::find_program(program, path.as_deref(), &[]).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        eprintln!("ok: ip, iperf3, tmux");
        return Ok(());
    }
    eprintln!("installing: {}", missing.join(" "));
    apt.install(&missing)
}
