//! The flow table: per canonical 5-tuple and interface, packets and bytes per direction,
//! first seen, TCP flags and the handshake (netpost_common::handshake), updated by the
//! tc programs. State changes, never single packets, go to userspace through a ring buffer
//! whose failed reserves are counted. Global handshake counters live in a per-CPU array, so
//! evicting a flow loses nothing from them.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use netpost_common::{
    FRAG_FIRST, FRAG_LATER, Family, Parsed, Proto,
    flows::{DEFAULT_MAX_FLOWS, FRAG_KEYS, FlowEvent, FlowKey, FlowValue, FragKey, event, funnel},
    handshake::{Change, FIN, RST, SYN, Segment, Stage, canonical_words},
};

use crate::{bounds::below, packet::Words};

/// 1 when the flows probe runs (set by userspace before loading; frozen, so the verifier
/// drops the flow code from the tc programs of a profile without flows).
#[unsafe(no_mangle)]
static NETPOST_FLOWS_ON: u32 = 0;

/// Whether tc tracks flows in this run.
#[inline(always)]
pub fn tracking() -> bool {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    unsafe { core::ptr::read_volatile(&NETPOST_FLOWS_ON) != 0 }
}

/// Sized by userspace (`--max-flows`).
#[map(name = "NETPOST_FLOWS")]
static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

#[map(name = "NETPOST_FLOW_EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Per-CPU scratch for a flow key (the benchmark's event producer; flows build theirs on
/// the stack).
#[map(name = "NETPOST_FLOW_KEY")]
static KEY_SCRATCH: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

/// Which watched interface speaks for each connection (key: the flow key with ifindex 0).
/// Sized by userspace like the flow table.
#[map(name = "NETPOST_FLOW_OWNERS")]
static OWNERS: LruHashMap<FlowKey, u32> = LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

/// A zeroed FlowValue to insert new flows from (too big for the 512-byte BPF stack).
#[map(name = "NETPOST_FLOW_BLANK")]
static BLANK: PerCpuArray<FlowValue> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "NETPOST_FUNNEL")]
static FUNNEL: PerCpuArray<u64> = PerCpuArray::with_max_entries(funnel::COUNT, 0);

#[inline(always)]
fn bump(index: u32, by: u64) {
    if let Some(c) = FUNNEL.get_ptr_mut(index) {
        // SAFETY: this CPU's copy of a valid map value.
        unsafe { *c += by };
    }
}

/// Counts a packet the flow table could not take (not IP, headers out of reach, map full).
#[inline(always)]
pub fn count_untracked() {
    bump(funnel::UNTRACKED, 1);
}

/// FlowValue in u64s, to zero it word by word.
const VALUE_WORDS: usize = core::mem::size_of::<FlowValue>() / 8;
const _: () = assert!(core::mem::size_of::<FlowValue>().is_multiple_of(8));

/// Ports of fragmented datagrams, from their first fragment (see [`FragKey`]).
#[map(name = "NETPOST_FRAG_PORTS")]
static FRAGS: LruHashMap<FragKey, [u16; 2]> = LruHashMap::with_max_entries(FRAG_KEYS, 0);

#[inline(always)]
fn frag_key(ip_version: u8, proto: u8, id: u32, src: [u32; 4], dst: [u32; 4]) -> FragKey {
    FragKey {
        ip_version,
        proto,
        _pad: 0,
        id,
        src: addr_bytes(src),
        dst: addr_bytes(dst),
    }
}

/// Words back to the key's bytes (same memory order).
#[inline(always)]
fn addr_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, w) in out.chunks_exact_mut(4).zip(w) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    out
}

/// What the flow table needs of one packet: read while the packet is being counted (in the
/// counting subprogram, which has the packet at hand), applied by [`update`] afterwards.
pub struct FlowPacket {
    pub key: FlowKey,
    /// 0 when sent by the key's low endpoint, 1 by the high one (an integer, not a bool: the
    /// compiler drops the bounds check of an index made from a bool, which the verifier
    /// needs once the value has been through memory).
    pub dir: u32,
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes (TCP Fast Open data in a SYN).
    pub len: u32,
}

/// Whether a flow can take a packet: TCP, UDP, ICMP or ICMPv6 over IP.
#[inline(always)]
pub fn trackable(parsed: &Parsed) -> bool {
    matches!(
        parsed.proto,
        Proto::Tcp | Proto::Udp | Proto::Icmp | Proto::Icmpv6
    ) && parsed.family != Family::Other
}

/// What the flow table needs of `pkt` on `ifindex`; None when no flow can take it (not
/// TCP/UDP/ICMP over IP, headers out of reach).
#[inline(always)]
pub fn read<P: Words>(pkt: &P, parsed: &Parsed, ifindex: u32) -> Option<FlowPacket> {
    let ipproto: u8 = match parsed.proto {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Icmp => 1,
        Proto::Icmpv6 => 58,
        _ => return None,
    };
    // Offsets arrive through memory, where the verifier loses their bounds: bound them again
    // (a flow's headers beyond 511 bytes, e.g. many IPv6 extension headers, go untracked).
    let l2 = below::<32>(parsed.l2_len)?;
    let l4 = below::<512>(parsed.l4_offset)?;
    // Addresses as words of four bytes in packet order: loaded, compared and stored a word at
    // a time (byte by byte, with a byte-loop memset first, the key cost more than the map
    // lookup).
    let (ip_version, src, dst) = match parsed.family {
        Family::Ipv4 => {
            let [src, dst] = pkt.words::<2>(l2 + 12)?;
            (4, [src, 0, 0, 0], [dst, 0, 0, 0])
        }
        Family::Ipv6 => {
            let [s0, s1, s2, s3, d0, d1, d2, d3] = pkt.words::<8>(l2 + 8)?;
            (6, [s0, s1, s2, s3], [d0, d1, d2, d3])
        }
        Family::Other => return None,
    };
    let (sport, dport) = if ipproto != 6 && ipproto != 17 {
        (0, 0)
    } else if parsed.fragment == FRAG_LATER {
        // No transport header here (the bytes there are the datagram's middle): the first
        // fragment left its ports. Without them (it came later, or was evicted) the fragment
        // goes untracked rather than into a flow of payload bytes.
        let key = frag_key(ip_version, ipproto, parsed.frag_id, src, dst);
        // SAFETY: plain data, copied out at once.
        let [sport, dport] = *unsafe { FRAGS.get(key) }?;
        (sport, dport)
    } else {
        let [ports] = pkt.words::<1>(l4)?;
        let p = ports.to_ne_bytes();
        let ports = [
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ];
        if parsed.fragment == FRAG_FIRST {
            let key = frag_key(ip_version, ipproto, parsed.frag_id, src, dst);
            let _ = FRAGS.insert(key, ports, 0);
        }
        (ports[0], ports[1])
    };
    // Source into lo, destination into hi: swap when the destination orders first.
    let from_low = canonical_words(&src, sport, &dst, dport);
    let (lo, lo_port, hi, hi_port) = if from_low {
        (src, sport, dst, dport)
    } else {
        (dst, dport, src, sport)
    };
    let [seq, ack] = if ipproto == 6 && parsed.fragment != FRAG_LATER {
        pkt.words::<2>(l4 + 4)?.map(u32::from_be)
    } else {
        [0, 0]
    };
    Some(FlowPacket {
        // Written whole: no scratch map lookup and no zeroing first.
        key: FlowKey {
            ifindex,
            ip_version,
            proto: ipproto,
            _pad: 0,
            lo_port,
            hi_port,
            lo: addr_bytes(lo),
            hi: addr_bytes(hi),
        },
        dir: if from_low { 0 } else { 1 },
        tcp_flags: parsed.tcp_flags,
        seq,
        ack,
        len: parsed.payload_len(),
    })
}

/// Adds a packet read by [`read`] (`bytes` and `segments` as the hook counted them) to its
/// flow, inserting the flow if it is new; None when the flow table could not take it.
#[inline(always)]
pub fn update(fp: &FlowPacket, bytes: u64, segments: u64) -> Option<()> {
    let key = &fp.key;
    let ipproto = key.proto;
    let dir = (fp.dir & 1) as usize;
    let from_low = dir == 0;
    let flow = match FLOWS.get_ptr_mut(key) {
        Some(f) => f,
        // The coarse clock (a tick's resolution) is enough for first seen and costs far less
        // than the precise one, which only handshake timing needs (below).
        // SAFETY: a helper without preconditions.
        None => insert(key, ipproto, from_low, unsafe { bpf_ktime_get_coarse_ns() })?,
    };
    // SAFETY: a valid map value; concurrent updates from other CPUs may race (counts per
    // flow are approximate under contention; the global counters are exact).
    let flow = unsafe { &mut *flow };
    *flow.packets.get_mut(dir)? += segments;
    *flow.bytes.get_mut(dir)? += bytes;
    if ipproto != 6 {
        return Some(());
    }
    let flags = fp.tcp_flags;
    let seen = flow.flags.get_mut(dir)?;
    // Written only when it changes (rarely after the handshake): no store per packet to a
    // line other CPUs' packets of the flow read too.
    if *seen | flags != *seen {
        *seen |= flags;
    }
    // Most TCP packets are data or ACKs of a connection under way: nothing in the handshake
    // can change, and neither the machine nor the precise clock is needed.
    let stage = flow.handshake.stage;
    let settled = stage == Stage::Established as u8
        || stage == Stage::Closing as u8
        || stage == Stage::Midstream as u8;
    if settled && flags & (SYN | FIN | RST) == 0 {
        return Some(());
    }
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    flow.last_ns = now;
    let (syn_rtx, synack_rtx) = (
        flow.handshake.syn_retransmits,
        flow.handshake.synack_retransmits,
    );
    let segment = Segment {
        from_low,
        flags,
        seq: fp.seq,
        ack: fp.ack,
        len: fp.len,
        low_port_is_higher: key.lo_port > key.hi_port,
    };
    let change = flow.handshake.on_packet(segment, now);
    // A connection crossing several watched interfaces is counted by one of them.
    if flow.owner == 0 {
        return Some(());
    }
    // Adding 0 would cost a map lookup on every TCP packet.
    let syn_rtx = flow.handshake.syn_retransmits.wrapping_sub(syn_rtx);
    if syn_rtx != 0 {
        bump(funnel::SYN_RETRANSMITS, syn_rtx as u64);
    }
    let synack_rtx = flow.handshake.synack_retransmits.wrapping_sub(synack_rtx);
    if synack_rtx != 0 {
        bump(funnel::SYNACK_RETRANSMITS, synack_rtx as u64);
    }
    // Most packets change nothing: the flow took them all the same.
    let Some(change) = change else {
        return Some(());
    };
    let (counter, kind, by_client) = match change {
        Change::Opened => (funnel::SYN, event::NEW_FLOW, false),
        Change::Answered => (funnel::SYNACK, event::ANSWERED, false),
        Change::Established => (funnel::ESTABLISHED, event::ESTABLISHED, false),
        Change::Undone => (funnel::UNDONE, event::UNDONE, false),
        Change::Reset { by_client } => (funnel::RESETS, event::RESET, by_client),
        Change::Closed => (funnel::CLOSED, event::CLOSED, false),
    };
    bump(counter, 1);
    emit(key, kind, flow, by_client, now);
    Some(())
}

/// Inserts a new flow (zeroed, first seen `now`, from the low endpoint when `from_low`) and
/// returns it. Whether this interface's
/// entry speaks for the connection is decided here, once per flow: the first watched
/// interface to see a connection owns it (the owner table remembers which one), so a
/// router watching both its interfaces counts each connection once.
#[inline(always)]
fn insert(key: &FlowKey, ipproto: u8, from_low: bool, now: u64) -> Option<*mut FlowValue> {
    let blank = BLANK.get_ptr_mut(0)?;
    let conn = FlowKey { ifindex: 0, ..*key };
    let owner = match OWNERS.insert(conn, key.ifindex, BPF_NOEXIST as u64) {
        Ok(()) => true,
        // SAFETY: plain data, read at once.
        Err(_) => unsafe { OWNERS.get(conn) }.is_none_or(|&o| o == key.ifindex),
    };
    // SAFETY: this CPU's scratch value; nothing else holds it during the program. Zeroed a
    // u64 at a time (volatile, or LLVM makes it a call to a byte-by-byte memset loop).
    unsafe {
        let words = blank as *mut u64;
        for i in 0..VALUE_WORDS {
            words.add(i).write_volatile(0);
        }
        (*blank).first_ns = now;
        (*blank).last_ns = now;
        (*blank).owner = owner as u8;
        // Who sent the first packet: the direction of a UDP/ICMP flow (its new_flow event
        // and rows list it from there); TCP's handshake machine sets it again.
        (*blank).handshake.client_is_low = from_low as u8;
    }
    // Another CPU may have inserted it meanwhile: NOEXIST keeps theirs. By reference: a copy
    // would not fit the stack.
    // SAFETY: as above.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let inserted = FLOWS.insert(key, unsafe { &*blank }, BPF_NOEXIST as u64);
    if inserted.is_ok() && owner {
        bump(funnel::FLOWS, 1);
        // A TCP flow announces itself with its SYN.
        if ipproto != 6 {
            // SAFETY: as above.
            emit(key, event::NEW_FLOW, unsafe { &*blank }, false, now);
        }
    }
    FLOWS.get_ptr_mut(key)
}

/// Emits one ESTABLISHED event for a zeroed flow with fixed handshake RTTs: the benchmark's
/// event producer (bench.rs), through the same reserve/submit and loss counting as real
/// flows, and with RTTs so userspace takes its full per-event path.
#[inline(always)]
pub fn emit_bench_event() -> Option<()> {
    let key = KEY_SCRATCH.get_ptr_mut(0)?;
    let blank = BLANK.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch values; nothing else holds them during the program.
    let (key, blank) = unsafe { (&*key, &mut *blank) };
    blank.handshake.rtt_syn_us = 100;
    blank.handshake.rtt_ack_us = 50;
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    emit(key, event::ESTABLISHED, blank, false, now);
    Some(())
}

/// Writes an event straight into the ring buffer (no copy on the stack).
#[inline(always)]
fn emit(key: &FlowKey, kind: u8, flow: &FlowValue, by_client: bool, now: u64) {
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        bump(funnel::EVENTS_LOST, 1);
        return;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at a reserved, writable FlowEvent; every field is written.
    unsafe {
        (*e).ts_ns = now;
        (*e).key = *key;
        (*e).kind = kind;
        (*e).stage = flow.handshake.stage;
        (*e).by_client = by_client as u8;
        (*e).client_is_low = flow.handshake.client_is_low;
        (*e).rtt_syn_us = flow.handshake.rtt_syn_us;
        (*e).rtt_ack_us = flow.handshake.rtt_ack_us;
        (*e)._pad = [0; 2];
    }
    entry.submit(0);
}
