//! A tap device with a virtio-net header (IFF_VNET_HDR): frames written to it enter the
//! stack the way a VM's virtio-net traffic does, TSO super-packets (gso_size set, gso_segs
//! still 0) included, and with the linear part of the skb as long as the header says.
//!
//! drivers/net/tun.c (`tun_get_user`, `tun_alloc_skb`): the skb's linear part is the
//! header's `hdr_len`, except that a frame under a page (`NET_SKB_PAD + len < PAGE_SIZE`)
//! is copied whole into the linear part. So a frame of at least a page whose `hdr_len` is
//! 14 has only its Ethernet header linear; the stack pulls the IP header in (`ip_rcv`), and
//! the TCP header stays in a page fragment until TCP itself pulls it.
use std::{fs::File, io::Write, net::Ipv4Addr, os::fd::AsRawFd};

use std::sync::atomic::Ordering;

use crate::netns::{NEXT_ID, NetNs, unique_name};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// `struct virtio_net_hdr` (10 bytes, little-endian: tun's default on x86).
#[derive(Clone, Copy, Debug, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at csum_start + csum_offset holds only the
/// pseudo-header sum (CHECKSUM_PARTIAL).
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;

impl VnetHdr {
    fn bytes(&self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

/// A tap device in a namespace; it disappears when the file is closed (on drop).
pub struct Tap {
    pub ifname: String,
    file: File,
}

impl Tap {
    /// Creates `ifname` in `ns` (down, no addresses).
    pub fn new(ns: &NetNs) -> Tap {
        let ifname = unique_name("npt");
        let name = ifname.clone();
        // The device is created in the namespace of the thread that asks for it.
        let file = ns.run(move || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .expect("open /dev/net/tun");
            // SAFETY: an all-zero ifreq is valid; the name and flags are set below.
            let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
            for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
                *dst = src as libc::c_char;
            }
            ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
            // SAFETY: TUNSETIFF reads and writes an ifreq we own.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut ifr) };
            assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
            file
        });
        Tap { ifname, file }
    }

    /// Writes one frame (from its Ethernet header on) behind `hdr`: one write, one skb.
    pub fn write(&self, hdr: VnetHdr, frame: &[u8]) {
        let mut buf = hdr.bytes().to_vec();
        buf.extend_from_slice(frame);
        let written = (&self.file)
            .write(&buf)
            .unwrap_or_else(|e| panic!("write to {}: {e}", self.ifname));
        assert_eq!(written, buf.len(), "short write to {}", self.ifname);
    }
}

/// The two ends of a tap link: the tap device's own (host) side and the "guest" whose
/// frames the test writes.
#[derive(Clone, Copy, Debug)]
pub struct TapLink {
    pub host_mac: [u8; 6],
    pub host_ip4: Ipv4Addr,
    pub guest_mac: [u8; 6],
    pub guest_ip4: Ipv4Addr,
}

fn mac_str(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl Tap {
    /// Brings the tap up in `ns` as silent as a [`VethPair`](crate::netns::VethPair) end:
    /// ARP off, the host side at .1 of a /24 of its own (10.50-99.pid.0: unused by the other
    /// topologies), the guest at .2 as a permanent neighbour, no IPv6 addresses.
    pub fn up(&self, ns: &NetNs) -> TapLink {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (net, pid) = (50 + (n % 50) as u8, (std::process::id() % 250) as u8);
        let link = TapLink {
            host_mac: [0x02, 0x6e, 0x74, pid, net, 1],
            host_ip4: Ipv4Addr::new(10, net, pid, 1),
            guest_mac: [0x02, 0x6e, 0x74, pid, net, 2],
            guest_ip4: Ipv4Addr::new(10, net, pid, 2),
        };
        let dev = self.ifname.as_str();
        ns.exec(
            "ip",
            &[
                "link",
                "set",
                dev,
                "address",
                &mac_str(link.host_mac),
                "arp",
                "off",
            ],
        );
        ns.exec(
            "ip",
            &["addr", "add", &format!("{}/24", link.host_ip4), "dev", dev],
        );
        ns.exec(
            "ip",
            &[
                "neigh",
                "replace",
                &link.guest_ip4.to_string(),
                "lladdr",
                &mac_str(link.guest_mac),
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        );
        ns.exec("ip", &["link", "set", dev, "up"]);
        link
    }
}

/// One's-complement sum of `data` folded to 16 bits (not inverted).
fn fold_sum(mut sum: u32, data: &[u8]) -> u16 {
    for c in data.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The TCP pseudo-header sum for `tcp_len` bytes of TCP header and data: what a
/// CHECKSUM_PARTIAL segment carries in its checksum field.
pub fn tcp_pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, tcp_len: u32) -> u16 {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    fold_sum(0, &pseudo)
}

/// Ethernet + IPv4 + TCP header lengths of the frames built here (no IP or TCP options).
pub const TCP4_HEADERS: u16 = 14 + 20 + 20;

/// An IPv4 TCP frame (ACK|PSH, `payload` bytes of data) as a guest's virtio-net driver hands
/// it over for TSO: the TCP checksum field holds the pseudo-header sum, the header asks for
/// `gso_size`-byte segments.
pub fn tso_frame(
    macs: ([u8; 6], [u8; 6]),
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    seq: u32,
    payload: usize,
    gso_size: u16,
) -> (VnetHdr, Vec<u8>) {
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.octets(), dst.octets(), 64)
        .tcp(sport, dport, seq, 65535)
        .ack(1)
        .psh()
        .write(&mut frame, &vec![0x5a; payload])
        .expect("build frame");
    let tcp_at = 34;
    let sum = tcp_pseudo_sum(src, dst, (frame.len() - tcp_at) as u32);
    frame[tcp_at + 16..tcp_at + 18].copy_from_slice(&sum.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: TCP4_HEADERS,
        gso_size,
        csum_start: tcp_at as u16,
        csum_offset: 16,
    };
    (hdr, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_sum_completes_to_a_valid_checksum() {
        // A segment whose checksum field holds the pseudo-header sum, summed over its TCP
        // bytes plus the pseudo header, gives the complement of what a full checksum stores.
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src.octets(), dst.octets(), 64)
            .tcp(1, 2, 3, 4)
            .write(&mut frame, &[9; 33])
            .unwrap();
        let full = u16::from_be_bytes([frame[50], frame[51]]);
        let tcp = &frame[34..];
        let mut zeroed = tcp.to_vec();
        zeroed[16..18].copy_from_slice(&[0, 0]);
        let pseudo = tcp_pseudo_sum(src, dst, tcp.len() as u32);
        assert_eq!(!fold_sum(pseudo as u32, &zeroed), full);
    }

    #[test]
    fn tso_frames_ask_for_segments_of_gso_size() {
        let (hdr, frame) = tso_frame(
            ([1; 6], [2; 6]),
            (Ipv4Addr::new(10, 0, 0, 1), 1000),
            (Ipv4Addr::new(10, 0, 0, 2), 2000),
            1,
            14480,
            1448,
        );
        assert_eq!(frame.len(), TCP4_HEADERS as usize + 14480);
        assert_eq!(hdr.bytes()[..4], [1, 1, 54, 0]);
        assert_eq!(hdr.bytes()[4..6], 1448u16.to_le_bytes());
    }
}
