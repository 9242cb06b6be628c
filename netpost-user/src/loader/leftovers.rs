//! netpost's tc filters left behind by a netpost that did not exit (SIGKILL, a crash, a
//! power cut of its terminal). Before 6.6 the kernel has no TCX, so tc programs are attached
//! as netlink filters on a clsact qdisc; unlike fd-based links these stay when the process
//! is gone, and keep running netpost's programs (and costing every packet) with nobody
//! reading their counters.
//!
//! netpost's filters are recognisable by the name aya attaches them with: the program's,
//! `netpost_tc_in` or `netpost_tc_out`. One is stale when no process holds its program: a
//! running netpost keeps an fd of each program it attached (seen in /proc/PID/fdinfo). That
//! look sees the processes of netpost's pid namespace only; a netpost running in another
//! pid namespace that shares this network namespace would look stale.
use std::{collections::HashMap, fs, io};

use super::tcnl::{Filter, Side, Socket};
use crate::probe::interfaces::{PROG_TC_IN, PROG_TC_OUT};

/// Whether `f` is a filter netpost attaches.
pub fn is_netposts(f: &Filter) -> bool {
    f.kind == "bpf"
        && f.bpf_name
            .as_deref()
            .is_some_and(|n| n == PROG_TC_IN || n == PROG_TC_OUT)
}

/// Every BPF program id some process holds an fd of (a program fd or a link), with one pid
/// holding it, from the `prog_id:` lines of /proc/PID/fdinfo/FD.
pub fn held_programs() -> HashMap<u32, u32> {
    let mut held = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return held;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(info) = fs::read_to_string(fd.path())
                && let Some(id) = prog_id(&info)
            {
                held.entry(id).or_insert(pid);
            }
        }
    }
    held
}

/// The program id in one fdinfo file's text.
fn prog_id(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
}

/// What a clean-up of one interface found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// netpost's filters removed: nobody held their programs.
    pub removed: Vec<Filter>,
    /// netpost's filters left alone, with the pid of the running netpost holding each.
    pub live: Vec<(Filter, u32)>,
    /// The clsact qdisc was removed: the removed filters were all it held.
    pub qdisc_removed: bool,
}

impl Cleaned {
    /// What a person reads about one interface (nothing when nothing of netpost's was there).
    pub fn lines(&self, iface: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .removed
            .iter()
            .map(|f| {
                format!(
                    "removed tc filter {} from {iface} {} (pref {}): left by a netpost that did not exit",
                    f.bpf_name.as_deref().unwrap_or("?"),
                    f.side.name(),
                    f.priority
                )
            })
            .collect();
        if self.qdisc_removed {
            lines.push(format!(
                "removed the clsact qdisc of {iface}: nothing else was attached to it"
            ));
        }
        lines.extend(self.live.iter().map(|(f, pid)| {
            format!(
                "left tc filter {} on {iface} {} (pref {}): its program is held by running process {pid}",
                f.bpf_name.as_deref().unwrap_or("?"),
                f.side.name(),
                f.priority
            )
        }));
        lines
    }
}

/// Which of `filters` (one interface's) to remove: netpost's whose program nobody holds.
/// `held` is asked only when netpost has filters there.
pub fn plan(filters: &[Filter], held: &mut dyn FnMut() -> HashMap<u32, u32>) -> Cleaned {
    let ours: Vec<&Filter> = filters.iter().filter(|f| is_netposts(f)).collect();
    let mut out = Cleaned::default();
    if ours.is_empty() {
        return out;
    }
    let held = held();
    for f in ours {
        match f.prog_id.and_then(|id| held.get(&id)) {
            Some(pid) => out.live.push((f.clone(), *pid)),
            None => out.removed.push(f.clone()),
        }
    }
    // Only a qdisc that held nothing but the filters removed here goes.
    out.qdisc_removed = !out.removed.is_empty() && out.removed.len() == filters.len();
    out
}

/// Removes netpost's stale filters from `ifindex` (and its clsact qdisc when they were all
/// it held). `held` caches the process scan across interfaces.
pub fn clean(
    sock: &mut Socket,
    ifindex: u32,
    held: &mut Option<HashMap<u32, u32>>,
) -> io::Result<Cleaned> {
    let filters = sock.all_filters(ifindex)?;
    let mut cleaned = plan(&filters, &mut || {
        held.get_or_insert_with(held_programs).clone()
    });
    for f in &cleaned.removed {
        match sock.delete_filter(ifindex, f) {
            // Removed meanwhile (by another netpost's start, a cleanup): gone is what we want.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => other?,
        }
    }
    if cleaned.qdisc_removed {
        cleaned.qdisc_removed = sock.delete_clsact(ifindex)?;
    }
    Ok(cleaned)
}

/// Whether every filter on `ifindex`'s clsact qdisc is netpost's (true when it has none).
pub fn only_netposts(sock: &mut Socket, ifindex: u32) -> io::Result<bool> {
    Ok(sock.all_filters(ifindex)?.iter().all(is_netposts))
}

/// Whether `ifindex`'s clsact qdisc has no filter left on either side.
pub fn is_unused(sock: &mut Socket, ifindex: u32) -> io::Result<bool> {
    for side in Side::BOTH {
        if !sock.filters(ifindex, side)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(name: &str, id: u32, side: Side, priority: u16) -> Filter {
        Filter {
            side,
            priority,
            protocol: 0x0300,
            handle: 1,
            kind: "bpf".into(),
            bpf_name: Some(name.into()),
            prog_id: Some(id),
        }
    }

    #[test]
    fn stale_filters_go_live_ones_and_others_stay() {
        let foreign = filter("cilium_ingress", 7, Side::Ingress, 1);
        let stale_in = filter(PROG_TC_IN, 10, Side::Ingress, 49152);
        let stale_out = filter(PROG_TC_OUT, 11, Side::Egress, 49152);
        let live_in = filter(PROG_TC_IN, 20, Side::Ingress, 49151);
        let all = [
            foreign.clone(),
            stale_in.clone(),
            stale_out.clone(),
            live_in.clone(),
        ];
        let mut asked = 0;
        let got = plan(&all, &mut || {
            asked += 1;
            HashMap::from([(20, 4242), (7, 1)])
        });
        assert_eq!(asked, 1);
        assert_eq!(got.removed, [stale_in.clone(), stale_out.clone()]);
        assert_eq!(got.live, [(live_in, 4242)]);
        assert!(!got.qdisc_removed, "other filters are still on it");
        assert_eq!(
            got.lines("veth0"),
            [
                "removed tc filter netpost_tc_in from veth0 ingress (pref 49152): left by a netpost that did not exit",
                "removed tc filter netpost_tc_out from veth0 egress (pref 49152): left by a netpost that did not exit",
                "left tc filter netpost_tc_in on veth0 ingress (pref 49151): its program is held by running process 4242",
            ]
        );

        let alone = plan(&[stale_in, stale_out], &mut HashMap::new);
        assert!(
            alone.qdisc_removed,
            "only netpost's stale filters: the qdisc goes too"
        );
        assert_eq!(
            alone.lines("lo").last().unwrap(),
            "removed the clsact qdisc of lo: nothing else was attached to it"
        );
    }

    #[test]
    fn nothing_of_netposts_asks_nothing() {
        let mut asked = false;
        let got = plan(&[filter("other", 3, Side::Egress, 1)], &mut || {
            asked = true;
            HashMap::new()
        });
        assert!(!asked, "no process scan without netpost filters");
        assert_eq!(got, Cleaned::default());
        assert!(got.lines("x").is_empty());
    }

    #[test]
    fn fdinfo_prog_ids_are_read() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t3\nprog_jited:\t1\nprog_tag:\tab\nmemlock:\t4096\nprog_id:\t97\n";
        assert_eq!(prog_id(info), Some(97));
        assert_eq!(prog_id("pos:\t0\n"), None);
        // This test process holds no program, but the scan must work.
        let _ = held_programs();
    }
}
