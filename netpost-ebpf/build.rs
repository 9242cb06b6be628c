use which::which;

/// The eBPF build depends on the bpf-linker binary, which cargo cannot see: rebuild when it
/// changes (e.g. after `cargo xtask` reinstalls it against another LLVM).
fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
