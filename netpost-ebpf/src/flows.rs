//! The flow table: per canonical 5-tuple and interface, packets and bytes per direction,
//! first/last seen, TCP flags and the handshake (netpost_common::handshake), updated by the
//! tc programs. State changes, never single packets, go to userspace through a ring buffer
//! whose failed reserves are counted. Global handshake counters live in a per-CPU array, so
//! evicting a flow loses nothing from them.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use netpost_common::{
    Family, PacketBytes, Parsed, Proto,
    flows::{DEFAULT_MAX_FLOWS, FlowEvent, FlowKey, FlowValue, event, funnel},
    handshake::{Change, Segment, canonical},
};

/// Sized by userspace (`--max-flows`).
#[map(name = "NETPOST_FLOWS")]
static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

#[map(name = "NETPOST_FLOW_EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Per-CPU scratch for the flow key.
#[map(name = "NETPOST_FLOW_KEY")]
static KEY_SCRATCH: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

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

/// Updates the flow `pkt` belongs to (`bytes` and `segments` as the hook counted them) and
/// returns whether it could. Not inlined, so its stack frame does not add to the counting
/// code's; it returns a value the caller uses because a BPF subprogram compiled as `void`
/// can leave a stack pointer in R0, which the verifier refuses.
#[inline(never)]
pub fn track<P: PacketBytes>(
    pkt: &P,
    parsed: &Parsed,
    ifindex: u32,
    bytes: u64,
    segments: u64,
) -> u32 {
    update(pkt, parsed, ifindex, bytes, segments).is_some() as u32
}

/// Counts a packet the flow table could not take (not IP, headers out of reach, map full).
#[inline(always)]
pub fn count_untracked() {
    bump(funnel::UNTRACKED, 1);
}

#[inline(always)]
fn update<P: PacketBytes>(
    pkt: &P,
    parsed: &Parsed,
    ifindex: u32,
    bytes: u64,
    segments: u64,
) -> Option<()> {
    let ipproto: u8 = match parsed.proto {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Icmp => 1,
        Proto::Icmpv6 => 58,
        _ => return None,
    };
    // Offsets arrive through memory, where the verifier loses their bounds: bound them again
    // (a flow's headers beyond 511 bytes, e.g. many IPv6 extension headers, go untracked).
    let l2 = parsed.l2_len;
    let l4 = parsed.l4_offset;
    if l2 > 31 || l4 > 511 {
        return None;
    }
    let (l2, l4) = (l2 & 31, l4 & 511);
    // The key is built in per-CPU scratch: with the rest of this function it would not fit
    // the 512-byte BPF stack.
    let key = KEY_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch value; nothing else holds it during the program.
    let key = unsafe { &mut *key };
    key.ifindex = ifindex;
    key.proto = ipproto;
    key._pad = 0;
    key.lo = [0; 16];
    key.hi = [0; 16];
    match parsed.family {
        Family::Ipv4 => {
            let a: [u8; 8] = pkt.load(l2 + 12)?;
            key.lo[..4].copy_from_slice(&a[..4]);
            key.hi[..4].copy_from_slice(&a[4..]);
            key.ip_version = 4;
        }
        Family::Ipv6 => {
            key.lo = pkt.load(l2 + 8)?;
            key.hi = pkt.load(l2 + 24)?;
            key.ip_version = 6;
        }
        Family::Other => return None,
    }
    let (sport, dport) = if ipproto == 6 || ipproto == 17 {
        let p: [u8; 4] = pkt.load(l4)?;
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    } else {
        (0, 0)
    };
    // Source into lo, destination into hi: swap when the destination orders first.
    let from_low = canonical(&key.lo, sport, &key.hi, dport);
    if from_low {
        (key.lo_port, key.hi_port) = (sport, dport);
    } else {
        core::mem::swap(&mut key.lo, &mut key.hi);
        (key.lo_port, key.hi_port) = (dport, sport);
    }
    let key: &FlowKey = key;
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let flow = match FLOWS.get_ptr_mut(key) {
        Some(f) => f,
        None => {
            let blank = BLANK.get_ptr_mut(0)?;
            // SAFETY: this CPU's scratch value; nothing else holds it during the program.
            unsafe {
                *blank = FlowValue::default();
                (*blank).first_ns = now;
            }
            // Another CPU may have inserted it meanwhile: NOEXIST keeps theirs. By reference:
            // a copy would not fit the stack.
            // SAFETY: as above.
            #[allow(clippy::needless_borrows_for_generic_args)]
            let inserted = FLOWS.insert(key, unsafe { &*blank }, BPF_NOEXIST as u64);
            if inserted.is_ok() {
                bump(funnel::FLOWS, 1);
                // A TCP flow announces itself with its SYN (below).
                if ipproto != 6 {
                    // SAFETY: as above.
                    emit(key, event::NEW_FLOW, unsafe { &*blank }, false, now);
                }
            }
            FLOWS.get_ptr_mut(key)?
        }
    };
    // SAFETY: a valid map value; concurrent updates from other CPUs may race (counts per
    // flow are approximate under contention; the global counters are exact).
    let flow = unsafe { &mut *flow };
    let dir = if from_low { 0 } else { 1 };
    flow.last_ns = now;
    *flow.packets.get_mut(dir)? += segments;
    *flow.bytes.get_mut(dir)? += bytes;
    if ipproto != 6 {
        return Some(());
    }
    let flags = parsed.tcp_flags;
    *flow.flags.get_mut(dir)? |= flags;
    let seq_ack: [u8; 8] = pkt.load(l4 + 4)?;
    let seq = u32::from_be_bytes([seq_ack[0], seq_ack[1], seq_ack[2], seq_ack[3]]);
    let ack = u32::from_be_bytes([seq_ack[4], seq_ack[5], seq_ack[6], seq_ack[7]]);
    let (syn_rtx, synack_rtx) = (
        flow.handshake.syn_retransmits,
        flow.handshake.synack_retransmits,
    );
    let segment = Segment {
        from_low,
        flags,
        seq,
        ack,
    };
    let change = flow.handshake.on_packet(segment, now);
    bump(
        funnel::SYN_RETRANSMITS,
        flow.handshake.syn_retransmits.wrapping_sub(syn_rtx) as u64,
    );
    bump(
        funnel::SYNACK_RETRANSMITS,
        flow.handshake.synack_retransmits.wrapping_sub(synack_rtx) as u64,
    );
    let (counter, kind, by_client) = match change? {
        Change::Opened => (funnel::SYN, event::NEW_FLOW, false),
        Change::Answered => (funnel::SYNACK, event::ANSWERED, false),
        Change::Established => (funnel::ESTABLISHED, event::ESTABLISHED, false),
        Change::Reset { by_client } => (funnel::RESETS, event::RESET, by_client),
        Change::Closed => (funnel::CLOSED, event::CLOSED, false),
    };
    bump(counter, 1);
    emit(key, kind, flow, by_client, now);
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
