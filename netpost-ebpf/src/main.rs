//! netpost's kernel programs, one module per probe of netpost-user's `probe/` (interfaces:
//! XDP and tc, with `count` and `maps`; netfilter; flows; drops; routes; sockets), whose
//! shared types sit in the netpost-common module of the same name (interfaces: `counters`).
//! They share the parser and the accounting in `netpost-common`, packet access in `packet`
//! and kernel struct reads in `kernel`. Programs only observe: XDP passes every frame, tc
//! hands every skb on to whatever runs next.
#![no_std]
#![no_main]
// `bpf_target_arch` is set by aya-build (the architecture netpost-user is built for),
// unknown to check-cfg.
#![allow(unexpected_cfgs)]
// Inline asm for BPF (packet.rs, bounds.rs); the crate builds with nightly anyway.
#![feature(asm_experimental_arch)]

mod bounds;
mod count;
mod drops;
mod floor;
mod flows;
mod interfaces;
mod kernel;
mod maps;
mod netfilter;
mod packet;
mod record;
mod routes;
mod sockets;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path; this only satisfies the compiler.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
