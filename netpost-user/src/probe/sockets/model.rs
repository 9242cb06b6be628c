//! Local TCP sockets in the Snapshot's `sockets` object: transitions into each TCP state,
//! SYN-ACK retransmissions, resets sent and received, since start. Pure.
use std::collections::BTreeMap;

use netpost_common::sockets;
use serde::Serialize;

pub const NAME: &str = "sockets";

/// The counters' slots, summed over CPUs.
pub type SockCounts = [u64; sockets::COUNT as usize];

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
