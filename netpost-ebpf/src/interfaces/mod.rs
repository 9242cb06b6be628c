//! Per-device counters (netpost-user's `probe/interfaces`): XDP ingress and tc ingress/egress.
//! Their shared per-packet path (`count`) and maps (`maps`) stay at the crate root: moved in
//! here, `count_tc`'s symbol path changed and LLVM compiled it 39 instructions longer, and
//! this reorganisation must not change what runs per packet.
mod tc;
mod xdp;
