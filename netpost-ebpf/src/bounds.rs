//! Bounds the verifier can see on values that came through memory (maps, the stack).
//!
//! A bounds check in Rust does not always reach the verifier: having checked `x < 32` the
//! compiler may drop a following `x & 31` as a no-op, spill `x`, and index with a reloaded
//! copy whose bound older verifiers (6.1) never learnt (they do not carry a check over to
//! other copies of a spilled value). The helpers compute in inline asm, which the compiler
//! cannot fold, so the bound sits on the very register used; a spilled bounded register
//! keeps its bound.

/// `v` when below `N`, else None. The comparison too sits in the asm: a check in Rust
/// before it lets the compiler branch on copies of `v` that the verifier cannot tie
/// together (it then walks paths that cannot happen, with `v` unbounded).
#[inline(always)]
pub fn below<const N: u64>(v: u32) -> Option<u32> {
    let mut v = v as u64;
    let ok: u64;
    // SAFETY: register arithmetic and a forward jump within the block.
    unsafe {
        core::arch::asm!(
            "{ok} = 1",
            "if {v} < {n} goto 1f",
            "{v} = 0",
            "{ok} = 0",
            "1:",
            v = inout(reg) v,
            ok = out(reg) ok,
            n = const N,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (ok != 0).then_some(v as u32)
}
