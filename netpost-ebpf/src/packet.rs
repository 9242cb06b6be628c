//! Bounds-checked access to packet bytes, in the shape the shared parser needs.
use core::mem::MaybeUninit;

use aya_ebpf::{helpers::generated::bpf_skb_load_bytes, programs::TcContext};
use netpost_common::PacketBytes;

/// Direct packet access between `data` and `data_end` (XDP frames, the linear part of skbs).
pub struct DirectPacket {
    pub start: usize,
    pub end: usize,
    pub len: u32,
}

impl DirectPacket {
    #[inline(always)]
    fn load_direct<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        let at = self.start + offset as usize;
        if at + N > self.end {
            return None;
        }
        // SAFETY: [at, at + N) was just checked to be inside the packet.
        Some(unsafe { (at as *const [u8; N]).read_unaligned() })
    }

    /// `W` words from `offset` on, after one bounds check.
    #[inline(always)]
    fn words_direct<const W: usize>(&self, offset: u32) -> Option<[u32; W]> {
        let at = self.start + offset as usize;
        if at + 4 * W > self.end {
            return None;
        }
        let mut out = [0u32; W];
        for (i, w) in out.iter_mut().enumerate() {
            // SAFETY: [at, at + 4 * W) was just checked to be inside the packet.
            *w = unsafe { load_u32(at + 4 * i) };
        }
        Some(out)
    }
}

/// One 4-byte load, whatever the address's alignment. The compiler splits an unaligned u32
/// read into four byte loads and six shifts and ORs; the verifier accepts unaligned packet
/// loads where the CPU does them natively (x86-64, arm64), so emit the load directly there.
#[cfg(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"))]
#[inline(always)]
unsafe fn load_u32(at: usize) -> u32 {
    let v: u64;
    // SAFETY: the caller checked that [at, at + 4) is readable packet data.
    unsafe {
        core::arch::asm!(
            "{v} = *(u32 *)({at} + 0)",
            v = lateout(reg) v,
            at = in(reg) at,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    v as u32
}

#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
#[inline(always)]
unsafe fn load_u32(at: usize) -> u32 {
    // SAFETY: the caller checked that [at, at + 4) is readable packet data.
    u32::from_ne_bytes(unsafe { (at as *const [u8; 4]).read_unaligned() })
}

/// Packet bytes four at a time, for the flow key (addresses, ports, sequence numbers).
pub trait Words: PacketBytes {
    /// The `W` 4-byte words from `offset` on, each as a u32 in memory order
    /// (`u32::from_ne_bytes`).
    fn words<const W: usize>(&self, offset: u32) -> Option<[u32; W]>;
}

impl PacketBytes for DirectPacket {
    #[inline(always)]
    fn frame_len(&self) -> u32 {
        self.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        self.load_direct(offset)
    }
}

/// An skb at tc: direct access to the linear part, `bpf_skb_load_bytes` for headers that
/// sit in paged fragments.
pub struct SkbPacket<'a> {
    pub direct: DirectPacket,
    pub ctx: &'a TcContext,
}

impl PacketBytes for SkbPacket<'_> {
    #[inline(always)]
    fn frame_len(&self) -> u32 {
        self.direct.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        if let Some(bytes) = self.direct.load_direct(offset) {
            return Some(bytes);
        }
        let mut out = MaybeUninit::<[u8; N]>::uninit();
        let filled = load_bytes(self.ctx, offset, out.as_mut_ptr().cast(), N as u32);
        // SAFETY: bpf_skb_load_bytes wrote all N bytes (it fails otherwise).
        (filled != 0).then(|| unsafe { out.assume_init() })
    }
}

impl Words for SkbPacket<'_> {
    #[inline(always)]
    fn words<const W: usize>(&self, offset: u32) -> Option<[u32; W]> {
        if let Some(w) = self.direct.words_direct(offset) {
            return Some(w);
        }
        // Not zeroed: that would be a call to a byte-by-byte memset loop.
        let mut out = MaybeUninit::<[u32; W]>::uninit();
        let filled = load_bytes(self.ctx, offset, out.as_mut_ptr().cast(), 4 * W as u32);
        // SAFETY: bpf_skb_load_bytes wrote all 4 * W bytes (it fails otherwise).
        (filled != 0).then(|| unsafe { out.assume_init() })
    }
}

/// `len` bytes of the skb from `offset` on into `dst`, for headers outside the linear data
/// (rare); returns whether it could. A BPF subprogram of its own, so that its helper call
/// and the values kept across it stay out of the callers' registers and stack.
#[inline(never)]
fn load_bytes(ctx: &TcContext, offset: u32, dst: *mut u8, len: u32) -> u32 {
    // SAFETY: the context's skb and `len` writable bytes at `dst`; the helper checks the
    // range against the packet.
    let ret = unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), offset, dst.cast(), len) };
    (ret == 0) as u32
}
