//! Dropped packets: the `kfree_skb` raw tracepoint (kfree_skb(skb, location, reason, ...),
//! stable argument order since Linux 5.17), counted per (reason, protocol, dropping
//! function) for the watched namespace only, with a few 5-tuples per reason sampled into a
//! ring buffer, and the packets themselves handed to the recorder (record.rs), which keeps
//! those its buckets allow when it is on. See netpost_common::drops for why every event here
//! is a drop.
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, raw_tracepoint},
    maps::{LruPerCpuHashMap, PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use netpost_common::drops::{
    DROP_KEYS, DropKey, DropOffsets, DropSample, SAMPLE_GAP_NS, SAMPLE_SLOTS,
};

use crate::{
    kernel::{Window, is_watched, read},
    record::{Dropped, record},
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// skb->network_header when it was never set.
const HEADER_UNSET: u16 = 0xffff;

/// Filled in by userspace before loading.
#[unsafe(no_mangle)]
static NETPOST_DROP_OFFSETS: DropOffsets = DropOffsets {
    skb_dev: 0,
    skb_sk: 0,
    skb_protocol: 0,
    skb_head: 0,
    skb_network_header: 0,
    dev_net: 0,
    sk_net: 0,
    net_inum: 0,
    watch_inum: 0,
    _pad: 0,
};

#[map(name = "NETPOST_DROPS")]
static DROPS: LruPerCpuHashMap<DropKey, u64> = LruPerCpuHashMap::with_max_entries(DROP_KEYS, 0);

#[map(name = "NETPOST_DROP_SAMPLES")]
static SAMPLES: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Per CPU and reason slot: when a drop was last sampled.
#[map(name = "NETPOST_DROP_SAMPLED_AT")]
static SAMPLED_AT: PerCpuArray<u64> = PerCpuArray::with_max_entries(SAMPLE_SLOTS, 0);

/// Samples the ring buffer had no room for: loss is counted, never silent.
#[map(name = "NETPOST_EVENTS_LOST")]
static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn netpost_kfree_skb(ctx: RawTracePointContext) -> i32 {
    let _ = observe(&ctx);
    0
}

/// The skb's network namespace (`struct net *`): through its device, or for packets not
/// yet routed to one, through its socket.
#[inline(always)]
fn skb_net(skb: u64, off: &DropOffsets) -> Option<u64> {
    // dev and sk are neighbours in sk_buff: one read for both.
    let ptrs = Window::<16>::read(
        skb,
        off.skb_dev.min(off.skb_sk),
        (off.skb_dev + 8).max(off.skb_sk + 8),
    );
    let dev: u64 = ptrs.get(off.skb_dev)?;
    if dev != 0 {
        return read(dev, off.dev_net);
    }
    let sk: u64 = ptrs.get(off.skb_sk)?;
    if sk == 0 {
        return None;
    }
    read(sk, off.sk_net)
}

#[inline(always)]
fn observe(ctx: &RawTracePointContext) -> Option<()> {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    let off: DropOffsets = unsafe { core::ptr::read_volatile(&NETPOST_DROP_OFFSETS) };
    let skb: u64 = ctx.arg(0);
    let location: u64 = ctx.arg(1);
    let reason = ctx.arg::<u64>(2) as u32;
    if off.watch_inum != 0 {
        is_watched(skb_net(skb, &off)?, off.net_inum, off.watch_inum)?;
    }
    // The ethertype and where the IP header is (None: not IP, or no network header).
    let (ethertype, ip, nf_where) = {
        // protocol, network_header and head sit together near the end of sk_buff.
        let fields = Window::<32>::read(
            skb,
            off.skb_protocol
                .min(off.skb_network_header)
                .min(off.skb_head),
            (off.skb_protocol + 2)
                .max(off.skb_network_header + 2)
                .max(off.skb_head + 8),
        );
        let ethertype = u16::from_be(fields.get::<u16>(off.skb_protocol)?);
        let (ip, nf) = if ethertype == ETH_P_IP || ethertype == ETH_P_IPV6 {
            let head: u64 = fields.get(off.skb_head)?;
            let network: u16 = fields.get(off.skb_network_header)?;
            (
                (network != HEADER_UNSET).then_some(head + network as u64),
                crate::netfilter::last_seen(skb, head, network),
            )
        } else {
            (None, 0)
        };
        (ethertype, ip, nf)
    };
    let mut sample = DropSample {
        location,
        reason,
        ethertype,
        nf_where,
        ..DropSample::default()
    };
    let l4_offset = match ip {
        Some(ip) => read_tuple(ip, &mut sample),
        None => 0,
    };
    let ipproto = sample.ipproto;
    let key = DropKey {
        reason,
        ethertype,
        ipproto,
        nf_where,
        location,
    };
    match DROPS.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a valid map value.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = DROPS.insert(key, 1u64, 0);
        }
    }
    // One clock read per drop, for the sample gap and the recorder's bucket.
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    maybe_sample(sample, now);
    record(&Dropped {
        skb,
        location,
        reason,
        ethertype,
        nf_where,
        l4_offset,
        ipproto,
        now,
    })
}

/// Fills protocol, addresses and ports from the IP header at `ip`, as far as readable, and
/// returns the IP header's length (0 when unreadable; the recorder's headers-only mode).
/// Not inlined: the read buffer stays out of the caller's stack frame. The caller uses the
/// value it returns: one it ignored could be left undefined, and R0 then hold a stack
/// pointer, which the verifier refuses.
#[inline(never)]
fn read_tuple(ip: u64, s: &mut DropSample) -> u32 {
    fill_tuple(ip, s).unwrap_or(0)
}

/// As [`read_tuple`], None when the IP header is unreadable.
#[inline(always)]
fn fill_tuple(ip: u64, s: &mut DropSample) -> Option<u32> {
    // One read for the IP header and the ports behind it (but long IPv4 options).
    let pkt = Window::<64>::read(ip, 0, 64);
    let first: u8 = pkt.get(0)?;
    let l4 = match first >> 4 {
        4 => {
            let h: [u8; 20] = pkt.get(0)?;
            s.ip_version = 4;
            s.ipproto = h[9];
            s.src[..4].copy_from_slice(&h[12..16]);
            s.dst[..4].copy_from_slice(&h[16..20]);
            (h[0] & 0x0f) as u32 * 4
        }
        6 => {
            let h: [u8; 40] = pkt.get(0)?;
            s.ip_version = 6;
            s.ipproto = h[6];
            s.src.copy_from_slice(&h[8..24]);
            s.dst.copy_from_slice(&h[24..40]);
            40
        }
        _ => return None,
    };
    if (s.ipproto == 6 || s.ipproto == 17)
        && let Some(ports) = pkt.get::<[u8; 4]>(l4)
    {
        s.sport = u16::from_be_bytes([ports[0], ports[1]]);
        s.dport = u16::from_be_bytes([ports[2], ports[3]]);
    }
    Some(l4)
}

/// Sends the drop to userspace unless this CPU sampled the same reason very recently.
#[inline(always)]
fn maybe_sample(mut sample: DropSample, now: u64) -> Option<()> {
    let last = SAMPLED_AT.get_ptr_mut(sample.reason % SAMPLE_SLOTS)?;
    // SAFETY: this CPU's copy of a valid map value.
    unsafe {
        if *last != 0 && now.wrapping_sub(*last) < SAMPLE_GAP_NS {
            return None;
        }
        *last = now;
    }
    sample.ts_ns = now;
    match SAMPLES.reserve::<DropSample>(0) {
        Some(mut entry) => {
            entry.write(sample);
            entry.submit(0);
        }
        None => {
            let lost = EVENTS_LOST.get_ptr_mut(0)?;
            // SAFETY: this CPU's copy of a valid map value.
            unsafe { *lost += 1 };
        }
    }
    Some(())
}
