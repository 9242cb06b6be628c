//! The one header parser every hook shares: Ethernet (+ up to two 802.1Q/802.1ad tags, as
//! stacked "QinQ" frames carry), IPv4 (with
//! options), IPv6 (fixed header plus up to [`MAX_IPV6_EXT`] common extension headers), TCP,
//! UDP, ICMP and ICMPv6.
//!
//! It is written for the BPF verifier: no loops over unbounded data, every read goes through
//! [`PacketBytes::load`] (which bounds-checks), and offsets stay bounded (IHL, TCP data offset
//! and extension lengths are small by construction). The same code runs in host tests over
//! byte slices.

use crate::counters::{Family, Proto};

/// Extension headers walked before giving up and counting the packet as `other`.
pub const MAX_IPV6_EXT: usize = 4;

/// VLAN tags unwrapped (802.1ad outer + 802.1Q inner); a third leaves the frame `other`.
pub const MAX_VLAN_TAGS: usize = 2;

const ETH_HLEN: u32 = 14;
const VLAN_HLEN: u32 = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// The most a 16-bit IP length field can say. Length 0 stands for "the rest of the frame"
/// (BIG TCP, jumbograms) only when the datagram is longer than this.
const MAX_LEN_FIELD: u32 = 0xffff;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

/// Read access to one frame, starting at its Ethernet header.
pub trait PacketBytes {
    /// Length of the frame in bytes (without FCS).
    fn frame_len(&self) -> u32;
    /// The `N` bytes at `offset`, or `None` when they are not all inside the frame.
    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]>;
}

impl PacketBytes for [u8] {
    fn frame_len(&self) -> u32 {
        self.len() as u32
    }

    fn load<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        let start = offset as usize;
        self.get(start..start.checked_add(N)?)?.try_into().ok()
    }
}

/// Where a frame's headers end and what it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub family: Family,
    pub proto: Proto,
    /// Ethernet header plus VLAN tag, in bytes.
    pub l2_len: u32,
    /// All headers (L2 + L3 + extension headers + L4) before the payload, in bytes.
    pub header_len: u32,
    /// Where the IP datagram ends; anything after it (Ethernet padding) is not payload.
    pub l3_end: u32,
    /// TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN); 0 for everything but TCP.
    pub tcp_flags: u8,
    /// Where the transport header starts (meaningful for TCP, UDP, ICMP).
    pub l4_offset: u32,
    /// [`FRAG_NONE`], [`FRAG_FIRST`] or [`FRAG_LATER`]: a later fragment carries no
    /// transport header (its "ports" would be payload bytes).
    pub fragment: u8,
    /// The fragment's identification (IPv4's 16-bit ID, IPv6's 32-bit one); 0 when not a
    /// fragment.
    pub frag_id: u32,
}

/// A whole datagram.
pub const FRAG_NONE: u8 = 0;
/// The first fragment of a datagram: it has the transport header.
pub const FRAG_FIRST: u8 = 1;
/// A fragment after the first: IP header, then the datagram's middle or end.
pub const FRAG_LATER: u8 = 2;

impl Parsed {
    /// A frame whose bytes are all overhead: not IP, or not one we can trust.
    const fn all_header(family: Family, proto: Proto, l2_len: u32, len: u32) -> Parsed {
        Parsed {
            family,
            proto,
            l2_len,
            header_len: len,
            l3_end: len,
            tcp_flags: 0,
            l4_offset: len,
            fragment: FRAG_NONE,
            frag_id: 0,
        }
    }

    /// Bytes of application payload (TCP/UDP data, ICMP body) in this frame.
    pub const fn payload_len(&self) -> u32 {
        self.l3_end.saturating_sub(self.header_len)
    }
}

#[inline(always)]
fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Parses one frame. Never fails: frames that do not hold together come back as
/// `Proto::Malformed` with every byte counted as header.
#[inline(always)]
pub fn parse<P: PacketBytes + ?Sized>(pkt: &P) -> Parsed {
    let len = pkt.frame_len();
    let Some(eth) = pkt.load::<14>(0) else {
        return Parsed::all_header(Family::Other, Proto::Malformed, 0, len);
    };
    let mut ethertype = be16(eth[12], eth[13]);
    let mut l2 = ETH_HLEN;
    // An outer (service) tag and an inner (customer) one at most.
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let Some(tag) = pkt.load::<4>(l2) else {
            return Parsed::all_header(Family::Other, Proto::Malformed, l2, len);
        };
        ethertype = be16(tag[2], tag[3]);
        l2 += VLAN_HLEN;
    }
    match ethertype {
        ETH_P_IP => parse_ipv4(pkt, l2, len),
        ETH_P_IPV6 => parse_ipv6(pkt, l2, len),
        _ => Parsed::all_header(Family::Other, Proto::Other, l2, len),
    }
}

/// Parses a packet that starts at its IP header (netfilter hooks see no Ethernet header).
/// `family` comes from the hook (NFPROTO_IPV4/IPV6); `l2_len` is 0 in the result.
#[inline(always)]
pub fn parse_l3<P: PacketBytes + ?Sized>(pkt: &P, family: Family) -> Parsed {
    let len = pkt.frame_len();
    match family {
        Family::Ipv4 => parse_ipv4(pkt, 0, len),
        Family::Ipv6 => parse_ipv6(pkt, 0, len),
        Family::Other => Parsed::all_header(Family::Other, Proto::Other, 0, len),
    }
}

#[inline(always)]
fn parse_ipv4<P: PacketBytes + ?Sized>(pkt: &P, l2: u32, len: u32) -> Parsed {
    let malformed = Parsed::all_header(Family::Ipv4, Proto::Malformed, l2, len);
    let Some(ip) = pkt.load::<20>(l2) else {
        return malformed;
    };
    let ihl = (ip[0] & 0x0f) as u32 * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return malformed;
    }
    // Options: the header's last byte must be inside the frame.
    if ihl > 20 && pkt.load::<1>(l2 + ihl - 1).is_none() {
        return malformed;
    }
    let avail = len - l2;
    let tot_len = be16(ip[2], ip[3]) as u32;
    let datagram = if tot_len == 0 && avail > MAX_LEN_FIELD {
        // GSO super-packets above 64 KiB (BIG TCP) carry 0 here. Below that, 0 is < IHL.
        avail
    } else if tot_len < ihl || tot_len > avail {
        return malformed;
    } else {
        tot_len
    };
    let frag = be16(ip[6], ip[7]);
    // MF set or a non-zero offset.
    let fragment = if frag & 0x1fff != 0 {
        FRAG_LATER
    } else if frag & 0x2000 != 0 {
        FRAG_FIRST
    } else {
        FRAG_NONE
    };
    let mut parsed = transport(
        pkt,
        Family::Ipv4,
        ip[9],
        l2,
        l2 + ihl,
        l2 + datagram,
        fragment != FRAG_LATER,
    );
    if fragment != FRAG_NONE && parsed.proto != Proto::Malformed {
        parsed.fragment = fragment;
        parsed.frag_id = be16(ip[4], ip[5]) as u32;
    }
    parsed
}

#[inline(always)]
fn parse_ipv6<P: PacketBytes + ?Sized>(pkt: &P, l2: u32, len: u32) -> Parsed {
    let malformed = Parsed::all_header(Family::Ipv6, Proto::Malformed, l2, len);
    let Some(ip) = pkt.load::<40>(l2) else {
        return malformed;
    };
    if ip[0] >> 4 != 6 {
        return malformed;
    }
    let payload_len = be16(ip[4], ip[5]) as u32;
    let avail = len - l2 - 40;
    let l3_end = if payload_len == 0 && avail > MAX_LEN_FIELD {
        // Jumbograms and BIG TCP super-packets. Below 64 KiB, 0 means no payload.
        len
    } else if payload_len > avail {
        return malformed;
    } else {
        l2 + 40 + payload_len
    };
    let mut next = ip[6];
    let mut off = l2 + 40;
    let mut first_fragment = true;
    let mut fragment = FRAG_NONE;
    let mut frag_id = 0;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(ext) = pkt.load::<2>(off) else {
                    return malformed;
                };
                next = ext[0];
                off += (ext[1] as u32 + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some(ext) = pkt.load::<8>(off) else {
                    return malformed;
                };
                next = ext[0];
                let frag = be16(ext[2], ext[3]);
                first_fragment = frag & 0xfff8 == 0;
                // An atomic fragment (offset 0, M clear, RFC 8200) is a whole datagram.
                fragment = if !first_fragment {
                    FRAG_LATER
                } else if frag & 1 != 0 {
                    FRAG_FIRST
                } else {
                    FRAG_NONE
                };
                frag_id = u32::from_be_bytes([ext[4], ext[5], ext[6], ext[7]]);
                off += 8;
                if !first_fragment {
                    // What follows in a later fragment is fragment data, not headers.
                    break;
                }
            }
            IPPROTO_AH => {
                let Some(ext) = pkt.load::<2>(off) else {
                    return malformed;
                };
                next = ext[0];
                off += (ext[1] as u32 + 2) * 4;
            }
            _ => break,
        }
    }
    if off > l3_end {
        return malformed;
    }
    let mut parsed = transport(pkt, Family::Ipv6, next, l2, off, l3_end, first_fragment);
    if fragment != FRAG_NONE && parsed.proto != Proto::Malformed {
        parsed.fragment = fragment;
        parsed.frag_id = frag_id;
    }
    parsed
}

#[inline(always)]
fn transport<P: PacketBytes + ?Sized>(
    pkt: &P,
    family: Family,
    ipproto: u8,
    l2: u32,
    l4: u32,
    l3_end: u32,
    first_fragment: bool,
) -> Parsed {
    let proto = match (family, ipproto) {
        (_, IPPROTO_TCP) => Proto::Tcp,
        (_, IPPROTO_UDP) => Proto::Udp,
        (Family::Ipv4, IPPROTO_ICMP) => Proto::Icmp,
        (Family::Ipv6, IPPROTO_ICMPV6) => Proto::Icmpv6,
        _ => Proto::Other,
    };
    let headers_to = |header_len, tcp_flags| Parsed {
        family,
        proto,
        l2_len: l2,
        header_len,
        l3_end,
        tcp_flags,
        l4_offset: l4,
        fragment: FRAG_NONE,
        frag_id: 0,
    };
    // Later fragments and unknown protocols: everything after the IP headers is payload.
    if !first_fragment || proto == Proto::Other {
        return headers_to(l4, 0);
    }
    let malformed = Parsed::all_header(family, Proto::Malformed, l2, pkt.frame_len());
    let mut tcp_flags = 0;
    let l4_len = match proto {
        Proto::Tcp => {
            let Some(tcp) = pkt.load::<20>(l4) else {
                return malformed;
            };
            let data_offset = (tcp[12] >> 4) as u32 * 4;
            if data_offset < 20 {
                return malformed;
            }
            tcp_flags = tcp[13];
            data_offset
        }
        Proto::Udp => {
            let Some(udp) = pkt.load::<8>(l4) else {
                return malformed;
            };
            let udp_len = be16(udp[4], udp[5]);
            // 0 is legal in IPv6 jumbograms and UDP GSO super-packets.
            if udp_len != 0 && udp_len < 8 {
                return malformed;
            }
            8
        }
        _ => {
            // ICMP and ICMPv6: type, code, checksum and 4 bytes of rest-of-header.
            if pkt.load::<8>(l4).is_none() {
                return malformed;
            }
            8
        }
    };
    if l4 + l4_len > l3_end {
        return malformed;
    }
    headers_to(l4 + l4_len, tcp_flags)
}

/// UDP ports of VXLAN (IANA's, and Linux's default when none is given) and Geneve.
const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const GENEVE_PORT: u16 = 6081;
const VXLAN_HLEN: u32 = 8;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const ETH_P_TEB: u16 = 0x6558;

/// Bytes of tunnel header plus the inner packet's headers that follow `parsed`'s outer
/// headers, when the frame is a tunnel netpost knows (VXLAN, Geneve, GRE, IP in IP); 0
/// otherwise. Every wire segment of an encapsulated GSO packet repeats them, so the hooks add
/// them to the per-segment headers (and take them off the payload). Only super-packets need
/// this: a single frame's bytes are counted as they are.
///
/// Written flat (one pass, no call into the full parser) because the kernel programs run it:
/// the inner packet is Ethernet (+ one VLAN tag) or IP, then IPv4 (with options) or IPv6
/// (without extension headers), then TCP or UDP; anything else counts as no tunnel.
#[inline(always)]
pub fn tunnel_headers<P: PacketBytes + ?Sized>(pkt: &P, parsed: &Parsed) -> u32 {
    if parsed.fragment != FRAG_NONE {
        return 0;
    }
    let outer_end = parsed.header_len;
    // (bytes of tunnel header, whether the inner packet starts with Ethernet, or its IP
    // version when it starts with IP).
    let (tunnel_len, inner) = match parsed.proto {
        Proto::Udp => {
            let Some(udp) = pkt.load::<4>(parsed.l4_offset) else {
                return 0;
            };
            let dport = be16(udp[2], udp[3]);
            if dport == VXLAN_PORTS[0] || dport == VXLAN_PORTS[1] {
                (VXLAN_HLEN, INNER_ETH)
            } else if dport == GENEVE_PORT {
                // Two bytes, not one: a 1-byte bounds check compiles to a form older verifiers
                // do not learn the packet range from.
                let Some(geneve) = pkt.load::<2>(outer_end) else {
                    return 0;
                };
                // 8 fixed bytes, then options of (low 6 bits) 4-byte words.
                (8 + (geneve[0] & 0x3f) as u32 * 4, INNER_ETH)
            } else {
                return 0;
            }
        }
        Proto::Other => {
            // The IP protocol of a datagram without extension headers (with the byte beside
            // it: see above).
            let (at, i) = match parsed.family {
                Family::Ipv4 => (parsed.l2_len + 8, 1),
                Family::Ipv6 if parsed.l4_offset == parsed.l2_len + 40 => (parsed.l2_len + 6, 0),
                _ => return 0,
            };
            let Some(pair) = pkt.load::<2>(at) else {
                return 0;
            };
            let ipproto = pair[i];
            match ipproto {
                IPPROTO_IPIP => (0, INNER_V4),
                IPPROTO_IPV6 => (0, INNER_V6),
                IPPROTO_GRE => {
                    let Some(gre) = pkt.load::<4>(outer_end) else {
                        return 0;
                    };
                    // Checksum, key and sequence number: 4 bytes each when present.
                    let len = 4
                        + 4 * ((gre[0] >> 7) & 1) as u32
                        + 4 * ((gre[0] >> 5) & 1) as u32
                        + 4 * ((gre[0] >> 4) & 1) as u32;
                    match be16(gre[2], gre[3]) {
                        ETH_P_TEB => (len, INNER_ETH),
                        ETH_P_IP => (len, INNER_V4),
                        ETH_P_IPV6 => (len, INNER_V6),
                        _ => return 0,
                    }
                }
                _ => return 0,
            }
        }
        _ => return 0,
    };
    let start = outer_end + tunnel_len;
    // The inner L2 header.
    let (l2, version) = if inner == INNER_ETH {
        let Some(eth) = pkt.load::<4>(start + 12) else {
            return 0;
        };
        let (ethertype, l2) = match be16(eth[0], eth[1]) {
            ETH_P_8021Q | ETH_P_8021AD => (be16(eth[2], eth[3]), ETH_HLEN + VLAN_HLEN),
            t => (t, ETH_HLEN),
        };
        match ethertype {
            ETH_P_IP => (l2, INNER_V4),
            ETH_P_IPV6 => (l2, INNER_V6),
            _ => return 0,
        }
    } else {
        (0, inner)
    };
    let ip = start + l2;
    let (l3, ipproto) = if version == INNER_V4 {
        let Some(h) = pkt.load::<10>(ip) else {
            return 0;
        };
        ((h[0] & 0x0f) as u32 * 4, h[9])
    } else {
        let Some(h) = pkt.load::<7>(ip) else {
            return 0;
        };
        (40, h[6])
    };
    if l3 < 20 {
        return 0;
    }
    let l4 = match ipproto {
        IPPROTO_TCP => {
            let Some(tcp) = pkt.load::<13>(ip + l3) else {
                return 0;
            };
            (tcp[12] >> 4) as u32 * 4
        }
        IPPROTO_UDP => 8,
        _ => return 0,
    };
    if l4 < 8 || ip + l3 + l4 > parsed.l3_end {
        return 0;
    }
    tunnel_len + l2 + l3 + l4
}

const INNER_ETH: u8 = 0;
const INNER_V4: u8 = 4;
const INNER_V6: u8 = 6;
