//! The empty programs attached where netpost's are, so their run time on the real path (what
//! the kernel's run-time statistics add to every run, plus a program that does nothing) can
//! be subtracted from netpost's: XDP (generic, netpost's mode on veth) and tc ingress and
//! egress on each interface, netfilter at every hook of both families, the raw tracepoint
//! program at each tracepoint given, the `tp_btf` one at the tracepoint given. Run inside the
//! interfaces' namespace (netfilter links belong to the caller's namespace).
//!
//! [`hold`] attaches the empty programs where netpost's default run attaches its own on a
//! veth (tc ingress and egress, a netfilter head and tail at every hook of both families)
//! and keeps them until killed: the end-to-end bench's `floors` set, what the attach points
//! alone cost the traffic, which no program of netpost's can go below.
use std::{os::fd::OwnedFd, time::Duration};

use anyhow::Context as _;
use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{BtfTracePoint, RawTracePoint, SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use netpost::loader::EBPF_OBJECT;
use netpost_common::netfilter::{NfFamily, NfHook};
use serde_json::Value;

use crate::{inpath, nf};

const FLOOR_XDP: &str = "netpost_floor_xdp";
const FLOOR_TC: &str = "netpost_floor_tc";
const FLOOR_NF: &str = "netpost_floor_nf";
const FLOOR_RAW_TP: &str = "netpost_floor_raw_tp";
const FLOOR_BTF: &str = "netpost_floor_btf";

pub struct Options {
    pub ifaces: Vec<String>,
    pub raw_tp: Vec<String>,
    pub tp_btf: Option<String>,
    pub secs: f64,
    pub step: f64,
    /// Count the packets this interface receives during the window.
    pub count: Option<String>,
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .with_context(|| format!("{name} missing from the object"))?
        .try_into()
        .with_context(|| format!("{name}: unexpected program type"))
}

/// The object, loaded with the kernel's BTF (which the tp_btf floor needs too).
fn load_object() -> anyhow::Result<(Btf, Ebpf)> {
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
    let ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;
    Ok((btf, ebpf))
}

/// The tc floor on ingress and egress of each of `ifaces`.
fn attach_tc(ebpf: &mut Ebpf, ifaces: &[String]) -> anyhow::Result<()> {
    let tc: &mut SchedClassifier = program(ebpf, FLOOR_TC)?;
    tc.load()?;
    for dev in ifaces {
        for dir in [TcAttachType::Ingress, TcAttachType::Egress] {
            tc.attach(dev, dir)
                .with_context(|| format!("attaching {FLOOR_TC} to {dev}"))?;
        }
    }
    Ok(())
}

pub fn run(opts: &Options) -> anyhow::Result<Value> {
    let (btf, mut ebpf) = load_object()?;
    let xdp: &mut Xdp = program(&mut ebpf, FLOOR_XDP)?;
    xdp.load()?;
    for dev in &opts.ifaces {
        xdp.attach(dev, XdpMode::Skb)
            .with_context(|| format!("attaching {FLOOR_XDP} to {dev}"))?;
    }
    attach_tc(&mut ebpf, &opts.ifaces)?;
    // A tracepoint floor that cannot attach leaves its kind without a floor (the report then
    // uses the lowest other one) rather than every kind.
    let mut skipped = Vec::new();
    if !opts.raw_tp.is_empty() {
        let raw: &mut RawTracePoint = program(&mut ebpf, FLOOR_RAW_TP)?;
        raw.load()?;
        for tp in &opts.raw_tp {
            if let Err(e) = raw.attach(tp) {
                skipped.push(format!("{FLOOR_RAW_TP} at {tp}: {e}"));
            }
        }
    }
    if let Some(tp) = &opts.tp_btf {
        let p: &mut BtfTracePoint = program(&mut ebpf, FLOOR_BTF)?;
        if let Err(e) = p.load(tp, &btf).and_then(|()| p.attach().map(drop)) {
            skipped.push(format!("{FLOOR_BTF} at {tp}: {e}"));
        }
    }
    let links = link_nf(&ebpf, &[0])?;
    // Let the first packets through the new hooks pass before the window opens.
    std::thread::sleep(Duration::from_millis(300));
    let mut out = inpath::measure(&inpath::Options {
        pid: std::process::id(),
        secs: opts.secs,
        iface: opts.count.clone(),
        step: opts.step,
    })?;
    drop(links);
    out["skipped"] = serde_json::json!(skipped);
    Ok(out)
}

/// The netfilter floor at every hook of both families, once per priority in `priorities`.
fn link_nf(ebpf: &Ebpf, priorities: &[i32]) -> anyhow::Result<Vec<OwnedFd>> {
    let nf_prog = nf::load(ebpf, EBPF_OBJECT, &[FLOOR_NF])?
        .pop()
        .context("no netfilter floor")?;
    let mut links = Vec::new();
    for family in NfFamily::ALL {
        for hook in NfHook::ALL {
            for &priority in priorities {
                links.push(
                    nf::link(&nf_prog, family.pf(), hook as u32, priority).with_context(|| {
                        format!(
                            "linking {FLOOR_NF} at {} {} priority {priority}",
                            family.name(),
                            hook.name()
                        )
                    })?,
                );
            }
        }
    }
    Ok(links)
}

/// netpost's netfilter priorities: its head runs first at a hook, its tail last.
const NF_PRIORITIES: [i32; 2] = [i32::MIN + 1, i32::MAX - 2];

/// Attaches the tc floor (ingress and egress) to `ifaces` and the netfilter floor at
/// netpost's head and tail priorities of every hook of both families, says so on stderr, and
/// holds them until a signal ends the process (its links go with it).
pub fn hold(ifaces: &[String]) -> anyhow::Result<Value> {
    let (_btf, mut ebpf) = load_object()?;
    attach_tc(&mut ebpf, ifaces)?;
    let _links = link_nf(&ebpf, &NF_PRIORITIES)?;
    eprintln!("netpost-bench: floors attached");
    loop {
        std::thread::park();
    }
}
