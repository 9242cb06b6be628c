//! Netfilter programs for the benchmark: loaded by name from netpost's object with netpost's
//! own loader (aya 0.14 has no netfilter program type) and run with BPF_PROG_TEST_RUN, which the kernel supports for
//! BPF_PROG_TYPE_NETFILTER since 6.4 (`bpf_prog_test_run_nf`).
use std::{
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

use anyhow::{anyhow, bail};
use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd};
use netpost_common::netfilter::NfOffsets;

/// NF_INET_PRE_ROUTING: the kernel builds the test skb from an Ethernet frame for every hook
/// but LOCAL_OUT, and sets the network header, as a received packet has it.
const NF_INET_PRE_ROUTING: u8 = 0;

/// Relocates the named functions of `object` against the maps `ebpf` created from it and
/// loads each as a netfilter program (netpost's own loader).
pub fn load(ebpf: &Ebpf, object: &[u8], names: &[&str]) -> anyhow::Result<Vec<OwnedFd>> {
    netpost::probe::netfilter::bpf::load_named(ebpf, object, names).map_err(|e| anyhow!(e))
}

/// The `struct nf_hook_state` prefix a test run takes as its context: only `hook` and `pf`
/// may be set (the kernel fills in the device), the rest must be zero.
pub fn hook_state(off: &NfOffsets, pf: u8) -> Vec<u8> {
    let len = off.state_hook.max(off.state_pf) as usize + 1;
    let mut ctx = vec![0u8; len];
    ctx[off.state_hook as usize] = NF_INET_PRE_ROUTING;
    ctx[off.state_pf as usize] = pf;
    ctx
}

/// One BPF_PROG_TEST_RUN of a program given by fd (netfilter programs, which aya cannot run,
/// and the event producer): (return value, kernel-timed time per run).
pub fn test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ctx: &[u8],
    repeat: u32,
) -> anyhow::Result<(u32, Duration)> {
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the test member of the zeroed union.
    let t = unsafe { &mut attr.test };
    t.prog_fd = prog.as_raw_fd() as u32;
    t.repeat = repeat;
    t.data_in = frame.as_ptr() as u64;
    t.data_size_in = frame.len() as u32;
    // No context at all for an empty one (XDP and tc take a default).
    t.ctx_in = if ctx.is_empty() {
        0
    } else {
        ctx.as_ptr() as u64
    };
    t.ctx_size_in = ctx.len() as u32;
    if let Err(e) = netpost::bpf_sys::bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr) {
        bail!("BPF_PROG_TEST_RUN: {e}");
    }
    // SAFETY: the kernel wrote the results into the same member.
    let t = unsafe { &attr.test };
    Ok((t.retval, Duration::from_nanos(u64::from(t.duration))))
}

/// Links a netfilter program at one hook of the caller's namespace (BPF_LINK_CREATE, attach
/// type BPF_NETFILTER); closing the returned fd unlinks it.
pub fn link(prog: &OwnedFd, pf: u8, hooknum: u32, priority: i32) -> anyhow::Result<OwnedFd> {
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the link-create member of the zeroed union.
    let lc = unsafe { &mut attr.link_create };
    lc.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    lc.attach_type = bpf_attach_type::BPF_NETFILTER as u32;
    lc.__bindgen_anon_3.netfilter.pf = u32::from(pf);
    lc.__bindgen_anon_3.netfilter.hooknum = hooknum;
    lc.__bindgen_anon_3.netfilter.priority = priority;
    let fd = netpost::bpf_sys::bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)
        .map_err(|e| anyhow!("BPF_LINK_CREATE: {e}"))?;
    // SAFETY: a successful BPF_LINK_CREATE returns a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
