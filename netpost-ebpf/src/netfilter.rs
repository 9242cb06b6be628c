//! Netfilter hooks (BPF_PROG_TYPE_NETFILTER): `netpost_nf_head` runs first at each hook,
//! `netpost_nf_tail` last; see netpost_common::netfilter for what the pair measures.
//!
//! aya 0.14 has no netfilter program type, so these functions sit in the "socket" section
//! (which aya parses but netpost never asks aya to load); netpost-user relocates them
//! against aya's maps and loads them itself (netpost-user/src/netfilter.rs).
//!
//! The context is `struct bpf_nf_ctx { const struct nf_hook_state *state; struct sk_buff
//! *skb; }`. Kernel struct fields are read with bpf_probe_read_kernel at offsets userspace
//! found in the running kernel's BTF (aya emits no CO-RE relocations).
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
    observe(ctx, NfProbe::Head);
    NF_ACCEPT
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "socket")]
pub fn netpost_nf_tail(ctx: *mut BpfNfCtx) -> i32 {
    observe(ctx, NfProbe::Tail);
    NF_ACCEPT
}

/// Bytes of the IP packet copied in one read before parsing (every header the parser needs
/// but long IPv6 extension chains).
const HEADER_COPY: usize = 128;

/// Bytes one read may cover to take `skb_shinfo(skb)->gso_segs` along with the headers:
/// the linear part of most skbs ends (and their shared info starts) a few hundred bytes
/// after the headers, and copying that much more costs less than another helper call
/// (here ~5 ns per 100 bytes against ~35 ns per call).
const WINDOW: usize = 512;

/// Per-CPU buffer for that copy (too big for the BPF stack).
#[map(name = "NETPOST_NF_HDR")]
static HEADERS: PerCpuArray<[u8; WINDOW]> = PerCpuArray::with_max_entries(1, 0);

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

/// What a hook's head program learned about the skb it saw last on this CPU. The tail of
/// the same hook reuses it for the same skb instead of copying and parsing the headers again:
/// rules between the two change neither the protocol, nor the SYN/ACK/FIN/RST flags, nor
/// gso_segs (the length may change, so the tail reads it). Any other skb, or the same one at
/// another hook, misses and takes the full path, so the counts stay exact.
#[repr(C)]
#[derive(Clone, Copy)]
struct HeadSeen {
    skb: u64,
    segments: u64,
    /// hook | pf << 8
    hook_pf: u32,
    proto: u8,
    class: u8,
    _pad: [u8; 2],
}

#[map(name = "NETPOST_NF_SEEN")]
static SEEN: PerCpuArray<HeadSeen> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's head record if it is about `skb` at this hook, copied whole: a softirq may run
/// another head on this CPU while a tail in process context (OUTPUT) reads, so the record is
/// copied and its skb checked again afterwards.
#[inline(always)]
fn head_record(seen: &HeadSeen, skb: u64, hook_pf: u32) -> Option<HeadSeen> {
    // SAFETY: reads of this CPU's map value; volatile so the second read really happens.
    let (copy, still) = unsafe {
        (
            core::ptr::read_volatile(seen),
            core::ptr::read_volatile(&seen.skb),
        )
    };
    (copy.skb == skb && still == skb && copy.hook_pf == hook_pf).then_some(copy)
}

/// Adds one packet to a probe's tallies.
#[inline(always)]
fn tally(
    probe: &mut netpost_common::netfilter::NfProbeCounters,
    proto: Proto,
    class: usize,
    segments: u64,
    len: u32,
) -> Option<()> {
    let t = probe.by_proto.get_mut(proto as usize)?;
    t.packets += segments;
    t.bytes += len as u64;
    if proto == Proto::Tcp {
        *probe.tcp.get_mut(class)? += segments;
    }
    Some(())
}

#[inline(always)]
fn observe(ctx: *mut BpfNfCtx, probe: NfProbe) -> Option<()> {
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
    // SAFETY: a per-CPU array value: only this CPU's copy, valid for the program's run.
    let counters = unsafe { &mut *counters };
    let seen = SEEN.get_ptr_mut(0)?;
    // SAFETY: as above.
    let seen = unsafe { &mut *seen };
    let hook_pf = hook | (pf as u32) << 8;
    // Conntrack creates entries at PREROUTING and OUTPUT; later hooks of the same first
    // packet still see it NEW and unconfirmed (confirmation comes last, at INPUT or
    // POSTROUTING), so only those two hooks count creations.
    let creating_hook = hook == NfHook::PreRouting as u32 || hook == NfHook::LocalOut as u32;
    if probe == NfProbe::Head {
        // Forgotten first: a head that fails below must not leave an older record of this
        // skb behind.
        seen.skb = 0;
    } else if let Some(head) = head_record(seen, skb, hook_pf) {
        let nfct: u64 = load(skb, off.skb_nfct);
        let slot = ct_slot(nfct);
        // A creation also tallies the source address, which needs the headers.
        if !(slot == CT_NEW && creating_hook) {
            let proto = match head.proto {
                0 => Proto::Tcp,
                1 => Proto::Udp,
                2 => Proto::Icmp,
                3 => Proto::Icmpv6,
                _ => Proto::Other,
            };
            let len: u32 = load(skb, off.skb_len);
            tally(
                &mut counters.tail,
                proto,
                head.class as usize,
                head.segments,
                len,
            )?;
            *counters.ct.get_mut(slot)? += head.segments;
            return Some(());
        }
    }

    let SkbFields {
        len,
        head,
        network,
        end,
        nfct,
    } = skb_fields(skb, &off);
    let base = head + network as u64;
    let copy = HEADERS.get_ptr_mut(0)?;
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
    let class = tcp_class(parsed.tcp_flags) as usize;
    tally(probe_counters, proto, class, segments, len)?;
    if probe == NfProbe::Head {
        *seen = HeadSeen {
            skb,
            segments,
            hook_pf,
            proto: proto as u8,
            class: class as u8,
            _pad: [0; 2],
        };
    } else {
        let slot = ct_slot(nfct);
        *counters.ct.get_mut(slot)? += segments;
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
