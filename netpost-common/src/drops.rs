//! Dropped packets, from the `kfree_skb` tracepoint: map layouts shared by the kernel
//! program and userspace.
//!
//! Since Linux 5.17 the kernel frees packets it *uses* through `consume_skb` (its own
//! tracepoint) and packets it *drops* through `kfree_skb_reason`, which fires `kfree_skb`
//! with an `enum skb_drop_reason`; SKB_CONSUMED frees are routed to `consume_skb`. So every
//! `kfree_skb` event is a drop, NOT_SPECIFIED ones included (paths not yet annotated).

/// Drops counted per (reason, protocol, dropping function).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    /// enum skb_drop_reason
    pub reason: u32,
    /// skb->protocol as an ethertype in host order (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP).
    pub ethertype: u16,
    /// The IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), 0 when not IP or unreadable.
    pub ipproto: u8,
    /// Where netpost's netfilter programs last saw the packet ([`nf_where`]); 0 when they
    /// did not.
    pub nf_where: u8,
    /// Address in the kernel function that dropped (`kfree_skb`'s `location`).
    pub location: u64,
}

/// One sampled drop, sent through the ring buffer (a few per reason per second).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropSample {
    pub ts_ns: u64,
    pub location: u64,
    pub reason: u32,
    pub ethertype: u16,
    pub ipproto: u8,
    /// 4 or 6; 0 when the addresses could not be read.
    pub ip_version: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    /// As [`DropKey::nf_where`].
    pub nf_where: u8,
    pub _pad: [u8; 3],
}

/// How often one CPU may sample drops of one reason.
pub const SAMPLE_GAP_NS: u64 = 100_000_000;
/// Reasons tracked for sampling (the enum has ~130 values; larger ones share slots).
pub const SAMPLE_SLOTS: u32 = 256;
/// Distinct (reason, protocol, location) keys kept; the least recently used go first.
pub const DROP_KEYS: u32 = 4096;

/// Kernel struct offsets the drop program reads at, from the running kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropOffsets {
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub skb_protocol: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    /// net_device.nd_net (possible_net_t: the struct net pointer).
    pub dev_net: u32,
    /// sock.__sk_common.skc_net.
    pub sk_net: u32,
    /// net.ns.inum: the namespace's inode number, as /proc/PID/ns/net shows it.
    pub net_inum: u32,
    /// The namespace to count drops of (its inode number); 0 counts every namespace.
    pub watch_inum: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<DropKey>() == 16);
const _: () = assert!(core::mem::size_of::<DropSample>() == 64);
const _: () = assert!(core::mem::size_of::<DropOffsets>() == 40);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::DropKey {}
    unsafe impl aya::Pod for super::DropSample {}
    unsafe impl aya::Pod for super::DropOffsets {}
}

/// Encodes for [`DropKey::nf_where`] that the netfilter programs last saw a packet at `hook`
/// (0 PREROUTING .. 4 POSTROUTING): `after` false when netpost's first program there ran and
/// its last one not yet (a rule or hook function of that hook dropped it), true when the last
/// one ran too (dropped after every rule: conntrack's confirmation, or later in the stack).
pub const fn nf_where(hook: u8, after: bool) -> u8 {
    1 + hook * 2 + after as u8
}

/// The inverse of [`nf_where`]: `(hook, after)`, None for 0 (not seen) or a bad code.
pub const fn nf_where_decode(code: u8) -> Option<(u8, bool)> {
    if code == 0 || code > 10 {
        return None;
    }
    Some(((code - 1) / 2, (code - 1) % 2 == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nf_where_round_trips() {
        for hook in 0..5 {
            for after in [false, true] {
                assert_eq!(nf_where_decode(nf_where(hook, after)), Some((hook, after)));
            }
        }
        assert_eq!(nf_where_decode(0), None);
        assert_eq!(nf_where_decode(11), None);
    }
}
