//! Errors a user can act on. Each renders as one line: the problem, then the fix.
use thiserror::Error;

/// "outer: inner: innermost" on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(Debug, Error)]
pub enum SetupError {
    #[error(
        "netpost needs root (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN) to load eBPF programs; run it with sudo"
    )]
    NotPrivileged,
    #[error(
        "kernel BTF not found at {0}; netpost needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux >= 6.1; Debian, Ubuntu and Amazon Linux kernels have it)"
    )]
    MissingBtf(String),
    #[error(
        "--netns {0}: network namespace '{0}' does not exist; list them with `ip netns list` or create one with `ip netns add {0}`"
    )]
    NoSuchNetns(String),
    #[error("--netns {name}: cannot enter network namespace '{name}': {source}")]
    EnterNetns {
        name: String,
        source: std::io::Error,
    },
    #[error(
        "-i {name}: interface '{name}' does not exist{where_}; list interfaces with `ip{hint} link`"
    )]
    NoSuchInterface {
        name: String,
        where_: String,
        hint: String,
    },
    #[error("-i {0}: interface '{0}' is given twice; name each interface once")]
    DuplicateInterface(String),
    #[error(
        "-i: at most {max} interfaces can be watched at once, {given} {what}; name at most {max} with -i"
    )]
    TooManyInterfaces {
        max: u32,
        given: usize,
        /// "given", or "are up" when no -i chose them.
        what: &'static str,
    },
    #[error(
        "no -i given and no interface but lo is up{where_}: name one with -i IFACE (`ip{hint} link` lists them, `ip{hint} link set IFACE up` brings one up)"
    )]
    NoInterfaceUp { where_: String, hint: String },
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
    /// The drop recorder cannot do what its flags ask (the message names the flag).
    #[error("{0}")]
    Recorder(String),
}
