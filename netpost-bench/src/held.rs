//! The BPF programs a process holds, directly or through links, as the kernel describes them:
//! their full names (the kernel keeps 15 characters), types, the tracepoints they are
//! attached to, when they were loaded, and their run-time statistics.
use std::{
    collections::BTreeMap,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context as _;
use aya::programs::{ProgramInfo, loaded_programs};
use aya_obj::generated::bpf_prog_type;
use serde_json::{Value, json};

/// What /proc/PID/fdinfo says about the BPF fds of `pid`: program id -> the tracepoints its
/// links attach it to (empty for a program fd or another kind of link).
pub fn prog_ids(pid: u32) -> anyhow::Result<BTreeMap<u32, Vec<String>>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue; // the fd was closed meanwhile
        };
        if let Some((id, tp)) = parse_fdinfo(&text) {
            let tps = ids.entry(id).or_default();
            tps.extend(tp);
            tps.sort();
            tps.dedup();
        }
    }
    Ok(ids)
}

/// A program or link fd's `prog_id:`, with a raw tracepoint link's `tp_name:`.
fn parse_fdinfo(fdinfo: &str) -> Option<(u32, Option<String>)> {
    let field = |name: &str| {
        fdinfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let id = field("prog_id:")?.parse().ok()?;
    Some((id, field("tp_name:").map(str::to_owned)))
}

/// A program type as the report names it.
pub fn kind(t: bpf_prog_type) -> String {
    match t {
        bpf_prog_type::BPF_PROG_TYPE_XDP => "xdp".into(),
        bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS => "tc".into(),
        bpf_prog_type::BPF_PROG_TYPE_NETFILTER => "netfilter".into(),
        bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT => "raw_tp".into(),
        // netpost's only tracing programs are BTF-typed tracepoints.
        bpf_prog_type::BPF_PROG_TYPE_TRACING => "tp_btf".into(),
        bpf_prog_type::BPF_PROG_TYPE_TRACEPOINT => "tracepoint".into(),
        other => format!("{other:?}"),
    }
}

/// The name in netpost's object that the kernel's (cut to 15 characters) stands for.
pub fn full_name(kernel: &str, object_names: &[String]) -> String {
    let mut matches = object_names.iter().filter(|n| n.starts_with(kernel));
    match (matches.next(), matches.next()) {
        (Some(only), None) if kernel.len() >= 15 => only.clone(),
        _ => kernel.to_owned(),
    }
}

/// The function names of the programs in netpost's object.
pub fn object_names() -> Vec<String> {
    aya_obj::Object::parse(netpost::loader::EBPF_OBJECT)
        .map(|obj| obj.programs.keys().cloned().collect())
        .unwrap_or_default()
}

/// One held program, now.
pub struct Held {
    pub id: u32,
    pub name: String,
    pub kernel_name: String,
    pub kind: String,
    pub tracepoints: Vec<String>,
    pub run_ns: u64,
    pub runs: u64,
    /// When its load began (the kernel stamps it before the verifier runs), ns since the
    /// Unix epoch.
    pub loaded_at_ns: Option<u128>,
    pub verified_insns: Option<u32>,
}

/// Every program `ids` names that is still loaded.
pub fn read(ids: &BTreeMap<u32, Vec<String>>, names: &[String]) -> Vec<Held> {
    loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|p| Some(describe(&p, ids.get(&p.id())?, names)))
        .collect()
}

fn describe(p: &ProgramInfo, tracepoints: &[String], names: &[String]) -> Held {
    let kernel_name = p.name_as_str().unwrap_or("?").to_owned();
    Held {
        id: p.id(),
        name: full_name(&kernel_name, names),
        kernel_name,
        kind: kind(p.program_type()),
        tracepoints: tracepoints.to_vec(),
        run_ns: p.run_time().as_nanos() as u64,
        runs: p.run_count(),
        loaded_at_ns: p
            .loaded_at()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d: Duration| d.as_nanos()),
        verified_insns: p.verified_instruction_count(),
    }
}

/// `netpost-bench held --pid P`: the programs P holds, in load order.
pub fn run(pid: u32) -> anyhow::Result<Value> {
    let mut held = read(&prog_ids(pid)?, &object_names());
    held.sort_by_key(|h| (h.loaded_at_ns, h.id));
    let programs: Vec<Value> = held
        .iter()
        .map(|h| {
            json!({
                "name": h.name,
                "kind": h.kind,
                "tracepoints": h.tracepoints,
                "loaded_at_ns": h.loaded_at_ns.map(|n| n as u64),
                "verified_insns": h.verified_insns,
            })
        })
        .collect();
    Ok(json!({"pid": pid, "programs": programs}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prog_id_and_tracepoint_from_fdinfo() {
        let link = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2078\nlink_type:\txdp\nlink_id:\t7\nprog_tag:\tab\nprog_id:\t42\n";
        assert_eq!(parse_fdinfo(link), Some((42, None)));
        let tp = "link_type:\traw_tracepoint\nlink_id:\t9\nprog_tag:\tcd\nprog_id:\t43\ntp_name:\tfib_table_lookup\n";
        assert_eq!(
            parse_fdinfo(tp),
            Some((43, Some("fib_table_lookup".to_owned())))
        );
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t0100000\n"), None);
    }

    #[test]
    fn kernel_names_map_back_to_the_objects_names() {
        let names = [
            "netpost_kfree_skb".to_owned(),
            "netpost_fib_lookup".to_owned(),
            "netpost_fib6_lookup".to_owned(),
            "netpost_xdp".to_owned(),
        ];
        assert_eq!(full_name("netpost_kfree_s", &names), "netpost_kfree_skb");
        assert_eq!(full_name("netpost_fib6_lo", &names), "netpost_fib6_lookup");
        assert_eq!(full_name("netpost_xdp", &names), "netpost_xdp");
        // Not cut, or ambiguous: kept as the kernel has it.
        assert_eq!(full_name("netpost_fib", &names), "netpost_fib");
        assert_eq!(full_name("other", &names), "other");
    }
}
