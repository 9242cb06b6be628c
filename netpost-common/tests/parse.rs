//! Host tests for the shared parser (`parse`), the wire accounting (`account`,
//! `estimate_segments`) and the counter layouts.
//!
//! Frames are built with etherparse, which also serves as an independent oracle: where it
//! decodes a frame, its payload offset and payload length must agree with ours. Expected
//! numbers are written out by hand (header sizes from the RFCs), never derived from the
//! code under test.

use etherparse::{
    Ethernet2Header, IpAuthHeader, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv4Options,
    Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions,
    PacketBuilder, PacketBuilderStep, SlicedPacket, TcpOptionElement, TransportSlice, VlanId,
};
use netpost_common::{
    Counters, FRAG_FIRST, FRAG_LATER, FRAG_NONE, Family, Hook, HookCounters, MAX_IFACES, Parsed,
    Proto, account, estimate_segments, parse,
};

// ---------------------------------------------------------------------------------------
// Frame construction
// ---------------------------------------------------------------------------------------

const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const V4_SRC: [u8; 4] = [192, 0, 2, 1];
const V4_DST: [u8; 4] = [198, 51, 100, 2];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Header sizes, from the RFCs (not from the code under test).
const ETH: u32 = 14;
const VLAN: u32 = 4;
const IPV4: u32 = 20;
const IPV6: u32 = 40;
const UDP: u32 = 8;
const TCP: u32 = 20;
const ICMP: u32 = 8;
const FRAG6: u32 = 8;

/// Byte offsets inside an untagged frame.
const V4_VER_IHL: usize = 14;
const V4_TOT_LEN: usize = 16;
const V4_FRAG: usize = 20;
const V4_PROTO: usize = 23;
const V4_L4: usize = 34;
const V6_PAYLOAD_LEN: usize = 18;
const V6_NEXT: usize = 20;
const V6_L4: usize = 54;

/// TCP options that make a 32-byte header (data offset 8), as on every established Linux
/// connection: NOP, NOP, timestamps.
const TS_OPTIONS: [TcpOptionElement; 3] = [
    TcpOptionElement::Noop,
    TcpOptionElement::Noop,
    TcpOptionElement::Timestamp(0x0102_0304, 0x0a0b_0c0d),
];

/// Recognisable, mostly non-zero payload bytes.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ 0x5a).collect()
}

fn eth() -> PacketBuilderStep<Ethernet2Header> {
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
}

fn v4() -> PacketBuilderStep<IpHeaders> {
    eth().ipv4(V4_SRC, V4_DST, 64)
}

fn v6() -> PacketBuilderStep<IpHeaders> {
    eth().ipv6(V6_SRC, V6_DST, 64)
}

fn vlan(id: u16) -> PacketBuilderStep<etherparse::VlanHeader> {
    eth().single_vlan(VlanId::try_new(id).unwrap())
}

/// An IPv4 header for `PacketBuilder::ip` (lengths, protocol and checksum are filled in on
/// write).
fn v4_header() -> Ipv4Header {
    Ipv4Header {
        source: V4_SRC,
        destination: V4_DST,
        time_to_live: 64,
        ..Default::default()
    }
}

fn v6_header() -> Ipv6Header {
    Ipv6Header {
        source: V6_SRC,
        destination: V6_DST,
        hop_limit: 64,
        ..Default::default()
    }
}

fn v4_ip(header: Ipv4Header) -> PacketBuilderStep<IpHeaders> {
    eth().ip(IpHeaders::Ipv4(header, Default::default()))
}

fn v6_ip(exts: Ipv6Extensions) -> PacketBuilderStep<IpHeaders> {
    eth().ip(IpHeaders::Ipv6(v6_header(), exts))
}

fn udp(ip: PacketBuilderStep<IpHeaders>, data: &[u8]) -> Vec<u8> {
    let b = ip.udp(40000, 53);
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

fn tcp(ip: PacketBuilderStep<IpHeaders>, options: &[TcpOptionElement], data: &[u8]) -> Vec<u8> {
    let b = ip
        .tcp(40000, 443, 1000, 64240)
        .ack(1)
        .psh()
        .options(options)
        .unwrap();
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

fn tcp_raw_options(ip: PacketBuilderStep<IpHeaders>, options: &[u8], data: &[u8]) -> Vec<u8> {
    let b = ip
        .tcp(40000, 443, 1000, 64240)
        .ack(1)
        .options_raw(options)
        .unwrap();
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

fn icmpv4_echo(ip: PacketBuilderStep<IpHeaders>, data: &[u8]) -> Vec<u8> {
    let b = ip.icmpv4_echo_request(0x1234, 1);
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

fn icmpv6_echo(ip: PacketBuilderStep<IpHeaders>, data: &[u8]) -> Vec<u8> {
    let b = ip.icmpv6_echo_request(0x1234, 1);
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

/// IP headers followed by `data` as is (no transport header written), with `proto` as the
/// last next-header / protocol value.
fn raw_ip(ip: PacketBuilderStep<IpHeaders>, proto: IpNumber, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ip.write(&mut out, proto, data).unwrap();
    out
}

fn arp_frame() -> Vec<u8> {
    let arp = etherparse::ArpEthIpv4Packet {
        operation: etherparse::ArpOperation::REQUEST,
        sender_mac: SRC_MAC,
        sender_ipv4: V4_SRC,
        target_mac: [0; 6],
        target_ipv4: V4_DST,
    };
    let b = eth().arp(arp.into());
    let mut out = Vec::new();
    b.write(&mut out).unwrap();
    out
}

/// A hand-built Ethernet II frame with an arbitrary EtherType.
fn raw_eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&DST_MAC);
    out.extend_from_slice(&SRC_MAC);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn set_be16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn be16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

fn pad_to(mut frame: Vec<u8>, len: usize, fill: u8) -> Vec<u8> {
    assert!(frame.len() <= len);
    frame.resize(len, fill);
    frame
}

fn len32(frame: &[u8]) -> u32 {
    u32::try_from(frame.len()).unwrap()
}

/// Extension header of `total_len` bytes (a multiple of 8, at least 8) for etherparse: a
/// PadN option filling it (the next-header field is set on write).
fn pad_ext(total_len: usize) -> Ipv6RawExtHeader {
    assert!(total_len >= 8 && total_len.is_multiple_of(8));
    let mut body = vec![0u8; total_len - 2];
    body[0] = 1; // PadN
    body[1] = (total_len - 4) as u8;
    Ipv6RawExtHeader::new_raw(IpNumber::UDP, &body).unwrap()
}

/// An IPv6 Fragment header as (protocol number, bytes) for [`v6_chain`], laid out as in
/// RFC 8200 4.5: bytes 2..4 are `offset << 3 | M`.
///
/// Built by hand because etherparse 0.19 encodes this field wrongly (offset low bits in
/// byte 3 bits 4..0, M in bit 7: JulianSchmid/etherparse#150, fixed in 0.20). etherparse
/// still decodes these frames as fragmented, so its payload offset remains a usable oracle.
fn frag6(offset_units: u16, more: bool) -> (u8, Vec<u8>) {
    let [hi, lo] = ((offset_units << 3) | u16::from(more)).to_be_bytes();
    (44, vec![0, 0, hi, lo, 0xde, 0xad, 0xbe, 0xef])
}

/// A Hop-by-Hop (0) or Destination Options (60) header of `total_len` bytes, for
/// [`v6_chain`].
fn opts6(kind: u8, total_len: usize) -> (u8, Vec<u8>) {
    assert!(total_len >= 8 && total_len.is_multiple_of(8));
    let mut bytes = vec![0u8; total_len];
    bytes[1] = (total_len / 8 - 1) as u8;
    bytes[2] = 1; // PadN
    bytes[3] = (total_len - 4) as u8;
    (kind, bytes)
}

/// A hand-built IPv6 frame: the fixed header, `exts` chained in order (their next-header
/// bytes are filled in), then `rest` under protocol `upper`.
fn v6_chain(exts: &[(u8, Vec<u8>)], upper: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut bytes = bytes.clone();
        bytes[0] = exts.get(i + 1).map_or(upper, |next| next.0);
        body.extend(bytes);
    }
    body.extend_from_slice(rest);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
    ip.push(exts.first().map_or(upper, |first| first.0));
    ip.push(64);
    ip.extend(V6_SRC);
    ip.extend(V6_DST);
    ip.extend(body);
    raw_eth(0x86dd, &ip)
}

/// A UDP header (checksum 0) followed by `data`.
fn udp_bytes(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + data.len()).unwrap();
    let mut out = vec![0x9c, 0x40, 0x00, 0x35];
    out.extend(len.to_be_bytes());
    out.extend([0, 0]);
    out.extend_from_slice(data);
    out
}

// ---------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------

struct Want {
    family: Family,
    proto: Proto,
    l2_len: u32,
    header_len: u32,
    payload: u32,
}

/// Parses `frame` and checks it against `want`, plus the invariants every result obeys.
fn check(frame: &[u8], want: Want) -> Parsed {
    let p = parse(frame);
    let ctx = format!("{p:?} for {} byte frame {frame:02x?}", frame.len());
    assert_eq!(p.family, want.family, "family: {ctx}");
    assert_eq!(p.proto, want.proto, "proto: {ctx}");
    assert_eq!(p.l2_len, want.l2_len, "l2_len: {ctx}");
    assert_eq!(p.header_len, want.header_len, "header_len: {ctx}");
    assert_eq!(p.payload_len(), want.payload, "payload_len: {ctx}");
    assert_eq!(p.l3_end, want.header_len + want.payload, "l3_end: {ctx}");
    invariants(frame, &p);
    p
}

/// What holds for every frame, valid or not.
fn invariants(frame: &[u8], p: &Parsed) {
    let len = len32(frame);
    assert!(p.l2_len <= p.header_len, "l2_len > header_len: {p:?}");
    assert!(p.header_len <= p.l3_end, "header_len > l3_end: {p:?}");
    assert!(p.l3_end <= len, "l3_end > frame ({len}): {p:?}");
    assert!(p.payload_len() <= len, "payload > frame: {p:?}");
    match p.family {
        Family::Other => assert!(matches!(p.proto, Proto::Other | Proto::Malformed)),
        Family::Ipv4 => assert_ne!(p.proto, Proto::Icmpv6),
        Family::Ipv6 => assert_ne!(p.proto, Proto::Icmp),
    }
    if matches!(p.proto, Proto::Other | Proto::Malformed) && p.family == Family::Other {
        assert_eq!(
            (p.header_len, p.l3_end),
            (len, len),
            "non-IP is all header: {p:?}"
        );
    }
    if p.proto == Proto::Malformed {
        assert_eq!(
            (p.header_len, p.l3_end),
            (len, len),
            "malformed is all header: {p:?}"
        );
    }
}

/// etherparse's view of a frame it decodes: (offset of the payload, payload length).
fn oracle(frame: &[u8]) -> (u32, u32) {
    let sliced = SlicedPacket::from_ethernet(frame)
        .unwrap_or_else(|e| panic!("etherparse rejects {frame:02x?}: {e:?}"));
    let base = frame.as_ptr() as usize;
    let payload = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => t.payload(),
        Some(TransportSlice::Udp(u)) => u.payload(),
        Some(TransportSlice::Icmpv4(i)) => i.payload(),
        Some(TransportSlice::Icmpv6(i)) => i.payload(),
        None => {
            sliced
                .ip_payload()
                .expect("etherparse found neither transport nor IP payload")
                .payload
        }
    };
    let offset = payload.as_ptr() as usize - base;
    (offset as u32, payload.len() as u32)
}

/// Our header_len / payload_len agree with etherparse's payload offset / length.
fn agrees_with_etherparse(frame: &[u8], p: &Parsed) {
    let (offset, len) = oracle(frame);
    assert_eq!(p.header_len, offset, "header_len vs etherparse: {p:?}");
    assert_eq!(p.payload_len(), len, "payload_len vs etherparse: {p:?}");
}

fn assert_malformed(frame: &[u8], family: Family, l2_len: u32) {
    let len = len32(frame);
    let p = parse(frame);
    assert_eq!(
        p,
        Parsed {
            family,
            proto: Proto::Malformed,
            l2_len,
            header_len: len,
            l3_end: len,
            tcp_flags: 0,
            l4_offset: len,
            fragment: FRAG_NONE,
            frag_id: 0,
        },
        "frame {frame:02x?}"
    );
    assert_eq!(p.payload_len(), 0);
    invariants(frame, &p);
}

fn etherparse_rejects(frame: &[u8]) -> bool {
    SlicedPacket::from_ethernet(frame).is_err()
}

// ---------------------------------------------------------------------------------------
// Valid IPv4
// ---------------------------------------------------------------------------------------

#[test]
fn ipv4_tcp_with_timestamp_options() {
    let data = payload(100);
    let frame = tcp(v4(), &TS_OPTIONS, &data);
    assert_eq!(frame[V4_L4 + 12] >> 4, 8, "data offset 8 (32-byte header)");
    assert_eq!(frame.len(), 14 + 20 + 32 + 100);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: ETH + IPV4 + 32,
            payload: 100,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_tcp_syn_with_mss_sack_ts_wscale() {
    // The option set of a Linux SYN: MSS(4) SACK-permitted(2) TS(10) NOP(1) WS(3) = 20.
    let options = [
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ];
    let frame = tcp(v4(), &options, &[]);
    assert_eq!(
        frame[V4_L4 + 12] >> 4,
        10,
        "data offset 10 (40-byte header)"
    );
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 14 + 20 + 40,
            payload: 0,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_tcp_no_options() {
    let data = payload(1);
    let frame = tcp(v4(), &[], &data);
    assert_eq!(frame[V4_L4 + 12] >> 4, 5);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: ETH + IPV4 + TCP,
            payload: 1,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_udp() {
    let data = payload(37);
    let frame = udp(v4(), &data);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 42,
            payload: 37,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_udp_empty_payload() {
    // 42 bytes: shorter than the Ethernet minimum, as seen on veth/loopback (no padding).
    let frame = udp(v4(), &[]);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 42,
            payload: 0,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_udp_length_zero_is_accepted() {
    // UDP length 0 is what UDP GSO super-packets / jumbograms carry: not malformed.
    let mut frame = udp(v4(), &payload(20));
    set_be16(&mut frame, V4_L4 + 4, 0);
    check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 42,
            payload: 20,
        },
    );
}

#[test]
fn ipv4_icmp_echo() {
    // Classic `ping`: 56 data bytes, 98-byte frame.
    let data = payload(56);
    let frame = icmpv4_echo(v4(), &data);
    assert_eq!(frame.len(), 98);
    assert_eq!(frame[V4_PROTO], 1);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Icmp,
            l2_len: ETH,
            header_len: ETH + IPV4 + ICMP,
            payload: 56,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_with_ip_options_udp() {
    // Router Alert (4 bytes) + NOP NOP NOP EOL: 8 option bytes, IHL 7.
    let mut header = v4_header();
    header.options = Ipv4Options::try_from(&[0x94, 0x04, 0x00, 0x00, 1, 1, 1, 0][..]).unwrap();
    let data = payload(20);
    let frame = udp(v4_ip(header), &data);
    assert_eq!(frame[V4_VER_IHL], 0x47);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 14 + 28 + 8,
            payload: 20,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_max_ihl_and_max_tcp_data_offset() {
    // IHL 15 (60-byte IP header) and data offset 15 (60-byte TCP header).
    let mut options = [1u8; 40];
    options[39] = 0;
    let mut header = v4_header();
    header.options = Ipv4Options::try_from(&options[..]).unwrap();
    let data = payload(9);
    let frame = tcp_raw_options(v4_ip(header), &[1u8; 40], &data);
    assert_eq!(frame[V4_VER_IHL], 0x4f);
    assert_eq!(frame[14 + 60 + 12] >> 4, 15);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 14 + 60 + 60,
            payload: 9,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_icmp_with_ip_options() {
    let mut header = v4_header();
    header.options = Ipv4Options::try_from(&[1, 1, 1, 0][..]).unwrap();
    let data = payload(32);
    let frame = icmpv4_echo(v4_ip(header), &data);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Icmp,
            l2_len: ETH,
            header_len: 14 + 24 + 8,
            payload: 32,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_non_first_fragment_has_no_l4_header() {
    // Second fragment of a UDP datagram: offset 185 * 8 = 1480, last fragment.
    let mut header = v4_header();
    header.fragment_offset = IpFragOffset::try_new(185).unwrap();
    header.more_fragments = false;
    let data = payload(200);
    let frame = raw_ip(v4_ip(header), IpNumber::UDP, &data);
    assert_eq!(be16(&frame, V4_FRAG) & 0x1fff, 185);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: ETH + IPV4,
            payload: 200,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_non_first_fragment_shorter_than_a_tcp_header() {
    // 8 bytes of a TCP segment's tail: fine for a later fragment, must not be malformed.
    let mut header = v4_header();
    header.fragment_offset = IpFragOffset::try_new(1).unwrap();
    header.more_fragments = true;
    let frame = raw_ip(v4_ip(header), IpNumber::TCP, &payload(8));
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: ETH + IPV4,
            payload: 8,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv4_first_fragment_parses_l4_header() {
    // First fragment (offset 0, MF set) of a 1008-byte UDP datagram: only 100 payload bytes
    // here, and the UDP length field still says 1008. The UDP header is counted as header,
    // the rest of the fragment as payload.
    let full = udp(v4(), &payload(1000));
    let mut frame = full[..14 + 20 + 8 + 100].to_vec();
    set_be16(&mut frame, V4_TOT_LEN, 20 + 8 + 100);
    set_be16(&mut frame, V4_FRAG, 0x2000); // MF, offset 0
    assert_eq!(be16(&frame, V4_L4 + 4), 1008);
    check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: ETH + IPV4 + UDP,
            payload: 100,
        },
    );
}

#[test]
fn ipv4_unknown_protocol_counts_everything_after_ip_as_payload() {
    // GRE (47): not a protocol we split, so the IP header is the last header.
    let frame = raw_ip(v4(), IpNumber(47), &payload(30));
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: ETH + IPV4,
            payload: 30,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn icmpv6_number_inside_ipv4_is_other() {
    let frame = raw_ip(v4(), IpNumber::IPV6_ICMP, &payload(16));
    check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: ETH + IPV4,
            payload: 16,
        },
    );
}

// ---------------------------------------------------------------------------------------
// Valid IPv6
// ---------------------------------------------------------------------------------------

#[test]
fn ipv6_udp() {
    let data = payload(33);
    let frame = udp(v6(), &data);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 62,
            payload: 33,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_tcp_with_timestamp_options() {
    let data = payload(200);
    let frame = tcp(v6(), &TS_OPTIONS, &data);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 14 + 40 + 32,
            payload: 200,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_icmpv6_echo() {
    let data = payload(56);
    let frame = icmpv6_echo(v6(), &data);
    assert_eq!(frame[V6_NEXT], 58);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Icmpv6,
            l2_len: ETH,
            header_len: ETH + IPV6 + ICMP,
            payload: 56,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn icmpv4_number_inside_ipv6_is_other() {
    let frame = raw_ip(v6(), IpNumber::ICMP, &payload(16));
    check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: ETH + IPV6,
            payload: 16,
        },
    );
}

#[test]
fn ipv6_hop_by_hop_and_destination_options() {
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(pad_ext(8)),
        destination_options: Some(pad_ext(16)),
        ..Default::default()
    };
    let data = payload(40);
    let frame = udp(v6_ip(exts), &data);
    // The chain as written: IPv6 -> HBH (8) -> DST (16) -> UDP.
    assert_eq!(frame[V6_NEXT], 0);
    assert_eq!((frame[54], frame[55]), (60, 0));
    assert_eq!((frame[62], frame[63]), (17, 1));
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 14 + 40 + 8 + 16 + 8,
            payload: 40,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_hop_by_hop_tcp() {
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(pad_ext(8)),
        ..Default::default()
    };
    let data = payload(10);
    let frame = tcp(v6_ip(exts), &TS_OPTIONS, &data);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 14 + 40 + 8 + 32,
            payload: 10,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_atomic_fragment_header_then_udp() {
    // Fragment header with offset 0 and M = 0 ("atomic fragment", RFC 6946): the UDP header
    // follows and etherparse decodes it too.
    let frame = v6_chain(&[frag6(0, false)], 17, &udp_bytes(&payload(25)));
    assert_eq!(frame[V6_NEXT], 44);
    assert_eq!(frame[V6_L4..V6_L4 + 4], [17, 0, 0x00, 0x00]);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: ETH + IPV6 + FRAG6 + UDP,
            payload: 25,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_first_fragment_parses_l4_header() {
    let frame = v6_chain(&[frag6(0, true)], 17, &udp_bytes(&payload(64)));
    assert_eq!(frame[V6_L4 + 2..V6_L4 + 4], [0x00, 0x01], "offset 0, M");
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 14 + 40 + 8 + 8,
            payload: 64,
        },
    );
    // etherparse stops at a fragmenting fragment header; the UDP header is the first
    // 8 bytes of what it calls the IP payload.
    let (offset, len) = oracle(&frame);
    assert_eq!((offset + UDP, len - UDP), (p.header_len, p.payload_len()));
}

#[test]
fn ipv6_non_first_fragment_has_no_l4_header() {
    // Offset 185 * 8 = 1480, last fragment.
    let frame = v6_chain(&[frag6(185, false)], 17, &payload(100));
    assert_eq!(frame[V6_L4 + 2..V6_L4 + 4], [0x05, 0xc8]);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: ETH + IPV6 + FRAG6,
            payload: 100,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_hop_by_hop_then_non_first_fragment() {
    let frame = v6_chain(&[opts6(0, 8), frag6(3, true)], 6, &payload(48));
    assert_eq!(frame[V6_NEXT], 0);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 14 + 40 + 8 + 8,
            payload: 48,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

/// In a non-first fragment the bytes after the Fragment header are fragment data, even
/// when its next-header names an extension header (RFC 8200 4.5: a Destination Options
/// header can be part of the fragmentable part, and then only the first fragment holds
/// it). Linux's `ipv6_skip_exthdr` stops at such a fragment header too. (etherparse walks
/// on, so it is no oracle here.)
#[test]
fn ipv6_non_first_fragment_does_not_parse_fragment_data_as_headers() {
    // Data that looks like "DST options, 8 bytes, then UDP"...
    let mut data = payload(64);
    data[0] = 17;
    data[1] = 0;
    let frame = v6_chain(&[frag6(100, true)], 60, &data);
    assert_eq!(
        frame[V6_L4], 60,
        "fragment header's next header is DST options"
    );
    check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: ETH + IPV6 + FRAG6,
            payload: 64,
        },
    );
    // ...and data that looks like a 2 KiB DST options header: still just payload.
    data[1] = 0xff;
    let frame = v6_chain(&[frag6(100, true)], 60, &data);
    check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: ETH + IPV6 + FRAG6,
            payload: 64,
        },
    );
}

#[test]
fn ipv6_four_extension_headers_then_tcp() {
    // HBH(8) DST(16) Routing(8) AH(24): the most the parser walks (MAX_IPV6_EXT = 4).
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(pad_ext(8)),
        destination_options: Some(pad_ext(16)),
        routing: Some(Ipv6RoutingExtensions {
            routing: Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[4, 0, 0, 0, 0, 0]).unwrap(),
            final_destination_options: None,
        }),
        auth: Some(IpAuthHeader::new(IpNumber::UDP, 0x100, 1, &[0xaa; 12]).unwrap()),
        ..Default::default()
    };
    assert_eq!(netpost_common::parse::MAX_IPV6_EXT, 4);
    let data = payload(77);
    let frame = tcp(v6_ip(exts), &[], &data);
    assert_eq!(frame[V6_NEXT], 0);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 14 + 40 + 8 + 16 + 8 + 24 + 20,
            payload: 77,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn ipv6_five_extension_headers_is_other() {
    // One more than MAX_IPV6_EXT: the parser gives up after HBH DST Routing Fragment and
    // counts the rest (AH, UDP header, data) as payload of an `other` packet.
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(pad_ext(8)),
        destination_options: Some(pad_ext(8)),
        routing: Some(Ipv6RoutingExtensions {
            routing: Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[4, 0, 0, 0, 0, 0]).unwrap(),
            final_destination_options: None,
        }),
        // All-zero offset and flags: the one fragment header etherparse 0.19 encodes right.
        fragment: Some(Ipv6FragmentHeader::new(
            IpNumber::UDP,
            IpFragOffset::ZERO,
            false,
            7,
        )),
        auth: Some(IpAuthHeader::new(IpNumber::UDP, 0x100, 1, &[0xaa; 4]).unwrap()),
    };
    let frame = udp(v6_ip(exts), &payload(10));
    let walked = 8 + 8 + 8 + 8;
    check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: ETH + IPV6 + walked,
            payload: 16 + 8 + 10,
        },
    );
}

// ---------------------------------------------------------------------------------------
// VLAN and non-IP
// ---------------------------------------------------------------------------------------

#[test]
fn vlan_ipv4_udp() {
    let data = payload(10);
    let frame = udp(vlan(100).ipv4(V4_SRC, V4_DST, 64), &data);
    assert_eq!(be16(&frame, 12), 0x8100);
    assert_eq!(be16(&frame, 14) & 0x0fff, 100);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH + VLAN,
            header_len: 18 + 20 + 8,
            payload: 10,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn vlan_ipv6_tcp() {
    let data = payload(500);
    let frame = tcp(vlan(4094).ipv6(V6_SRC, V6_DST, 64), &TS_OPTIONS, &data);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: 18,
            header_len: 18 + 40 + 32,
            payload: 500,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn single_8021ad_tag_ipv4_udp() {
    // A lone 802.1ad (0x88a8) tag is accepted like an 802.1Q one.
    let mut frame = udp(vlan(7).ipv4(V4_SRC, V4_DST, 64), &payload(12));
    set_be16(&mut frame, 12, 0x88a8);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: 18,
            header_len: 46,
            payload: 12,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn double_tagged_ipv4_udp() {
    // QinQ (802.1ad outer, 802.1Q inner): both tags are L2 header, the IP datagram follows.
    let b = eth().double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap());
    let frame = udp(b.ipv4(V4_SRC, V4_DST, 64), &payload(12));
    assert_eq!((be16(&frame, 12), be16(&frame, 16)), (0x88a8, 0x8100));
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Udp,
            l2_len: ETH + 2 * VLAN,
            header_len: ETH + 2 * VLAN + IPV4 + UDP,
            payload: 12,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn double_tagged_ipv6_tcp() {
    let b = eth().double_vlan(VlanId::try_new(100).unwrap(), VlanId::try_new(7).unwrap());
    let frame = tcp(b.ipv6(V6_SRC, V6_DST, 64), &TS_OPTIONS, &payload(30));
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: ETH + 2 * VLAN,
            header_len: ETH + 2 * VLAN + IPV6 + 32,
            payload: 30,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn triple_tagged_is_other() {
    // Two tags are unwrapped; a third 0x8100 is not IP.
    let inner = udp(v4(), &payload(12));
    let mut frame = inner[..12].to_vec();
    for (tpid, id) in [(0x88a8u16, 1u16), (0x8100, 2), (0x8100, 3)] {
        frame.extend(tpid.to_be_bytes());
        frame.extend(id.to_be_bytes());
    }
    frame.extend_from_slice(&inner[12..]);
    let len = len32(&frame);
    check(
        &frame,
        Want {
            family: Family::Other,
            proto: Proto::Other,
            l2_len: ETH + 2 * VLAN,
            header_len: len,
            payload: 0,
        },
    );
}

#[test]
fn double_tagged_with_the_inner_tag_cut_off_is_malformed() {
    let b = eth().double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap());
    let frame = udp(b.ipv4(V4_SRC, V4_DST, 64), &payload(12));
    assert_malformed(&frame[..20], Family::Other, ETH + VLAN);
}

#[test]
fn ipv4_fragments_say_which_they_are_and_their_id() {
    let mut header = v4_header();
    header.identification = 0xbeef;
    header.more_fragments = true;
    let first = raw_ip(
        v4_ip(header.clone()),
        IpNumber::UDP,
        &udp_bytes(&payload(64)),
    );
    let p = parse(&first[..]);
    assert_eq!((p.fragment, p.frag_id), (FRAG_FIRST, 0xbeef));
    assert_eq!(
        p.header_len,
        ETH + IPV4 + UDP,
        "the first has the UDP header"
    );
    header.fragment_offset = IpFragOffset::try_new(9).unwrap();
    header.more_fragments = false;
    let later = raw_ip(v4_ip(header), IpNumber::UDP, &payload(40));
    let p = parse(&later[..]);
    assert_eq!((p.fragment, p.frag_id), (FRAG_LATER, 0xbeef));
    assert_eq!(p.proto, Proto::Udp, "the datagram's protocol");
    assert_eq!(
        p.header_len,
        ETH + IPV4,
        "no transport header in a later fragment"
    );
    let whole = udp(v4(), &payload(64));
    let p = parse(&whole[..]);
    assert_eq!((p.fragment, p.frag_id), (FRAG_NONE, 0));
}

#[test]
fn ipv6_fragments_say_which_they_are_and_their_id() {
    let first = v6_chain(&[frag6(0, true)], 17, &udp_bytes(&payload(64)));
    let p = parse(&first[..]);
    assert_eq!((p.fragment, p.frag_id), (FRAG_FIRST, 0xdead_beef));
    let later = v6_chain(&[frag6(185, false)], 17, &payload(100));
    let p = parse(&later[..]);
    assert_eq!((p.fragment, p.frag_id), (FRAG_LATER, 0xdead_beef));
    let atomic = v6_chain(&[frag6(0, false)], 17, &udp_bytes(&payload(25)));
    let p = parse(&atomic[..]);
    assert_eq!(
        p.fragment, FRAG_NONE,
        "an atomic fragment is a whole datagram"
    );
}

#[test]
fn arp_is_other_and_all_header() {
    let frame = arp_frame();
    assert_eq!(frame.len(), 14 + 28);
    assert_eq!(be16(&frame, 12), 0x0806);
    check(
        &frame,
        Want {
            family: Family::Other,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: 42,
            payload: 0,
        },
    );
    // Padded to the Ethernet minimum: the padding is header too.
    let padded = pad_to(frame, 60, 0);
    check(
        &padded,
        Want {
            family: Family::Other,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: 60,
            payload: 0,
        },
    );
}

#[test]
fn vlan_tagged_arp_is_other() {
    let arp = arp_frame();
    let mut frame = raw_eth(0x8100, &[0x00, 0x05, 0x08, 0x06]);
    frame.extend_from_slice(&arp[14..]);
    check(
        &frame,
        Want {
            family: Family::Other,
            proto: Proto::Other,
            l2_len: 18,
            header_len: 18 + 28,
            payload: 0,
        },
    );
}

#[test]
fn other_ethertypes_are_other() {
    // LLDP, an 802.3 length field (LLC/STP), MPLS, and an Ethernet header alone.
    for (ethertype, body_len) in [(0x88ccu16, 46usize), (0x0026, 46), (0x8847, 60)] {
        let frame = raw_eth(ethertype, &payload(body_len));
        let len = len32(&frame);
        check(
            &frame,
            Want {
                family: Family::Other,
                proto: Proto::Other,
                l2_len: ETH,
                header_len: len,
                payload: 0,
            },
        );
    }
    let frame = raw_eth(0x88cc, &[]);
    check(
        &frame,
        Want {
            family: Family::Other,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: 14,
            payload: 0,
        },
    );
}

// ---------------------------------------------------------------------------------------
// Ethernet padding
// ---------------------------------------------------------------------------------------

#[test]
fn padded_ipv4_udp_excludes_padding() {
    let data = payload(4);
    let frame = udp(v4(), &data);
    assert_eq!(frame.len(), 46);
    for fill in [0x00, 0xff] {
        let padded = pad_to(frame.clone(), 60, fill);
        let p = check(
            &padded,
            Want {
                family: Family::Ipv4,
                proto: Proto::Udp,
                l2_len: ETH,
                header_len: 42,
                payload: 4,
            },
        );
        assert_eq!(p.l3_end, 46, "l3_end stops before the padding");
        agrees_with_etherparse(&padded, &p);
    }
}

#[test]
fn padded_ipv4_tcp_ack_has_no_payload() {
    // A bare ACK (54 bytes) padded to 60: 0 payload, not 6.
    let frame = tcp(v4(), &[], &[]);
    assert_eq!(frame.len(), 54);
    let padded = pad_to(frame, 60, 0);
    let p = check(
        &padded,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 54,
            payload: 0,
        },
    );
    assert_eq!(p.l3_end, 54);
    agrees_with_etherparse(&padded, &p);
}

#[test]
fn padded_vlan_ipv4_icmp() {
    let frame = icmpv4_echo(vlan(5).ipv4(V4_SRC, V4_DST, 64), &payload(2));
    assert_eq!(frame.len(), 18 + 20 + 8 + 2);
    let padded = pad_to(frame, 64, 0);
    let p = check(
        &padded,
        Want {
            family: Family::Ipv4,
            proto: Proto::Icmp,
            l2_len: 18,
            header_len: 46,
            payload: 2,
        },
    );
    assert_eq!(p.l3_end, 48);
    agrees_with_etherparse(&padded, &p);
}

#[test]
fn padded_ipv6_no_next_header() {
    // IPv6 "no next header" (59) with payload length 0, padded: nothing is payload.
    let mut frame = raw_ip(v6(), IpNumber(59), &[]);
    assert_eq!(be16(&frame, V6_PAYLOAD_LEN), 0);
    frame = pad_to(frame, 64, 0);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Other,
            l2_len: ETH,
            header_len: 54,
            payload: 0,
        },
    );
    assert_eq!(p.l3_end, 54);
}

// ---------------------------------------------------------------------------------------
// Malformed
// ---------------------------------------------------------------------------------------

#[test]
fn shorter_than_ethernet_header() {
    let frame = udp(v4(), &payload(8));
    for len in 0..14 {
        assert_malformed(&frame[..len], Family::Other, 0);
        assert!(etherparse_rejects(&frame[..len]));
    }
}

#[test]
fn truncated_vlan_tag() {
    let frame = udp(vlan(100).ipv4(V4_SRC, V4_DST, 64), &payload(8));
    for len in 14..18 {
        assert_malformed(&frame[..len], Family::Other, ETH);
        assert!(etherparse_rejects(&frame[..len]));
    }
    let mut ad = frame[..16].to_vec();
    set_be16(&mut ad, 12, 0x88a8);
    assert_malformed(&ad, Family::Other, ETH);
}

#[test]
fn truncated_ipv4_header() {
    let frame = udp(v4(), &payload(8));
    for len in 14..34 {
        assert_malformed(&frame[..len], Family::Ipv4, ETH);
        assert!(etherparse_rejects(&frame[..len]));
    }
    let frame = udp(vlan(1).ipv4(V4_SRC, V4_DST, 64), &payload(8));
    for len in 18..38 {
        assert_malformed(&frame[..len], Family::Ipv4, 18);
    }
}

#[test]
fn ipv4_ihl_below_5() {
    let frame = udp(v4(), &payload(20));
    for ihl in 0..5u8 {
        let mut bad = frame.clone();
        bad[V4_VER_IHL] = 0x40 | ihl;
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv4_version_not_4() {
    let frame = udp(v4(), &payload(20));
    for version in [0u8, 5, 6, 15] {
        let mut bad = frame.clone();
        bad[V4_VER_IHL] = (version << 4) | 5;
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv4_total_length_past_frame() {
    let frame = udp(v4(), &payload(20));
    let tot = be16(&frame, V4_TOT_LEN);
    assert_eq!(tot, 48);
    for claimed in [49u16, 1500, 0xffff] {
        let mut bad = frame.clone();
        set_be16(&mut bad, V4_TOT_LEN, claimed);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv4_total_length_below_header_length() {
    let frame = udp(v4(), &payload(20));
    for claimed in [1u16, 19] {
        let mut bad = frame.clone();
        set_be16(&mut bad, V4_TOT_LEN, claimed);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
    // With options (IHL 7 = 28 bytes): 20..27 is still below the header.
    let mut header = v4_header();
    header.options = Ipv4Options::try_from(&[1, 1, 1, 1, 1, 1, 1, 0][..]).unwrap();
    let frame = udp(v4_ip(header), &payload(20));
    for claimed in [20u16, 27] {
        let mut bad = frame.clone();
        set_be16(&mut bad, V4_TOT_LEN, claimed);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv4_total_length_zero_in_a_small_frame() {
    // 0 only stands for "the whole frame" in BIG TCP super-packets, which are > 64 KiB.
    // A normal-sized frame with total length 0 is below the header length.
    let mut bad = udp(v4(), &payload(20));
    set_be16(&mut bad, V4_TOT_LEN, 0);
    assert_malformed(&bad, Family::Ipv4, ETH);
    let mut bad = tcp(v4(), &TS_OPTIONS, &payload(1400));
    set_be16(&mut bad, V4_TOT_LEN, 0);
    assert_malformed(&bad, Family::Ipv4, ETH);
}

#[test]
fn ipv4_truncated_options() {
    // IHL 15 needs 60 header bytes; the frame ends inside the options.
    let mut options = [1u8; 40];
    options[39] = 0;
    let mut header = v4_header();
    header.options = Ipv4Options::try_from(&options[..]).unwrap();
    let frame = udp(v4_ip(header), &payload(8));
    for ip_bytes in [20usize, 21, 40, 59] {
        let mut bad = frame[..14 + ip_bytes].to_vec();
        // Even with a total length that matches what is there.
        set_be16(&mut bad, V4_TOT_LEN, ip_bytes as u16);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv4_truncated_tcp_header() {
    let frame = tcp(v4(), &[], &payload(50));
    for tcp_bytes in [0usize, 1, 10, 19] {
        // Frame and total length both end inside the TCP header.
        let mut bad = frame[..V4_L4 + tcp_bytes].to_vec();
        set_be16(&mut bad, V4_TOT_LEN, (20 + tcp_bytes) as u16);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
        // The frame holds a whole TCP header, but the datagram (total length) does not:
        // the rest is Ethernet padding.
        let mut bad = frame.clone();
        set_be16(&mut bad, V4_TOT_LEN, (20 + tcp_bytes) as u16);
        assert_malformed(&bad, Family::Ipv4, ETH);
    }
}

#[test]
fn ipv4_tcp_data_offset_below_5() {
    let frame = tcp(v4(), &[], &payload(50));
    for doff in 0..5u8 {
        let mut bad = frame.clone();
        bad[V4_L4 + 12] = doff << 4;
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv4_tcp_data_offset_past_datagram() {
    // 20-byte header + 10 data bytes, but data offset 15 claims a 60-byte header.
    let frame = tcp(v4(), &[], &payload(10));
    let mut bad = frame.clone();
    bad[V4_L4 + 12] = 15 << 4;
    assert_malformed(&bad, Family::Ipv4, ETH);
    assert!(etherparse_rejects(&bad));
    // Data offset 8 (32 bytes) > 30 bytes of segment, with the frame padded well past it:
    // the padding must not make the options "fit".
    let mut bad = pad_to(frame, 100, 0);
    bad[V4_L4 + 12] = 8 << 4;
    assert_malformed(&bad, Family::Ipv4, ETH);
    assert!(etherparse_rejects(&bad));
}

#[test]
fn ipv6_tcp_data_offset_past_datagram() {
    let frame = tcp(v6(), &[], &payload(10));
    let mut bad = frame.clone();
    bad[V6_L4 + 12] = 9 << 4;
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));
}

#[test]
fn udp_length_1_to_7() {
    let v4_frame = udp(v4(), &payload(20));
    let v6_frame = udp(v6(), &payload(20));
    for udp_len in 1..8u16 {
        let mut bad = v4_frame.clone();
        set_be16(&mut bad, V4_L4 + 4, udp_len);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
        let mut bad = v6_frame.clone();
        set_be16(&mut bad, V6_L4 + 4, udp_len);
        assert_malformed(&bad, Family::Ipv6, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn truncated_udp_and_icmp_headers() {
    let frame = udp(v4(), &payload(20));
    for l4_bytes in [0usize, 4, 7] {
        let mut bad = frame[..V4_L4 + l4_bytes].to_vec();
        set_be16(&mut bad, V4_TOT_LEN, (20 + l4_bytes) as u16);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
    let frame = icmpv4_echo(v4(), &payload(20));
    for l4_bytes in [0usize, 4, 7] {
        let mut bad = frame[..V4_L4 + l4_bytes].to_vec();
        set_be16(&mut bad, V4_TOT_LEN, (20 + l4_bytes) as u16);
        assert_malformed(&bad, Family::Ipv4, ETH);
        assert!(etherparse_rejects(&bad));
    }
    let frame = icmpv6_echo(v6(), &payload(20));
    for l4_bytes in [0usize, 4, 7] {
        let mut bad = frame[..V6_L4 + l4_bytes].to_vec();
        set_be16(&mut bad, V6_PAYLOAD_LEN, l4_bytes as u16);
        assert_malformed(&bad, Family::Ipv6, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn truncated_ipv6_header() {
    let frame = udp(v6(), &payload(8));
    for len in 14..54 {
        assert_malformed(&frame[..len], Family::Ipv6, ETH);
        assert!(etherparse_rejects(&frame[..len]));
    }
}

#[test]
fn ipv6_version_not_6() {
    let frame = udp(v6(), &payload(8));
    for version in [0u8, 4, 7] {
        let mut bad = frame.clone();
        bad[14] = version << 4;
        assert_malformed(&bad, Family::Ipv6, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv6_payload_length_past_frame() {
    let frame = udp(v6(), &payload(8));
    assert_eq!(be16(&frame, V6_PAYLOAD_LEN), 16);
    for claimed in [17u16, 1000, 0xffff] {
        let mut bad = frame.clone();
        set_be16(&mut bad, V6_PAYLOAD_LEN, claimed);
        assert_malformed(&bad, Family::Ipv6, ETH);
        assert!(etherparse_rejects(&bad));
    }
}

#[test]
fn ipv6_payload_length_zero_in_a_small_frame() {
    // Payload length 0 means "jumbogram / BIG TCP" only when the payload cannot be
    // expressed in 16 bits. Here it leaves no room for the UDP header.
    let mut bad = udp(v6(), &payload(8));
    set_be16(&mut bad, V6_PAYLOAD_LEN, 0);
    assert_malformed(&bad, Family::Ipv6, ETH);
}

#[test]
fn ipv6_truncated_extension_headers() {
    let hbh = Ipv6Extensions {
        hop_by_hop_options: Some(pad_ext(8)),
        ..Default::default()
    };
    let frame = udp(v6_ip(hbh), &payload(30));
    // Only the first byte of the HBH header.
    let mut bad = frame[..V6_L4 + 1].to_vec();
    set_be16(&mut bad, V6_PAYLOAD_LEN, 1);
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));
    // A 16-byte HBH header (length 1) in an 8-byte payload.
    let mut bad = frame[..V6_L4 + 8].to_vec();
    set_be16(&mut bad, V6_PAYLOAD_LEN, 8);
    bad[V6_L4 + 1] = 1;
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));
    // HBH claiming 2 KiB inside a normal frame (payload length consistent with the frame).
    let mut bad = frame.clone();
    bad[V6_L4 + 1] = 0xff;
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));
    // Extension chain complete, UDP header cut.
    let mut bad = frame[..V6_L4 + 8 + 4].to_vec();
    set_be16(&mut bad, V6_PAYLOAD_LEN, 12);
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));

    // Fragment header cut after 4 bytes.
    let frame = v6_chain(&[frag6(0, true)], 17, &udp_bytes(&payload(30)));
    let mut bad = frame[..V6_L4 + 4].to_vec();
    set_be16(&mut bad, V6_PAYLOAD_LEN, 4);
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));

    // AH of 24 bytes in a 16-byte payload.
    let ah = Ipv6Extensions {
        auth: Some(IpAuthHeader::new(IpNumber::UDP, 1, 1, &[0; 12]).unwrap()),
        ..Default::default()
    };
    let frame = udp(v6_ip(ah), &payload(30));
    assert_eq!(frame[V6_NEXT], 51);
    let mut bad = frame[..V6_L4 + 16].to_vec();
    set_be16(&mut bad, V6_PAYLOAD_LEN, 16);
    assert_malformed(&bad, Family::Ipv6, ETH);
    assert!(etherparse_rejects(&bad));
}

// ---------------------------------------------------------------------------------------
// Truncation and mutation properties
// ---------------------------------------------------------------------------------------

/// Valid frames whose IP length fields describe them exactly (no BIG TCP).
fn sample_frames() -> Vec<Vec<u8>> {
    let mut ip_opts = v4_header();
    ip_opts.options = Ipv4Options::try_from(&[0x94, 0x04, 0x00, 0x00][..]).unwrap();
    let mut v4_frag = v4_header();
    v4_frag.fragment_offset = IpFragOffset::try_new(10).unwrap();
    vec![
        tcp(v4(), &TS_OPTIONS, &payload(100)),
        udp(v4(), &payload(37)),
        pad_to(udp(v4(), &payload(4)), 60, 0),
        pad_to(tcp(v4(), &[], &[]), 60, 0xee),
        icmpv4_echo(v4(), &payload(56)),
        udp(v4_ip(ip_opts), &payload(20)),
        raw_ip(v4_ip(v4_frag), IpNumber::UDP, &payload(40)),
        udp(v6(), &payload(33)),
        tcp(v6(), &TS_OPTIONS, &payload(64)),
        icmpv6_echo(v6(), &payload(56)),
        udp(
            v6_ip(Ipv6Extensions {
                hop_by_hop_options: Some(pad_ext(8)),
                destination_options: Some(pad_ext(16)),
                ..Default::default()
            }),
            &payload(40),
        ),
        v6_chain(&[frag6(185, false)], 17, &payload(30)),
        v6_chain(
            &[opts6(0, 8), opts6(60, 8), frag6(0, true)],
            17,
            &udp_bytes(&payload(30)),
        ),
        udp(vlan(100).ipv4(V4_SRC, V4_DST, 64), &payload(10)),
        tcp(vlan(100).ipv6(V6_SRC, V6_DST, 64), &[], &payload(10)),
    ]
}

#[test]
fn every_truncation_is_safe_and_never_gains_payload() {
    let mut frames = sample_frames();
    frames.push(arp_frame());
    frames.push(pad_to(arp_frame(), 60, 0));
    for frame in &frames {
        let full = parse(frame.as_slice());
        assert_ne!(
            full.proto,
            Proto::Malformed,
            "sample must be valid: {frame:02x?}"
        );
        for len in 0..=frame.len() {
            let prefix = &frame[..len];
            let p = parse(prefix);
            invariants(prefix, &p);
            assert!(p.header_len <= len32(prefix));
            assert!(p.l3_end <= len32(prefix));
            assert!(p.payload_len() <= len32(prefix));
            assert!(
                p.payload_len() <= full.payload_len(),
                "prefix {len} of {frame:02x?} has more payload: {p:?} vs {full:?}"
            );
            let a = account(&p, len32(prefix), 0, 1);
            assert_eq!(a.bytes, len as u64);
            assert_eq!(a.header_bytes + a.payload_bytes, a.bytes);
        }
    }
}

#[test]
fn truncating_an_ip_frame_before_its_datagram_end_is_malformed() {
    // IP length fields make the outcome exact: a prefix that cuts the datagram is
    // malformed, one that only cuts padding parses exactly like the full frame.
    for frame in sample_frames() {
        let full = parse(frame.as_slice());
        for len in 0..=frame.len() {
            let p = parse(&frame[..len]);
            if (len as u32) < full.l3_end {
                assert_eq!(p.proto, Proto::Malformed, "prefix {len}: {p:?}");
                assert_eq!(p.payload_len(), 0);
            } else {
                assert_eq!(p, full, "prefix {len} only loses padding");
            }
        }
    }
}

#[test]
fn non_ip_truncation_is_all_header() {
    let frame = pad_to(arp_frame(), 60, 0);
    for len in 14..=frame.len() {
        let p = parse(&frame[..len]);
        assert_eq!(
            (p.family, p.proto, p.l2_len, p.header_len, p.l3_end),
            (Family::Other, Proto::Other, ETH, len as u32, len as u32)
        );
    }
}

/// xorshift64*: deterministic, no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic_and_keep_invariants() {
    let frames = sample_frames();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let mut frame = frames[rng.below(frames.len())].clone();
        // Mostly hit the first 80 bytes, where the headers are.
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(frame.len().min(80));
            frame[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => rng.next() as u8,
            };
        }
        if rng.below(4) == 0 {
            frame.truncate(rng.below(frame.len() + 1));
        }
        let p = parse(frame.as_slice());
        invariants(&frame, &p);
        for mtu in [0, 68, 1280, 1500, 9000] {
            let segs = estimate_segments(&p, mtu);
            assert!(segs >= 1);
            let a = account(&p, len32(&frame), 4, segs);
            assert_eq!(a.header_bytes + a.payload_bytes, a.bytes);
            assert_eq!(a.payload_bytes, u64::from(p.payload_len()));
        }
    }
}

// ---------------------------------------------------------------------------------------
// BIG TCP / jumbograms (length field 0)
// ---------------------------------------------------------------------------------------

/// An IPv4 TCP BIG TCP super-packet: total length 0, `data_len` bytes of data.
fn big_tcp_v4(data_len: usize) -> Vec<u8> {
    let mut frame = tcp(v4(), &TS_OPTIONS, &[]);
    frame.extend(payload(data_len));
    set_be16(&mut frame, V4_TOT_LEN, 0);
    frame
}

fn big_tcp_v6(data_len: usize) -> Vec<u8> {
    let mut frame = tcp(v6(), &TS_OPTIONS, &[]);
    frame.extend(payload(data_len));
    set_be16(&mut frame, V6_PAYLOAD_LEN, 0);
    frame
}

#[test]
fn big_tcp_ipv4_total_length_zero() {
    let frame = big_tcp_v4(100_000);
    assert_eq!(frame.len(), 66 + 100_000);
    check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 66,
            payload: 100_000,
        },
    );
}

#[test]
fn big_tcp_ipv6_payload_length_zero() {
    let frame = big_tcp_v6(150_000);
    check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 86,
            payload: 150_000,
        },
    );
}

#[test]
fn length_zero_only_means_big_above_64k() {
    // IPv4: datagram = 20 + 32 + data. 65535 fits the field, so 0 there is malformed;
    // 65536 does not, so 0 means "the rest of the frame".
    assert_malformed(&big_tcp_v4(65_483), Family::Ipv4, ETH);
    let p = parse(big_tcp_v4(65_484).as_slice());
    assert_eq!(
        (p.proto, p.header_len, p.payload_len()),
        (Proto::Tcp, 66, 65_484)
    );
    // IPv6: payload = 32 + data.
    let p = parse(big_tcp_v6(65_503).as_slice());
    assert_eq!(
        p.proto,
        Proto::Malformed,
        "payload length 0 = no room for TCP"
    );
    let p = parse(big_tcp_v6(65_504).as_slice());
    assert_eq!(
        (p.proto, p.header_len, p.payload_len()),
        (Proto::Tcp, 86, 65_504)
    );
}

#[test]
fn largest_explicit_lengths() {
    // Total length 65535 and payload length 65535, written out.
    let frame = tcp(v4(), &TS_OPTIONS, &payload(65_483));
    assert_eq!(be16(&frame, V4_TOT_LEN), 0xffff);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv4,
            proto: Proto::Tcp,
            l2_len: ETH,
            header_len: 66,
            payload: 65_483,
        },
    );
    agrees_with_etherparse(&frame, &p);
    let frame = udp(v6(), &payload(65_527));
    assert_eq!(be16(&frame, V6_PAYLOAD_LEN), 0xffff);
    let p = check(
        &frame,
        Want {
            family: Family::Ipv6,
            proto: Proto::Udp,
            l2_len: ETH,
            header_len: 62,
            payload: 65_527,
        },
    );
    agrees_with_etherparse(&frame, &p);
}

#[test]
fn big_tcp_truncations_are_safe() {
    for (frame, full_payload) in [
        (big_tcp_v4(70_000), 70_000u32),
        (big_tcp_v6(70_000), 70_000),
    ] {
        for len in 0..=frame.len() {
            let prefix = &frame[..len];
            let p = parse(prefix);
            invariants(prefix, &p);
            assert!(p.payload_len() <= full_payload);
        }
    }
}

// ---------------------------------------------------------------------------------------
// account()
// ---------------------------------------------------------------------------------------

#[test]
fn account_normal_frame() {
    let frame = tcp(v4(), &TS_OPTIONS, &payload(100));
    let p = parse(frame.as_slice());
    assert_eq!(
        account(&p, 166, 0, 1),
        Counters {
            frames: 1,
            packets: 1,
            bytes: 166,
            header_bytes: 66,
            payload_bytes: 100,
        }
    );
}

#[test]
fn account_zero_segments_counts_as_one() {
    let frame = udp(v4(), &payload(37));
    let p = parse(frame.as_slice());
    let want = Counters {
        frames: 1,
        packets: 1,
        bytes: 79,
        header_bytes: 42,
        payload_bytes: 37,
    };
    assert_eq!(account(&p, 79, 0, 0), want);
    assert_eq!(account(&p, 79, 0, 1), want);
}

#[test]
fn account_padded_frame_counts_padding_as_header() {
    let frame = pad_to(udp(v4(), &payload(4)), 60, 0);
    let p = parse(frame.as_slice());
    assert_eq!(
        account(&p, 60, 0, 1),
        Counters {
            frames: 1,
            packets: 1,
            bytes: 60,
            header_bytes: 56,
            payload_bytes: 4,
        }
    );
}

#[test]
fn account_gso_super_packet() {
    // 64000 bytes of TCP data behind a 66-byte header stack, sent as 45 segments: each
    // segment repeats the 66 header bytes on the wire.
    let frame = tcp(v4(), &TS_OPTIONS, &payload(64_000));
    assert_eq!(frame.len(), 64_066);
    let p = parse(frame.as_slice());
    assert_eq!(
        account(&p, 64_066, 0, 45),
        Counters {
            frames: 1,
            packets: 45,
            bytes: 66_970,       // 64066 + 44 * 66
            header_bytes: 2_970, // 45 * 66
            payload_bytes: 64_000,
        }
    );
}

#[test]
fn account_gso_udp_ipv6() {
    let frame = udp(v6(), &payload(60_000));
    let p = parse(frame.as_slice());
    assert_eq!(
        account(&p, 60_062, 0, 42),
        Counters {
            frames: 1,
            packets: 42,
            bytes: 62_604,       // 60062 + 41 * 62
            header_bytes: 2_604, // 42 * 62
            payload_bytes: 60_000,
        }
    );
}

#[test]
fn account_hidden_vlan_tag() {
    // tc ingress: the 802.1Q tag was moved into skb->vlan_tci, so the data starts with a
    // plain 14-byte Ethernet header, but every wire segment carried 4 more bytes.
    let frame = tcp(v4(), &TS_OPTIONS, &payload(100));
    let p = parse(frame.as_slice());
    assert_eq!(
        account(&p, 166, 4, 1),
        Counters {
            frames: 1,
            packets: 1,
            bytes: 170,
            header_bytes: 70,
            payload_bytes: 100,
        }
    );
    let frame = tcp(v4(), &TS_OPTIONS, &payload(64_000));
    let p = parse(frame.as_slice());
    assert_eq!(
        account(&p, 64_066, 4, 45),
        Counters {
            frames: 1,
            packets: 45,
            bytes: 67_150,       // 64066 + 4 + 44 * (66 + 4)
            header_bytes: 3_150, // 45 * 70
            payload_bytes: 64_000,
        }
    );
}

#[test]
fn account_malformed_and_non_ip_are_all_header() {
    let arp = arp_frame();
    let p = parse(arp.as_slice());
    assert_eq!(
        account(&p, 42, 0, 1),
        Counters {
            frames: 1,
            packets: 1,
            bytes: 42,
            header_bytes: 42,
            payload_bytes: 0,
        }
    );
    let mut bad = udp(v4(), &payload(20));
    bad[V4_VER_IHL] = 0x44;
    let p = parse(bad.as_slice());
    assert_eq!(
        account(&p, 62, 4, 3),
        Counters {
            frames: 1,
            packets: 3,
            bytes: 62 + 4 + 2 * 66,
            header_bytes: 62 + 4 + 2 * 66,
            payload_bytes: 0,
        }
    );
}

// ---------------------------------------------------------------------------------------
// estimate_segments()
// ---------------------------------------------------------------------------------------

fn segments_for(frame: &[u8], mtu: u32) -> u32 {
    estimate_segments(&parse(frame), mtu)
}

#[test]
fn segments_ipv4_tcp_super_packet() {
    // MSS = 1500 - 20 - 32 = 1448; ceil(64000 / 1448) = 45 (44 * 1448 = 63712).
    assert_eq!(
        segments_for(&tcp(v4(), &TS_OPTIONS, &payload(64_000)), 1500),
        45
    );
    // Exactly 45 full segments, and one byte more.
    assert_eq!(
        segments_for(&tcp(v4(), &TS_OPTIONS, &payload(65_160)), 1500),
        45
    );
    assert_eq!(
        segments_for(&tcp(v4(), &TS_OPTIONS, &payload(65_161)), 1500),
        46
    );
    // Jumbo MTU: 9000 - 52 = 8948; ceil(64000 / 8948) = 8.
    assert_eq!(
        segments_for(&tcp(v4(), &TS_OPTIONS, &payload(64_000)), 9000),
        8
    );
}

#[test]
fn segments_ipv4_udp_super_packet() {
    // 1500 - 20 - 8 = 1472; ceil(65000 / 1472) = 45 (44 * 1472 = 64768).
    assert_eq!(segments_for(&udp(v4(), &payload(65_000)), 1500), 45);
}

#[test]
fn segments_ipv6_super_packets() {
    // TCP: 1500 - 40 - 32 = 1428; ceil(60000 / 1428) = 43 (42 * 1428 = 59976).
    assert_eq!(
        segments_for(&tcp(v6(), &TS_OPTIONS, &payload(60_000)), 1500),
        43
    );
    // UDP: 1500 - 40 - 8 = 1452; ceil(60000 / 1452) = 42 (41 * 1452 = 59532).
    assert_eq!(segments_for(&udp(v6(), &payload(60_000)), 1500), 42);
    // 29040 = 20 * 1452 exactly; with an 8-byte HBH header the segments carry 1444.
    assert_eq!(segments_for(&udp(v6(), &payload(29_040)), 1500), 20);
    let hbh = Ipv6Extensions {
        hop_by_hop_options: Some(pad_ext(8)),
        ..Default::default()
    };
    assert_eq!(segments_for(&udp(v6_ip(hbh), &payload(29_040)), 1500), 21);
}

#[test]
fn segments_big_tcp() {
    // ceil(100000 / 1448) = 70 and ceil(150000 / 1428) = 106.
    assert_eq!(segments_for(&big_tcp_v4(100_000), 1500), 70);
    assert_eq!(segments_for(&big_tcp_v6(150_000), 1500), 106);
}

#[test]
fn segments_within_mtu_is_one() {
    // Datagram of exactly the MTU, and one byte over.
    assert_eq!(
        segments_for(&tcp(v4(), &TS_OPTIONS, &payload(1448)), 1500),
        1
    );
    assert_eq!(
        segments_for(&tcp(v4(), &TS_OPTIONS, &payload(1449)), 1500),
        2
    );
    assert_eq!(segments_for(&udp(v4(), &payload(1472)), 1500), 1);
    assert_eq!(segments_for(&udp(v4(), &payload(1473)), 1500), 2);
    assert_eq!(segments_for(&udp(v6(), &payload(1452)), 1500), 1);
    assert_eq!(segments_for(&udp(v6(), &payload(1453)), 1500), 2);
    // The VLAN tag is L2: it does not count against the MTU.
    let vlan_frame = tcp(
        vlan(9).ipv4(V4_SRC, V4_DST, 64),
        &TS_OPTIONS,
        &payload(1448),
    );
    assert_eq!(vlan_frame.len(), 18 + 1500);
    assert_eq!(segments_for(&vlan_frame, 1500), 1);
    // Ethernet padding does not count either.
    assert_eq!(segments_for(&pad_to(udp(v4(), &payload(4)), 60, 0), 40), 1);
    assert_eq!(segments_for(&udp(v4(), &[]), 1500), 1);
}

#[test]
fn segments_non_tcp_udp_is_one() {
    // ICMP and ICMPv6 are never segmented, even when larger than the MTU.
    assert_eq!(segments_for(&icmpv4_echo(v4(), &payload(3000)), 1500), 1);
    assert_eq!(segments_for(&icmpv6_echo(v6(), &payload(3000)), 1500), 1);
    assert_eq!(
        segments_for(&raw_ip(v4(), IpNumber(47), &payload(3000)), 1500),
        1
    );
    assert_eq!(segments_for(&arp_frame(), 1500), 1);
    let mut bad = tcp(v4(), &[], &payload(3000));
    bad[V4_VER_IHL] = 0x44;
    assert_eq!(segments_for(&bad, 1500), 1);
}

#[test]
fn segments_degenerate_mtu() {
    let frame = tcp(v4(), &TS_OPTIONS, &payload(100));
    // Headers (52) do not fit the MTU: no division by zero, one segment.
    for mtu in [0, 1, 51, 52] {
        assert_eq!(segments_for(&frame, mtu), 1, "mtu {mtu}");
    }
    // One payload byte per segment.
    assert_eq!(segments_for(&frame, 53), 100);
    // 60 - 52 = 8 bytes per segment: ceil(100 / 8) = 13.
    assert_eq!(segments_for(&frame, 60), 13);
}

// ---------------------------------------------------------------------------------------
// Counter layouts
// ---------------------------------------------------------------------------------------

#[test]
fn enum_values_are_the_map_layout() {
    // These discriminants index the BPF maps: they must not move.
    assert_eq!(
        [
            Hook::Xdp as u32,
            Hook::TcIngress as u32,
            Hook::TcEgress as u32
        ],
        [0, 1, 2]
    );
    assert_eq!(
        [
            Family::Ipv4 as u32,
            Family::Ipv6 as u32,
            Family::Other as u32
        ],
        [0, 1, 2]
    );
    let protos: Vec<u32> = Proto::ALL.iter().map(|p| *p as u32).collect();
    assert_eq!(protos, [0, 1, 2, 3, 4, 5]);
    for (i, h) in Hook::ALL.iter().enumerate() {
        assert_eq!(*h as usize, i);
    }
    for (i, f) in Family::ALL.iter().enumerate() {
        assert_eq!(*f as usize, i);
    }
    let names: Vec<&str> = Proto::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        ["tcp", "udp", "icmp", "icmpv6", "other", "malformed"]
    );
    let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["ipv4", "ipv6", "other"]);
    let names: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
    assert_eq!(names, ["xdp", "tc_ingress", "tc_egress"]);
}

#[test]
fn hook_counters_index_and_sum() {
    assert_eq!(HookCounters::ENTRIES, 64 * 3);
    assert_eq!(MAX_IFACES, 64);
    assert_eq!(HookCounters::index(0, Hook::Xdp), 0);
    assert_eq!(HookCounters::index(0, Hook::TcEgress), 2);
    assert_eq!(HookCounters::index(5, Hook::TcIngress), 16);
    assert_eq!(HookCounters::index(63, Hook::TcEgress), 191);

    let one = Counters {
        frames: 1,
        packets: 2,
        bytes: 3,
        header_bytes: 4,
        payload_bytes: 5,
    };
    let mut cpu0 = HookCounters::default();
    cpu0.by[Family::Ipv6 as usize][Proto::Udp as usize] = one;
    let mut cpu1 = HookCounters::default();
    cpu1.by[Family::Ipv6 as usize][Proto::Udp as usize] = one;
    cpu1.by[Family::Other as usize][Proto::Malformed as usize] = one;
    let mut total = HookCounters::default();
    total.add(&cpu0);
    total.add(&cpu1);
    assert_eq!(
        *total.get(Family::Ipv6, Proto::Udp),
        Counters {
            frames: 2,
            packets: 4,
            bytes: 6,
            header_bytes: 8,
            payload_bytes: 10,
        }
    );
    assert_eq!(*total.get(Family::Other, Proto::Malformed), one);
    assert_eq!(*total.get(Family::Ipv4, Proto::Tcp), Counters::default());
}

// ---------------------------------------------------------------------------------------
// Tunnels: the headers each segment of an encapsulated super-packet repeats
// ---------------------------------------------------------------------------------------

/// An outer IPv4/UDP frame to `dport` carrying `body`.
fn outer_udp(dport: u16, body: &[u8]) -> Vec<u8> {
    let b = v4().udp(50000, dport);
    let mut out = Vec::new();
    b.write(&mut out, body).unwrap();
    out
}

/// An inner Ethernet/IPv4/TCP frame with timestamps (32-byte TCP header) and `data`.
fn inner_tcp(data: usize) -> Vec<u8> {
    tcp(v4(), &TS_OPTIONS, &payload(data))
}

#[test]
fn vxlan_segments_repeat_the_inner_headers() {
    // 8 (VXLAN) + 14 (inner Ethernet) + 20 (inner IPv4) + 32 (inner TCP): the 74 bytes per
    // extra segment the review found missing.
    for port in [4789, 8472] {
        let mut body = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        body.extend(inner_tcp(2000));
        let frame = outer_udp(port, &body);
        let p = parse(&frame[..]);
        assert_eq!(p.header_len, ETH + IPV4 + UDP);
        assert_eq!(
            netpost_common::tunnel_headers(&frame[..], &p),
            8 + ETH + IPV4 + 32
        );
    }
}

#[test]
fn geneve_with_options_repeats_its_options_too() {
    // Geneve: 8 fixed bytes + 2 words of options, then Ethernet.
    let mut body = vec![0x02, 0, 0x65, 0x58, 0, 0, 1, 0];
    body.extend([0u8; 8]);
    body.extend(inner_tcp(100));
    let frame = outer_udp(6081, &body);
    let p = parse(&frame[..]);
    assert_eq!(
        netpost_common::tunnel_headers(&frame[..], &p),
        16 + ETH + IPV4 + 32
    );
}

#[test]
fn gre_and_ip_in_ip_repeat_the_inner_ip_headers() {
    let inner = inner_tcp(100);
    let inner_ip = &inner[14..];
    // GRE with a key (8 bytes) carrying IPv4.
    let mut gre = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 7];
    gre.extend_from_slice(inner_ip);
    let frame = raw_ip(v4(), IpNumber::GRE, &gre);
    let p = parse(&frame[..]);
    assert_eq!(p.proto, Proto::Other);
    assert_eq!(
        netpost_common::tunnel_headers(&frame[..], &p),
        8 + IPV4 + 32
    );
    // GRE bridging Ethernet (0x6558), no options.
    let mut teb = vec![0, 0, 0x65, 0x58];
    teb.extend_from_slice(&inner);
    let frame = raw_ip(v4(), IpNumber::GRE, &teb);
    let p = parse(&frame[..]);
    assert_eq!(
        netpost_common::tunnel_headers(&frame[..], &p),
        4 + ETH + IPV4 + 32
    );
    // IPv4 in IPv4.
    let frame = raw_ip(v4(), IpNumber::IPV4, inner_ip);
    let p = parse(&frame[..]);
    assert_eq!(netpost_common::tunnel_headers(&frame[..], &p), IPV4 + 32);
}

#[test]
fn not_a_tunnel_adds_nothing() {
    let frame = udp(v4(), &payload(100));
    let p = parse(&frame[..]);
    assert_eq!(netpost_common::tunnel_headers(&frame[..], &p), 0, "port 53");
    let frame = outer_udp(4789, &[0x08, 0, 0, 0]);
    let p = parse(&frame[..]);
    assert_eq!(
        netpost_common::tunnel_headers(&frame[..], &p),
        0,
        "cut short"
    );
    let frame = inner_tcp(100);
    let p = parse(&frame[..]);
    assert_eq!(netpost_common::tunnel_headers(&frame[..], &p), 0);
}

#[test]
fn gso_segments_come_from_gso_size_when_the_kernel_has_not_counted_them() {
    // A tap/virtio TSO frame: 40 segments of 1448 bytes, gso_segs still 0.
    let frame = tcp(v4(), &TS_OPTIONS, &payload(40 * 1448));
    let p = parse(&frame[..]);
    assert_eq!(netpost_common::gso_segments(&p, 0, 1448), 40);
    assert_eq!(
        netpost_common::gso_segments(&p, 0, 500),
        116,
        "MSS 500: 57,920 / 500"
    );
    assert_eq!(
        netpost_common::gso_segments(&p, 7, 1448),
        7,
        "counted by the kernel"
    );
    assert_eq!(netpost_common::gso_segments(&p, 0, 0), 1, "not GSO");
}
