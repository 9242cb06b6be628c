//! The TCP three-way handshake as seen on the wire, per flow: pure logic shared by the kernel
//! program that tracks flows and by host tests.
//!
//! A flow's endpoints are stored in canonical order (see [`canonical`]); the *client* is the
//! endpoint that sent the first SYN. The machine follows RFC 9293's opening: SYN -> SYN-ACK
//! (acknowledging the client's ISN + 1, or with TCP Fast Open (RFC 7413) also the data the
//! SYN carried) -> ACK (acknowledging the server's ISN + 1 or later) = ESTABLISHED. It times
//! the two handshake round trips on the wire, counts SYN and SYN-ACK retransmissions in every
//! state they can occur in (a SYN repeated with the same ISN, a SYN-ACK repeated with the
//! same ISN), notices simultaneous open, and ends in CLOSED (both FINs) or RESET.
//!
//! A SYN-ACK retransmitted after the completing ACK means that ACK never reached the server:
//! the flow goes back to SYN_RECEIVED ([`Change::Undone`]) until an ACK is seen again, so the
//! handshakes counted complete are the ones the server's socket completed.
//!
//! A flow first seen in the middle has no SYN to name its client: the endpoint with the
//! higher port (the ephemeral one, as clients use) is taken as the client, so resets are
//! blamed on the right side in the common case. Packets that do not fit (an ACK before the
//! SYN-ACK, a SYN-ACK acknowledging another ISN) change nothing.

/// Where a flow stands.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Not TCP, or no packet yet.
    #[default]
    None = 0,
    /// Seen only from the middle (no SYN): counted, no handshake.
    Midstream = 1,
    SynSent = 2,
    SynReceived = 3,
    Established = 4,
    /// One side sent FIN.
    Closing = 5,
    /// Both sides sent FIN.
    Closed = 6,
    Reset = 7,
}

impl Stage {
    pub const fn name(self) -> &'static str {
        match self {
            Stage::None => "none",
            Stage::Midstream => "midstream",
            Stage::SynSent => "syn_sent",
            Stage::SynReceived => "syn_received",
            Stage::Established => "established",
            Stage::Closing => "closing",
            Stage::Closed => "closed",
            Stage::Reset => "reset",
        }
    }

    pub const fn from_u8(v: u8) -> Stage {
        match v {
            1 => Stage::Midstream,
            2 => Stage::SynSent,
            3 => Stage::SynReceived,
            4 => Stage::Established,
            5 => Stage::Closing,
            6 => Stage::Closed,
            7 => Stage::Reset,
            _ => Stage::None,
        }
    }
}

/// What a packet changed, for the event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A SYN opened a handshake.
    Opened,
    /// The SYN-ACK arrived.
    Answered,
    /// The handshake completed.
    Established,
    /// The server retransmitted its SYN-ACK after the ACK that completed the handshake: that
    /// ACK was lost, the flow is half-open again.
    Undone,
    /// A RST ended the flow; `by_client` says who sent it.
    Reset { by_client: bool },
    /// The second FIN was seen.
    Closed,
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// The fields of one TCP packet the handshake needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Sent by the canonical low endpoint.
    pub from_low: bool,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes (TCP Fast Open data in a SYN moves the ACK that answers it).
    pub len: u32,
    /// Whether the low endpoint has the higher port: the likely client of a flow seen
    /// without its SYN.
    pub low_port_is_higher: bool,
}

/// Handshake state of one flow (lives in the flow map's value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handshake {
    /// When the (last) SYN and the (last) SYN-ACK were seen, in ns.
    pub syn_ns: u64,
    pub synack_ns: u64,
    pub client_isn: u32,
    pub server_isn: u32,
    /// SYN -> SYN-ACK and SYN-ACK -> ACK, in µs (0 until measured).
    pub rtt_syn_us: u32,
    pub rtt_ack_us: u32,
    pub stage: u8,
    /// 1 when the client is the canonical "low" endpoint: the first SYN's sender, for a
    /// flow seen midstream the endpoint with the higher port, for UDP and ICMP flows (no SYN)
    /// the first packet's sender.
    pub client_is_low: u8,
    pub syn_retransmits: u8,
    pub synack_retransmits: u8,
    /// FIN seen from low (bit 0) and high (bit 1).
    pub fins: u8,
    /// 1 when both sides sent SYNs without ACK (simultaneous open).
    pub simultaneous: u8,
    /// Payload bytes the client's SYN carried (TCP Fast Open), saturated at u16::MAX.
    pub syn_len: u16,
}

const _: () = assert!(core::mem::size_of::<Handshake>() == 40);

fn us(from_ns: u64, to_ns: u64) -> u32 {
    let d = to_ns.saturating_sub(from_ns) / 1000;
    if d > u32::MAX as u64 {
        u32::MAX
    } else {
        d.max(1) as u32
    }
}

/// Whether `ack` acknowledges `base` or later, within half the sequence space (RFC 9293's
/// modular comparison: an ACK cannot acknowledge more than the peer may have sent).
#[inline(always)]
const fn acks_at_least(ack: u32, base: u32) -> bool {
    ack.wrapping_sub(base) < 1 << 31
}

impl Handshake {
    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.stage)
    }

    /// Feeds one TCP packet sent by the canonical low (`from_low`) or high endpoint.
    /// Inlined into the tc programs: as a BPF-to-BPF subprogram it made 6.1's verifier treat
    /// every value as exact (no precision tracking across subprogram returns before 6.3),
    /// which nearly doubled the instructions it processed there (375k -> 714k for tc in).
    #[inline(always)]
    pub fn on_packet(&mut self, seg: Segment, now_ns: u64) -> Option<Change> {
        let Segment {
            from_low,
            flags,
            seq,
            ack,
            len,
            low_port_is_higher,
        } = seg;
        let stage = self.stage();
        let syn = flags & SYN != 0;
        let has_ack = flags & ACK != 0;
        let from_client = from_low == (self.client_is_low == 1);
        if flags & RST != 0 {
            if matches!(stage, Stage::Reset | Stage::None) {
                return None;
            }
            self.stage = Stage::Reset as u8;
            return Some(Change::Reset {
                by_client: from_client,
            });
        }
        // A SYN (no ACK) with the client's ISN is the same SYN again, whatever the machine
        // made of what followed it (its SYN-ACK may have been lost after we saw it).
        let syn_again = syn && !has_ack && from_client && seq == self.client_isn;
        match stage {
            Stage::SynSent | Stage::SynReceived | Stage::Established if syn_again => {
                // Time the handshake from the latest SYN.
                self.syn_retransmits = self.syn_retransmits.saturating_add(1);
                self.syn_ns = now_ns;
                None
            }
            // A new handshake: the first, or a reused 5-tuple (after a close, a reset, or a
            // connection we only saw the middle of), or a SYN with a new ISN.
            _ if syn && !has_ack && (stage != Stage::SynSent || from_client) => {
                *self = Handshake {
                    syn_ns: now_ns,
                    client_isn: seq,
                    stage: Stage::SynSent as u8,
                    client_is_low: from_low as u8,
                    syn_len: if len > u16::MAX as u32 {
                        u16::MAX
                    } else {
                        len as u16
                    },
                    ..Handshake::default()
                };
                Some(Change::Opened)
            }
            Stage::None => {
                self.stage = Stage::Midstream as u8;
                // A SYN-ACK names its receiver the client; otherwise guess by the ports.
                self.client_is_low = if syn { !from_low } else { low_port_is_higher } as u8;
                None
            }
            Stage::SynSent if syn && !has_ack => {
                // The server's own SYN: simultaneous open.
                self.simultaneous = 1;
                self.server_isn = seq;
                None
            }
            Stage::SynSent if syn && !from_client && self.answers_syn(ack) => {
                self.server_isn = seq;
                self.synack_ns = now_ns;
                self.rtt_syn_us = us(self.syn_ns, now_ns);
                self.stage = Stage::SynReceived as u8;
                Some(Change::Answered)
            }
            Stage::SynReceived if syn && has_ack && !from_client && seq == self.server_isn => {
                self.synack_retransmits = self.synack_retransmits.saturating_add(1);
                self.synack_ns = now_ns;
                None
            }
            Stage::SynReceived
                if !syn
                    && has_ack
                    && from_client
                    && acks_at_least(ack, self.server_isn.wrapping_add(1)) =>
            {
                self.rtt_ack_us = us(self.synack_ns, now_ns);
                self.stage = Stage::Established as u8;
                let _ = self.note_fin(from_low, flags);
                Some(Change::Established)
            }
            Stage::SynSent if self.simultaneous == 1 && !syn && has_ack => {
                // Simultaneous open: each side acknowledges the other's SYN.
                self.stage = Stage::Established as u8;
                Some(Change::Established)
            }
            Stage::Established
                if syn && has_ack && !from_client && seq == self.server_isn && self.fins == 0 =>
            {
                // The server is still waiting for the ACK we saw: it was lost on the way.
                self.synack_retransmits = self.synack_retransmits.saturating_add(1);
                self.synack_ns = now_ns;
                self.stage = Stage::SynReceived as u8;
                Some(Change::Undone)
            }
            Stage::Established | Stage::Closing | Stage::Midstream => {
                self.note_fin(from_low, flags)
            }
            _ => None,
        }
    }

    /// Whether a SYN-ACK's `ack` answers the client's SYN: its ISN + 1, up to ISN + 1 + the
    /// data the SYN carried (RFC 7413: the server acknowledges Fast Open data or only the SYN).
    #[inline(always)]
    fn answers_syn(&self, ack: u32) -> bool {
        ack.wrapping_sub(self.client_isn.wrapping_add(1)) <= self.syn_len as u32
    }

    /// Tracks FINs; returns `Closed` when the second side's FIN is seen.
    #[inline(always)]
    fn note_fin(&mut self, from_low: bool, flags: u8) -> Option<Change> {
        if flags & FIN == 0 {
            return None;
        }
        self.fins |= if from_low { 1 } else { 2 };
        if self.fins == 3 {
            self.stage = Stage::Closed as u8;
            Some(Change::Closed)
        } else {
            if self.stage() != Stage::Midstream {
                self.stage = Stage::Closing as u8;
            }
            None
        }
    }
}

/// Orders two endpoints so both directions of a flow share one key: returns true when `a`
/// is the low endpoint (compared as (address bytes, port)).
#[inline(always)]
pub fn canonical(a_addr: &[u8; 16], a_port: u16, b_addr: &[u8; 16], b_port: u16) -> bool {
    let mut i = 0;
    while i < 16 {
        if a_addr[i] != b_addr[i] {
            return a_addr[i] < b_addr[i];
        }
        i += 1;
    }
    a_port <= b_port
}

/// [`canonical`] for addresses held as four `u32`s each made of four address bytes in
/// memory order (`u32::from_ne_bytes`): word compares instead of sixteen byte compares.
#[inline(always)]
pub fn canonical_words(a_addr: &[u32; 4], a_port: u16, b_addr: &[u32; 4], b_port: u16) -> bool {
    let be = u32::from_be;
    (
        be(a_addr[0]),
        be(a_addr[1]),
        be(a_addr[2]),
        be(a_addr[3]),
        a_port,
    ) <= (
        be(b_addr[0]),
        be(b_addr[1]),
        be(b_addr[2]),
        be(b_addr[3]),
        b_port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn seg(from_low: bool, flags: u8, seq: u32, ack: u32) -> Segment {
        Segment {
            from_low,
            flags,
            seq,
            ack,
            len: 0,
            low_port_is_higher: false,
        }
    }

    fn with_len(s: Segment, len: u32) -> Segment {
        Segment { len, ..s }
    }

    /// low = client in these tests unless said otherwise.
    fn open(h: &mut Handshake) {
        assert_eq!(
            h.on_packet(seg(true, SYN, 1000, 0), 0),
            Some(Change::Opened)
        );
        assert_eq!(
            h.on_packet(seg(false, SYN | ACK, 5000, 1001), 2 * MS),
            Some(Change::Answered)
        );
        assert_eq!(
            h.on_packet(seg(true, ACK, 1001, 5001), 3 * MS),
            Some(Change::Established)
        );
    }

    #[test]
    fn a_clean_handshake_measures_both_round_trips() {
        let mut h = Handshake::default();
        open(&mut h);
        assert_eq!(h.stage(), Stage::Established);
        assert_eq!((h.rtt_syn_us, h.rtt_ack_us), (2000, 1000));
        assert_eq!((h.syn_retransmits, h.synack_retransmits), (0, 0));
    }

    #[test]
    fn the_client_can_be_the_high_endpoint() {
        let mut h = Handshake::default();
        assert_eq!(h.on_packet(seg(false, SYN, 7, 0), 0), Some(Change::Opened));
        assert_eq!(h.client_is_low, 0);
        assert_eq!(
            h.on_packet(seg(true, SYN | ACK, 90, 8), MS),
            Some(Change::Answered)
        );
        assert_eq!(
            h.on_packet(seg(false, ACK, 8, 91), 2 * MS),
            Some(Change::Established)
        );
    }

    #[test]
    fn syn_retransmissions_are_counted_and_timing_restarts() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        assert_eq!(h.on_packet(seg(true, SYN, 1000, 0), 1000 * MS), None);
        assert_eq!(h.on_packet(seg(true, SYN, 1000, 0), 3000 * MS), None);
        assert_eq!(h.syn_retransmits, 2);
        assert_eq!(h.stage(), Stage::SynSent, "still half-open");
        h.on_packet(seg(false, SYN | ACK, 5000, 1001), 3001 * MS);
        assert_eq!(h.rtt_syn_us, 1000, "from the last SYN, not the first");
    }

    #[test]
    fn synack_retransmissions_and_wrong_acks() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        assert_eq!(
            h.on_packet(seg(false, SYN | ACK, 5000, 4242), MS),
            None,
            "acks another ISN"
        );
        assert_eq!(h.stage(), Stage::SynSent);
        h.on_packet(seg(false, SYN | ACK, 5000, 1001), 2 * MS);
        assert_eq!(
            h.on_packet(seg(false, SYN | ACK, 5000, 1001), 1002 * MS),
            None
        );
        assert_eq!(h.synack_retransmits, 1);
        assert_eq!(
            h.on_packet(seg(true, ACK, 1001, 77), 1003 * MS),
            None,
            "acks the wrong ISN"
        );
        assert_eq!(
            h.on_packet(seg(true, ACK, 1001, 5001), 1003 * MS),
            Some(Change::Established)
        );
        assert_eq!(h.rtt_ack_us, 1000, "from the last SYN-ACK");
    }

    #[test]
    fn out_of_order_ack_before_synack_changes_nothing() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        assert_eq!(h.on_packet(seg(true, ACK, 1001, 5001), MS), None);
        assert_eq!(h.stage(), Stage::SynSent);
    }

    #[test]
    fn resets_say_who_sent_them() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        assert_eq!(
            h.on_packet(seg(false, RST | ACK, 0, 1001), MS),
            Some(Change::Reset { by_client: false }),
            "closed port: the server resets"
        );
        assert_eq!(h.stage(), Stage::Reset);
        assert_eq!(h.on_packet(seg(false, RST, 0, 0), MS), None, "only once");
        let mut h = Handshake::default();
        open(&mut h);
        assert_eq!(
            h.on_packet(seg(true, RST, 1001, 0), 9 * MS),
            Some(Change::Reset { by_client: true })
        );
    }

    #[test]
    fn fins_close_the_flow_and_a_new_syn_reopens_it() {
        let mut h = Handshake::default();
        open(&mut h);
        assert_eq!(h.on_packet(seg(true, FIN | ACK, 1001, 5001), 4 * MS), None);
        assert_eq!(h.stage(), Stage::Closing);
        assert_eq!(
            h.on_packet(seg(false, FIN | ACK, 5001, 1002), 5 * MS),
            Some(Change::Closed)
        );
        assert_eq!(h.stage(), Stage::Closed);
        assert_eq!(
            h.on_packet(seg(true, SYN, 9000, 0), 9 * MS),
            Some(Change::Opened)
        );
        assert_eq!(h.client_isn, 9000);
    }

    #[test]
    fn simultaneous_open() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 100, 0), 0);
        assert_eq!(h.on_packet(seg(false, SYN, 900, 0), MS), None);
        assert_eq!(h.simultaneous, 1);
        assert_eq!(h.on_packet(seg(true, SYN | ACK, 100, 901), 2 * MS), None);
        assert_eq!(
            h.on_packet(seg(false, ACK, 901, 101), 3 * MS),
            Some(Change::Established)
        );
    }

    #[test]
    fn flows_seen_midstream_are_counted_without_a_handshake() {
        let mut h = Handshake::default();
        assert_eq!(h.on_packet(seg(true, ACK, 5, 6), 0), None);
        assert_eq!(h.stage(), Stage::Midstream);
        h.on_packet(seg(true, FIN | ACK, 5, 6), MS);
        assert_eq!(h.stage(), Stage::Midstream);
        assert_eq!(
            h.on_packet(seg(false, FIN | ACK, 6, 6), MS),
            Some(Change::Closed)
        );
    }

    #[test]
    fn fast_open_synack_acknowledges_the_syn_data() {
        // RFC 7413: the SYN carries 100 bytes and the server acknowledges them.
        let mut h = Handshake::default();
        assert_eq!(
            h.on_packet(with_len(seg(true, SYN, 1000, 0), 100), 0),
            Some(Change::Opened)
        );
        assert_eq!(
            h.on_packet(seg(false, SYN | ACK, 5000, 1101), MS),
            Some(Change::Answered)
        );
        assert_eq!(
            h.on_packet(seg(true, ACK, 1101, 5001), 2 * MS),
            Some(Change::Established)
        );
        // A server that refuses the cookie acknowledges only the SYN.
        let mut h = Handshake::default();
        h.on_packet(with_len(seg(true, SYN, 1000, 0), 100), 0);
        assert_eq!(
            h.on_packet(seg(false, SYN | ACK, 5000, 1001), MS),
            Some(Change::Answered)
        );
        // Acknowledging more than the SYN carried is not an answer to it.
        let mut h = Handshake::default();
        h.on_packet(with_len(seg(true, SYN, 1000, 0), 100), 0);
        assert_eq!(h.on_packet(seg(false, SYN | ACK, 5000, 1102), MS), None);
    }

    #[test]
    fn the_completing_ack_may_acknowledge_server_data_too() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        h.on_packet(seg(false, SYN | ACK, 5000, 1001), MS);
        assert_eq!(
            h.on_packet(seg(true, ACK, 1001, 5001 + 300), 2 * MS),
            Some(Change::Established),
            "the server sent 300 bytes after its SYN-ACK (Fast Open)"
        );
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        h.on_packet(seg(false, SYN | ACK, 5000, 1001), MS);
        assert_eq!(
            h.on_packet(seg(true, ACK, 1001, 4000), 2 * MS),
            None,
            "acknowledges less than the server's SYN"
        );
    }

    #[test]
    fn syns_repeated_after_their_synack_was_seen_are_retransmissions() {
        // The SYN-ACK passed the watched interface and was lost after it: the client
        // retransmits its SYN three times.
        let mut h = Handshake::default();
        h.on_packet(seg(true, SYN, 1000, 0), 0);
        h.on_packet(seg(false, SYN | ACK, 5000, 1001), MS);
        for i in 1..=3 {
            assert_eq!(h.on_packet(seg(true, SYN, 1000, 0), i * 1000 * MS), None);
            assert_eq!(
                h.on_packet(seg(false, SYN | ACK, 5000, 1001), (i * 1000 + 1) * MS),
                None
            );
        }
        assert_eq!((h.syn_retransmits, h.synack_retransmits), (3, 3));
        assert_eq!(h.stage(), Stage::SynReceived);
        // A SYN with another ISN is a new connection attempt.
        assert_eq!(
            h.on_packet(seg(true, SYN, 77, 0), 9000 * MS),
            Some(Change::Opened)
        );
        assert_eq!(h.syn_retransmits, 0);
    }

    #[test]
    fn a_synack_retransmitted_after_the_ack_undoes_the_establishment() {
        let mut h = Handshake::default();
        open(&mut h);
        assert_eq!(
            h.on_packet(seg(false, SYN | ACK, 5000, 1001), 1000 * MS),
            Some(Change::Undone),
            "the ACK never reached the server"
        );
        assert_eq!(h.stage(), Stage::SynReceived);
        assert_eq!(h.synack_retransmits, 1);
        assert_eq!(
            h.on_packet(seg(true, ACK, 1001, 5001), 1001 * MS),
            Some(Change::Established)
        );
        assert_eq!(h.rtt_ack_us, 1000, "from the retransmitted SYN-ACK");
        // Data from the server is not a SYN-ACK: nothing changes.
        assert_eq!(h.on_packet(seg(false, ACK, 5001, 1001), 1002 * MS), None);
        assert_eq!(h.stage(), Stage::Established);
    }

    #[test]
    fn midstream_flows_take_the_higher_port_as_client() {
        // Low endpoint 10.0.0.1:443 (server), high 10.0.0.2:51000 (client): the server's
        // packet is the first seen, then the server resets.
        let mut h = Handshake::default();
        let from_server = Segment {
            low_port_is_higher: false,
            ..seg(true, ACK, 5, 6)
        };
        assert_eq!(h.on_packet(from_server, 0), None);
        assert_eq!(h.stage(), Stage::Midstream);
        assert_eq!(h.client_is_low, 0);
        assert_eq!(
            h.on_packet(seg(true, RST, 6, 0), MS),
            Some(Change::Reset { by_client: false })
        );
        // The other way round: the low endpoint has the higher port.
        let mut h = Handshake::default();
        let first = Segment {
            low_port_is_higher: true,
            ..seg(false, ACK, 5, 6)
        };
        h.on_packet(first, 0);
        assert_eq!(h.client_is_low, 1);
        assert_eq!(
            h.on_packet(seg(true, RST, 6, 0), MS),
            Some(Change::Reset { by_client: true })
        );
    }

    #[test]
    fn a_flow_first_seen_at_its_synack_knows_its_client() {
        let mut h = Handshake::default();
        assert_eq!(h.on_packet(seg(false, SYN | ACK, 5000, 1001), 0), None);
        assert_eq!(h.stage(), Stage::Midstream);
        assert_eq!(h.client_is_low, 1, "the SYN-ACK's receiver");
    }

    #[test]
    fn a_syn_reuses_a_midstream_flow() {
        let mut h = Handshake::default();
        h.on_packet(seg(true, ACK, 5, 6), 0);
        assert_eq!(
            h.on_packet(seg(false, SYN, 100, 0), MS),
            Some(Change::Opened)
        );
        assert_eq!(h.client_is_low, 0);
    }

    #[test]
    fn canonical_order_is_the_same_from_both_sides() {
        let a = [10u8; 16];
        let mut b = [10u8; 16];
        b[15] = 11;
        assert!(canonical(&a, 5000, &b, 80));
        assert!(!canonical(&b, 80, &a, 5000));
        assert!(canonical(&a, 80, &a, 5000), "same address: by port");
        assert!(!canonical(&a, 5000, &a, 80));
    }

    fn words(a: &[u8; 16]) -> [u32; 4] {
        core::array::from_fn(|i| {
            u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
        })
    }

    #[test]
    fn canonical_words_orders_like_canonical() {
        // Addresses that differ from each other in every byte position, by a little and by a
        // lot, and (each with itself) equal ones.
        let addrs: [[u8; 16]; 66] = core::array::from_fn(|n| match n {
            64 => [0; 16],
            65 => [0xff; 16],
            _ => {
                let mut a = [0x10u8; 16];
                a[n / 4] = [1, 0x7f, 0x80, 0xfe][n % 4];
                a
            }
        });
        for a in &addrs {
            for b in &addrs {
                for (pa, pb) in [(1, 2), (2, 1), (7, 7), (0, 65535), (0x0100, 0x00ff)] {
                    assert_eq!(
                        canonical_words(&words(a), pa, &words(b), pb),
                        canonical(a, pa, b, pb),
                        "{a:?}:{pa} vs {b:?}:{pb}"
                    );
                }
            }
        }
    }
}
