//! Loads and links the BPF_PROG_TYPE_NETFILTER programs, which aya 0.14 cannot: aya creates
//! the maps (so these programs share them with XDP/tc), aya-obj relocates the programs'
//! instructions against those maps, and two raw bpf(2) calls load (BPF_PROG_LOAD, type
//! NETFILTER) and link (BPF_LINK_CREATE, attach type BPF_NETFILTER) them. Links are fds:
//! closing them (exit, SIGKILL) unlinks the programs. Netfilter links belong to the network
//! namespace of the calling thread.
use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use aya::{
    Ebpf,
    maps::{Map, MapData},
};
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type};
use netpost_common::netfilter::{NfFamily, NfHook};

pub const PROG_NF_HEAD: &str = "netpost_nf_head";
pub const PROG_NF_TAIL: &str = "netpost_nf_tail";

/// The kernel refuses INT_MIN and INT_MAX for netfilter links, and a BPF link at a priority
/// another hook function already holds (EBUSY). IPv6 conntrack confirms entries at
/// INT_MAX - 1 (IPv4's at INT_MAX), so the tail sits below that: it runs before confirmation
/// in both families.
pub const PRIORITY_HEAD: i32 = i32::MIN + 1;
pub const PRIORITY_TAIL: i32 = i32::MAX - 2;
/// How far a link moves inward from its priority when that one is taken (another netpost in
/// the same namespace, another BPF hook).
const PRIORITY_TRIES: i32 = 16;

/// The two loaded (not yet linked) programs.
pub struct NfPrograms {
    head: OwnedFd,
    tail: OwnedFd,
}

/// Links at every hook of one family; dropping it unlinks them.
pub struct NfLinks {
    _links: Vec<OwnedFd>,
}

fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(m)
        | Map::PerCpuArray(m)
        | Map::HashMap(m)
        | Map::PerCpuHashMap(m)
        | Map::LruHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::RingBuf(m)
        | Map::ProgramArray(m) => Some(m),
        _ => None,
    }
}

/// Relocates and loads both netfilter programs of `object` against the maps of `ebpf` (which
/// was loaded from the same object). Call before taking maps out of `ebpf`.
pub fn load(ebpf: &Ebpf, object: &[u8]) -> Result<NfPrograms, String> {
    let mut fds = load_named(ebpf, object, &[PROG_NF_HEAD, PROG_NF_TAIL])?.into_iter();
    match (fds.next(), fds.next()) {
        (Some(head), Some(tail)) => Ok(NfPrograms { head, tail }),
        _ => Err("netfilter programs missing".into()),
    }
}

/// Relocates the functions `names` of `object` against the maps of `ebpf` (loaded from the
/// same object) and loads each as a netfilter program (also used by the benchmark).
pub fn load_named(ebpf: &Ebpf, object: &[u8], names: &[&str]) -> Result<Vec<OwnedFd>, String> {
    let mut obj = aya_obj::Object::parse(object).map_err(|e| format!("parsing object: {e}"))?;
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let mut fds: Vec<(String, RawFd)> = Vec::new();
    for (name, map) in ebpf.maps() {
        let data = map_data(map).ok_or_else(|| format!("map {name}: unexpected map type"))?;
        fds.push((name.to_string(), data.fd().as_fd().as_raw_fd()));
    }
    // relocate_maps borrows `obj` mutably, so hand it the map table by value.
    let maps = std::mem::take(&mut obj.maps);
    let with_fds = maps.iter().filter_map(|(name, m)| {
        let fd = fds.iter().find(|(n, _)| n == name)?.1;
        Some((name.as_str(), fd, m))
    });
    obj.relocate_maps(with_fds, &text_sections)
        .map_err(|e| format!("relocating maps: {e}"))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| format!("relocating calls: {e}"))?;
    names
        .iter()
        .map(|&name| {
            let prog = obj
                .programs
                .get(name)
                .ok_or_else(|| format!("{name} missing from the object"))?;
            let function = obj
                .functions
                .get(&prog.function_key())
                .ok_or_else(|| format!("{name}: function missing"))?;
            prog_load(name, &function.instructions, &obj.license)
        })
        .collect()
}

impl NfPrograms {
    /// Links head and tail at all five hooks of `family` in the caller's namespace.
    pub fn link(&self, family: NfFamily) -> Result<NfLinks, String> {
        let mut links = Vec::with_capacity(NfHook::COUNT * 2);
        for hook in NfHook::ALL {
            for (prog, priority, inward) in [
                (&self.head, PRIORITY_HEAD, 1),
                (&self.tail, PRIORITY_TAIL, -1),
            ] {
                let link = link_inward(prog.as_fd(), family.pf() as u32, hook as u32, priority, inward)
                    .map_err(|e| {
                        format!(
                            "linking at {} {}: {e}",
                            family.name(),
                            hook.name().to_uppercase()
                        )
                    })?;
                links.push(link);
            }
        }
        Ok(NfLinks { _links: links })
    }
}

fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = crate::bpf_sys::bpf(cmd, attr)?;
    // SAFETY: a successful BPF_PROG_LOAD / BPF_LINK_CREATE returns a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the kernel lets a netfilter program read through `skb->head` (Linux >= 6.17
/// types a pointer to a primitive loaded from a trusted struct as read-only untrusted
/// memory; older verifiers see a number). Asked by loading the smallest program that does
/// so; `skb_head` is the field's offset in `sk_buff`.
pub fn reads_in_place(skb_head: u32) -> bool {
    const LDX_DW: u8 = 0x79; // BPF_LDX | BPF_MEM | BPF_DW
    const LDX_B: u8 = 0x71; // BPF_LDX | BPF_MEM | BPF_B
    const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
    let insn = |code: u8, dst: u8, src: u8, off: i16, imm: i32| {
        // SAFETY: all-zero is a valid bpf_insn.
        let mut i: bpf_insn = unsafe { std::mem::zeroed() };
        i.code = code;
        i.set_dst_reg(dst);
        i.set_src_reg(src);
        i.off = off;
        i.imm = imm;
        i
    };
    let Ok(head) = i16::try_from(skb_head) else {
        return false;
    };
    let insns = [
        insn(LDX_DW, 2, 1, 8, 0),    // r2 = ctx->skb
        insn(LDX_DW, 3, 2, head, 0), // r3 = skb->head
        insn(LDX_B, 0, 3, 0, 0),     // r0 = *(u8 *)r3: refused where head is a number
        insn(MOV_K, 0, 0, 0, 1),     // r0 = NF_ACCEPT
        insn(EXIT, 0, 0, 0, 0),
    ];
    let license = CString::new("GPL").expect("no NUL");
    prog_load_once("netpost_nf_probe", &insns, &license, None).is_ok()
}

/// One BPF_PROG_LOAD of a netfilter program, with the verifier log into `log` if given.
fn prog_load_once(
    name: &str,
    insns: &[bpf_insn],
    license: &CString,
    log: Option<&mut Vec<u8>>,
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
    if let Some(log) = log {
        u.log_level = 1;
        u.log_size = log.len() as u32;
        u.log_buf = log.as_mut_ptr() as u64;
    }
    bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
}

fn prog_load(name: &str, insns: &[bpf_insn], license: &CString) -> Result<OwnedFd, String> {
    let attempt = |log: Option<&mut Vec<u8>>| prog_load_once(name, insns, license, log);
    attempt(None).or_else(|first| {
        // Load again with the verifier log, so the error says why.
        let mut log = vec![0u8; 1 << 20];
        match attempt(Some(&mut log)) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                // The whole log, for whoever debugs a kernel's verifier (the kernel matrix).
                if let Some(dir) = std::env::var_os("NETPOST_VERIFIER_LOG_DIR") {
                    let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.log")), text);
                }
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                Err(format!(
                    "loading {name}: {first}{}",
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (verifier: {})",
                            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                        )
                    }
                ))
            }
        }
    })
}

/// Links at `priority`, or the next free one towards the middle (`inward` is +1 or -1).
fn link_inward(
    prog: BorrowedFd<'_>,
    pf: u32,
    hooknum: u32,
    priority: i32,
    inward: i32,
) -> io::Result<OwnedFd> {
    let mut tried = 0;
    loop {
        match link_create(prog, pf, hooknum, priority + inward * tried) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tried + 1 < PRIORITY_TRIES => {
                tried += 1;
            }
            other => return other,
        }
    }
}

fn link_create(prog: BorrowedFd<'_>, pf: u32, hooknum: u32, priority: i32) -> io::Result<OwnedFd> {
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the link-create member of the zeroed union.
    let lc = unsafe { &mut attr.link_create };
    lc.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    lc.attach_type = bpf_attach_type::BPF_NETFILTER as u32;
    lc.__bindgen_anon_3.netfilter.pf = pf;
    lc.__bindgen_anon_3.netfilter.hooknum = hooknum;
    lc.__bindgen_anon_3.netfilter.priority = priority;
    bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}
