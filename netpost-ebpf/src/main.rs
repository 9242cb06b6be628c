//! netpost's kernel programs. Each hook has one small module; they share the parser and the
//! accounting in `netpost-common` and the counting in `count`. Programs only observe: XDP
//! passes every frame, tc hands every skb on to whatever runs next.
#![no_std]
#![no_main]
// `bpf_target_arch` is set by aya-build (the architecture netpost-user is built for),
// unknown to check-cfg.
#![allow(unexpected_cfgs)]
// Inline asm for BPF (packet.rs) where it is used; the crate builds with nightly anyway.
#![cfg_attr(
    any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"),
    feature(asm_experimental_arch)
)]

mod count;
mod drops;
mod floor;
mod flows;
mod kernel;
mod maps;
mod netfilter;
mod packet;
mod routes;
mod sockets;
mod tc;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path; this only satisfies the compiler.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
