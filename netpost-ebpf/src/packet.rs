//! Bounds-checked access to packet bytes, in the shape the shared parser needs.
use aya_ebpf::{
    helpers::generated::bpf_skb_load_bytes, macros::map, maps::PerCpuArray, programs::TcContext,
};
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
/// Also for memory the verifier types untrusted (netfilter's in-place reads), whose loads
/// it guards.
#[cfg(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"))]
#[inline(always)]
pub unsafe fn load_u32(at: usize) -> u32 {
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
pub unsafe fn load_u32(at: usize) -> u32 {
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

/// How many bytes of an skb's start the parser may need: Ethernet, two VLAN tags, IPv6 with
/// extension headers or IPv4 with options, TCP with options (or a tunnel's inner headers).
pub const HEADERS: usize = 256;

/// The first [`HEADERS`] bytes of an skb copied out of it with one `bpf_skb_load_bytes`, for
/// skbs whose linear part ends before their headers do (rare: most drivers and the stack
/// keep headers linear). Parsing a copy rather than falling back to the helper load by load
/// keeps one path per read for the verifier (a fallback per read doubled the paths through
/// the parser at each one).
pub struct CopiedPacket<'a> {
    pub buf: &'a Copy,
    /// Bytes of the packet in `buf`.
    pub copied: u32,
    pub len: u32,
}

/// Room for the copy, plus slack: a read at an offset the verifier only knows to be below
/// [`HEADERS`] (it is masked) stays inside the value for any read of up to [`SLACK`] bytes.
pub type Copy = [u8; HEADERS + SLACK];
const SLACK: usize = 64;

impl CopiedPacket<'_> {
    /// The `T` (bytes or words, at most SLACK long) at `offset`, if the copy holds it.
    #[inline(always)]
    fn read<T>(&self, offset: u32) -> Option<T> {
        let at = offset as usize;
        // Volatile: knowing `copied` <= HEADERS, the compiler would drop the mask below as a
        // no-op, and the verifier needs it.
        // SAFETY: a plain read of our own field.
        let copied = unsafe { core::ptr::read_volatile(&self.copied) };
        if at + size_of::<T>() > copied as usize || size_of::<T>() > SLACK {
            return None;
        }
        // The mask changes nothing (at < copied <= HEADERS) but bounds it for the verifier;
        // black_box keeps the compiler from dropping it where it can prove it a no-op from
        // checks older verifiers do not carry over (6.1 loses a bound checked on another
        // copy of the value).
        let at = core::hint::black_box(at) & (HEADERS - 1);
        // SAFETY: at + size_of::<T>() <= copied <= HEADERS: inside the buffer, written by the
        // copy.
        Some(unsafe { (self.buf.as_ptr().add(at) as *const T).read_unaligned() })
    }
}

impl PacketBytes for CopiedPacket<'_> {
    #[inline(always)]
    fn frame_len(&self) -> u32 {
        self.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        self.read(offset)
    }
}

impl Words for CopiedPacket<'_> {
    #[inline(always)]
    fn words<const W: usize>(&self, offset: u32) -> Option<[u32; W]> {
        self.read(offset)
    }
}

impl Words for DirectPacket {
    #[inline(always)]
    fn words<const W: usize>(&self, offset: u32) -> Option<[u32; W]> {
        self.words_direct(offset)
    }
}

/// Per-CPU room for [`CopiedPacket`] (too big for the BPF stack).
#[map(name = "NETPOST_TC_HEADERS")]
static COPIES: PerCpuArray<Copy> = PerCpuArray::with_max_entries(1, 0);

/// Where an skb's headers can be read: directly when its linear part holds them (or the
/// whole packet), else a copy (None when the copy fails).
pub enum SkbHeaders {
    Direct(DirectPacket),
    Copied(*const Copy, u32, u32),
}

impl SkbHeaders {
    #[inline(always)]
    pub fn of(ctx: &TcContext, len: u32) -> Option<SkbHeaders> {
        let direct = DirectPacket {
            start: ctx.data(),
            end: ctx.data_end(),
            len,
        };
        let want = len.min(HEADERS as u32);
        if (direct.end - direct.start) as u32 >= want {
            return Some(SkbHeaders::Direct(direct));
        }
        let buf = COPIES.get_ptr_mut(0)?;
        // In [1, HEADERS] by arithmetic the verifier follows (6.1 refuses a length that may
        // be 0, and does not learn it from a compare the compiler folds into another form).
        let n = ((core::hint::black_box(want).wrapping_sub(1)) & (HEADERS as u32 - 1)) + 1;
        // SAFETY: the context's skb and `n` <= HEADERS writable bytes of this CPU's buffer;
        // the helper checks the range against the packet.
        let ret = unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), 0, buf.cast(), n) };
        (ret == 0).then_some(SkbHeaders::Copied(buf, n, len))
    }
}
