//! What the numbers were measured on: they mean little without the machine, kernel and commit.
use serde_json::{Value, json};

use crate::cmd::Cmd;
use crate::workspace;

pub fn describe() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let git = |args: &[&str]| {
        Cmd::new("git")
            .args(args)
            .current_dir(workspace::root())
            .probe()
            .map(|s| s.trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    // Uncommitted changes to tracked files: the numbers are not the commit's alone.
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({
        "date": Cmd::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).probe().map(|s| s.trim().to_owned()),
        "commit": commit,
        "dirty": dirty,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "machine": {
            "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
            "mem_total_mib": mem_total_mib(&read("/proc/meminfo")),
            "cpu_model": cpu_model(&cpuinfo),
        },
    })
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_model_and_memory() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model(""), None);
        assert_eq!(
            mem_total_mib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24000)
        );
        assert_eq!(mem_total_mib("nothing"), None);
    }
}
