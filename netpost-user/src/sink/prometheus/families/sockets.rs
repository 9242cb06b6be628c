//! Local TCP sockets, from the kernel's socket tracepoints: transitions into each TCP state,
//! SYN-ACK retransmissions and resets. Label values are the kernel's TCP states (a fixed set),
//! every one of them served (0 until entered) so a series never appears out of nowhere.
use std::fmt;

use netpost_common::sockets::STATE_NAMES;
use prometheus_client::encoding::DescriptorEncoder;

use super::{NO_LABELS, counter};
use crate::model::SocketsStats;

pub fn encode(enc: &mut DescriptorEncoder, s: &SocketsStats) -> fmt::Result {
    counter(
        enc,
        "netpost_socket_state_transitions",
        "Transitions of local TCP sockets into each state since start (tcp_state: the kernel's names, as in the JSON's sockets.states).",
        None,
        STATE_NAMES[1..].iter().map(|state| {
            (
                [("tcp_state", *state)],
                s.states.get(*state).copied().unwrap_or(0),
            )
        }),
    )?;
    counter(
        enc,
        "netpost_socket_synack_retransmits",
        "SYN-ACKs local listening sockets sent again (the client's ACK did not come).",
        None,
        [(NO_LABELS, s.synack_retransmits)],
    )?;
    counter(
        enc,
        "netpost_socket_resets",
        "TCP resets local sockets sent (direction=\"sent\", also for packets no socket wanted) and received (\"received\").",
        None,
        [("sent", s.resets_sent), ("received", s.resets_received)]
            .map(|(direction, n)| ([("direction", direction)], n)),
    )
}
