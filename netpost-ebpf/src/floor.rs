//! Empty programs, one per program type netpost uses, and the event producer: the benchmark (`cargo xtask bench`)
//! runs them next to netpost's programs so the cost of running *any* program of that type
//! (the floor) can be told apart from the cost of netpost's own work. netpost never loads
//! or attaches them: the loader only loads programs it asks for by name.
use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

const NF_ACCEPT: i32 = 1;

/// The benchmark's event producer: one flow event per run, so BPF_PROG_TEST_RUN with
/// `repeat` N submits N events to netpost's flow-event ring buffer at the kernel's pace. A tc
/// program: an XDP test run with repeat > 1 swaps the XDP dispatcher twice, waiting for RCU
/// (~20 ms per call).
#[classifier]
pub fn netpost_bench_events(_ctx: TcContext) -> i32 {
    crate::flows::emit_bench_event();
    TC_ACT_UNSPEC
}

#[xdp]
pub fn netpost_floor_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn netpost_floor_tc(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// A netfilter program, placed like netpost's own (see netfilter.rs): the "socket" section,
/// loaded by hand as BPF_PROG_TYPE_NETFILTER.
#[unsafe(no_mangle)]
#[unsafe(link_section = "socket")]
pub fn netpost_floor_nf(_ctx: *mut u8) -> i32 {
    NF_ACCEPT
}
