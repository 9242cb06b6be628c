//! Errors a user can act on. Each renders as one line: the problem, then the fix.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SetupError {
    #[error(
        "netpost needs root (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN) to load eBPF programs; run it with sudo"
    )]
    NotPrivileged,
    #[error(
        "kernel BTF not found at {0}; netpost needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux >= 6.4)"
    )]
    MissingBtf(String),
    #[error(
        "network namespace '{0}' does not exist; list them with `ip netns list` or create one with `ip netns add {0}`"
    )]
    NoSuchNetns(String),
    #[error("cannot enter network namespace '{name}': {source}")]
    EnterNetns {
        name: String,
        source: std::io::Error,
    },
    #[error("interface '{name}' does not exist{where_}; list interfaces with `ip{hint} link`")]
    NoSuchInterface {
        name: String,
        where_: String,
        hint: String,
    },
    #[error("interface '{0}' is given twice")]
    DuplicateInterface(String),
    #[error("at most {max} interfaces can be watched at once, {given} given")]
    TooManyInterfaces { max: u32, given: usize },
    #[error(
        "interface '{iface}' already has an XDP program attached by another tool ({detail}); detach it (`ip link set dev {iface} xdp off`) or run netpost with --xdp-mode off"
    )]
    ForeignXdp { iface: String, detail: String },
    #[error("cannot attach {program} to '{iface}': {detail}")]
    Attach {
        program: &'static str,
        iface: String,
        detail: String,
    },
    #[error("cannot load netpost's eBPF programs: {0}")]
    Load(String),
}
