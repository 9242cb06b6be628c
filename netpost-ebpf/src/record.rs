//! The drop recorder's kernel half (see netpost_common::record): the drop program hands it
//! every drop of the watched namespace. It costs nothing per packet that is not dropped, and
//! with the recorder off (a frozen global) the verifier removes it altogether. Per drop it
//! asks the reason's bucket first, so a flood costs one map lookup past the budget.
use core::{
    ffi::c_void,
    ptr::{addr_of, read_volatile},
};

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use netpost_common::record::{
    BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, Bucket, DATA_MASK, HEADER_LEN,
    RecordConfig, RecordEvent, SLOTS, Skipped, capture_len, l4_header_len, orig_len, slot, start,
};

use crate::kernel::read;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// Filled in by userspace before loading; all zero (off) unless `--record-drops` or the
/// dashboard's flight recorder asks for it.
#[unsafe(no_mangle)]
static NETPOST_RECORD_CONFIG: RecordConfig = RecordConfig {
    on: 0,
    snaplen: 0,
    cost_ns: 0,
    burst_ns: 0,
    wake_bytes: 0,
    reasons: [0; 4],
    skb_len: 0,
    skb_dev: 0,
    skb_mac_header: 0,
    skb_network_header: 0,
    skb_tail: 0,
    skb_head: 0,
    skb_data: 0,
    dev_ifindex: 0,
};

/// Recorded packets, apart from the drop samples so that ring stays small (sized by
/// userspace).
#[map(name = "NETPOST_RECORD_RING")]
static RING: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Per reason slot and CPU: the token bucket.
#[map(name = "NETPOST_RECORD_BUCKETS")]
static BUCKETS: PerCpuArray<Bucket> = PerCpuArray::with_max_entries(SLOTS, 0);

/// Per CPU: what the buckets and a full ring left out, per reason slot.
#[map(name = "NETPOST_RECORD_SKIPPED")]
static SKIPPED: PerCpuArray<Skipped> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: where a record is built (4 KiB: too large for the stack).
#[map(name = "NETPOST_RECORD_SCRATCH")]
static SCRATCH: PerCpuArray<RecordEvent> = PerCpuArray::with_max_entries(1, 0);

/// One field of the frozen config; volatile so the compiler keeps the load userspace patches.
macro_rules! config {
    ($($field:tt)+) => {
        // SAFETY: a read-only global.
        unsafe { read_volatile(addr_of!(NETPOST_RECORD_CONFIG.$($field)+)) }
    };
}

/// A drop, as the drop program saw it.
pub struct Dropped {
    pub skb: u64,
    pub location: u64,
    pub reason: u32,
    pub ethertype: u16,
    pub nf_where: u8,
    /// The IP header's length (where L4 starts after the network header); 0: not IP.
    pub l4_offset: u32,
    pub ipproto: u8,
    /// bpf_ktime_get_ns at the drop.
    pub now: u64,
}

/// Records `d` when the recorder is on, wants its reason and its bucket has credit.
#[inline(always)]
pub fn record(d: &Dropped) -> Option<()> {
    if config!(on) == 0 {
        return None;
    }
    let slot = slot(d.reason);
    let bits: u64 = config!(reasons[((slot >> 6) & 3) as usize]);
    if (bits >> (slot & 63)) & 1 == 0 {
        return None;
    }
    let bucket = BUCKETS.get_ptr_mut(slot)?;
    let (cost, burst) = (config!(cost_ns), config!(burst_ns));
    // SAFETY: this CPU's copy of a valid map value.
    if !unsafe { (*bucket).admit(d.now, cost, burst) } {
        return skipped(slot, Skip::Rate);
    }
    let ev = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's copy of a valid map value, no other reference to it.
    let Some(cap) = fill(unsafe { &mut *ev }, d) else {
        return skipped(slot, Skip::NoHeader);
    };
    let cap = cap & DATA_MASK;
    // SAFETY: the header and `cap` <= DATA_MASK data bytes lie inside the scratch value.
    let bytes = unsafe { core::slice::from_raw_parts(ev as *const u8, HEADER_LEN + cap as usize) };
    // Wake the reader only once a good part of the ring waits (it reads every interval
    // anyway): a wakeup per record would cost a flood's reader a syscall per packet.
    let waiting = RING.query(BPF_RB_AVAIL_DATA);
    let flags = if waiting + bytes.len() as u64 >= config!(wake_bytes) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if RING.output::<[u8]>(bytes, flags).is_err() {
        return skipped(slot, Skip::Lost);
    }
    Some(())
}

/// Why a record was left out.
enum Skip {
    /// Its bucket had no credit.
    Rate,
    /// The ring had no room.
    Lost,
    /// The skb had no header to start from.
    NoHeader,
}

/// Counts a record left out.
#[inline(always)]
fn skipped(slot: u32, why: Skip) -> Option<()> {
    let s = SKIPPED.get_ptr_mut(0)?;
    let i = (slot & (SLOTS - 1)) as usize;
    // SAFETY: this CPU's copy of a valid map value.
    unsafe {
        match why {
            Skip::Rate => (*s).rate[i] += 1,
            Skip::Lost => (*s).lost[i] += 1,
            Skip::NoHeader => (*s).no_header[i] += 1,
        }
    }
    None
}

/// Writes the header and the packet's first bytes into `ev`; returns how many bytes, None
/// when the skb has no header to start from. Field by field into the map value: the drop
/// program's stack is near the verifier's limit (512 bytes with its subprogram) on 6.1.
#[inline(always)]
fn fill(ev: &mut RecordEvent, d: &Dropped) -> Option<u32> {
    let dev: u64 = read(d.skb, config!(skb_dev)).unwrap_or(0);
    let h = &mut ev.header;
    h.ts_ns = d.now;
    h.location = d.location;
    h.reason = d.reason;
    h.ifindex = if dev != 0 {
        read(dev, config!(dev_ifindex)).unwrap_or(0)
    } else {
        0
    };
    h.ethertype = d.ethertype;
    h.nf_where = d.nf_where;
    let (from, link, cap, orig) = locate(d)?;
    let cap = cap & DATA_MASK;
    // SAFETY: writes at most DATA_MASK bytes into the data buffer; a bad source address only
    // returns an error.
    let ret = unsafe {
        bpf_probe_read_kernel(
            ev.data.as_mut_ptr() as *mut c_void,
            cap,
            from as *const c_void,
        )
    };
    let h = &mut ev.header;
    h.link = link;
    h.orig_len = orig;
    // An unreadable packet still goes in: its comment says why it died.
    let cap = if ret == 0 { cap } else { 0 };
    h.cap_len = cap as u16;
    Some(cap)
}

/// Where the recorded bytes start (an address), their link type, how many to copy and the
/// packet's length from there; None when the skb has no header to start from. One read per
/// field (a few more helper calls, for recorded packets only, but no buffer on the stack).
#[inline(always)]
fn locate(d: &Dropped) -> Option<(u64, u8, u32, u32)> {
    let mac: u16 = read(d.skb, config!(skb_mac_header))?;
    let network: u16 = read(d.skb, config!(skb_network_header))?;
    let ip = d.ethertype == ETH_P_IP || d.ethertype == ETH_P_IPV6;
    let (from, link) = start(mac, network, ip)?;
    let tail: u32 = read(d.skb, config!(skb_tail))?;
    let head: u64 = read(d.skb, config!(skb_head))?;
    let data: u64 = read(d.skb, config!(skb_data))?;
    let len: u32 = read(d.skb, config!(skb_len))?;
    let headers_end = if config!(snaplen) == 0 {
        headers_end(head, network, d)
    } else {
        0
    };
    let cap = capture_len(config!(snaplen), from, network, tail, headers_end);
    let orig = orig_len(len, data.wrapping_sub(head), from, cap);
    Some((head + from as u64, link, cap, orig))
}

/// Headers-only mode: where the L4 header ends, in bytes after the network header (the
/// drop program found the IP header's length; TCP's own length is read here).
#[inline(always)]
fn headers_end(head: u64, network: u16, d: &Dropped) -> u32 {
    let l4 = d.l4_offset;
    if l4 == 0 {
        return 0;
    }
    let offset: u8 = if d.ipproto == 6 {
        match read(head + network as u64 + l4 as u64, 12) {
            Some(b) => b,
            None => return l4,
        }
    } else {
        0
    };
    l4 + l4_header_len(d.ipproto, offset)
}
