//! The crafted frames fed to the programs with BPF_PROG_TEST_RUN: one per traffic shape whose
//! parse path differs (TCP with options, bulk TCP, small UDP, ICMP, IPv6, a VLAN tag).
//! Built by hand with valid checksums, so they are what a wire would carry.

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const SRC_V4: [u8; 4] = [192, 0, 2, 1];
const DST_V4: [u8; 4] = [192, 0, 2, 2];
const SRC_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// NFPROTO_* of the netfilter family a frame's IP packet belongs to.
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;

const TCP_SYN: u8 = 0x02;
const TCP_PSH_ACK: u8 = 0x18;

pub struct Frame {
    /// Stable key in the report.
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// NFPROTO_* for a netfilter test run, None when netfilter never sees such a frame
    /// (the stack removes a VLAN tag before the IP layer).
    pub nf_pf: Option<u8>,
}

/// Every frame the benchmark runs, in report order.
pub fn all() -> Vec<Frame> {
    let frame = |name, bytes, nf_pf| Frame { name, bytes, nf_pf };
    vec![
        frame("tcp_syn", tcp_syn(), Some(NFPROTO_IPV4)),
        frame("tcp_1400", tcp_data(1400), Some(NFPROTO_IPV4)),
        frame("udp_64", udp4(64, None), Some(NFPROTO_IPV4)),
        frame("icmp_echo", icmp_echo(56), Some(NFPROTO_IPV4)),
        frame("ipv6_udp_64", udp6(64), Some(NFPROTO_IPV6)),
        frame("vlan_udp_64", udp4(64, Some(100)), None),
    ]
}

/// A SYN with the options Linux sends (MSS, SACK permitted, timestamps, window scale).
pub fn tcp_syn() -> Vec<u8> {
    let options = [
        2, 4, 0x05, 0xb4, // MSS 1460
        4, 2, // SACK permitted
        8, 10, 0, 0, 0, 1, 0, 0, 0, 0, // timestamps
        1, // NOP
        3, 3, 7, // window scale 7
    ];
    ipv4_frame(
        IPPROTO_TCP,
        &tcp(TCP_SYN, &options, &[], &pseudo_v4(IPPROTO_TCP)),
        None,
    )
}

pub fn tcp_data(payload: usize) -> Vec<u8> {
    let segment = tcp(
        TCP_PSH_ACK,
        &[],
        &vec![0x5a; payload],
        &pseudo_v4(IPPROTO_TCP),
    );
    ipv4_frame(IPPROTO_TCP, &segment, None)
}

pub fn udp4(payload: usize, vlan: Option<u16>) -> Vec<u8> {
    let datagram = udp(&vec![0x5a; payload], &pseudo_v4(IPPROTO_UDP));
    ipv4_frame(IPPROTO_UDP, &datagram, vlan)
}

pub fn icmp_echo(payload: usize) -> Vec<u8> {
    let mut msg = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1]; // echo request, id 0x1234, seq 1
    msg.extend(std::iter::repeat_n(0x5a, payload));
    let sum = checksum(&[], &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4_frame(IPPROTO_ICMP, &msg, None)
}

pub fn udp6(payload: usize) -> Vec<u8> {
    let datagram = udp(&vec![0x5a; payload], &pseudo_v6(IPPROTO_UDP));
    let mut f = ethernet(ETH_P_IPV6, None);
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class or flow label
    f.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
    f.extend_from_slice(&[IPPROTO_UDP, 64]);
    f.extend_from_slice(&SRC_V6);
    f.extend_from_slice(&DST_V6);
    f.extend_from_slice(&datagram);
    f
}

fn ethernet(ethertype: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(1514);
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    if let Some(vid) = vlan {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4_frame(proto: u8, l4: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&SRC_V4);
    ip[16..20].copy_from_slice(&DST_V4);
    let sum = checksum(&[], &ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut f = ethernet(ETH_P_IP, vlan);
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

/// The TCP segment (header, options padded to 32 bits, payload) with its checksum over
/// `pseudo` (the pseudo-header without the length, which is added here).
fn tcp(flags: u8, options: &[u8], payload: &[u8], pseudo: &[u8]) -> Vec<u8> {
    let header_len = 20 + options.len().div_ceil(4) * 4;
    let mut seg = vec![0u8; header_len];
    seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
    seg[2..4].copy_from_slice(&5201u16.to_be_bytes());
    seg[4..8].copy_from_slice(&1u32.to_be_bytes());
    if flags & 0x10 != 0 {
        seg[8..12].copy_from_slice(&1u32.to_be_bytes());
    }
    seg[12] = ((header_len / 4) as u8) << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    seg[20..20 + options.len()].copy_from_slice(options);
    seg.extend_from_slice(payload);
    let sum = checksum(&with_len(pseudo, seg.len()), &seg);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
    seg
}

fn udp(payload: &[u8], pseudo: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut dgram = Vec::with_capacity(len);
    dgram.extend_from_slice(&40000u16.to_be_bytes());
    dgram.extend_from_slice(&5201u16.to_be_bytes());
    dgram.extend_from_slice(&(len as u16).to_be_bytes());
    dgram.extend_from_slice(&[0, 0]);
    dgram.extend_from_slice(payload);
    let sum = match checksum(&with_len(pseudo, len), &dgram) {
        0 => 0xffff, // 0 means "no checksum" in UDP
        sum => sum,
    };
    dgram[6..8].copy_from_slice(&sum.to_be_bytes());
    dgram
}

/// IPv4 pseudo-header (addresses, zero, protocol); the length goes last.
fn pseudo_v4(proto: u8) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&SRC_V4);
    p.extend_from_slice(&DST_V4);
    p.extend_from_slice(&[0, proto]);
    p
}

/// IPv6 pseudo-header up to the length; the next-header field is summed as a 16-bit word,
/// which the one's-complement sum does not distinguish from its 32-bit place.
fn pseudo_v6(next: u8) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&SRC_V6);
    p.extend_from_slice(&DST_V6);
    p.extend_from_slice(&[0, next]);
    p
}

fn with_len(pseudo: &[u8], len: usize) -> Vec<u8> {
    let mut p = pseudo.to_vec();
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071) of `prefix` followed by `data`; `prefix` has even length.
fn checksum(prefix: &[u8], data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in prefix.chunks(2).chain(data.chunks(2)) {
        let word = match *chunk {
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            [hi] => u16::from_be_bytes([hi, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use etherparse::{
        Icmpv4Header, LinkExtHeader, NetHeaders, PacketHeaders, TransportHeader, ip_number,
    };

    use super::*;

    /// Parses `frame` with etherparse and checks every checksum; returns the headers.
    fn parse(frame: &[u8]) -> PacketHeaders<'_> {
        let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
        let payload = h.payload.slice();
        match (&h.net, &h.transport) {
            (Some(NetHeaders::Ipv4(ip, _)), Some(t)) => {
                assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
                match t {
                    TransportHeader::Tcp(tcp) => {
                        assert_eq!(tcp.calc_checksum_ipv4(ip, payload).unwrap(), tcp.checksum)
                    }
                    TransportHeader::Udp(udp) => {
                        assert_eq!(udp.calc_checksum_ipv4(ip, payload).unwrap(), udp.checksum)
                    }
                    TransportHeader::Icmpv4(icmp) => {
                        let want = Icmpv4Header::with_checksum(icmp.icmp_type.clone(), payload);
                        assert_eq!(want.checksum, icmp.checksum)
                    }
                    TransportHeader::Icmpv6(_) => panic!("no ICMPv6 frame here"),
                }
            }
            (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Udp(udp))) => {
                assert_eq!(udp.calc_checksum_ipv6(ip, payload).unwrap(), udp.checksum);
            }
            _ => panic!("unexpected headers: {h:?}"),
        }
        h
    }

    #[test]
    fn every_frame_is_well_formed_with_valid_checksums() {
        let frames = all();
        assert_eq!(frames.len(), 6);
        for f in &frames {
            let h = parse(&f.bytes);
            let ip_len = match &h.net {
                Some(NetHeaders::Ipv4(ip, _)) => ip.total_len as usize,
                Some(NetHeaders::Ipv6(ip, _)) => 40 + ip.payload_length as usize,
                _ => unreachable!(),
            };
            let l2 = if f.name.starts_with("vlan") { 18 } else { 14 };
            assert_eq!(l2 + ip_len, f.bytes.len(), "{}: no trailing bytes", f.name);
        }
    }

    #[test]
    fn frames_have_the_shapes_their_names_promise() {
        let syn = tcp_syn();
        let h = parse(&syn);
        let Some(TransportHeader::Tcp(tcp)) = h.transport else {
            panic!("not TCP")
        };
        assert!(tcp.syn && !tcp.ack);
        assert_eq!(tcp.header_len(), 40, "SYN carries 20 bytes of options");
        assert!(h.payload.slice().is_empty());

        let data = tcp_data(1400);
        let h = parse(&data);
        assert!(matches!(h.transport, Some(TransportHeader::Tcp(ref t)) if t.ack && t.psh));
        assert_eq!(h.payload.slice().len(), 1400);
        assert_eq!(data.len(), 14 + 20 + 20 + 1400);

        let udp = udp4(64, None);
        let h = parse(&udp);
        assert!(matches!(h.transport, Some(TransportHeader::Udp(_))));
        assert_eq!(h.payload.slice().len(), 64);

        let icmp = icmp_echo(56);
        let h = parse(&icmp);
        assert!(matches!(h.transport, Some(TransportHeader::Icmpv4(_))));
        assert_eq!(icmp.len(), 14 + 20 + 8 + 56);

        let v6 = udp6(64);
        let h = parse(&v6);
        assert!(
            matches!(h.net, Some(NetHeaders::Ipv6(ref ip, _)) if ip.next_header == ip_number::UDP)
        );
        assert_eq!(h.payload.slice().len(), 64);

        let vlan = udp4(64, Some(100));
        let h = parse(&vlan);
        match h.link_exts.first() {
            Some(LinkExtHeader::Vlan(tag)) => assert_eq!(tag.vlan_id.value(), 100),
            other => panic!("no VLAN tag: {other:?}"),
        }
        assert_eq!(h.payload.slice().len(), 64);
    }

    #[test]
    fn only_frames_netfilter_can_see_get_a_family() {
        for f in all() {
            let want = match f.name {
                "vlan_udp_64" => None,
                "ipv6_udp_64" => Some(NFPROTO_IPV6),
                _ => Some(NFPROTO_IPV4),
            };
            assert_eq!(f.nf_pf, want, "{}", f.name);
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (complement 220d).
        assert_eq!(
            checksum(&[], &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // An odd trailing byte is padded with zero.
        assert_eq!(checksum(&[], &[0xff]), !0xff00);
    }
}
