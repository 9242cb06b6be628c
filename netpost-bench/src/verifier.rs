//! What the running kernel's verifier makes of every netpost program: loaded or not (with the
//! end of the verifier's log, and the whole log in a file), instructions it processed
//! (`verified_insns`, the number the 1M limit applies to), and the translated and JITed
//! sizes. Loaded with netpost's own globals, as netpost loads them, one program at a time so
//! one failure does not hide the others. Runs on any kernel (the matrix runs it in VMs).
use std::{
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use aya::{Btf, EbpfLoader, programs::Program};
use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};
use netpost::{
    loader::{self, EBPF_OBJECT, LoadOptions},
    probe::{api::RecordOptions, netfilter::bpf as netfilter},
};
use serde_json::{Value, json};

/// Programs of the object netpost never loads itself (the bench's floors and producer).
const NOT_NETPOST: [&str; 4] = [
    "netpost_floor_xdp",
    "netpost_floor_tc",
    "netpost_floor_nf",
    "netpost_bench_events",
];

/// One JSON object: the kernel release and one entry per program.
pub fn run(log_dir: Option<&Path>) -> anyhow::Result<Value> {
    // The globals and map sizes of a default (`full`) run, set by netpost's own probes: each
    // program sees what it sees in netpost. (A probe whose fields this kernel lacks keeps the
    // object's defaults: netpost itself leaves it off.) The drop recorder on: its code in the
    // drop program is verified only then (off, the verifier drops it).
    let options = LoadOptions {
        record: Some(RecordOptions::default()),
        ..LoadOptions::default()
    };
    let (_, object) = loader::configure(&options);
    let btf = Btf::from_sys_fs().ok();
    let mut ebpf_loader = EbpfLoader::new();
    ebpf_loader.btf(btf.as_ref());
    object.apply(&mut ebpf_loader);
    let mut ebpf = ebpf_loader
        .load(EBPF_OBJECT)
        .context("loading the eBPF object (maps)")?;

    let mut programs = Vec::new();
    // Netfilter programs first: their loader relocates against every map of `ebpf`.
    for name in [netfilter::PROG_NF_HEAD, netfilter::PROG_NF_TAIL] {
        let entry = match netfilter::load_named(&ebpf, EBPF_OBJECT, &[name]) {
            Ok(fds) => loaded(name, "netfilter", fds[0].as_fd())?,
            // netpost's netfilter loader keeps only the log's last lines.
            Err(e) => failed(name, "netfilter", &e, None, log_dir)?,
        };
        programs.push(entry);
    }
    let mut names: Vec<String> = ebpf
        .programs()
        .map(|(name, _)| name.to_owned())
        .filter(|name| !NOT_NETPOST.contains(&name.as_str()))
        .collect();
    names.sort();
    for name in names {
        let program = ebpf.program_mut(&name).context("program vanished")?;
        let (kind, result) = match program {
            Program::Xdp(p) => (
                "xdp",
                p.load().map(|()| p.fd().map(|fd| fd.as_fd().as_raw_fd())),
            ),
            Program::SchedClassifier(p) => (
                "tc",
                p.load().map(|()| p.fd().map(|fd| fd.as_fd().as_raw_fd())),
            ),
            Program::RawTracePoint(p) => (
                "raw_tp",
                p.load().map(|()| p.fd().map(|fd| fd.as_fd().as_raw_fd())),
            ),
            _ => continue,
        };
        let entry = match result {
            Ok(Ok(raw)) => {
                // SAFETY: the program's fd, alive while `ebpf` holds the program.
                loaded(&name, kind, unsafe { BorrowedFd::borrow_raw(raw) })?
            }
            Ok(Err(e)) => failed(&name, kind, &e.to_string(), None, log_dir)?,
            Err(e) => {
                let log = match &e {
                    aya::programs::ProgramError::LoadError { verifier_log, .. } => {
                        Some(verifier_log.to_string())
                    }
                    _ => None,
                };
                failed(&name, kind, &format!("{e}"), log.as_deref(), log_dir)?
            }
        };
        programs.push(entry);
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Ok(json!({ "kernel": release.trim(), "programs": programs }))
}

fn loaded(name: &str, kind: &str, fd: BorrowedFd<'_>) -> anyhow::Result<Value> {
    let info = prog_info(fd).with_context(|| format!("{name}: BPF_OBJ_GET_INFO_BY_FD"))?;
    Ok(json!({
        "name": name,
        "type": kind,
        "loaded": true,
        "verified_insns": info.verified_insns,
        "xlated_bytes": info.xlated_prog_len,
        "jited_bytes": info.jited_prog_len,
    }))
}

/// A program the kernel refused: the error's last lines (with the verifier's summary), the
/// whole log to `log_dir/<name>.log`.
fn failed(
    name: &str,
    kind: &str,
    error: &str,
    log: Option<&str>,
    log_dir: Option<&Path>,
) -> anyhow::Result<Value> {
    let text = log.unwrap_or(error);
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    let mut saved: Option<PathBuf> = None;
    if let (Some(dir), Some(log)) = (log_dir, log) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.log"));
        std::fs::write(&path, log).with_context(|| format!("writing {}", path.display()))?;
        saved = Some(path);
    }
    Ok(json!({
        "name": name,
        "type": kind,
        "loaded": false,
        "error": error.lines().next().unwrap_or(""),
        "log_tail": tail.into_iter().rev().collect::<Vec<_>>(),
        "log_file": saved.map(|p| p.display().to_string()),
    }))
}

fn prog_info(fd: BorrowedFd<'_>) -> std::io::Result<bpf_prog_info> {
    // SAFETY: all-zero is a valid bpf_prog_info and bpf_attr.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the info member of the zeroed union; `info` outlives the call.
    let a = unsafe { &mut attr.info };
    a.bpf_fd = fd.as_raw_fd() as u32;
    a.info_len = size_of::<bpf_prog_info>() as u32;
    a.info = &mut info as *mut bpf_prog_info as u64;
    netpost::bpf_sys::bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}
