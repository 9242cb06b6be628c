//! Turns one parsed frame into counter increments, the same way at every hook.
//!
//! "packets" are wire segments. A GSO/GRO super-packet (up to 64 KiB in one skb on veth)
//! stands for N segments that each carry the full header stack on the wire, so it counts
//! N packets and `bytes = frame + (N - 1) * headers`. tc reads N from `skb->gso_segs`;
//! XDP has no such field, so [`estimate_segments`] derives it from the device MTU the way
//! TCP/UDP segmentation does.

use crate::counters::{Counters, Proto};
use crate::parse::Parsed;

/// Counter increments for one frame (the same layout the maps hold).
pub type Accounting = Counters;

/// Increments for one frame of `frame_len` bytes standing for `segments` wire packets.
///
/// `hidden_l2` is L2 header the hook cannot see in the data but that was on the wire: the
/// VLAN tag the stack strips into `skb->vlan_tci` before tc ingress.
#[inline(always)]
pub fn account(parsed: &Parsed, frame_len: u32, hidden_l2: u32, segments: u32) -> Accounting {
    let segments = if segments == 0 { 1 } else { segments } as u64;
    let per_segment_headers = (parsed.header_len + hidden_l2) as u64;
    let bytes = (frame_len + hidden_l2) as u64 + (segments - 1) * per_segment_headers;
    let payload = parsed.payload_len() as u64;
    Counters {
        frames: 1,
        packets: segments,
        bytes,
        header_bytes: bytes - payload,
        payload_bytes: payload,
    }
}

/// How many wire segments a frame seen at XDP stands for, given the device MTU.
///
/// A TCP or UDP datagram longer than the MTU reaching XDP is a GRO/GSO super-packet (IP
/// fragments never are), and segmentation cuts its payload into `MTU - L3/L4 headers`
/// pieces, each with a copy of the headers.
#[inline(always)]
pub fn estimate_segments(parsed: &Parsed, mtu: u32) -> u32 {
    if !matches!(parsed.proto, Proto::Tcp | Proto::Udp) {
        return 1;
    }
    let datagram = parsed.l3_end - parsed.l2_len;
    let headers = parsed.header_len - parsed.l2_len;
    if datagram <= mtu || headers >= mtu {
        return 1;
    }
    let per_segment = mtu - headers;
    parsed.payload_len().div_ceil(per_segment)
}

/// How many wire segments an skb stands for: `gso_segs` when the kernel has counted them;
/// else, for a GSO skb (`gso_size` set, as virtio-net and tap hand the stack TSO frames with
/// `gso_segs` still 0), its payload cut into `gso_size` pieces; else 1.
///
/// `parsed.header_len` must already include a tunnel's inner headers
/// ([`crate::parse::tunnel_headers`]): `gso_size` is the inner payload per segment.
#[inline(always)]
pub fn gso_segments(parsed: &Parsed, gso_segs: u32, gso_size: u32) -> u32 {
    if gso_segs != 0 {
        return gso_segs;
    }
    if gso_size == 0 {
        return 1;
    }
    parsed.payload_len().div_ceil(gso_size).max(1)
}
