//! Netfilter programs for the benchmark: loaded by name from netpost's object (aya 0.14 has no
//! netfilter program type; this follows netpost-user/src/netfilter.rs, which only loads
//! netpost's own two programs) and run with BPF_PROG_TEST_RUN, which the kernel supports for
//! BPF_PROG_TYPE_NETFILTER since 6.4 (`bpf_prog_test_run_nf`).
use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Map, MapData},
};
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type};
use netpost_common::netfilter::NfOffsets;

/// NF_INET_PRE_ROUTING: the kernel builds the test skb from an Ethernet frame for every hook
/// but LOCAL_OUT, and sets the network header, as a received packet has it.
const NF_INET_PRE_ROUTING: u8 = 0;

fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(m)
        | Map::PerCpuArray(m)
        | Map::HashMap(m)
        | Map::PerCpuHashMap(m)
        | Map::LruHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::RingBuf(m) => Some(m),
        _ => None,
    }
}

/// Relocates the named functions of `object` against the maps `ebpf` created from it and
/// loads each as a netfilter program.
pub fn load(ebpf: &Ebpf, object: &[u8], names: &[&str]) -> anyhow::Result<Vec<OwnedFd>> {
    let mut obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let fds: Vec<(String, RawFd)> = ebpf
        .maps()
        .filter_map(|(name, map)| Some((name.to_string(), map_data(map)?.fd().as_fd().as_raw_fd())))
        .collect();
    let maps = std::mem::take(&mut obj.maps);
    let with_fds = maps.iter().filter_map(|(name, m)| {
        let fd = fds.iter().find(|(n, _)| n == name)?.1;
        Some((name.as_str(), fd, m))
    });
    obj.relocate_maps(with_fds, &text_sections)
        .map_err(|e| anyhow!("relocating maps: {e}"))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| anyhow!("relocating calls: {e}"))?;
    names
        .iter()
        .map(|&name| {
            let prog = obj
                .programs
                .get(name)
                .with_context(|| format!("{name} missing from the object"))?;
            let function = obj
                .functions
                .get(&prog.function_key())
                .with_context(|| format!("{name}: function missing"))?;
            prog_load(name, &function.instructions, &obj.license)
                .with_context(|| format!("loading {name} as a netfilter program"))
        })
        .collect()
}

fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: attr is a fully initialised bpf_attr of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

fn prog_load(
    name: &str,
    insns: &[aya_obj::generated::bpf_insn],
    license: &CString,
) -> io::Result<OwnedFd> {
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the prog-load member of the zeroed union.
    let u = unsafe { &mut attr.__bindgen_anon_3 };
    u.prog_type = bpf_prog_type::BPF_PROG_TYPE_NETFILTER as u32;
    u.expected_attach_type = bpf_attach_type::BPF_NETFILTER as u32;
    u.insn_cnt = insns.len() as u32;
    u.insns = insns.as_ptr() as u64;
    u.license = license.as_ptr() as u64;
    for (dst, src) in u.prog_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    let fd = bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
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

/// One BPF_PROG_TEST_RUN of a netfilter program: (return value, kernel-timed time per run).
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
    t.ctx_in = ctx.as_ptr() as u64;
    t.ctx_size_in = ctx.len() as u32;
    if let Err(e) = bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr) {
        bail!("BPF_PROG_TEST_RUN: {e}");
    }
    // SAFETY: the kernel wrote the results into the same member.
    let t = unsafe { &attr.test };
    Ok((t.retval, Duration::from_nanos(u64::from(t.duration))))
}
