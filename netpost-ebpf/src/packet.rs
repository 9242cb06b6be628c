//! Bounds-checked access to packet bytes, in the shape the shared parser needs.
use aya_ebpf::programs::TcContext;
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
        if offset as usize + N > self.direct.len as usize {
            return None;
        }
        self.ctx.load::<[u8; N]>(offset as usize).ok()
    }
}
