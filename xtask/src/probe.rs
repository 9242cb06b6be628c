//! Cheap presence checks, and the parsing of what they print (kept pure for unit tests).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Whether xtask runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Like `command -v`: the first executable `name` in `path` (a PATH-style list), then in `extra`.
pub fn find_program(name: &str, path: Option<&OsStr>, extra: &[PathBuf]) -> Option<PathBuf> {
    let dirs = path.map(std::env::split_paths).into_iter().flatten();
    dirs.chain(extra.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The host triple from `rustc -vV` (line `host: x86_64-unknown-linux-gnu`).
pub fn host_triple(rustc_vv: &str) -> Option<&str> {
    rustc_vv
        .lines()
        .find_map(|line| line.strip_prefix("host:"))
        .map(str::trim)
}

/// Whether `rustup component list --installed` lists `name`: target-specific components
/// carry the host triple (`clippy-x86_64-unknown-linux-gnu`), others do not (`rust-src`).
/// Matching the exact triple keeps `rustc` from matching `rustc-dev-...`.
pub fn component_installed(installed: &str, name: &str, host: &str) -> bool {
    installed.lines().map(str::trim).any(|line| {
        line == name
            || line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|triple| triple == host)
    })
}

/// Whether `dpkg-query -W -f='${Status}' PKG` says the package is fully installed
/// (a removed package keeps a `deinstall ok config-files` status).
pub fn dpkg_installed(status: &str) -> bool {
    status.trim() == "install ok installed"
}

/// The major version of the libLLVM that `ldd` resolved, e.g. 22 from
/// `libLLVM.so.22.1 => /usr/lib/llvm-22/lib/libLLVM.so.22.1` (older builds name it
/// `libLLVM-22.so`). None when there is none or it is `not found`.
pub fn ldd_llvm_major(ldd: &str) -> Option<u32> {
    ldd.lines()
        .map(str::trim)
        .filter(|line| !line.contains("not found"))
        .find_map(|line| {
            let lib = line.split_whitespace().next()?;
            let version = lib
                .strip_prefix("libLLVM.so.")
                .or_else(|| lib.strip_prefix("libLLVM-"))?;
            let major: String = version.chars().take_while(char::is_ascii_digit).collect();
            major.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    #[test]
    fn finds_host_triple() {
        let vv = "rustc 1.97.0-nightly (abc 2026-05-19)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.0\n";
        assert_eq!(host_triple(vv), Some(HOST));
        assert_eq!(host_triple("rustc 1.0"), None);
    }

    #[test]
    fn matches_components_exactly() {
        let list = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\nrustc-dev-x86_64-unknown-linux-gnu\n";
        assert!(component_installed(list, "rust-src", HOST));
        assert!(component_installed(list, "clippy", HOST));
        assert!(!component_installed(list, "rustc", HOST));
        assert!(!component_installed(list, "rustfmt", HOST));
        assert!(!component_installed(
            list,
            "clippy",
            "aarch64-unknown-linux-gnu"
        ));
    }

    #[test]
    fn reads_dpkg_status() {
        assert!(dpkg_installed("install ok installed"));
        assert!(!dpkg_installed("deinstall ok config-files"));
        assert!(!dpkg_installed(""));
    }

    #[test]
    fn reads_llvm_from_ldd() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibLLVM.so.22.1 => /usr/lib/llvm-22/lib/libLLVM.so.22.1 (0x00007fa5)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n";
        assert_eq!(ldd_llvm_major(ldd), Some(22));
        assert_eq!(
            ldd_llvm_major("\tlibLLVM-14.so.1 => /usr/lib/x/libLLVM-14.so.1 (0x1)\n"),
            Some(14)
        );
        assert_eq!(ldd_llvm_major("\tlibLLVM.so.22.1 => not found\n"), None);
        assert_eq!(
            ldd_llvm_major("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n"),
            None
        );
    }

    #[test]
    fn finds_programs_like_command_v() {
        let path = std::env::join_paths(["/nonexistent", "/bin"]).ok();
        assert_eq!(
            find_program("sh", path.as_deref(), &[]),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_program("sh", None, &[PathBuf::from("/bin")]),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_program("no-such-program-xtask", path.as_deref(), &[]),
            None
        );
    }
}
