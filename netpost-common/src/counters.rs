//! Map layouts for the per-hook counters.
//!
//! The kernel keeps one [`HookCounters`] per (interface slot, hook) in a per-CPU array at
//! index [`HookCounters::index`]; userspace sums the CPUs. Every field is a `u64` so the
//! layouts have no padding and are identical on both sides.

/// How many interfaces one netpost can watch (the counters array is sized for this).
pub const MAX_IFACES: u32 = 64;

/// Interfaces with an ifindex below this are found by array index (one cheap lookup per
/// packet); larger ifindexes through a hash map.
pub const IFINDEX_ARRAY: u32 = 4096;

/// Where on the packet path a counter was taken.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Xdp = 0,
    TcIngress = 1,
    TcEgress = 2,
}

impl Hook {
    pub const COUNT: usize = 3;
    pub const ALL: [Hook; Hook::COUNT] = [Hook::Xdp, Hook::TcIngress, Hook::TcEgress];

    /// The key used in JSON and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp",
            Hook::TcIngress => "tc_ingress",
            Hook::TcEgress => "tc_egress",
        }
    }
}

/// Network-layer family of a frame.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4 = 0,
    Ipv6 = 1,
    /// ARP, LLDP, double-tagged VLAN, anything that is not IP.
    Other = 2,
}

impl Family {
    pub const COUNT: usize = 3;
    pub const ALL: [Family; Family::COUNT] = [Family::Ipv4, Family::Ipv6, Family::Other];

    pub const fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
            Family::Other => "other",
        }
    }
}

/// Transport protocol of a frame, or `Malformed` when its headers do not hold together
/// (truncated, IHL < 5, a length field that points past the frame...).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp = 0,
    Udp = 1,
    Icmp = 2,
    Icmpv6 = 3,
    Other = 4,
    Malformed = 5,
}

impl Proto {
    pub const COUNT: usize = 6;
    pub const ALL: [Proto; Proto::COUNT] = [
        Proto::Tcp,
        Proto::Udp,
        Proto::Icmp,
        Proto::Icmpv6,
        Proto::Other,
        Proto::Malformed,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::Other => "other",
            Proto::Malformed => "malformed",
        }
    }
}

/// Counters for one (interface, hook, family, protocol).
///
/// `packets` are wire segments: a GSO/GRO super-packet of N segments counts N, and its
/// `bytes` include the headers each segment carries on the wire. `frames` counts what the
/// hook actually ran on (XDP frames, skbs), so `packets / frames` shows how much the
/// stack batches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames: u64,
    pub packets: u64,
    pub bytes: u64,
    pub header_bytes: u64,
    pub payload_bytes: u64,
}

impl Counters {
    /// Adds another CPU's values. Wrapping: a program may correct a count downwards on one
    /// CPU after another counted it up (a tunnel's inner headers move bytes from payload to
    /// headers), so one CPU's value may be "negative"; the sum over CPUs is right.
    pub fn add(&mut self, other: &Counters) {
        self.frames = self.frames.wrapping_add(other.frames);
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.header_bytes = self.header_bytes.wrapping_add(other.header_bytes);
        self.payload_bytes = self.payload_bytes.wrapping_add(other.payload_bytes);
    }
}

/// Every counter of one hook on one interface: `by[family][proto]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookCounters {
    pub by: [[Counters; Proto::COUNT]; Family::COUNT],
}

impl HookCounters {
    /// Number of entries the per-CPU counters array needs.
    pub const ENTRIES: u32 = MAX_IFACES * Hook::COUNT as u32;

    /// Index of (slot, hook) in the per-CPU counters array.
    pub const fn index(slot: u32, hook: Hook) -> u32 {
        slot * Hook::COUNT as u32 + hook as u32
    }

    pub fn get(&self, family: Family, proto: Proto) -> &Counters {
        &self.by[family as usize][proto as usize]
    }

    /// Adds another CPU's (or snapshot's) values.
    pub fn add(&mut self, other: &HookCounters) {
        for (mine, theirs) in self.by.iter_mut().zip(other.by.iter()) {
            for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                m.add(t);
            }
        }
    }
}

/// What the kernel programs know about an interface they run on, keyed by ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceInfo {
    /// Index of this interface's counters ([`HookCounters::index`]).
    pub slot: u32,
    /// The interface MTU, to tell how many wire segments a super-packet stands for. 0 marks
    /// an unused entry of the by-index array.
    pub mtu: u32,
}

const _: () = assert!(core::mem::size_of::<Counters>() == 40);
const _: () = assert!(core::mem::size_of::<HookCounters>() == 40 * 18);
const _: () = assert!(core::mem::size_of::<IfaceInfo>() == 8);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] structs of integers without padding (sizes asserted above).
    unsafe impl aya::Pod for super::HookCounters {}
    unsafe impl aya::Pod for super::IfaceInfo {}
}
