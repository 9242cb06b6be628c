//! Installs what the build and the tests need, and only what is missing: every step starts
//! with a cheap check and prints `ok: ...` or `installing: ...`, so a second run installs nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::apt::{self, Apt};
use crate::cmd::Cmd;
use crate::{probe, workspace};

/// rustc's LLVM (nightly 1.97 uses LLVM 22): bpf-linker must use the same major version to read
/// the bitcode rustc emits.
const LLVM_MAJOR: u32 = 22;
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const LLVM_PACKAGES: [&str; 2] = ["llvm-22-dev", "libpolly-22-dev"];

/// What the integration tests run, and the Debian package that provides it.
const TEST_TOOLS: [(&str, &str); 11] = [
    ("sysctl", "procps"),
    ("ip", "iproute2"),
    ("iperf3", "iperf3"),
    ("iptables", "iptables"),
    ("nft", "nftables"),
    ("bpftool", "bpftool"),
    ("tmux", "tmux"),
    ("tcpdump", "tcpdump"),
    ("setpriv", "util-linux"),
    // The metrics test scrapes netpost with a real Prometheus and lints with promtool.
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
];

fn ok(what: &str) {
    eprintln!("ok: {what}");
}

fn installing(what: &str) {
    eprintln!("installing: {what}");
}

/// Everything aya-build needs to compile netpost-ebpf.
pub fn ensure_toolchain(apt: &mut Apt) -> anyhow::Result<()> {
    ensure_nightly()?;
    ensure_components(Some("nightly"), &["rust-src"])?;
    ensure_llvm(apt)?;
    ensure_bpf_linker()
}

/// rustfmt and clippy for the host crates, clippy for the eBPF crate (nightly); a minimal
/// profile lacks them.
pub fn ensure_lint_components() -> anyhow::Result<()> {
    ensure_components(None, &["rustfmt", "clippy"])?;
    ensure_components(Some("nightly"), &["clippy"])
}

/// The programs the integration tests call, installed in one apt call.
pub fn ensure_test_tools(apt: &mut Apt) -> anyhow::Result<()> {
    let path = std::env::var_os("PATH");
    let mut missing = Vec::new();
    for (program, package) in TEST_TOOLS {
        match probe::find_program(program, path.as_deref(), &[]) {
            Some(found) => ok(&format!("{program} ({})", found.display())),
            None if !missing.contains(&package) => missing.push(package),
            None => {}
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    installing(&missing.join(" "));
    apt.install(&missing)
}

fn ensure_nightly() -> anyhow::Result<()> {
    // Without this, a rustup that auto-installs would turn the check into a full install.
    let version = Cmd::new("rustup")
        .env("RUSTUP_AUTO_INSTALL", "0")
        .args(["run", "nightly", "rustc", "--version"])
        .probe();
    if let Some(version) = version {
        ok(&format!("nightly toolchain ({})", version.trim()));
        return Ok(());
    }
    installing("nightly toolchain");
    // Unpinned on purpose: aya-build asks rustup for the `nightly` channel by name.
    Cmd::new("rustup")
        .args(["toolchain", "install", "nightly", "--profile", "minimal"])
        .run()
}

/// `toolchain` None means the one active at the workspace root.
fn ensure_components(toolchain: Option<&str>, names: &[&str]) -> anyhow::Result<()> {
    let label = toolchain.unwrap_or("active toolchain");
    let rustc_vv = match toolchain {
        Some(toolchain) => Cmd::new("rustup").args(["run", toolchain, "rustc", "-vV"]),
        None => Cmd::new("rustc").arg("-vV").current_dir(workspace::root()),
    }
    .probe()
    .with_context(|| format!("`rustc -vV` of the {label} toolchain failed"))?;
    let host = probe::host_triple(&rustc_vv)
        .with_context(|| format!("no host triple in `rustc -vV` of the {label} toolchain"))?;

    let with_toolchain = |cmd: Cmd| match toolchain {
        Some(toolchain) => cmd.args(["--toolchain", toolchain]),
        None => cmd.current_dir(workspace::root()),
    };
    let installed = with_toolchain(Cmd::new("rustup").args(["component", "list", "--installed"]))
        .probe()
        .unwrap_or_default();

    let mut missing = Vec::new();
    for &name in names {
        if probe::component_installed(&installed, name, host) {
            ok(&format!("{name} ({label})"));
        } else {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    installing(&format!("{} ({label})", missing.join(" ")));
    with_toolchain(Cmd::new("rustup").args(["component", "add"]).args(&missing)).run()
}

fn ensure_llvm(apt: &mut Apt) -> anyhow::Result<()> {
    let llvm_config = Path::new(LLVM_PREFIX).join("bin/llvm-config");
    // bpf-linker's build links libLLVM through llvm-config and needs Polly's static library too.
    if llvm_config.is_file() && LLVM_PACKAGES.iter().all(|package| apt::installed(package)) {
        let version = Cmd::new(&llvm_config).arg("--version").probe();
        let version = version.as_deref().map_or("?", str::trim);
        ok(&format!("LLVM {version} ({})", LLVM_PACKAGES.join(" ")));
        return Ok(());
    }
    installing(&LLVM_PACKAGES.join(" "));
    apt.install(&LLVM_PACKAGES)
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    let found = find_bpf_linker();
    match &found {
        Some(path) => match linked_llvm(path) {
            Some(LLVM_MAJOR) => {
                let version = Cmd::new(path).arg("--version").probe();
                let version = version.as_deref().map_or("bpf-linker", str::trim);
                ok(&format!(
                    "{version} ({}, LLVM {LLVM_MAJOR})",
                    path.display()
                ));
                return Ok(());
            }
            other => installing(&format!(
                "bpf-linker for LLVM {LLVM_MAJOR} (the one at {} links {})",
                path.display(),
                other.map_or("no shared libLLVM".to_owned(), |major| format!(
                    "LLVM {major}"
                ))
            )),
        },
        None => installing(&format!("bpf-linker for LLVM {LLVM_MAJOR}")),
    }
    // Without LLVM_PREFIX, bpf-linker's build finds Debian's default LLVM 14 and fails to link.
    Cmd::new("cargo")
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .args([
            "install",
            "bpf-linker",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{LLVM_MAJOR}"))
        .arg_if(found.is_some(), "--force")
        .run()?;

    // Check again: an older bpf-linker earlier in PATH would still shadow the new one.
    match find_bpf_linker() {
        Some(path) if linked_llvm(&path) == Some(LLVM_MAJOR) => Ok(()),
        Some(path) => bail!(
            "{} is still not linked to LLVM {LLVM_MAJOR}; remove it so the new one is found",
            path.display()
        ),
        None => bail!("bpf-linker was installed but is in neither PATH nor cargo's bin directory"),
    }
}

/// bpf-linker as rustc will find it (PATH), else where `cargo install` put it.
fn find_bpf_linker() -> Option<PathBuf> {
    probe::find_program(
        "bpf-linker",
        std::env::var_os("PATH").as_deref(),
        &cargo_bin_dirs(),
    )
}

fn cargo_bin_dirs() -> Vec<PathBuf> {
    let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
    [
        from_env("CARGO_INSTALL_ROOT"),
        from_env("CARGO_HOME"),
        from_env("HOME").map(|home| home.join(".cargo")),
    ]
    .into_iter()
    .flatten()
    .map(|dir| dir.join("bin"))
    .collect()
}

/// `bpf-linker --version` does not say which LLVM it uses; its shared libLLVM does.
fn linked_llvm(bpf_linker: &Path) -> Option<u32> {
    let ldd = Cmd::new("ldd").arg(bpf_linker).probe()?;
    probe::ldd_llvm_major(&ldd)
}
