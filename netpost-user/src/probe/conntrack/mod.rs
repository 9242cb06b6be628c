//! The conntrack table of the namespace netpost runs in, read from /proc every interval (no
//! programs of its own; the entries created per source come from the netfilter probe).
pub mod model;

use std::io;

use aya::Ebpf;

use crate::{
    error::SetupError,
    model::RawSample,
    probe::{
        api::{Probe, Setup, Target, Tick},
        status::Status,
    },
};
use model::{ConntrackRaw, parse_stat};

const SYSCTL_DIR: &str = "/proc/sys/net/netfilter";
/// Per-namespace: /proc/self/net follows the namespace netpost entered.
const STAT_FILE: &str = "/proc/self/net/stat/nf_conntrack";

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The current counters, or None where the kernel has no conntrack.
pub fn read() -> Option<ConntrackRaw> {
    Some(ConntrackRaw {
        count: read_u64(&format!("{SYSCTL_DIR}/nf_conntrack_count"))?,
        max: read_u64(&format!("{SYSCTL_DIR}/nf_conntrack_max")).unwrap_or(0),
        buckets: read_u64(&format!("{SYSCTL_DIR}/nf_conntrack_buckets")).unwrap_or(0),
        stat: std::fs::read_to_string(STAT_FILE)
            .map(|t| parse_stat(&t))
            .unwrap_or_default(),
    })
}

#[derive(Default)]
pub struct Conntrack {
    status: Status,
}

impl Probe for Conntrack {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, _setup: &mut Setup<'_>) {}

    fn load(&mut self, _ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        Ok(())
    }

    fn take_maps(&mut self, _ebpf: &mut Ebpf) -> Result<(), SetupError> {
        Ok(())
    }

    fn attach(&mut self, _ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        self.status = Status::Reading;
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    /// The kernel's counters count since conntrack started: the first rates are taken
    /// against their values now.
    fn baseline(&mut self, zero: &mut RawSample) -> io::Result<()> {
        zero.conntrack = read();
        Ok(())
    }

    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        raw.conntrack = read();
        Ok(())
    }
}
