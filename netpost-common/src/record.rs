//! The drop recorder: the first bytes of packets the kernel drops, copied by the drop
//! program (`kfree_skb`) into a ring buffer of their own, for netpost to write as pcapng.
//! Bounded in the kernel by a token bucket per drop reason and CPU; what the buckets or a
//! full ring leave out is counted per reason. The pure parts (the bucket, where the copy
//! starts and how long it is) are here so host tests check what the kernel runs.

/// Most bytes recorded of one packet (`--snaplen`): a whole 1500-byte Ethernet frame fits.
pub const MAX_SNAPLEN: u32 = 2048;
/// `--snaplen` when none is given.
pub const DEFAULT_SNAPLEN: u32 = 128;
/// The data part of a record: a power of two above [`MAX_SNAPLEN`], so a copy length masked
/// with [`DATA_MASK`] fits the buffer whatever the verifier knows of it.
pub const DATA_BYTES: usize = 4096;
pub const DATA_MASK: u32 = DATA_BYTES as u32 - 1;
/// Reason slots of the buckets and counters: reasons below 255 have one each, the rest
/// (subsystem reasons such as mac80211's, numbered from 65536) share the last.
pub const SLOTS: u32 = 256;
/// skb->mac_header / network_header when never set.
pub const HEADER_UNSET: u16 = 0xffff;

/// Where a record's bytes start, i.e. its pcapng link type.
pub mod link {
    /// Not a packet with headers (a netlink message purged from a socket's queue): not
    /// recorded, counted as `no_header`.
    pub const NONE: u8 = 0;
    /// At the Ethernet header (LINKTYPE_ETHERNET).
    pub const ETHERNET: u8 = 1;
    /// At the IPv4 or IPv6 header: no link-layer header, e.g. a locally generated packet
    /// before it reached a device (LINKTYPE_RAW).
    pub const IP: u8 = 2;
}

/// The slot of `reason` in the buckets and counters.
pub const fn slot(reason: u32) -> u32 {
    if reason < SLOTS - 1 {
        reason
    } else {
        SLOTS - 1
    }
}

/// What the drop program sends for one recorded packet, followed by `cap_len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// bpf_ktime_get_ns (CLOCK_MONOTONIC) at the drop.
    pub ts_ns: u64,
    /// `kfree_skb`'s location: the address in the function that dropped.
    pub location: u64,
    /// enum skb_drop_reason.
    pub reason: u32,
    /// skb->dev's ifindex; 0 when the packet had no device.
    pub ifindex: u32,
    /// The packet's length from where the bytes start (skb->len counts from skb->data).
    pub orig_len: u32,
    /// Bytes recorded.
    pub cap_len: u16,
    /// skb->protocol, host order.
    pub ethertype: u16,
    /// [`link`]
    pub link: u8,
    /// As `drops::DropKey::nf_where`: the netfilter hook that saw the packet last.
    pub nf_where: u8,
    pub _pad: [u8; 6],
}

/// The record as the drop program builds it (in a per-CPU scratch buffer; only the header
/// and `cap_len` bytes go into the ring).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RecordEvent {
    pub header: RecordHeader,
    pub data: [u8; DATA_BYTES],
}

pub const HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();

/// The recorder's settings and the kernel offsets it reads at, set by userspace before
/// loading (a frozen global: with `on` 0 the verifier drops the recorder's code).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordConfig {
    /// 0: the recorder is off.
    pub on: u32,
    /// Bytes to record of each packet; 0 records headers only (up to the end of L4).
    pub snaplen: u32,
    /// Credit one record costs in a CPU's bucket, ns (see [`Bucket`]).
    pub cost_ns: u64,
    /// Most credit a bucket holds, ns.
    pub burst_ns: u64,
    /// Wake the reader once this many bytes wait in the ring (else it reads every interval).
    pub wake_bytes: u64,
    /// Bitmap of the reason slots to record.
    pub reasons: [u64; 4],
    pub skb_len: u32,
    pub skb_dev: u32,
    pub skb_mac_header: u32,
    pub skb_network_header: u32,
    /// sk_buff.tail: end of the linear data, an offset from head (64-bit kernels).
    pub skb_tail: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub dev_ifindex: u32,
}

impl RecordConfig {
    /// Records the reasons of `slot` too.
    pub fn want(&mut self, slot: u32) {
        let slot = slot % SLOTS;
        self.reasons[(slot / 64) as usize] |= 1 << (slot % 64);
    }

    pub fn want_all(&mut self) {
        self.reasons = [u64::MAX; 4];
    }

    pub fn wants(&self, slot: u32) -> bool {
        self.reasons[((slot >> 6) & 3) as usize] >> (slot & 63) & 1 == 1
    }
}

/// A token bucket in nanoseconds of credit: credit grows by one per nanosecond up to the
/// burst, a record costs `cost_ns`. One per reason slot and CPU (no atomics, no shared cache
/// line under a flood); userspace divides the rate among the CPUs ([`bucket_for`]), so the
/// sum over CPUs never passes the rate.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub credit_ns: u64,
    /// When credit was last added; 0 before the first drop (the bucket starts full).
    pub last_ns: u64,
}

impl Bucket {
    /// Whether a drop at `now` may be recorded; takes its cost when it may.
    #[inline(always)]
    pub fn admit(&mut self, now: u64, cost_ns: u64, burst_ns: u64) -> bool {
        let credit = if self.last_ns == 0 {
            burst_ns
        } else {
            let grown = self
                .credit_ns
                .saturating_add(now.saturating_sub(self.last_ns));
            if grown < burst_ns { grown } else { burst_ns }
        };
        self.last_ns = now;
        if credit >= cost_ns {
            self.credit_ns = credit - cost_ns;
            true
        } else {
            self.credit_ns = credit;
            false
        }
    }
}

/// `(cost_ns, burst_ns)` of each CPU's bucket for `rate` records per second per reason over
/// `cpus` CPUs, with a burst of one second's worth: each CPU refills at `rate / cpus` and
/// holds up to one second of it (at least one record).
pub const fn bucket_for(rate: u32, cpus: u32) -> (u64, u64) {
    let rate = if rate == 0 { 1 } else { rate as u64 };
    let cpus = if cpus == 0 { 1 } else { cpus as u64 };
    let cost = cpus * 1_000_000_000 / rate;
    let cost = if cost == 0 { 1 } else { cost };
    let burst = if cost > 1_000_000_000 {
        cost
    } else {
        1_000_000_000
    };
    (cost, burst)
}

/// Length of the L4 header after an IP header whose protocol is `ipproto`: TCP's from its
/// data offset (`tcp_offset_byte`, the header's 13th byte), 8 for UDP, ICMP and ICMPv6, 0
/// for anything else (extension headers, unknown protocols: headers-only mode keeps the IP
/// header alone rather than guess).
pub const fn l4_header_len(ipproto: u8, tcp_offset_byte: u8) -> u32 {
    match ipproto {
        6 => (tcp_offset_byte >> 4) as u32 * 4,
        17 | 1 | 58 => 8,
        _ => 0,
    }
}

/// Where the recorded bytes start, as an offset from skb->head, and their link type: at the
/// Ethernet header when one precedes the network header (received and forwarded packets,
/// packets a device was sending), else at the IP header (`ip`: skb->protocol is IPv4 or
/// IPv6; locally generated packets before their device), else at a lone MAC header.
pub const fn start(mac: u16, network: u16, ip: bool) -> Option<(u16, u8)> {
    let mac_set = mac != HEADER_UNSET;
    let net_set = network != HEADER_UNSET;
    if mac_set && net_set && network >= mac && network - mac >= 14 {
        Some((mac, link::ETHERNET))
    } else if net_set && ip {
        Some((network, link::IP))
    } else if mac_set && !net_set {
        Some((mac, link::ETHERNET))
    } else {
        None
    }
}

/// Bytes to copy from `start` (offsets from skb->head): `snaplen`, or with 0 the headers up
/// to `headers_end` bytes after the network header (0 when unknown: only what precedes the
/// network header), never past the linear data (`tail`) nor [`MAX_SNAPLEN`].
pub const fn capture_len(
    snaplen: u32,
    start: u16,
    network: u16,
    tail: u32,
    headers_end: u32,
) -> u32 {
    let want = if snaplen != 0 {
        snaplen
    } else if network != HEADER_UNSET && network >= start {
        (network - start) as u32 + headers_end
    } else {
        0
    };
    let linear = tail.saturating_sub(start as u32);
    let len = if want < linear { want } else { linear };
    if len < MAX_SNAPLEN { len } else { MAX_SNAPLEN }
}

/// The packet's length from `start`: skb->len counts from skb->data (`data`, an offset from
/// head), which may lie after the start (a received frame's Ethernet header was pulled) or
/// before it. At least `cap_len`.
pub const fn orig_len(len: u32, data: u64, start: u16, cap_len: u32) -> u32 {
    let total = len as i64 + data as i64 - start as i64;
    let total = if total < cap_len as i64 {
        cap_len as i64
    } else {
        total
    };
    if total > u32::MAX as i64 {
        u32::MAX
    } else {
        total as u32
    }
}

/// Records left out, per reason slot: by its bucket (`rate`), because the ring had no room
/// (`lost`), or because the skb had no header to start from (`no_header`: not a network
/// packet, e.g. a netlink message purged from a closing socket's queue). One per-CPU value
/// holds every slot (one read per interval).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub rate: [u64; SLOTS as usize],
    pub lost: [u64; SLOTS as usize],
    pub no_header: [u64; SLOTS as usize],
}

impl Default for Skipped {
    fn default() -> Self {
        Skipped {
            rate: [0; SLOTS as usize],
            lost: [0; SLOTS as usize],
            no_header: [0; SLOTS as usize],
        }
    }
}

/// Flags of bpf_ringbuf_output / bpf_ringbuf_query.
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
pub const BPF_RB_AVAIL_DATA: u64 = 0;

const _: () = assert!(core::mem::size_of::<RecordHeader>() == 40);
const _: () = assert!(core::mem::size_of::<RecordEvent>() == 40 + DATA_BYTES);
const _: () = assert!(core::mem::size_of::<RecordConfig>() == 96);
const _: () = assert!(core::mem::size_of::<Bucket>() == 16);
const _: () = assert!(core::mem::size_of::<Skipped>() == 6144);
const _: () = assert!(DATA_BYTES.is_power_of_two() && MAX_SNAPLEN < DATA_MASK);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::RecordHeader {}
    unsafe impl aya::Pod for super::RecordConfig {}
    unsafe impl aya::Pod for super::Bucket {}
    unsafe impl aya::Pod for super::Skipped {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_bucket_starts_full_and_refills_at_its_rate() {
        // 1,000/s over 2 CPUs: each CPU 500/s, 500 at once.
        let (cost, burst) = bucket_for(1000, 2);
        assert_eq!((cost, burst), (2_000_000, SEC));
        let mut b = Bucket::default();
        let t0 = 5 * SEC;
        let admitted = (0..10_000).filter(|_| b.admit(t0, cost, burst)).count();
        assert_eq!(admitted, 500, "a second's worth at once");
        // 10 ms later: 5 more.
        let admitted = (0..100)
            .filter(|_| b.admit(t0 + SEC / 100, cost, burst))
            .count();
        assert_eq!(admitted, 5);
        // Idle for a minute: full again, never more than the burst.
        let admitted = (0..10_000)
            .filter(|_| b.admit(t0 + 60 * SEC, cost, burst))
            .count();
        assert_eq!(admitted, 500);
    }

    #[test]
    fn a_flood_is_held_to_the_rate() {
        let (cost, burst) = bucket_for(1000, 1);
        let mut b = Bucket::default();
        // 200k drops/s for 3 s, one every 5 µs.
        let start = SEC;
        let admitted = (0..600_000u64)
            .filter(|i| b.admit(start + i * 5_000, cost, burst))
            .count();
        // The burst, then 1,000/s.
        assert!((3999..=4001).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_clock_going_backwards_adds_no_credit() {
        let (cost, burst) = bucket_for(10, 1);
        let mut b = Bucket {
            credit_ns: 0,
            last_ns: 10 * SEC,
        };
        assert!(!b.admit(9 * SEC, cost, burst));
        assert!(!b.admit(9 * SEC + cost / 2, cost, burst));
        assert!(b.admit(9 * SEC + cost, cost, burst));
    }

    #[test]
    fn tiny_and_huge_rates_stay_sane() {
        // 1 per second on 64 CPUs: one record per 64 s per CPU, the burst one record.
        assert_eq!(bucket_for(1, 64), (64 * SEC, 64 * SEC));
        assert_eq!(bucket_for(0, 0), (SEC, SEC));
        assert_eq!(bucket_for(u32::MAX, 1).0, 1);
    }

    #[test]
    fn reasons_are_chosen_by_slot() {
        let mut c = RecordConfig::default();
        c.want(slot(3));
        c.want(slot(77));
        assert!(c.wants(3) && c.wants(77));
        assert!(!c.wants(4) && !c.wants(255));
        // Subsystem reasons share the last slot.
        assert_eq!(slot(0x10003), 255);
        c.want(slot(0x10003));
        assert!(c.wants(slot(0x20001)));
        c.want_all();
        assert!((0..SLOTS).all(|s| c.wants(s)));
    }

    #[test]
    fn the_copy_starts_at_ethernet_else_ip() {
        // Received frame: MAC header 14 bytes before the network header.
        assert_eq!(start(64, 78, true), Some((64, link::ETHERNET)));
        // 802.1Q tag in the data: still Ethernet.
        assert_eq!(start(64, 82, true), Some((64, link::ETHERNET)));
        // Locally generated, no device yet: no MAC header.
        assert_eq!(start(HEADER_UNSET, 80, true), Some((80, link::IP)));
        // A MAC header reset to the network header (tunnels, tun): IP.
        assert_eq!(start(80, 80, true), Some((80, link::IP)));
        // Not IP and no usable MAC header: nothing.
        assert_eq!(start(80, 80, false), None);
        assert_eq!(start(HEADER_UNSET, HEADER_UNSET, true), None);
        // Only a MAC header.
        assert_eq!(start(64, HEADER_UNSET, false), Some((64, link::ETHERNET)));
    }

    #[test]
    fn capture_length_honours_snaplen_headers_only_and_the_linear_data() {
        // Ethernet at 64, IP at 78, 200 bytes of linear data after 64.
        let tail = 264;
        assert_eq!(capture_len(128, 64, 78, tail, 28), 128);
        assert_eq!(
            capture_len(1500, 64, 78, tail, 28),
            200,
            "only what is linear"
        );
        // Headers only: 14 (Ethernet) + 20 (IPv4) + 8 (UDP).
        assert_eq!(capture_len(0, 64, 78, tail, 28), 42);
        // Headers only, L4 unknown: up to the network header.
        assert_eq!(capture_len(0, 64, 78, tail, 0), 14);
        assert_eq!(capture_len(0, 64, HEADER_UNSET, tail, 0), 0);
        assert_eq!(capture_len(4000, 0, 0, 100_000, 0), MAX_SNAPLEN);
        assert_eq!(capture_len(128, 64, 78, 10, 0), 0, "tail before start");
    }

    #[test]
    fn l4_headers() {
        assert_eq!(l4_header_len(6, 0x50), 20);
        assert_eq!(l4_header_len(6, 0x80), 32, "timestamps option");
        assert_eq!(l4_header_len(17, 0), 8);
        assert_eq!(l4_header_len(58, 0), 8);
        assert_eq!(l4_header_len(44, 0), 0, "IPv6 fragment header: unknown");
    }

    #[test]
    fn original_length_counts_from_the_start() {
        // Received: data (the IP header, 78) 14 bytes after the start (64); len 100 from data.
        assert_eq!(orig_len(100, 78, 64, 64), 114);
        // Sent: data at the MAC header (64), copy from the IP header (78).
        assert_eq!(orig_len(114, 64, 78, 64), 100);
        assert_eq!(orig_len(0, 0, 78, 20), 20, "never below what was copied");
    }
}
