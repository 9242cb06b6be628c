//! CPU time and memory of a process, from /proc (parsing kept pure for unit tests).

/// utime + stime in clock ticks: fields 14 and 15 of /proc/<pid>/stat, counted after the
/// `)` that closes the command name (which may itself contain spaces or parentheses).
/// Covers every thread of the process, including ones that have ended.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 (state) is the first here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `Vm...:` line of /proc/<pid>/status in MiB (the kernel writes kB).
pub fn status_mib(status: &str, key: &str) -> Option<f64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let kb: f64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb / 1024.0)
}

pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// One reading of a live process.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub at: std::time::Instant,
    pub ticks: u64,
    pub rss_mib: f64,
    pub hwm_mib: f64,
}

pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Reading {
        at: std::time::Instant::now(),
        ticks: cpu_ticks(&stat)?,
        rss_mib: status_mib(&status, "VmRSS")?,
        hwm_mib: status_mib(&status, "VmHWM")?,
    })
}

/// CPU% of one core between two readings.
pub fn cpu_pct(a: &Reading, b: &Reading, ticks_per_sec: f64) -> Option<f64> {
    let secs = (b.at - a.at).as_secs_f64();
    (secs > 0.0).then(|| (b.ticks.saturating_sub(a.ticks)) as f64 / ticks_per_sec / secs * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skips_a_tricky_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        let stat =
            "4242 (net (post) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 37 5 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(42));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_values_in_mib() {
        let status = "Name:\tnetpost\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_mib(status, "VmHWM"), Some(20.0));
        assert_eq!(status_mib(status, "VmRSS"), Some(10.0));
        assert_eq!(status_mib(status, "VmSwap"), None);
    }
}
