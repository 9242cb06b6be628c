//! What netpost's kernel programs cost on the real packet path: the kernel's own run-time
//! statistics (BPF_ENABLE_STATS; on only while the returned fd is open, so they switch off
//! again even if this process dies) for the programs one netpost process holds, over a window.
use std::{collections::BTreeMap, time::Duration};

use anyhow::Context as _;
use aya::{
    programs::loaded_programs,
    sys::{Stats, enable_stats},
};
use serde_json::{Value, json};

/// The ids of the BPF programs `pid` holds, directly or through links: /proc fdinfo of a
/// program or link fd has a `prog_id:` line.
fn prog_ids(pid: u32) -> anyhow::Result<Vec<u32>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue; // the fd was closed meanwhile
        };
        ids.extend(parse_prog_id(&text));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn parse_prog_id(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("prog_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// id -> (name, run time, run count)
fn snapshot(ids: &[u32]) -> BTreeMap<u32, (String, Duration, u64)> {
    loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .map(|p| {
            let name = p.name_as_str().unwrap_or("?").to_owned();
            (p.id(), (name, p.run_time(), p.run_count()))
        })
        .collect()
}

pub fn measure(pid: u32, secs: f64) -> anyhow::Result<Value> {
    let _stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
    let ids = prog_ids(pid)?;
    let before = snapshot(&ids);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = snapshot(&ids);
    let mut programs = serde_json::Map::new();
    let mut total_ns = 0u128;
    for (id, (name, time, count)) in &after {
        let Some((_, time0, count0)) = before.get(id) else {
            continue;
        };
        let runs = count - count0;
        let ns = time.saturating_sub(*time0).as_nanos();
        total_ns += ns;
        // Several programs may share a name (one per attach point): add them up.
        let entry = programs
            .entry(name.clone())
            .or_insert_with(|| json!({"runs": 0u64, "run_ns": 0u64}));
        entry["runs"] = json!(entry["runs"].as_u64().unwrap_or(0) + runs);
        entry["run_ns"] = json!(entry["run_ns"].as_u64().unwrap_or(0) + ns as u64);
    }
    Ok(json!({
        "secs": secs,
        "programs": programs,
        "total_run_ns": total_ns as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prog_id_from_fdinfo() {
        let link = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2078\nlink_type:\txdp\nlink_id:\t7\nprog_tag:\tab\nprog_id:\t42\n";
        assert_eq!(parse_prog_id(link), Some(42));
        assert_eq!(parse_prog_id("pos:\t0\nflags:\t0100000\n"), None);
    }
}
