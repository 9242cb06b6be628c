//! Netfilter hooks (BPF_PROG_TYPE_NETFILTER): `netpost_nf_head` runs first at each hook,
//! `netpost_nf_tail` last; see netpost_common::netfilter for what the pair measures.
//!
//! aya 0.14 has no netfilter program type, so these functions sit in the "socket" section
//! (which aya parses but netpost never asks aya to load); netpost-user relocates them
//! against aya's maps and loads them itself (netpost-user/src/netfilter.rs).
//!
//! The context is `struct bpf_nf_ctx { const struct nf_hook_state *state; struct sk_buff
//! *skb; }`. Kernel struct fields sit at offsets userspace found in the running kernel's BTF
//! (aya emits no CO-RE relocations): `sk_buff` and hook-state fields are plain loads through
//! the context's typed pointers, the packet and anything further away bpf_probe_read_kernel.
use aya_ebpf::{
    helpers::bpf_probe_read_kernel_buf,
    macros::map,
    maps::{LruPerCpuHashMap, PerCpuArray},
};
use netpost_common::{
    Family, PacketBytes, Proto,
    netfilter::{
        CT_NEW, CT_SOURCES, CtSource, IPS_CONFIRMED, NfFamily, NfHook, NfHookCounters, NfOffsets,
        NfProbe, ct_slot, tcp_class,
    },
    parse_l3,
};

use crate::kernel::read;

const NF_ACCEPT: i32 = 1;

#[repr(C)]
pub struct BpfNfCtx {
    state: u64,
    skb: u64,
}

/// Filled in by userspace (EbpfLoader::set_global) before loading.
#[unsafe(no_mangle)]
static NETPOST_NF_OFFSETS: NfOffsets = NfOffsets {
    state_hook: 0,
    state_pf: 0,
    skb_len: 0,
    skb_head: 0,
    skb_network_header: 0,
    skb_nfct: 0,
    skb_end: 0,
    shinfo_gso_segs: 0,
    conn_status: 0,
    _pad: 0,
};

/// Conntrack entries created, per source address (per CPU: no atomics needed).
#[map(name = "NETPOST_CT_SOURCES")]
static CT_SOURCE_COUNTS: LruPerCpuHashMap<CtSource, u64> =
    LruPerCpuHashMap::with_max_entries(CT_SOURCES, 0);

/// Per-CPU counters, one entry per (family, hook).
#[map(name = "NETPOST_NF")]
static NF_COUNTERS: PerCpuArray<NfHookCounters> =
    PerCpuArray::with_max_entries(NfHookCounters::ENTRIES, 0);

#[unsafe(no_mangle)]
#[unsafe(link_section = "socket")]
pub fn netpost_nf_head(ctx: *mut BpfNfCtx) -> i32 {
    nested(ctx, NfProbe::Head);
    NF_ACCEPT
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "socket")]
pub fn netpost_nf_tail(ctx: *mut BpfNfCtx) -> i32 {
    nested(ctx, NfProbe::Tail);
    NF_ACCEPT
}

/// Bytes of the IP packet copied in one read before parsing (every header the parser needs
/// but long IPv6 extension chains).
const HEADER_COPY: usize = 128;

/// Bytes one read may cover to take `skb_shinfo(skb)->gso_segs` along with the headers when
/// the linear part ends (and the shared info starts) that close after them, as in small
/// locally built skbs; copying that much more costs less than another helper call (here ~5 ns
/// per 100 bytes against ~35 ns per call). Received skbs often end further away and take
/// the second read.
const WINDOW: usize = 512;

/// Per-CPU buffer for that copy (too big for the BPF stack).
#[map(name = "NETPOST_NF_HDR")]
static HEADERS: PerCpuArray<[u8; WINDOW]> = PerCpuArray::with_max_entries(NESTING, 0);

/// Programs running on this CPU now. OUTPUT and POSTROUTING run in process context with
/// softirqs enabled, so a softirq's PREROUTING/INPUT (or its own OUTPUT) programs may run in
/// the middle of one: each level gets its own header buffer. Softirqs do not nest, so two
/// levels suffice; the counter is not atomic, but an interrupting program always restores it
/// before the interrupted one continues.
#[map(name = "NETPOST_NF_DEPTH")]
static DEPTH: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
const NESTING: u32 = 2;

/// Runs `observe` with this nesting level's buffer.
#[inline(always)]
fn nested(ctx: *mut BpfNfCtx, probe: NfProbe) {
    let Some(depth) = DEPTH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's counter; see DEPTH for why plain reads and writes suffice.
    let level = unsafe { *depth };
    if level < NESTING {
        // SAFETY: as above.
        unsafe { *depth = level + 1 };
        let _ = observe(ctx, probe, level);
        // SAFETY: as above.
        unsafe { *depth = level };
    }
}

/// The IP packet of an skb: its first bytes copied with one bpf_probe_read_kernel (one
/// helper call instead of one per header field), the rest read on demand.
struct KernelPacket<'a> {
    base: u64,
    len: u32,
    copy: &'a [u8; WINDOW],
    /// Bytes of the packet in `copy` (at most HEADER_COPY).
    copied: u32,
}

impl PacketBytes for KernelPacket<'_> {
    #[inline(always)]
    fn frame_len(&self) -> u32 {
        self.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        let at = offset as usize;
        if at + N > self.len as usize {
            return None;
        }
        if at + N <= self.copied as usize {
            let mut out = [0u8; N];
            out.copy_from_slice(self.copy.get(at..at + N)?);
            return Some(out);
        }
        read(self.base, offset)
    }
}

/// The sk_buff fields netpost reads.
struct SkbFields {
    len: u32,
    head: u64,
    network: u16,
    end: u32,
    nfct: u64,
}

/// The `T` at `base + offset`, read with a plain load. Only for the context's trusted
/// pointers (`PTR_TO_BTF_ID`): the offsets come from the frozen read-only globals, so the
/// verifier knows them as constants and checks each load against the kernel's BTF layout of
/// the struct. A plain load is a single instruction; bpf_probe_read_kernel is a helper call.
#[inline(always)]
fn load<T: Copy>(base: u64, offset: u32) -> T {
    // SAFETY: `base` is a kernel object the program may read (see above); the verifier
    // refuses the program rather than let a load fall outside the field.
    unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) }
}

#[inline(always)]
fn skb_fields(skb: u64, off: &NfOffsets) -> SkbFields {
    SkbFields {
        len: load(skb, off.skb_len),
        head: load(skb, off.skb_head),
        network: load(skb, off.skb_network_header),
        end: load(skb, off.skb_end),
        nfct: load(skb, off.skb_nfct),
    }
}

#[inline(always)]
fn observe(ctx: *mut BpfNfCtx, probe: NfProbe, level: u32) -> Option<()> {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    let off: NfOffsets = unsafe { core::ptr::read_volatile(&NETPOST_NF_OFFSETS) };
    // SAFETY: the kernel passes a valid bpf_nf_ctx; these are the two fields it has.
    let (state, skb) = unsafe { ((*ctx).state, (*ctx).skb) };
    let (hook, pf): (u8, u8) = (load(state, off.state_hook), load(state, off.state_pf));
    let family = NfFamily::from_pf(pf)?;
    let hook = match hook {
        0..=4 => hook as u32,
        _ => return None,
    };
    let counters = NF_COUNTERS.get_ptr_mut(family as u32 * 5 + hook)?;

    let SkbFields {
        len,
        head,
        network,
        end,
        nfct,
    } = skb_fields(skb, &off);
    let base = head + network as u64;
    let copy = HEADERS.get_ptr_mut(level)?;
    // SAFETY: this CPU's scratch buffer, used only during this program run.
    let copy = unsafe { &mut *copy };
    let copied = (len as usize).min(HEADER_COPY);
    if copied == 0 {
        return None;
    }
    // Where gso_segs lies from `base` on, if one read of at most WINDOW bytes reaches it.
    let gso_at = (end as usize + off.shinfo_gso_segs as usize)
        .checked_sub(network as usize)
        .filter(|at| at + 2 <= WINDOW);
    let span = gso_at.map_or(copied, |at| copied.max(at + 2));
    // SAFETY: reads `span` bytes of kernel memory into the buffer (a bad address only
    // returns an error).
    unsafe { bpf_probe_read_kernel_buf(base as *const u8, copy.get_mut(..span)?) }.ok()?;
    let pkt = KernelPacket {
        base,
        len,
        copy,
        copied: copied as u32,
    };
    let parsed = parse_l3(
        &pkt,
        match family {
            NfFamily::Ipv4 => Family::Ipv4,
            NfFamily::Ipv6 => Family::Ipv6,
        },
    );
    let gso_segs = match gso_at {
        Some(at) => u16::from_ne_bytes([*copy.get(at)?, *copy.get(at + 1)?]),
        None => read(head + end as u64, off.shinfo_gso_segs)?,
    };
    let segments = if gso_segs == 0 { 1 } else { gso_segs as u64 };

    // SAFETY: a per-CPU array value: only this CPU's copy, valid for the program's run.
    let counters = unsafe { &mut *counters };
    let probe_counters = match probe {
        NfProbe::Head => &mut counters.head,
        NfProbe::Tail => &mut counters.tail,
    };
    // Malformed headers count as `other` here: the IP stack has validated them already.
    let proto = if parsed.proto == Proto::Malformed {
        Proto::Other
    } else {
        parsed.proto
    };
    let tally = probe_counters.by_proto.get_mut(proto as usize)?;
    tally.packets += segments;
    tally.bytes += len as u64;
    if proto == Proto::Tcp {
        *probe_counters
            .tcp
            .get_mut(tcp_class(parsed.tcp_flags) as usize)? += segments;
    }
    if probe == NfProbe::Tail {
        let slot = ct_slot(nfct);
        *counters.ct.get_mut(slot)? += segments;
        // Conntrack creates entries at PREROUTING and OUTPUT; later hooks of the same first
        // packet still see it NEW and unconfirmed (confirmation comes last, at INPUT or
        // POSTROUTING), so only those two hooks count creations.
        let creating_hook = hook == NfHook::PreRouting as u32 || hook == NfHook::LocalOut as u32;
        if slot == CT_NEW && creating_hook {
            let conn = nfct & !7;
            let status: u64 = read(conn, off.conn_status)?;
            if status & IPS_CONFIRMED == 0 {
                counters.ct_created += 1;
                count_source(&pkt, family);
            }
        }
    }
    Some(())
}

/// Tallies a created conntrack entry under the packet's source address.
#[inline(always)]
fn count_source(pkt: &KernelPacket, family: NfFamily) -> Option<()> {
    let mut key = CtSource {
        family: family as u32,
        addr: [0; 16],
    };
    match family {
        NfFamily::Ipv4 => key.addr[..4].copy_from_slice(&pkt.load::<4>(12)?),
        NfFamily::Ipv6 => key.addr = pkt.load::<16>(8)?,
    }
    if let Some(count) = CT_SOURCE_COUNTS.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a valid map value.
        unsafe { *count += 1 };
    } else {
        let _ = CT_SOURCE_COUNTS.insert(key, 1u64, 0);
    }
    Some(())
}
