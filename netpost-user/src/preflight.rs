//! Checks that turn the usual first-run failures into one actionable line, before anything
//! is loaded or attached.
use std::path::Path;

use crate::error::SetupError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Where the running kernel's BTF lives; `NETPOST_BTF` overrides it (for kernels that ship
/// BTF elsewhere).
pub fn btf_path() -> String {
    std::env::var("NETPOST_BTF").unwrap_or_else(|_| "/sys/kernel/btf/vmlinux".to_string())
}

pub fn check_btf() -> Result<(), SetupError> {
    let path = btf_path();
    if Path::new(&path).is_file() {
        Ok(())
    } else {
        Err(SetupError::MissingBtf(path))
    }
}

/// True when the effective capability set allows loading and attaching netpost's programs:
/// CAP_NET_ADMIN plus either CAP_BPF with CAP_PERFMON or (older kernels) CAP_SYS_ADMIN.
pub fn caps_suffice(cap_eff: u64) -> bool {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    has(CAP_NET_ADMIN) && ((has(CAP_BPF) && has(CAP_PERFMON)) || has(CAP_SYS_ADMIN))
}

/// Parses the `CapEff:` line of /proc/self/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

pub fn check_privileges() -> Result<(), SetupError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match parse_cap_eff(&status) {
        Some(caps) if caps_suffice(caps) => Ok(()),
        _ => Err(SetupError::NotPrivileged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_minimal_capability_sets_suffice() {
        assert!(caps_suffice(0x000001ff_ffffffff));
        let minimal = (1 << CAP_NET_ADMIN) | (1 << CAP_BPF) | (1 << CAP_PERFMON);
        assert!(caps_suffice(minimal));
        assert!(caps_suffice((1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN)));
    }

    #[test]
    fn unprivileged_or_partial_sets_do_not() {
        assert!(!caps_suffice(0));
        assert!(!caps_suffice((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_suffice((1 << CAP_NET_ADMIN) | (1 << CAP_BPF)));
    }

    #[test]
    fn cap_eff_is_read_from_proc_status() {
        let status = "Name:\tnetpost\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }
}
