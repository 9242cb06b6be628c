//! netpost's XDP and tc programs on one device: attaching them (with the ids of their links)
//! and letting go of them when the device is deleted or renamed, so a run that sees devices
//! come and go for hours holds the links of the present ones only. A program this kernel
//! refused, or an attachment the device refuses, is off with its reason and the other side
//! counts on; only a device where neither XDP nor tc runs (or that runs another tool's XDP
//! program) is an error.
use std::collections::BTreeMap;

use aya::{
    Ebpf,
    programs::{TcAttachType, tc::SchedClassifierLinkId, xdp::XdpLinkId},
};
use netpost_common::Hook;

use super::{PROG_XDP, model::AttachInfo, tc, tc_name, xdp};
use crate::{
    error::SetupError,
    loader::{
        attach::{self, XdpChoice},
        leftovers, tcnl,
    },
    netdev::NetDev,
    probe::status::Status,
};

/// The links of one device (they live in the programs inside the `Ebpf`).
#[derive(Default)]
pub struct DevLinks {
    xdp: Option<XdpLinkId>,
    tc: Vec<(Hook, SchedClassifierLinkId)>,
    /// Kernels < 6.6 only.
    clsact: Option<attach::ClsactGuard>,
}

/// How to attach: the XDP choice, TCX or netlink, and the programs this kernel refused.
pub struct How<'a> {
    pub xdp: XdpChoice,
    pub tcx: bool,
    pub refused: &'a BTreeMap<&'static str, String>,
}

/// Attaches tc ingress, tc egress and XDP to `dev`; also returns what to say (filters a
/// killed netpost left there, removed). On an error what was attached is detached again.
pub fn attach(
    ebpf: &mut Ebpf,
    dev: &NetDev,
    how: &How<'_>,
) -> Result<(DevLinks, AttachInfo, Vec<String>), SetupError> {
    let mut links = DevLinks::default();
    let mut said = Vec::new();
    match attach_into(ebpf, dev, how, &mut links, &mut said) {
        Ok(info) => Ok((links, info, said)),
        Err(e) => {
            links.release(ebpf, false);
            Err(e)
        }
    }
}

fn attach_into(
    ebpf: &mut Ebpf,
    dev: &NetDev,
    how: &How<'_>,
    links: &mut DevLinks,
    said: &mut Vec<String>,
) -> Result<AttachInfo, SetupError> {
    let (tc_mode, tc_status) = attach_tc(ebpf, dev, how, links, said);
    let (mode, xdp_status) = attach_xdp(ebpf, dev, how, links, tc_status.is_running())?;
    if !tc_status.is_running() && !xdp_status.is_running() {
        return Err(SetupError::Attach {
            program: "netpost's programs",
            iface: dev.name.clone(),
            detail: format!("XDP {xdp_status}; tc {tc_status}"),
        });
    }
    Ok(AttachInfo {
        ifindex: dev.ifindex,
        xdp_mode: attach::mode_name(mode).to_string(),
        tc_mode,
        xdp_status: xdp_status.to_string(),
        tc_status: tc_status.to_string(),
    })
}

/// tc ingress and egress (first, on kernels without TCX, a clsact qdisc, and the removal of
/// filters a netpost that did not exit left there): the mode and status.
fn attach_tc(
    ebpf: &mut Ebpf,
    dev: &NetDev,
    how: &How<'_>,
    links: &mut DevLinks,
    said: &mut Vec<String>,
) -> (String, Status) {
    let mode = if how.tcx { "tcx" } else { "netlink" };
    let sides = [
        (Hook::TcIngress, TcAttachType::Ingress, "ingress"),
        (Hook::TcEgress, TcAttachType::Egress, "egress"),
    ];
    let loaded: Vec<_> = sides
        .into_iter()
        .filter(|(hook, _, _)| !how.refused.contains_key(tc_name(*hook)))
        .collect();
    if loaded.is_empty() {
        return ("off".into(), Status::Unavailable("no tc program loaded".into()));
    }
    if !how.tcx {
        let mut held = None;
        match tcnl::Socket::open()
            .and_then(|mut s| leftovers::clean(&mut s, dev.ifindex, &mut held))
        {
            Ok(cleaned) => said.extend(
                cleaned
                    .lines(&dev.name)
                    .into_iter()
                    .map(|l| format!("netpost: {l}")),
            ),
            Err(e) => said.push(format!(
                "netpost: cannot look for tc filters left on {} by a netpost that did not exit: {e}",
                dev.name
            )),
        }
        match attach::ClsactGuard::add(dev) {
            Ok(guard) => links.clsact = Some(guard),
            Err(why) => return ("off".into(), Status::Unavailable(why)),
        }
    }
    let mut failed: Vec<String> = sides
        .iter()
        .filter(|(hook, _, _)| how.refused.contains_key(tc_name(*hook)))
        .map(|(hook, _, side)| format!("{side}: {} not loaded", tc_name(*hook)))
        .collect();
    for (hook, attach_type, side) in loaded {
        match attach::attach_tc(tc(ebpf, hook), tc_name(hook), dev, attach_type) {
            Ok(id) => links.tc.push((hook, id)),
            Err(e) => failed.push(format!("{side}: {e}")),
        }
    }
    match failed.len() {
        0 => (mode.into(), Status::Attached),
        1 => (mode.into(), Status::Unavailable(failed.remove(0))),
        _ => ("off".into(), Status::Unavailable(failed.join("; "))),
    }
}

/// XDP as `how.xdp` asks: the mode and status. Another tool's XDP program on the device is
/// an error (netpost never replaces it); any other failure leaves the device to tc.
/// Why `--xdp-mode auto` attached no XDP program to a device.
const AUTO_VIRTUAL: &str =
    "virtual device: tc ingress counts the same frames; --xdp-mode generic to add it";

fn attach_xdp(
    ebpf: &mut Ebpf,
    dev: &NetDev,
    how: &How<'_>,
    links: &mut DevLinks,
    tc_running: bool,
) -> Result<(Option<aya::programs::XdpMode>, Status), SetupError> {
    if how.xdp == XdpChoice::Off {
        return Ok((None, Status::Off("--xdp-mode off".into())));
    }
    if let Some(why) = how.refused.get(PROG_XDP) {
        return Ok((None, Status::Unavailable(format!("{PROG_XDP}: {why}"))));
    }
    // `auto` leaves XDP off on a virtual device, where tc ingress counts the same frames;
    // when tc could not attach there, generic XDP is what is left to count with.
    let choice = match how.xdp {
        XdpChoice::Auto if dev.is_virtual() && !tc_running => XdpChoice::Generic,
        choice => choice,
    };
    match attach::attach_xdp(xdp(ebpf), PROG_XDP, dev, choice) {
        Ok(Some((mode, id))) => {
            links.xdp = Some(id);
            Ok((Some(mode), Status::Attached))
        }
        Ok(None) => Ok((None, Status::Off(AUTO_VIRTUAL.into()))),
        Err(e @ SetupError::ForeignXdp { .. }) => Err(e),
        Err(e) => Ok((None, Status::Unavailable(e.to_string()))),
    }
}

impl DevLinks {
    /// Detaches the programs. `gone`: the device was deleted, and its qdisc with it.
    pub fn release(self, ebpf: &mut Ebpf, gone: bool) {
        // A link on a deleted device is already detached by the kernel; dropping it frees
        // its fd. Errors can only say the device is gone.
        if let Some(id) = self.xdp {
            let _ = xdp(ebpf).detach(id);
        }
        for (hook, id) in self.tc {
            let _ = tc(ebpf, hook).detach(id);
        }
        if let Some(guard) = self.clsact {
            if gone {
                guard.device_gone();
            } else {
                drop(guard);
            }
        }
    }
}
