//! Installs what the build and the tests need, and only what is missing: every step starts
//! with a cheap check and prints `ok: ...` or `installing: ...`, so a second run installs nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::apt::{self, Apt};
use crate::cmd::Cmd;
use crate::kernels::{self, KernelSpec};
use crate::{probe, workspace};

/// rustc's LLVM (nightly 1.97 uses LLVM 22): bpf-linker must use the same major version to read
/// the bitcode rustc emits.
const LLVM_MAJOR: u32 = 22;
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const LLVM_PACKAGES: [&str; 2] = ["llvm-22-dev", "libpolly-22-dev"];

/// What the integration tests run, and the Debian package that provides it.
const TEST_TOOLS: [(&str, &str); 16] = [
    ("sysctl", "procps"),
    ("ip", "iproute2"),
    ("iperf3", "iperf3"),
    ("iptables", "iptables"),
    ("nft", "nftables"),
    // The lab's and the exactness tests read conntrack's count, statistics and events.
    ("conntrack", "conntrack"),
    ("bpftool", "bpftool"),
    ("tmux", "tmux"),
    ("tcpdump", "tcpdump"),
    // Exactness tests: segmentation in software (ethtool -K).
    ("ethtool", "ethtool"),
    ("setpriv", "util-linux"),
    // The metrics test scrapes netpost with a real Prometheus and lints with promtool.
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    // The README's namespace recipe is run as written: with sudo and curl.
    ("sudo", "sudo"),
    ("curl", "curl"),
    // The drop recorder's tests read its pcapng files with a real reader.
    ("tshark", "tshark"),
];

/// Answers debconf would otherwise ask while installing: wireshark-common asks whether
/// non-root users may capture (a setuid dumpcap); the tests run as root and need no such
/// binary.
const PRESEED: &str = "wireshark-common wireshark-common/install-setuid boolean false\n";

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
    if missing.contains(&"tshark") && probe::is_root() {
        preseed()?;
    }
    installing(&missing.join(" "));
    apt.install(&missing)
}

/// Hands [`PRESEED`] to debconf, so the install asks nothing even where a frontend could.
fn preseed() -> anyhow::Result<()> {
    let file = std::env::temp_dir().join(format!("netpost-preseed-{}", std::process::id()));
    std::fs::write(&file, PRESEED).context("writing the debconf answers")?;
    let result = Cmd::new("debconf-set-selections").arg(&file).run();
    let _ = std::fs::remove_file(&file);
    result.context("debconf-set-selections (from debconf) failed")
}

/// What booting other kernels needs: qemu (TCG), a static busybox for virtme-ng's
/// initramfs, and virtme-ng itself (PyPI). Returns the `vng` to run.
pub fn ensure_vm_tools(apt: &mut Apt) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH");
    let mut missing = Vec::new();
    match probe::find_program("qemu-system-x86_64", path.as_deref(), &[]) {
        Some(found) => ok(&format!("qemu-system-x86_64 ({})", found.display())),
        None => missing.push("qemu-system-x86"),
    }
    // virtme-ng copies busybox into its initramfs: the dynamically linked one would not run.
    if apt::installed("busybox-static") {
        ok("busybox-static");
    } else {
        missing.push("busybox-static");
    }
    if !missing.is_empty() {
        installing(&missing.join(" "));
        apt.install_without_recommends(&missing)?;
    }
    if let Some(vng) = find_vng() {
        ok(&format!("virtme-ng ({})", vng.display()));
        return Ok(vng);
    }
    installing("virtme-ng (pip)");
    Cmd::new("python3")
        .args(["-m", "pip", "install", "--quiet", "virtme-ng"])
        .run()
        .context(
            "`pip install virtme-ng` failed (a Python whose pip may install packages is needed)",
        )?;
    find_vng().context(
        "virtme-ng was installed but its `vng` is in neither PATH nor pip's scripts directory",
    )
}

/// `vng` in PATH, else in the scripts directory of the python3 that pip installs into (a
/// pyenv shim may not know a freshly installed script yet).
fn find_vng() -> Option<PathBuf> {
    let scripts = Cmd::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .probe()
        .map(|dir| PathBuf::from(dir.trim()));
    probe::find_program(
        "vng",
        std::env::var_os("PATH").as_deref(),
        &Vec::from_iter(scripts),
    )
}

/// The vmlinuz of every `--kernel`: a path as given, a line (6.1) as the newest installed
/// kernel of that line, installing the newest the package repository carries when none is.
pub fn ensure_kernels(apt: &mut Apt, specs: &[KernelSpec]) -> anyhow::Result<Vec<PathBuf>> {
    specs
        .iter()
        .map(|spec| match spec {
            KernelSpec::Path(path) if path.is_file() => Ok(path.clone()),
            KernelSpec::Path(path) => bail!("--kernel {}: no such file", path.display()),
            KernelSpec::Line(line) => ensure_kernel_line(apt, line),
        })
        .collect()
}

fn ensure_kernel_line(apt: &mut Apt, line: &str) -> anyhow::Result<PathBuf> {
    let installed = |files: &[String]| {
        kernels::newest_installed(files.iter().map(String::as_str), line)
            .map(|release| Path::new("/boot").join(format!("vmlinuz-{release}")))
    };
    if let Some(vmlinuz) = installed(&kernels::boot_files()) {
        ok(&format!("kernel {line} ({})", vmlinuz.display()));
        return Ok(vmlinuz);
    }
    let search = apt.search_names("^linux-image-")?;
    let Some(package) = kernels::newest_package(&search, line) else {
        bail!(
            "no kernel {line} installed in /boot and none in the package repository: \
             pass a vmlinuz path to --kernel"
        );
    };
    refuse_with_bootloader(&package)?;
    installing(&format!(
        "{package} (booted only in a VM, never on this machine)"
    ));
    apt.install_without_recommends(&[&package])?;
    installed(&kernels::boot_files())
        .with_context(|| format!("{package} was installed but /boot has no vmlinuz of {line}"))
}

/// Installing a kernel package where a bootloader hook runs would add it to the boot menu
/// (and maybe make it the default): leave that decision to a person.
fn refuse_with_bootloader(package: &str) -> anyhow::Result<()> {
    const HOOKS: [&str; 2] = [
        "/etc/kernel/postinst.d/zz-update-grub",
        "/etc/kernel/postinst.d/zz-systemd-boot",
    ];
    if let Some(hook) = HOOKS.iter().find(|hook| Path::new(hook).exists()) {
        bail!(
            "not installing {package}: this machine has a bootloader hook ({hook}), so the \
             kernel would join its boot menu; install it yourself if that is fine, or pass a \
             vmlinuz path to --kernel"
        );
    }
    Ok(())
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
