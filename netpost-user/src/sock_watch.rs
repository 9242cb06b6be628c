//! Local TCP sockets from the kernel's own tracepoints: state transitions, SYN-ACK
//! retransmissions, resets sent and received (the sockets' view, next to the wire's view of
//! the flow table).
use std::{collections::BTreeMap, io};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use netpost_common::flows::{SockOffsets, sockets};
use serde::Serialize;

use crate::{kernel_btf::KernelBtf, maps_util};

pub const GLOBAL_SOCK_OFFSETS: &str = "NETPOST_SOCK_OFFSETS";
const MAP_SOCKETS: &str = "NETPOST_SOCKETS";
/// (program, tracepoint)
const PROGRAMS: [(&str, &str); 4] = [
    ("netpost_sk_state", "inet_sock_set_state"),
    ("netpost_synack_rtx", "tcp_retransmit_synack"),
    ("netpost_rst_sent", "tcp_send_reset"),
    ("netpost_rst_recv", "tcp_receive_reset"),
];

pub type SockCounts = [u64; sockets::COUNT as usize];

pub fn offsets(btf: &KernelBtf, watch_inum: u32) -> Result<SockOffsets, String> {
    let mut o = btf.sock_offsets().map_err(|e| e.to_string())?;
    o.watch_inum = watch_inum;
    Ok(o)
}

pub fn load(ebpf: &mut Ebpf) -> Result<(), String> {
    for (name, _) in PROGRAMS {
        maps_util::load_raw_tp(ebpf, name)?;
    }
    Ok(())
}

pub fn attach(ebpf: &mut Ebpf) -> Result<(), String> {
    for (name, tracepoint) in PROGRAMS {
        maps_util::attach_raw_tp(ebpf, name, tracepoint)?;
    }
    Ok(())
}

pub struct SockMap(PerCpuArray<MapData, u64>);

impl SockMap {
    pub fn take(ebpf: &mut Ebpf) -> Result<SockMap, String> {
        let map = ebpf
            .take_map(MAP_SOCKETS)
            .ok_or_else(|| format!("map {MAP_SOCKETS} missing"))?;
        Ok(SockMap(
            PerCpuArray::try_from(map).map_err(|e| e.to_string())?,
        ))
    }

    pub fn read(&self) -> io::Result<SockCounts> {
        maps_util::sum_array(&self.0)
    }
}

/// The JSON's `sockets` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SocketsStats {
    /// Transitions of local TCP sockets into each state since start.
    pub states: BTreeMap<String, u64>,
    pub synack_retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
}

/// Counts since `baseline`, named.
pub fn stats(now: &SockCounts, baseline: &SockCounts) -> SocketsStats {
    let d = |i: u32| now[i as usize].saturating_sub(baseline[i as usize]);
    SocketsStats {
        states: (1..sockets::STATE_NAMES.len() as u32)
            .map(|s| (sockets::STATE_NAMES[s as usize].to_string(), d(s)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        synack_retransmits: d(sockets::SYNACK_RETRANSMITS),
        resets_sent: d(sockets::RESETS_SENT),
        resets_received: d(sockets::RESETS_RECEIVED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_named_and_taken_since_the_baseline() {
        let mut base: SockCounts = [0; sockets::COUNT as usize];
        base[1] = 2;
        let mut now = base;
        now[1] = 5; // ESTABLISHED
        now[10] = 1; // LISTEN
        now[sockets::RESETS_SENT as usize] = 3;
        let s = stats(&now, &base);
        assert_eq!(s.states["ESTABLISHED"], 3);
        assert_eq!(s.states["LISTEN"], 1);
        assert!(!s.states.contains_key("CLOSE"), "zero states are left out");
        assert_eq!(s.resets_sent, 3);
    }
}
