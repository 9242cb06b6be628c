//! Reading kernel structs from the tracepoint programs: fields at offsets userspace found in
//! the running kernel's BTF, and the namespace check they all share.
use core::mem::{MaybeUninit, size_of};

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated},
    macros::map,
    maps::Array,
};

/// The `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one only returns an error.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// Several fields of one kernel object read with one helper call (each call costs more than
/// copying a few dozen bytes): the bytes `[lo, hi)` of the object, when they fit in `N`
/// (a power of two). Fields outside them are read one by one.
#[repr(C)]
pub struct Window<const N: usize> {
    base: u64,
    lo: u32,
    /// Bytes read: 0 when the span did not fit or the read failed.
    len: u32,
    buf: MaybeUninit<[u8; N]>,
    /// Never read: the verifier bounds a field read at `offset & (N - 1)` plus the field's
    /// size, which may reach past `buf` (but not past this).
    _slack: MaybeUninit<u64>,
}

impl<const N: usize> Window<N> {
    const MASK: usize = {
        assert!(N.is_power_of_two() && N >= 8);
        N - 1
    };

    #[inline(always)]
    pub fn read(base: u64, lo: u32, hi: u32) -> Self {
        let mut w = Window {
            base,
            lo,
            len: 0,
            buf: MaybeUninit::uninit(),
            _slack: MaybeUninit::uninit(),
        };
        let span = hi.wrapping_sub(lo);
        if hi > lo && span as usize <= N {
            // SAFETY: writes `span` <= N bytes into the buffer; a bad address only returns
            // an error.
            let ret = unsafe {
                generated::bpf_probe_read_kernel(
                    w.buf.as_mut_ptr().cast(),
                    span,
                    (base + lo as u64) as *const _,
                )
            };
            if ret == 0 {
                w.len = span;
            }
        }
        w
    }

    /// The `T` at `offset` in the object.
    #[inline(always)]
    pub fn get<T: Copy>(&self, offset: u32) -> Option<T> {
        let size = size_of::<T>() as u32;
        let at = offset.wrapping_sub(self.lo);
        if offset >= self.lo && at.wrapping_add(size) <= self.len {
            // The mask changes nothing (at < len <= N) but bounds the stack offset for the
            // verifier, which may not know the offsets as constants; the compiler cannot
            // drop it (it does not rule out the wrapping add above overflowing).
            let at = at as usize & Self::MASK;
            // SAFETY: [at, at + size) lies in the part of the buffer the helper wrote.
            return Some(unsafe {
                (self.buf.as_ptr() as *const u8)
                    .add(at)
                    .cast::<T>()
                    .read_unaligned()
            });
        }
        read(self.base, offset)
    }
}

/// The watched namespace's `struct net *`, learned from the first match. netpost runs inside
/// that namespace, so it stays alive (and the address stays its) while the programs run: a
/// pointer compare then replaces a read of `ns.inum` for every event there.
#[map(name = "NETPOST_WATCHED_NET")]
static WATCHED_NET: Array<u64> = Array::with_max_entries(1, 0);

/// Whether `net` (a `struct net *`) is the watched namespace: its `ns.inum` (at
/// `inum_offset`) equals `watch_inum`, or `watch_inum` is 0 (watch everything).
#[inline(always)]
pub fn is_watched(net: u64, inum_offset: u32, watch_inum: u32) -> Option<()> {
    if net == 0 {
        return None;
    }
    if watch_inum == 0 {
        return Some(());
    }
    let known = WATCHED_NET.get_ptr_mut(0)?;
    // SAFETY: a valid map value; CPUs racing here all store the same address.
    unsafe {
        if *known == net {
            return Some(());
        }
        if read::<u32>(net, inum_offset)? != watch_inum {
            return None;
        }
        *known = net;
    }
    Some(())
}
