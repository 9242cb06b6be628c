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

/// The IP packet of an skb, read through bpf_probe_read_kernel.
struct KernelPacket {
    base: u64,
    len: u32,
}

impl PacketBytes for KernelPacket {
    #[inline(always)]
    fn frame_len(&self) -> u32 {
        self.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        if offset as usize + N > self.len as usize {
            return None;
        }
        read(self.base, offset)
    }
}

#[inline(always)]
fn observe(ctx: *mut BpfNfCtx, probe: NfProbe) -> Option<()> {
    // SAFETY: a read-only global; volatile so the compiler keeps the load userspace patches.
    let off: NfOffsets = unsafe { core::ptr::read_volatile(&NETPOST_NF_OFFSETS) };
    // SAFETY: the kernel passes a valid bpf_nf_ctx; these are the two fields it has.
    let (state, skb) = unsafe { ((*ctx).state, (*ctx).skb) };
    let hook: u8 = read(state, off.state_hook)?;
    let family = NfFamily::from_pf(read(state, off.state_pf)?)?;
    let hook = match hook {
        0..=4 => hook as u32,
        _ => return None,
    };
    let counters = NF_COUNTERS.get_ptr_mut(family as u32 * 5 + hook)?;

    let len: u32 = read(skb, off.skb_len)?;
    let head: u64 = read(skb, off.skb_head)?;
    let network: u16 = read(skb, off.skb_network_header)?;
    let pkt = KernelPacket {
        base: head + network as u64,
        len,
    };
    let parsed = parse_l3(
        &pkt,
        match family {
            NfFamily::Ipv4 => Family::Ipv4,
            NfFamily::Ipv6 => Family::Ipv6,
        },
    );
    let end: u32 = read(skb, off.skb_end)?;
    let gso_segs: u16 = read(head + end as u64, off.shinfo_gso_segs)?;
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
        let nfct: u64 = read(skb, off.skb_nfct)?;
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
