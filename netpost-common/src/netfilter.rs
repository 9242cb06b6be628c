//! Netfilter hook traversal: map layouts and the pure logic the netfilter programs use.
//!
//! At each of the five hooks netpost links two programs: `head` at the earliest priority the
//! kernel allows, `tail` at the latest. A packet that reaches `head` has *entered* the hook;
//! one that reaches `tail` survived every other hook function there (iptables, nftables,
//! conntrack...): *accepted*. entered - accepted = dropped, stolen or queued at that hook.

use crate::counters::Proto;

/// Netfilter hook numbers, as the kernel numbers them (NF_INET_*).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NfHook {
    PreRouting = 0,
    LocalIn = 1,
    Forward = 2,
    LocalOut = 3,
    PostRouting = 4,
}

impl NfHook {
    pub const COUNT: usize = 5;
    /// In packet-path order.
    pub const ALL: [NfHook; NfHook::COUNT] = [
        NfHook::PreRouting,
        NfHook::LocalIn,
        NfHook::Forward,
        NfHook::LocalOut,
        NfHook::PostRouting,
    ];

    /// The iptables chain name, lower case: the key in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            NfHook::PreRouting => "prerouting",
            NfHook::LocalIn => "input",
            NfHook::Forward => "forward",
            NfHook::LocalOut => "output",
            NfHook::PostRouting => "postrouting",
        }
    }
}

/// Protocol families netpost links at (NFPROTO_INET is refused by the kernel for links).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NfFamily {
    Ipv4 = 0,
    Ipv6 = 1,
}

impl NfFamily {
    pub const COUNT: usize = 2;
    pub const ALL: [NfFamily; NfFamily::COUNT] = [NfFamily::Ipv4, NfFamily::Ipv6];

    /// NFPROTO_IPV4 / NFPROTO_IPV6.
    pub const fn pf(self) -> u8 {
        match self {
            NfFamily::Ipv4 => 2,
            NfFamily::Ipv6 => 10,
        }
    }

    pub const fn from_pf(pf: u8) -> Option<NfFamily> {
        match pf {
            2 => Some(NfFamily::Ipv4),
            10 => Some(NfFamily::Ipv6),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            NfFamily::Ipv4 => "ipv4",
            NfFamily::Ipv6 => "ipv6",
        }
    }
}

/// Where a TCP packet stands in the handshake, from its flags alone.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpClass {
    /// SYN without ACK: a connection attempt.
    Syn = 0,
    /// SYN with ACK: the answer.
    SynAck = 1,
    Rst = 2,
    Fin = 3,
    Other = 4,
    /// The TCP header was not in the skb's linear data where netfilter runs (a driver left it
    /// in a page fragment): the packet is TCP, its flags were not read.
    Unread = 5,
}

impl TcpClass {
    pub const COUNT: usize = 6;
    pub const ALL: [TcpClass; TcpClass::COUNT] = [
        TcpClass::Syn,
        TcpClass::SynAck,
        TcpClass::Rst,
        TcpClass::Fin,
        TcpClass::Other,
        TcpClass::Unread,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            TcpClass::Syn => "syn",
            TcpClass::SynAck => "synack",
            TcpClass::Rst => "rst",
            TcpClass::Fin => "fin",
            TcpClass::Other => "other",
            TcpClass::Unread => "unread",
        }
    }
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Classifies a TCP flags byte. RST wins over everything (a reset ends the connection
/// whatever else is set), then SYN, then FIN.
#[inline(always)]
pub const fn tcp_class(flags: u8) -> TcpClass {
    if flags & TCP_RST != 0 {
        TcpClass::Rst
    } else if flags & TCP_SYN != 0 {
        if flags & TCP_ACK != 0 {
            TcpClass::SynAck
        } else {
            TcpClass::Syn
        }
    } else if flags & TCP_FIN != 0 {
        TcpClass::Fin
    } else {
        TcpClass::Other
    }
}

/// Wire segments per class of a TCP skb of `segments` segments: `(class, in_class, other)`.
/// Segmentation copies the flags to every segment except FIN and PSH, which only the last
/// one keeps (and CWR, only the first): a super-packet ending in a FIN is one FIN on the
/// wire and `segments - 1` segments without it. SYN and RST never travel in super-packets.
#[inline(always)]
pub const fn tcp_class_segments(flags: u8, segments: u64) -> (TcpClass, u64, u64) {
    let class = tcp_class(flags);
    if matches!(class, TcpClass::Fin) && segments > 1 {
        (class, 1, segments - 1)
    } else {
        (class, segments, 0)
    }
}

/// Conntrack slots: `skb->_nfct & 7` is the ctinfo (0 ESTABLISHED, 1 RELATED, 2 NEW,
/// 3 ESTABLISHED_REPLY, 4 RELATED_REPLY, 5 NEW_REPLY, 7 UNTRACKED); slot 8 is "no conntrack
/// entry" (`_nfct == 0`: conntrack is not active in the namespace, or found the packet INVALID).
pub const CT_SLOTS: usize = 9;
pub const CT_ESTABLISHED: usize = 0;
pub const CT_RELATED: usize = 1;
pub const CT_NEW: usize = 2;
pub const CT_ESTABLISHED_REPLY: usize = 3;
pub const CT_RELATED_REPLY: usize = 4;
pub const CT_NEW_REPLY: usize = 5;
pub const CT_UNTRACKED: usize = 7;
pub const CT_NONE: usize = 8;

/// The slot for a `skb->_nfct` value.
#[inline(always)]
pub const fn ct_slot(nfct: u64) -> usize {
    if nfct == 0 {
        CT_NONE
    } else {
        (nfct & 7) as usize
    }
}

/// Packets and bytes. As at XDP and tc, packets are wire segments (a GSO skb counts
/// `gso_segs`); bytes are the IP datagram as netfilter sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub packets: u64,
    pub bytes: u64,
}

/// What one probe (head or tail) of one hook saw.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfProbeCounters {
    pub by_proto: [Tally; Proto::COUNT],
    pub tcp: [u64; TcpClass::COUNT],
}

/// One hook of one family: entry (`head`), survival (`tail`), conntrack state at `tail`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfHookCounters {
    pub head: NfProbeCounters,
    pub tail: NfProbeCounters,
    pub ct: [u64; CT_SLOTS],
    /// Conntrack entries about to be confirmed at this hook (INPUT and POSTROUTING, where
    /// conntrack confirms the entries it created at PREROUTING and OUTPUT): packets in state
    /// NEW whose entry is not yet confirmed when they leave the hook's last rule. Counting
    /// them at creation would count entries whose packet a rule then dropped, which never
    /// enter the table.
    pub ct_created: u64,
}

impl NfHookCounters {
    pub const ENTRIES: u32 = (NfFamily::COUNT * NfHook::COUNT) as u32;

    pub const fn index(family: NfFamily, hook: NfHook) -> u32 {
        family as u32 * NfHook::COUNT as u32 + hook as u32
    }

    /// Adds another CPU's values.
    pub fn add(&mut self, other: &NfHookCounters) {
        for (mine, theirs) in [(&mut self.head, &other.head), (&mut self.tail, &other.tail)] {
            for (m, t) in mine.by_proto.iter_mut().zip(theirs.by_proto.iter()) {
                m.packets += t.packets;
                m.bytes += t.bytes;
            }
            for (m, t) in mine.tcp.iter_mut().zip(theirs.tcp.iter()) {
                *m += t;
            }
        }
        for (m, t) in self.ct.iter_mut().zip(other.ct.iter()) {
            *m += t;
        }
        self.ct_created += other.ct_created;
    }
}

/// Probe position, passed to the shared counting code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NfProbe {
    Head,
    Tail,
}

/// Kernel struct offsets the netfilter programs read at, found in the running kernel's BTF
/// by userspace and written into the programs' read-only globals before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfOffsets {
    pub state_hook: u32,
    pub state_pf: u32,
    pub skb_len: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_nfct: u32,
    /// `skb->end`: with `head`, where `skb_shared_info` (and its `gso_segs`) starts.
    pub skb_end: u32,
    pub shinfo_gso_segs: u32,
    /// `nf_conn.status` (IPS_* bits), to tell a new entry from a confirmed one.
    pub conn_status: u32,
    /// `skb->tail` (an offset from head on 64-bit kernels): where the linear data ends.
    pub skb_tail: u32,
    pub shinfo_gso_size: u32,
    /// Where `IPCB(skb)->frag_max_size` / `IP6CB(skb)->frag_max_size` lie in the `sk_buff`
    /// (its `cb` plus the member's offset in `inet_skb_parm` / `inet6_skb_parm`).
    pub ip4cb_frag_max: u32,
    pub ip6cb_frag_max: u32,
    /// 1 when the kernel lets netfilter programs read `skb->head` in place (Linux >= 6.17,
    /// probed by userspace): the programs read the headers with plain loads instead of
    /// copying them with a helper call.
    pub direct_reads: u32,
}

/// How many fragments a reassembled datagram of `len` bytes arrived in, given the largest
/// fragment (`frag_max`, the kernel's `frag_max_size`) and the header every fragment repeats
/// (`per_fragment`: the IPv4 header, or IPv6's fixed header plus Fragment header). Every
/// fragment but the last is as large as the largest one, as fragmentation cuts them.
#[inline(always)]
pub const fn reassembled_fragments(len: u32, frag_max: u32, per_fragment: u32) -> u32 {
    if frag_max <= per_fragment || len <= per_fragment {
        return 1;
    }
    let n = (len - per_fragment).div_ceil(frag_max - per_fragment);
    if n == 0 { 1 } else { n }
}

/// `IPS_CONFIRMED`: the entry is in the conntrack table.
pub const IPS_CONFIRMED: u64 = 1 << 3;

/// Key of the per-source tally of created conntrack entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtSource {
    /// NfFamily as u32.
    pub family: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
}

/// How many sources the kernel keeps (least recently used ones are evicted).
pub const CT_SOURCES: u32 = 4096;

const _: () = assert!(core::mem::size_of::<NfProbeCounters>() == 16 * 6 + 8 * 6);
const _: () = assert!(core::mem::size_of::<NfHookCounters>() == 2 * (16 * 6 + 8 * 6) + 8 * 9 + 8);
const _: () = assert!(core::mem::size_of::<NfOffsets>() == 56);
const _: () = assert!(core::mem::size_of::<CtSource>() == 20);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::NfHookCounters {}
    unsafe impl aya::Pod for super::NfOffsets {}
    unsafe impl aya::Pod for super::CtSource {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flags_classify_the_handshake() {
        assert_eq!(tcp_class(0x02), TcpClass::Syn);
        assert_eq!(tcp_class(0x12), TcpClass::SynAck);
        assert_eq!(tcp_class(0x10), TcpClass::Other, "plain ACK");
        assert_eq!(tcp_class(0x18), TcpClass::Other, "PSH ACK");
        assert_eq!(tcp_class(0x11), TcpClass::Fin, "FIN ACK");
        assert_eq!(tcp_class(0x14), TcpClass::Rst, "RST ACK");
        assert_eq!(tcp_class(0x06), TcpClass::Rst, "RST wins over SYN");
        assert_eq!(tcp_class(0x03), TcpClass::Syn, "SYN wins over FIN");
        assert_eq!(tcp_class(0x00), TcpClass::Other);
    }

    #[test]
    fn a_fin_super_packet_is_one_fin_on_the_wire() {
        assert_eq!(tcp_class_segments(0x11, 9), (TcpClass::Fin, 1, 8));
        assert_eq!(tcp_class_segments(0x19, 1), (TcpClass::Fin, 1, 0));
        assert_eq!(tcp_class_segments(0x10, 9), (TcpClass::Other, 9, 0));
        assert_eq!(tcp_class_segments(0x02, 1), (TcpClass::Syn, 1, 0));
    }

    #[test]
    fn reassembled_datagrams_count_their_fragments() {
        // 3000 bytes of UDP data + 8 UDP + 20 IP = 3028, MTU 1500: 1480 + 1480 + 48.
        assert_eq!(reassembled_fragments(3028, 1500, 20), 3);
        assert_eq!(reassembled_fragments(1500, 1500, 20), 1);
        assert_eq!(reassembled_fragments(1501, 1500, 20), 2);
        assert_eq!(reassembled_fragments(100, 0, 20), 1, "no size known");
    }

    #[test]
    fn nfct_maps_to_ctinfo_or_none() {
        assert_eq!(ct_slot(0), CT_NONE);
        assert_eq!(ct_slot(0xffff_8880_1234_5600 | 2), CT_NEW);
        assert_eq!(ct_slot(0xffff_8880_1234_5600), CT_ESTABLISHED);
        assert_eq!(ct_slot(0xffff_8880_1234_5600 | 3), CT_ESTABLISHED_REPLY);
        assert_eq!(ct_slot(7), CT_UNTRACKED);
    }

    #[test]
    fn hook_numbers_and_families_match_the_kernel() {
        assert_eq!(NfHook::PreRouting as u32, 0);
        assert_eq!(NfHook::PostRouting as u32, 4);
        assert_eq!(NfFamily::from_pf(2), Some(NfFamily::Ipv4));
        assert_eq!(NfFamily::from_pf(10), Some(NfFamily::Ipv6));
        assert_eq!(NfFamily::from_pf(7), None, "bridge is not linked");
        assert_eq!(NfHookCounters::index(NfFamily::Ipv6, NfHook::Forward), 7);
    }
}
