//! Empty programs, one per program type netpost uses, and the event producer: the benchmark (`cargo xtask bench`)
//! runs them next to netpost's programs so the cost of running *any* program of that type
//! (the floor) can be told apart from the cost of netpost's own work, in BPF_PROG_TEST_RUN
//! and on the real path (attached at netpost's hooks, where their run time is what the
//! kernel's run-time statistics add to every run). netpost never loads or attaches them: the
//! loader only loads programs it asks for by name.
use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action},
    macros::{btf_tracepoint, classifier, raw_tracepoint, xdp},
    programs::{BtfTracePointContext, RawTracePointContext, TcContext, XdpContext},
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

/// A raw tracepoint program; the bench attaches it where netpost's raw tracepoint programs are.
#[raw_tracepoint]
pub fn netpost_floor_raw_tp(_ctx: RawTracePointContext) -> i32 {
    0
}

/// A BTF-typed tracepoint program (`tp_btf`); the bench names its tracepoint when it loads it.
/// (Kernel names keep 15 characters: this one must not begin like `netpost_floor_tc`.)
#[btf_tracepoint]
pub fn netpost_floor_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}
