//! Debian kernels for the VM matrix: which package carries the newest kernel of a line (6.1,
//! 6.12) and which installed vmlinuz a `--kernel` argument names. Pure parsing, unit-tested;
//! the callers run apt-cache and list /boot.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// What `--kernel` named: a vmlinuz file, or a kernel line like "6.1".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSpec {
    Path(PathBuf),
    Line(String),
}

impl KernelSpec {
    /// "6.1" or "6.12.100" is a line; anything with a slash, or an existing file, is a path.
    pub fn parse(arg: &str) -> KernelSpec {
        let line = !arg.contains('/')
            && !arg.is_empty()
            && arg
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
            && arg.contains('.');
        if line && !Path::new(arg).is_file() {
            KernelSpec::Line(arg.to_owned())
        } else {
            KernelSpec::Path(PathBuf::from(arg))
        }
    }
}

/// Whether a kernel release (`6.1.0-57-amd64`, `6.12.100+deb12-amd64`) belongs to `line`
/// ("6.1" takes 6.1.x but not 6.12.x).
pub fn release_in_line(release: &str, line: &str) -> bool {
    release
        .strip_prefix(line)
        .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
}

/// Debian's generic amd64 flavour only: no cloud/rt flavours, no -dbg/-unsigned packages.
fn generic_amd64(release: &str) -> bool {
    let Some(base) = release.strip_suffix("-amd64") else {
        return false;
    };
    base.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+') || c.is_ascii_lowercase())
        && !base.ends_with("-cloud")
        && !base.ends_with("-rt")
}

/// Orders kernel releases by their numbers (6.1.0-57 after 6.1.0-9, 6.12.117 after 6.12.100).
pub fn compare_releases(a: &str, b: &str) -> Ordering {
    let numbers = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    numbers(a).cmp(&numbers(b))
}

/// From `apt-cache search --names-only '^linux-image-'` output, the package of the newest
/// generic amd64 kernel of `line`, e.g. `linux-image-6.1.0-57-amd64`.
pub fn newest_package(apt_cache_search: &str, line: &str) -> Option<String> {
    apt_cache_search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| name.strip_prefix("linux-image-"))
        .filter(|release| generic_amd64(release) && release_in_line(release, line))
        // The meta-package linux-image-6.12-amd64 names no release.
        .filter(|release| release.len() > line.len() + "-amd64".len())
        .max_by(|a, b| compare_releases(a, b))
        .map(|release| format!("linux-image-{release}"))
}

/// Among the file names in /boot, the newest `vmlinuz-<release>` of `line`.
pub fn newest_installed<'a>(
    boot_files: impl IntoIterator<Item = &'a str>,
    line: &str,
) -> Option<&'a str> {
    boot_files
        .into_iter()
        .filter_map(|name| name.strip_prefix("vmlinuz-"))
        .filter(|release| release_in_line(release, line))
        .max_by(|a, b| compare_releases(a, b))
}

/// The file names in /boot (empty when it cannot be read).
pub fn boot_files() -> Vec<String> {
    std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH: &str = "\
linux-image-6.1.0-47-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-57-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-57-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-57-rt-amd64 - Linux 6.1 for 64-bit PCs, PREEMPT_RT (signed)
linux-image-6.1.0-58-amd64-dbg - Debug symbols for linux-image-6.1.0-58-amd64
linux-image-6.1.0-58-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.12-amd64 - Linux for 64-bit PCs (meta-package)
linux-image-6.12.100+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.99+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-amd64 - Linux for 64-bit PCs (meta-package)
";

    #[test]
    fn picks_the_newest_generic_package_of_a_line() {
        assert_eq!(
            newest_package(SEARCH, "6.1").as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(
            newest_package(SEARCH, "6.12").as_deref(),
            Some("linux-image-6.12.117+deb12-amd64")
        );
        assert_eq!(newest_package(SEARCH, "6.6"), None);
    }

    #[test]
    fn lines_do_not_match_longer_versions() {
        assert!(release_in_line("6.1.0-57-amd64", "6.1"));
        assert!(!release_in_line("6.12.100+deb12-amd64", "6.1"));
        assert!(release_in_line("6.12.100+deb12-amd64", "6.12"));
        assert!(release_in_line("6.12.100+deb12-amd64", "6.12.100"));
    }

    #[test]
    fn picks_the_newest_installed_kernel_of_a_line() {
        let boot = [
            "config-6.1.0-57-amd64",
            "vmlinuz-6.1.0-47-amd64",
            "vmlinuz-6.1.0-57-amd64",
            "vmlinuz-6.12.100+deb12-amd64",
            "initrd.img-6.12.100+deb12-amd64",
        ];
        assert_eq!(newest_installed(boot, "6.1"), Some("6.1.0-57-amd64"));
        assert_eq!(newest_installed(boot, "6.12"), Some("6.12.100+deb12-amd64"));
        assert_eq!(newest_installed(boot, "6.6"), None);
    }

    #[test]
    fn parses_specs() {
        assert_eq!(KernelSpec::parse("6.1"), KernelSpec::Line("6.1".into()));
        assert_eq!(
            KernelSpec::parse("6.12.100"),
            KernelSpec::Line("6.12.100".into())
        );
        assert_eq!(
            KernelSpec::parse("/boot/vmlinuz-6.1.0-47-amd64"),
            KernelSpec::Path("/boot/vmlinuz-6.1.0-47-amd64".into())
        );
        assert_eq!(
            KernelSpec::parse("bzImage"),
            KernelSpec::Path("bzImage".into())
        );
    }
}
