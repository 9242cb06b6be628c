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
//! the context's typed pointers. The packet: plain (fault-guarded) loads through `skb->head`
//! where the kernel allows them (Linux >= 6.17; userspace probes it and sets `direct_reads`),
//! else one bpf_probe_read_kernel copy; anything further away bpf_probe_read_kernel.
//!
//! A received packet meets four of these programs (PREROUTING and INPUT, head and tail), a
//! forwarded one six: only the first parses it. What it found (protocol, TCP flags, wire
//! segments) is kept per CPU and nesting level with the skb's identity, and the programs
//! after it reuse it while the skb is unchanged (see [`Classified`]).
use aya_ebpf::{
    helpers::bpf_probe_read_kernel_buf,
    macros::map,
    maps::{LruPerCpuHashMap, PerCpuArray},
};
use netpost_common::{
    Family, PacketBytes, Parsed, Proto,
    drops::nf_where,
    gso_segments,
    netfilter::{
        CT_NEW, CT_SOURCES, CtSource, IPS_CONFIRMED, NfFamily, NfHook, NfHookCounters, NfOffsets,
        NfProbe, TcpClass, ct_slot, reassembled_fragments, tcp_class_segments,
    },
    parse_l3,
};

use crate::{
    kernel::{Window, read},
    packet::load_u32,
};

/// Where the netfilter programs of this CPU last saw `skb` (`drops::nf_where`), 0 when no
/// record of either nesting level is that skb's (same pointer, buffer and network header).
#[inline(always)]
pub fn last_seen(skb: u64, head: u64, network: u16) -> u8 {
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 0;
    };
    // SAFETY: this CPU's value, read only.
    let levels = unsafe { &(*scratch).levels };
    for lvl in levels {
        for s in [&lvl.seen, &lvl.prev] {
            if s.skb == skb && s.head == head && s.network == network {
                return s.nf_where;
            }
        }
    }
    0
}

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
    skb_tail: 0,
    shinfo_gso_size: 0,
    ip4cb_frag_max: 0,
    ip6cb_frag_max: 0,
    direct_reads: 0,
};

/// One field of [`NETPOST_NF_OFFSETS`], loaded where it is used: the verifier knows it as a
/// constant (it must, to check each sk_buff load against the struct's layout), and loading
/// the fields one by one spares loading all of them (volatile, so the compiler keeps the
/// load of the value userspace patches in).
macro_rules! offset {
    ($field:ident) => {
        // SAFETY: a plain read of a read-only global.
        unsafe { core::ptr::read_volatile(&NETPOST_NF_OFFSETS.$field) }
    };
}

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

/// Bytes one read may cover to take `skb_shinfo(skb)->gso_size/gso_segs` along with the
/// headers when the linear part ends (and the shared info starts) that close after them, as
/// in small locally built skbs; copying that much more costs less than another helper call
/// (here ~5 ns per 100 bytes against ~35 ns per call). Received skbs often end further away
/// and take a second read.
const WINDOW: usize = 512;

/// Programs running on this CPU now. OUTPUT and POSTROUTING run in process context with
/// softirqs enabled, so a softirq's PREROUTING/INPUT (or its own OUTPUT) programs may run in
/// the middle of one: each level gets its own buffer and record. Softirqs do not nest, so two
/// levels suffice.
const NESTING: u32 = 2;

/// What the first program to see an skb found out, for the programs after it. Valid for an
/// skb while its pointer, data buffer, length and network header are those recorded: the
/// hooks of one traversal see the skb unchanged but for addresses and ports (NAT), which
/// nothing here depends on; defragmentation, which turns a fragment into the whole datagram
/// under the same pointer, changes its length and buffer. The heads of PREROUTING and OUTPUT,
/// where a traversal starts, always parse: an skb freed and another allocated at the same
/// address (and buffer) must never inherit its predecessor's record.
#[repr(C)]
#[derive(Clone, Copy)]
struct Classified {
    skb: u64,
    head: u64,
    len: u32,
    network: u16,
    /// Proto as u8 (Malformed already mapped to Other: the IP stack has validated headers).
    proto: u8,
    tcp_flags: u8,
    /// 1 when the transport header lay outside the linear data: protocol known, flags not.
    unread: u8,
    /// Where the programs last saw the skb, for the drop program: `drops::nf_where`.
    nf_where: u8,
    _pad: [u8; 2],
    /// Wire packets the skb stands for: GSO segments, or the fragments a reassembled
    /// datagram arrived in.
    segments: u32,
    /// Bytes of IP datagram those packets carried.
    bytes: u32,
}

#[repr(C)]
struct Level {
    seen: Classified,
    /// The record `seen` replaced, for the drop program: a packet answered with an ICMP
    /// error or a RST is freed after the answer went through OUTPUT and POSTROUTING.
    prev: Classified,
    copy: [u8; WINDOW],
}

/// One per-CPU value for everything the programs keep between runs (one map lookup).
#[repr(C)]
struct Scratch {
    depth: u32,
    _pad: u32,
    levels: [Level; NESTING as usize],
}

#[map(name = "NETPOST_NF_SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Runs `observe` with this nesting level's buffer and record.
#[inline(always)]
fn nested(ctx: *mut BpfNfCtx, probe: NfProbe) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's value. An interrupting program (a softirq in the middle of a
    // process-context run) always restores `depth` before the interrupted one continues, so
    // plain reads and writes suffice, and it uses the other level.
    unsafe {
        let level = (*scratch).depth;
        if level < NESTING {
            (*scratch).depth = level + 1;
            if let Some(lvl) = (*scratch).levels.get_mut(level as usize) {
                let _ = observe(ctx, probe, lvl);
            }
            (*scratch).depth = level;
        }
    }
}

/// The IP packet of an skb: its first bytes copied with one bpf_probe_read_kernel (one
/// helper call instead of one per header field), the rest of its linear data read on demand.
/// Nothing beyond the linear data is read: there the memory is not the packet's.
struct KernelPacket<'a> {
    base: u64,
    len: u32,
    /// Bytes of the packet in the linear data (readable from `base`).
    linear: u32,
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
        if at + N > self.linear as usize {
            return None;
        }
        if at + N <= self.copied as usize && N <= WINDOW - HEADER_COPY {
            // at < copied <= HEADER_COPY: the mask is a no-op the verifier needs. black_box
            // keeps it, and a fresh value: 6.12's verifier can lose track of a spilled
            // constant offset here ("REG INVARIANTS VIOLATION") and then refuses the read.
            let at = core::hint::black_box(at) & (HEADER_COPY - 1);
            // SAFETY: at + N <= HEADER_COPY + (WINDOW - HEADER_COPY): inside the buffer, and
            // below `copied`, so written by the copy.
            return Some(unsafe {
                (self.copy.as_ptr().add(at) as *const [u8; N]).read_unaligned()
            });
        }
        read(self.base, offset)
    }
}

/// The skb's linear data read in place (Linux >= 6.17: see [`headers_in_place`]).
struct InPlacePacket {
    /// `skb->head` (as loaded through the skb) plus the network header's offset.
    base: u64,
    len: u32,
    /// Bytes of the packet in the linear data: nothing past them is the packet's.
    linear: u32,
}

impl PacketBytes for InPlacePacket {
    #[inline(always)]
    fn frame_len(&self) -> u32 {
        self.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        if offset as usize + N > self.linear as usize {
            return None;
        }
        let at = self.base + offset as u64;
        if N.is_multiple_of(4) {
            // A word at a time: a guarded load costs a few instructions more than a plain
            // one, so fewer, wider loads (the IPv4 header is five, not twenty).
            let mut out = [0u8; N];
            for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
                // SAFETY: untrusted memory: the verifier makes the load one the JIT guards.
                let w = unsafe { load_u32((at + 4 * i as u64) as usize) };
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            Some(out)
        } else {
            // SAFETY: as above.
            Some(unsafe { (at as *const [u8; N]).read_unaligned() })
        }
    }
}

/// The `T` at `base + offset` of memory the verifier types read-only and untrusted
/// (`skb->head` and what lies behind it, Linux >= 6.17): the JIT guards each load, and one
/// that faults reads 0.
#[inline(always)]
fn load_untrusted<T: Copy>(base: u64, offset: u32) -> T {
    // SAFETY: see above.
    unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) }
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
fn observe(ctx: *mut BpfNfCtx, probe: NfProbe, lvl: &mut Level) -> Option<()> {
    // SAFETY: the kernel passes a valid bpf_nf_ctx; these are the two fields it has.
    let (state, skb) = unsafe { ((*ctx).state, (*ctx).skb) };
    let (hook, pf): (u8, u8) = (
        load(state, offset!(state_hook)),
        load(state, offset!(state_pf)),
    );
    let family = NfFamily::from_pf(pf)?;
    let hook = match hook {
        0..=4 => hook as u32,
        _ => return None,
    };
    let counters = NF_COUNTERS.get_ptr_mut(family as u32 * 5 + hook)?;
    let len: u32 = load(skb, offset!(skb_len));
    let head: u64 = load(skb, offset!(skb_head));
    let network: u16 = load(skb, offset!(skb_network_header));
    let starts = probe == NfProbe::Head
        && (hook == NfHook::PreRouting as u32 || hook == NfHook::LocalOut as u32);
    let s = &lvl.seen;
    if starts || s.skb != skb || s.head != head || s.len != len || s.network != network {
        lvl.prev = lvl.seen;
        // Valid again only once classify has filled it.
        lvl.seen.skb = 0;
        lvl.seen.head = head;
        lvl.seen.len = len;
        lvl.seen.network = network;
        classify(skb, family, lvl)?;
        lvl.seen.skb = skb;
    }
    lvl.seen.nf_where = nf_where(hook as u8, probe == NfProbe::Tail);
    let seen = lvl.seen;
    let segments = seen.segments as u64;

    // SAFETY: a per-CPU array value: only this CPU's copy, valid for the program's run.
    let counters = unsafe { &mut *counters };
    let probe_counters = match probe {
        NfProbe::Head => &mut counters.head,
        NfProbe::Tail => &mut counters.tail,
    };
    let tally = probe_counters.by_proto.get_mut(seen.proto as usize)?;
    tally.packets += segments;
    tally.bytes += seen.bytes as u64;
    if seen.proto == Proto::Tcp as u8 {
        if seen.unread != 0 {
            *probe_counters.tcp.get_mut(TcpClass::Unread as usize)? += segments;
        } else {
            let (class, in_class, other) = tcp_class_segments(seen.tcp_flags, segments);
            *probe_counters.tcp.get_mut(class as usize)? += in_class;
            if other != 0 {
                *probe_counters.tcp.get_mut(TcpClass::Other as usize)? += other;
            }
        }
    }
    if probe == NfProbe::Tail {
        let nfct: u64 = load(skb, offset!(skb_nfct));
        let slot = ct_slot(nfct);
        *counters.ct.get_mut(slot)? += segments;
        // Conntrack creates entries at PREROUTING and OUTPUT and confirms them after the last
        // rule of INPUT or POSTROUTING: a NEW, unconfirmed entry leaving those hooks' rules
        // is about to enter the table (one a rule dropped on the way never does).
        let confirming = hook == NfHook::LocalIn as u32 || hook == NfHook::PostRouting as u32;
        if slot == CT_NEW && confirming {
            let conn = nfct & !7;
            let status: u64 = read(conn, offset!(conn_status))?;
            if status & IPS_CONFIRMED == 0 {
                counters.ct_created += 1;
                count_source(head + network as u64, family);
            }
        }
    }
    Some(())
}

/// Parses the skb (whose `head`, `len` and `network` `lvl.seen` already holds) and works out
/// how many wire packets it stands for; fills in the rest of `lvl.seen`. Inlined: each
/// program calls it once, and a BPF-to-BPF call costs a few ns.
#[inline(always)]
fn classify(skb: u64, family: NfFamily, lvl: &mut Level) -> Option<()> {
    let (head, len, network) = (lvl.seen.head, lvl.seen.len, lvl.seen.network);
    let end: u32 = load(skb, offset!(skb_end));
    let tail: u32 = load(skb, offset!(skb_tail));
    let linear = tail.saturating_sub(network as u32).min(len);
    if linear == 0 {
        return None;
    }
    let shape = (len, network, end, linear);
    // A frozen global: the verifier walks only the branch this kernel takes.
    let (gso_size, gso_segs, parsed, proto, unread) = if offset!(direct_reads) != 0 {
        headers_in_place(skb, family, shape)?
    } else {
        headers_copied(head, family, shape, &mut lvl.copy)?
    };
    let mut segments = gso_segments(&parsed, gso_segs as u32, gso_size as u32);
    let mut bytes = len;
    // A datagram defragmentation rebuilt (conntrack's, at PREROUTING and OUTPUT) stands
    // for the fragments that entered before it. Reassembly alone sets
    // IPCB(skb)->frag_max_size / IP6CB(skb)->frag_max_size, the largest fragment (the
    // control block is zeroed when a packet is received or built).
    let (max_at, per_fragment) = match family {
        NfFamily::Ipv4 => (offset!(ip4cb_frag_max), parsed.l4_offset.min(60)),
        NfFamily::Ipv6 => (offset!(ip6cb_frag_max), 40 + 8),
    };
    // `cb` is a char array: the verifier allows byte loads of it (little-endian u16).
    let frag_max = u16::from_le_bytes([load(skb, max_at), load(skb, max_at + 1)]) as u32;
    if frag_max != 0 && frag_max < len && gso_size == 0 {
        let n = reassembled_fragments(len, frag_max, per_fragment);
        segments = n;
        // IPv4 repeats its header in every fragment; IPv6 its fixed header in every one and
        // a Fragment header in each (the rebuilt datagram has none).
        bytes = match family {
            NfFamily::Ipv4 => len + (n - 1) * per_fragment,
            NfFamily::Ipv6 => len + n * 8 + (n - 1) * 40,
        };
    }
    let seen = &mut lvl.seen;
    seen.proto = proto as u8;
    seen.tcp_flags = parsed.tcp_flags;
    seen.unread = unread;
    seen.segments = segments;
    seen.bytes = bytes;
    Some(())
}

/// The skb's GSO size and segments, its parsed headers, the protocol to count it under and
/// whether its transport header was out of reach, from a copy of its first bytes (one
/// bpf_probe_read_kernel).
#[inline(always)]
fn headers_copied(
    head: u64,
    family: NfFamily,
    (len, network, end, linear): (u32, u16, u32, u32),
    copy: &mut [u8; WINDOW],
) -> Option<(u16, u16, Parsed, Proto, u8)> {
    let base = head + network as u64;
    let copied = (linear as usize).min(HEADER_COPY);
    // gso_size and gso_segs lie side by side in skb_shared_info, which starts at `end`: read
    // them with the headers when one read of at most WINDOW bytes reaches them.
    let (gso_lo, gso_hi) = if offset!(shinfo_gso_size) < offset!(shinfo_gso_segs) {
        (offset!(shinfo_gso_size), offset!(shinfo_gso_segs) + 2)
    } else {
        (offset!(shinfo_gso_segs), offset!(shinfo_gso_size) + 2)
    };
    let gso_in_copy = (end as usize + gso_hi as usize)
        .checked_sub(network as usize)
        .filter(|&at| at <= WINDOW)
        .is_some();
    let span = if gso_in_copy {
        copied.max(end as usize + gso_hi as usize - network as usize)
    } else {
        copied
    };
    // SAFETY: reads `span` bytes of kernel memory into the buffer (a bad address only
    // returns an error).
    unsafe { bpf_probe_read_kernel_buf(base as *const u8, copy.get_mut(..span)?) }.ok()?;
    let (gso_size, gso_segs) = if gso_in_copy {
        let at = |o: u32| (end + o - network as u32) as usize;
        // Masked (a no-op: the span check above keeps them inside) so that the verifier,
        // which cannot follow that check, sees every index bounded.
        let byte = |i: usize| copy[i & (WINDOW - 1)];
        let u16_at = |i: usize| u16::from_ne_bytes([byte(i), byte(i + 1)]);
        (
            u16_at(at(offset!(shinfo_gso_size))),
            u16_at(at(offset!(shinfo_gso_segs))),
        )
    } else {
        let w = Window::<16>::read(head + end as u64, gso_lo, gso_hi);
        (
            w.get::<u16>(offset!(shinfo_gso_size))?,
            w.get::<u16>(offset!(shinfo_gso_segs))?,
        )
    };
    let pkt = KernelPacket {
        base,
        len,
        linear,
        copy,
        copied: copied as u32,
    };
    let parsed = parse_l3(&pkt, ip_family(family));
    let (proto, unread) = proto_of(&parsed, &pkt, family, linear);
    Some((gso_size, gso_segs, parsed, proto, unread))
}

/// [`headers_copied`] where the kernel lets the program read `skb->head` in place (from
/// Linux 6.17 on it types it as read-only untrusted memory: each load is a plain one the JIT
/// guards against faults, where the copy costs a helper call and the bytes it copies).
#[inline(always)]
fn headers_in_place(
    skb: u64,
    family: NfFamily,
    (len, network, end, linear): (u32, u16, u32, u32),
) -> Option<(u16, u16, Parsed, Proto, u8)> {
    // Loaded again from the skb, not taken from the record: only a load through the trusted
    // skb pointer gives the verifier a pointer it lets the program read through.
    let head: u64 = load(skb, offset!(skb_head));
    let shinfo = head + end as u64;
    let (gso_size, gso_segs): (u16, u16) = (
        load_untrusted(shinfo, offset!(shinfo_gso_size)),
        load_untrusted(shinfo, offset!(shinfo_gso_segs)),
    );
    let pkt = InPlacePacket {
        base: head + network as u64,
        len,
        linear,
    };
    let parsed = parse_l3(&pkt, ip_family(family));
    let (proto, unread) = proto_of(&parsed, &pkt, family, linear);
    Some((gso_size, gso_segs, parsed, proto, unread))
}

#[inline(always)]
fn ip_family(family: NfFamily) -> Family {
    match family {
        NfFamily::Ipv4 => Family::Ipv4,
        NfFamily::Ipv6 => Family::Ipv6,
    }
}

/// The protocol to count a parsed packet under, and 1 when its transport header was out of
/// reach.
#[inline(always)]
fn proto_of<P: PacketBytes>(
    parsed: &Parsed,
    pkt: &P,
    family: NfFamily,
    linear: u32,
) -> (Proto, u8) {
    if parsed.proto != Proto::Malformed {
        (parsed.proto, 0)
    } else if linear < pkt.frame_len() {
        // Headers cut off by the end of the linear data, not malformed: the IP header (always
        // linear here) still names the protocol.
        (unread_proto(pkt, family), 1)
    } else {
        (Proto::Other, 0)
    }
}
/// The transport protocol the IP header names, for a packet whose transport header could
/// not be read (IPv6 with extension headers counts as `other`).
#[inline(always)]
fn unread_proto<P: PacketBytes>(pkt: &P, family: NfFamily) -> Proto {
    let at = match family {
        NfFamily::Ipv4 => 9,
        NfFamily::Ipv6 => 6,
    };
    match (family, pkt.load::<1>(at)) {
        (_, Some([6])) => Proto::Tcp,
        (_, Some([17])) => Proto::Udp,
        (NfFamily::Ipv4, Some([1])) => Proto::Icmp,
        (NfFamily::Ipv6, Some([58])) => Proto::Icmpv6,
        _ => Proto::Other,
    }
}

/// Tallies a created conntrack entry under the source address of the IP packet at `ip`.
#[inline(always)]
fn count_source(ip: u64, family: NfFamily) -> Option<()> {
    let mut key = CtSource {
        family: family as u32,
        addr: [0; 16],
    };
    match family {
        NfFamily::Ipv4 => key.addr[..4].copy_from_slice(&read::<[u8; 4]>(ip, 12)?),
        NfFamily::Ipv6 => key.addr = read::<[u8; 16]>(ip, 8)?,
    }
    if let Some(count) = CT_SOURCE_COUNTS.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a valid map value.
        unsafe { *count += 1 };
    } else {
        let _ = CT_SOURCE_COUNTS.insert(key, 1u64, 0);
    }
    Some(())
}
