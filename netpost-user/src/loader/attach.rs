//! Attach mechanics the probes share: XDP (with the mode choice), tc (TCX links, or netlink
//! filters on a clsact qdisc that [`ClsactGuard`] removes again on kernels < 6.6) and raw
//! tracepoints. Every attachment is an fd-based link owned by aya's program object inside the
//! one `Ebpf`: dropping it, exiting, or being killed with SIGKILL detaches it.
use std::io;

use aya::{
    Ebpf,
    programs::{
        ProgramError, RawTracePoint, SchedClassifier, TcAttachType, Xdp, XdpMode, tc,
        tc::SchedClassifierLinkId, xdp::XdpLinkId,
    },
    util::KernelVersion,
};

use super::{leftovers, tcnl};
use crate::{
    error::{SetupError, error_chain},
    netdev::NetDev,
};

/// How to attach XDP (`--xdp-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpChoice {
    /// Per device, what costs its traffic least: native XDP on NICs (generic as the
    /// fallback), none on virtual devices (veth, bridges, tunnels), where tc ingress counts
    /// the same frames: native XDP on veth cut TCP throughput 3-4x, and generic XDP turns
    /// GRO off on the device (TCP at 0.68-0.84 of baseline against 0.97-1.07 without).
    Auto,
    /// Driver mode; fails if the driver has no XDP support.
    Native,
    /// Generic (skb) mode, works on every device.
    Generic,
    /// No XDP program (tc only).
    Off,
}

/// Which mode `auto` tries first for a device.
pub fn preferred_mode(choice: XdpChoice, dev: &NetDev) -> Option<XdpMode> {
    match choice {
        XdpChoice::Off => None,
        XdpChoice::Native => Some(XdpMode::Driver),
        XdpChoice::Generic => Some(XdpMode::Skb),
        XdpChoice::Auto if dev.is_virtual() => None,
        XdpChoice::Auto => Some(XdpMode::Driver),
    }
}

pub fn mode_name(mode: Option<XdpMode>) -> &'static str {
    match mode {
        Some(XdpMode::Driver) => "native",
        Some(XdpMode::Skb) => "generic",
        Some(XdpMode::Hardware) => "offload",
        Some(XdpMode::Default) => "default",
        None => "off",
    }
}

/// Kernels >= 6.6 attach tc programs with TCX links (no qdisc needed).
pub fn tcx_available() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// Attaches tc program `name` (loaded) at `dev`'s ingress or egress; the link's id, to detach
/// it again.
pub fn attach_tc(
    program: &mut SchedClassifier,
    name: &'static str,
    dev: &NetDev,
    attach_type: TcAttachType,
) -> Result<SchedClassifierLinkId, SetupError> {
    program
        .attach(&dev.name, attach_type)
        .map_err(|e| SetupError::Attach {
            program: name,
            iface: dev.name.clone(),
            detail: error_chain(&e),
        })
}

/// Attaches XDP program `name` (loaded) to `dev` in the mode `choice` asks for; the mode it
/// got and the link's id (None: `--xdp-mode off`).
pub fn attach_xdp(
    xdp: &mut Xdp,
    name: &'static str,
    dev: &NetDev,
    choice: XdpChoice,
) -> Result<Option<(XdpMode, XdpLinkId)>, SetupError> {
    let Some(first) = preferred_mode(choice, dev) else {
        return Ok(None);
    };
    match xdp.attach_to_if_index(dev.ifindex, first) {
        Ok(id) => Ok(Some((first, id))),
        Err(e) if is_busy(&e) => Err(SetupError::ForeignXdp {
            iface: dev.name.clone(),
            detail: error_chain(&e),
        }),
        // `auto` on a NIC whose driver lacks native XDP: generic still works.
        Err(_) if choice == XdpChoice::Auto && first == XdpMode::Driver => {
            match xdp.attach_to_if_index(dev.ifindex, XdpMode::Skb) {
                Ok(id) => Ok(Some((XdpMode::Skb, id))),
                Err(e) => Err(xdp_error(name, dev, &e)),
            }
        }
        Err(e) => Err(xdp_error(name, dev, &e)),
    }
}

fn xdp_error(name: &'static str, dev: &NetDev, e: &ProgramError) -> SetupError {
    if is_busy(e) {
        SetupError::ForeignXdp {
            iface: dev.name.clone(),
            detail: error_chain(e),
        }
    } else {
        SetupError::Attach {
            program: name,
            iface: dev.name.clone(),
            detail: error_chain(e),
        }
    }
}

/// The kernel answers EBUSY (a link exists) or EEXIST (a program attached in another mode)
/// when the device already runs someone else's XDP program.
fn is_busy(e: &ProgramError) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
        {
            return true;
        }
        if let Some(ProgramError::SyscallError(s)) = err.downcast_ref::<ProgramError>()
            && matches!(
                s.io_error.raw_os_error(),
                Some(libc::EBUSY) | Some(libc::EEXIST)
            )
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// A clsact qdisc netpost attaches tc filters to (kernels < 6.6 only). On drop, once
/// netpost's own filters are gone, it is removed if it is netpost's and nothing else is
/// attached to it: netpost added it, or found only other netposts' filters on it (of two
/// netposts on one interface, the last to leave removes it). Someone else's stays.
pub struct ClsactGuard {
    ifindex: u32,
    netposts: bool,
}

impl ClsactGuard {
    pub fn add(dev: &NetDev) -> Result<ClsactGuard, String> {
        let netposts = match tc::qdisc_add_clsact(&dev.name) {
            Ok(()) => true,
            Err(e) if already_there(&e) => tcnl::Socket::open()
                .and_then(|mut sock| sock.all_filters(dev.ifindex))
                .is_ok_and(|filters| {
                    !filters.is_empty() && filters.iter().all(leftovers::is_netposts)
                }),
            Err(e) => return Err(format!("cannot add a clsact qdisc: {}", error_chain(&e))),
        };
        Ok(ClsactGuard {
            ifindex: dev.ifindex,
            netposts,
        })
    }

    /// The device was deleted and its qdisc with it: nothing to remove (a new device of the
    /// same name has its own, which is not netpost's to remove).
    pub fn device_gone(mut self) {
        self.netposts = false;
    }
}

/// aya 0.14 reports an existing clsact qdisc as the kernel's EEXIST over netlink
/// ("Exclusivity flag on, cannot modify"), not as `TcError::AlreadyAttached`.
fn already_there(e: &tc::TcError) -> bool {
    match e {
        tc::TcError::AlreadyAttached => true,
        tc::TcError::NetlinkError(e) => e.raw_os_error() == Some(libc::EEXIST),
        tc::TcError::IoError(e) => e.raw_os_error() == Some(libc::EEXIST),
        _ => false,
    }
}

impl Drop for ClsactGuard {
    fn drop(&mut self) {
        if !self.netposts {
            return;
        }
        if let Ok(mut sock) = tcnl::Socket::open()
            && leftovers::is_unused(&mut sock, self.ifindex).unwrap_or(false)
        {
            let _ = sock.delete_clsact(self.ifindex);
        }
    }
}

/// One line for a program the kernel refused: the error and the verifier's last words (its
/// whole log runs to thousands of lines), e.g. "refused by the verifier (Permission denied):
/// invalid access to packet ... / R1 offset is outside of the packet (processed 101 insns)".
pub fn load_error(e: &ProgramError) -> String {
    let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = e
    else {
        return error_chain(e);
    };
    verifier_summary(io_error, &verifier_log.to_string())
}

fn verifier_summary(io_error: &std::io::Error, log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The verdict comes before the statistics lines.
    let stats_at = lines
        .iter()
        .rposition(|l| l.starts_with("verification time"))
        .unwrap_or(lines.len());
    let verdict: Vec<&str> = lines[..stats_at]
        .iter()
        .rev()
        .take(2)
        .rev()
        .copied()
        .collect();
    let processed = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("processed ")?.split(" insns").next());
    let mut out = format!("refused by the verifier ({io_error})");
    if !verdict.is_empty() {
        out += &format!(": {}", verdict.join(" / "));
    }
    if let Some(n) = processed {
        out += &format!(" (processed {n} insns)");
    }
    out
}

fn raw_tp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut RawTracePoint, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("{name} missing from the object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())
}

/// Loads raw tracepoint program `name` (not attached).
pub fn load_raw_tp(ebpf: &mut Ebpf, name: &str) -> Result<(), String> {
    raw_tp(ebpf, name)?.load().map_err(|e| load_error(&e))
}

/// Attaches loaded raw tracepoint program `name` to `tracepoint` (an fd-based link).
pub fn attach_raw_tp(ebpf: &mut Ebpf, name: &str, tracepoint: &str) -> Result<(), String> {
    raw_tp(ebpf, name)?
        .attach(tracepoint)
        .map(|_| ())
        .map_err(|e| format!("{tracepoint}: {}", error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_its_verdict_and_size_on_one_line() {
        let log = "0: R1=ctx(off=0,imm=0) R10=fp0\n; #[classifier]\n101: (2d) if r0 > r3 goto pc+160\n102: (71) r2 = *(u8 *)(r1 +1)\ninvalid access to packet, off=1 size=1, R1(id=5,off=1,r=0)\nR1 offset is outside of the packet\nverification time 3361 usec\nstack depth 304\nprocessed 101 insns (limit 1000000) max_states_per_insn 0 total_states 7\n";
        assert_eq!(
            verifier_summary(&std::io::Error::from_raw_os_error(libc::EACCES), log),
            "refused by the verifier (Permission denied (os error 13)): invalid access to packet, off=1 size=1, R1(id=5,off=1,r=0) / R1 offset is outside of the packet (processed 101 insns)"
        );
        assert_eq!(
            verifier_summary(&std::io::Error::from_raw_os_error(libc::E2BIG), ""),
            "refused by the verifier (Argument list too long (os error 7))"
        );
    }
}
