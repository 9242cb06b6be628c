//! Crafted frames fed to the real, loaded XDP and tc programs with BPF_PROG_TEST_RUN:
//! malformed headers land in `malformed`, never crash the program and are never
//! attributed to a transport protocol; well-formed ones land where they belong.
use aya::programs::{TestRun, TestRunOptions};
use netpost::loader::Programs;
use netpost_common::{Counters, Family, Hook, HookCounters, Proto};
use netpost_tests::require_root;

const XDP_PASS: u32 = 2;
const TC_ACT_UNSPEC: u32 = u32::MAX; // -1: hand on to the next program

/// BPF_PROG_TEST_RUN runs XDP and tc programs on the loopback device of the caller's
/// namespace, so frames are counted for ifindex 1.
const LO: u32 = 1;

fn programs() -> Programs {
    let mut p =
        Programs::load(&netpost::loader::LoadOptions::default()).expect("load netpost programs");
    p.register(LO, 0, 1500).expect("register lo");
    p
}

/// Runs `frame` through XDP and both tc programs; returns the hooks that ran it. The
/// kernel refuses to build a test skb from an IPv4 frame shorter than an IPv4 header
/// (EINVAL), so such frames are checked at XDP only.
fn run_all_hooks(p: &mut Programs, frame: &[u8]) -> Vec<Hook> {
    let opts = || TestRunOptions {
        data_in: Some(frame),
        ..Default::default()
    };
    let r = p.xdp().test_run(opts()).expect("xdp test run");
    assert_eq!(r.return_value, XDP_PASS, "XDP must pass every frame");
    let mut ran = vec![Hook::Xdp];
    for hook in [Hook::TcIngress, Hook::TcEgress] {
        match p.tc(hook).test_run(opts()) {
            Ok(r) => {
                assert_eq!(r.return_value, TC_ACT_UNSPEC, "tc must hand every skb on");
                ran.push(hook);
            }
            Err(e) if frame.len() < 14 + 20 => {
                assert!(format!("{e:?}").contains("code: 22"), "{e:?}");
            }
            Err(e) => panic!("tc test run of a {}-byte frame: {e}", frame.len()),
        }
    }
    ran
}

fn cell(h: &HookCounters, family: Family, proto: Proto) -> Counters {
    *h.get(family, proto)
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn udp4(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(1000, 2000)
        .write(&mut f, &vec![7u8; payload])
        .unwrap();
    f
}

fn tcp4(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .tcp(1000, 2000, 1, 65535)
        .write(&mut f, &vec![7u8; payload])
        .unwrap();
    f
}

/// (name, frame, family it must be counted under)
fn malformed_frames() -> Vec<(&'static str, Vec<u8>, Family)> {
    let mut v = Vec::new();
    let mut truncated_ip = eth(0x0800);
    truncated_ip.extend_from_slice(&[0x45, 0, 0, 40, 0, 0]);
    v.push(("IPv4 header cut short", truncated_ip, Family::Ipv4));

    let mut ihl = udp4(20);
    ihl[14] = 0x44; // IHL 4 (16 bytes) < the minimum 5
    v.push(("IHL < 5", ihl, Family::Ipv4));

    let mut version = udp4(20);
    version[14] = 0x65; // version 6 in an IPv4 ethertype
    v.push(("IP version mismatch", version, Family::Ipv4));

    let mut too_long = udp4(20);
    too_long[16..18].copy_from_slice(&1400u16.to_be_bytes()); // total length past the frame
    v.push(("IPv4 total length > frame", too_long, Family::Ipv4));

    let mut too_short = udp4(20);
    too_short[16..18].copy_from_slice(&12u16.to_be_bytes()); // shorter than its own header
    v.push(("IPv4 total length < header", too_short, Family::Ipv4));

    let mut tcp_cut = tcp4(0);
    tcp_cut.truncate(14 + 20 + 10);
    tcp_cut[16..18].copy_from_slice(&30u16.to_be_bytes());
    v.push(("TCP header cut short", tcp_cut, Family::Ipv4));

    let mut doff = tcp4(10);
    doff[14 + 20 + 12] = 0x30; // data offset 3 words
    v.push(("TCP data offset < 5", doff, Family::Ipv4));

    let mut doff_far = tcp4(10);
    doff_far[14 + 20 + 12] = 0xf0; // 60-byte header in a 30-byte segment
    v.push(("TCP data offset past the datagram", doff_far, Family::Ipv4));

    let mut udp_len = udp4(20);
    udp_len[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&3u16.to_be_bytes());
    v.push(("UDP length < 8", udp_len, Family::Ipv4));

    let mut v6 = eth(0x86dd);
    v6.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
    v.push(("IPv6 header cut short", v6, Family::Ipv6));

    let mut v6_len = eth(0x86dd);
    v6_len.extend_from_slice(&[0x60, 0, 0, 0, 0x05, 0xdc, 17, 64]); // payload length 1500
    v6_len.extend_from_slice(&[0u8; 32]);
    v6_len.extend_from_slice(&[0u8; 8]);
    v.push(("IPv6 payload length > frame", v6_len, Family::Ipv6));

    let mut vlan_cut = eth(0x8100);
    vlan_cut.extend_from_slice(&[0, 100]);
    v.push(("VLAN tag cut short", vlan_cut, Family::Other));
    v
}

#[test]
fn malformed_frames_are_counted_as_malformed_at_every_hook() {
    require_root();
    let mut p = programs();
    let frames = malformed_frames();
    let mut ran_at = Vec::new();
    for (name, frame, _) in &frames {
        ran_at.push(run_all_hooks(&mut p, frame));
        // Check after each frame, so a misattribution names its frame.
        let counters = p.read(0).expect("read counters");
        for hook in Hook::ALL {
            let h = &counters.hooks[hook as usize];
            for proto in [
                Proto::Tcp,
                Proto::Udp,
                Proto::Icmp,
                Proto::Icmpv6,
                Proto::Other,
            ] {
                for family in Family::ALL {
                    assert_eq!(
                        cell(h, family, proto).packets,
                        0,
                        "{name}: counted as {family:?}/{proto:?} at {hook:?}"
                    );
                }
            }
        }
    }
    let counters = p.read(0).unwrap();
    for hook in Hook::ALL {
        let h = &counters.hooks[hook as usize];
        for family in Family::ALL {
            let want: Vec<&Vec<u8>> = frames
                .iter()
                .zip(&ran_at)
                .filter(|((_, _, f), hooks)| *f == family && hooks.contains(&hook))
                .map(|((_, frame, _), _)| frame)
                .collect();
            let got = cell(h, family, Proto::Malformed);
            assert_eq!(got.packets, want.len() as u64, "{hook:?} {family:?}");
            let bytes: u64 = want.iter().map(|f| f.len() as u64).sum();
            assert_eq!(got.bytes, bytes, "{hook:?} {family:?}: all bytes counted");
            assert_eq!(
                got.header_bytes, bytes,
                "no payload is trusted in a malformed frame"
            );
            assert_eq!(got.payload_bytes, 0);
        }
    }
}

#[test]
fn well_formed_frames_land_in_their_protocol() {
    require_root();
    let mut p = programs();
    let mut arp = eth(0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    let mut icmp6 = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6([0xfd; 16], [0xfe; 16], 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut icmp6, &[9u8; 24])
        .unwrap();
    let cases: Vec<(Vec<u8>, Family, Proto, u64)> = vec![
        (udp4(64), Family::Ipv4, Proto::Udp, 64),
        (tcp4(1400), Family::Ipv4, Proto::Tcp, 1400),
        (icmp6, Family::Ipv6, Proto::Icmpv6, 24),
        (arp, Family::Other, Proto::Other, 0),
    ];
    for (frame, ..) in &cases {
        assert_eq!(run_all_hooks(&mut p, frame).len(), 3);
    }
    let counters = p.read(0).unwrap();
    for hook in Hook::ALL {
        let h = &counters.hooks[hook as usize];
        for (frame, family, proto, payload) in &cases {
            let c = cell(h, *family, *proto);
            assert_eq!(c.packets, 1, "{hook:?} {family:?}/{proto:?}");
            assert_eq!(c.bytes, frame.len() as u64);
            assert_eq!(c.payload_bytes, *payload);
            assert_eq!(c.header_bytes, frame.len() as u64 - payload);
        }
        for family in Family::ALL {
            assert_eq!(cell(h, family, Proto::Malformed).packets, 0);
        }
    }
}
