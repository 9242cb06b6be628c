//! The one header parser every hook shares: Ethernet (+ one 802.1Q/802.1ad tag), IPv4 (with
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
}

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
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let Some(tag) = pkt.load::<4>(ETH_HLEN) else {
            return Parsed::all_header(Family::Other, Proto::Malformed, ETH_HLEN, len);
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
    let first_fragment = be16(ip[6], ip[7]) & 0x1fff == 0;
    transport(
        pkt,
        Family::Ipv4,
        ip[9],
        l2,
        l2 + ihl,
        l2 + datagram,
        first_fragment,
    )
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
                let Some(ext) = pkt.load::<4>(off) else {
                    return malformed;
                };
                next = ext[0];
                first_fragment = be16(ext[2], ext[3]) & 0xfff8 == 0;
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
    transport(pkt, Family::Ipv6, next, l2, off, l3_end, first_fragment)
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
