//! `conntrack -E` as a witness: the events conntrack itself reports in a namespace. An entry
//! shows as NEW once it is confirmed (inserted into the table), never while it is only
//! attached to a packet that may still be dropped.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::netns::NetNs;

/// A running `conntrack -E`, stopped on drop.
pub struct Events {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Events {
    /// Starts listening for conntrack events in `ns`.
    pub fn start(ns: &NetNs) -> Events {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "conntrack", "-E"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn conntrack -E");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stdout.take().expect("stdout pipe");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // It prints nothing when ready; its netlink subscription is made right at start.
        std::thread::sleep(Duration::from_millis(300));
        Events { child, lines }
    }

    /// Stops it (SIGTERM: it flushes its output and exits) and returns every event line.
    pub fn stop(mut self) -> Vec<String> {
        // ip netns exec execs conntrack: the child's pid is conntrack's.
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        // The reader thread sees EOF right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The table's entry count in `ns` (`nf_conntrack_count`).
pub fn count(ns: &NetNs) -> u64 {
    ns.exec("sysctl", &["-n", "net.netfilter.nf_conntrack_count"])
        .trim()
        .parse()
        .expect("nf_conntrack_count")
}
