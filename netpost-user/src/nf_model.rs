//! The netfilter part of the Snapshot: per family and hook, packets that entered the hook,
//! survived it (accepted) and did not (dropped), by protocol, by TCP handshake class, and by
//! conntrack state. Pure, tested without root.
use serde::Serialize;

use netpost_common::{
    Proto,
    netfilter::{
        CT_ESTABLISHED, CT_ESTABLISHED_REPLY, CT_NEW, CT_NEW_REPLY, CT_NONE, CT_RELATED,
        CT_RELATED_REPLY, CT_UNTRACKED, NfHook, NfHookCounters, NfProbeCounters, TcpClass,
    },
};

use crate::model::rate;

/// Raw cumulative counters of one family, indexed by hook number.
pub type NfRaw = [NfHookCounters; NfHook::COUNT];

/// `now - earlier` for every counter.
pub fn since(now: &NfRaw, earlier: &NfRaw) -> NfRaw {
    let mut out = *now;
    for (hook, old) in out.iter_mut().zip(earlier) {
        for (probe, old_probe) in [(&mut hook.head, &old.head), (&mut hook.tail, &old.tail)] {
            for (t, o) in probe.by_proto.iter_mut().zip(&old_probe.by_proto) {
                t.packets = t.packets.saturating_sub(o.packets);
                t.bytes = t.bytes.saturating_sub(o.bytes);
            }
            for (t, o) in probe.tcp.iter_mut().zip(&old_probe.tcp) {
                *t = t.saturating_sub(*o);
            }
        }
        for (t, o) in hook.ct.iter_mut().zip(&old.ct) {
            *t = t.saturating_sub(*o);
        }
    }
    out
}

/// entered / accepted / dropped packets of one protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    pub entered: u64,
    pub accepted: u64,
    /// entered - accepted: dropped, stolen or queued by another hook function.
    pub dropped: u64,
}

impl Verdicts {
    fn new(entered: u64, accepted: u64) -> Verdicts {
        Verdicts {
            entered,
            accepted,
            // A packet between the two probes when the counters were read shows as in flight;
            // never report a negative drop.
            dropped: entered.saturating_sub(accepted),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByProtoVerdicts {
    pub tcp: Verdicts,
    pub udp: Verdicts,
    pub icmp: Verdicts,
    pub icmpv6: Verdicts,
    pub other: Verdicts,
}

/// Conntrack state of the packets that survived the hook (read at the late probe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CtStates {
    pub new: u64,
    pub established: u64,
    pub related: u64,
    /// Packets in the reply direction (ESTABLISHED_REPLY, RELATED_REPLY).
    pub reply: u64,
    /// Packets conntrack refused to track. Conntrack marks them by attaching nothing, which
    /// looks the same as conntrack not running; counted here once conntrack is seen active
    /// in this family (some packet carried an entry), else 0 and only in `none`.
    pub invalid: u64,
    /// Explicitly untracked (`-j CT --notrack`, `notrack`).
    pub untracked: u64,
    /// No conntrack entry at all.
    pub none: u64,
}

/// TCP packets by handshake class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpClasses {
    pub syn: u64,
    pub synack: u64,
    pub rst: u64,
    pub fin: u64,
    pub other: u64,
}

impl TcpClasses {
    fn from(counts: &[u64; TcpClass::COUNT]) -> TcpClasses {
        TcpClasses {
            syn: counts[TcpClass::Syn as usize],
            synack: counts[TcpClass::SynAck as usize],
            rst: counts[TcpClass::Rst as usize],
            fin: counts[TcpClass::Fin as usize],
            other: counts[TcpClass::Other as usize],
        }
    }
}

/// One hook of one family (the JSON schema's `N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct NfHookStats {
    pub entered: u64,
    pub accepted: u64,
    pub dropped: u64,
    /// IP bytes that entered / survived the hook.
    pub entered_bytes: u64,
    pub accepted_bytes: u64,
    pub by_proto: ByProtoVerdicts,
    pub ct: CtStates,
    /// TCP packets entering the hook, by handshake class.
    pub tcp: TcpClasses,
    /// TCP packets surviving the hook, by handshake class.
    pub tcp_accepted: TcpClasses,
    /// Packets per second entering the hook over the last interval.
    pub pps: f64,
    /// Packets per second dropped at the hook over the last interval.
    pub dropped_pps: f64,
}

/// The five hooks of one family, in packet-path order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct NfFamilyStats {
    pub prerouting: NfHookStats,
    pub input: NfHookStats,
    pub forward: NfHookStats,
    pub output: NfHookStats,
    pub postrouting: NfHookStats,
}

impl NfFamilyStats {
    pub fn hook(&self, hook: NfHook) -> &NfHookStats {
        match hook {
            NfHook::PreRouting => &self.prerouting,
            NfHook::LocalIn => &self.input,
            NfHook::Forward => &self.forward,
            NfHook::LocalOut => &self.output,
            NfHook::PostRouting => &self.postrouting,
        }
    }

    fn hook_mut(&mut self, hook: NfHook) -> &mut NfHookStats {
        match hook {
            NfHook::PreRouting => &mut self.prerouting,
            NfHook::LocalIn => &mut self.input,
            NfHook::Forward => &mut self.forward,
            NfHook::LocalOut => &mut self.output,
            NfHook::PostRouting => &mut self.postrouting,
        }
    }
}

fn totals(probe: &NfProbeCounters) -> (u64, u64) {
    probe
        .by_proto
        .iter()
        .fold((0, 0), |(p, b), t| (p + t.packets, b + t.bytes))
}

/// Whether conntrack attached an entry to any packet at any hook of this family.
fn conntrack_active(raw: &NfRaw) -> bool {
    raw.iter().any(|h| {
        [
            CT_ESTABLISHED,
            CT_RELATED,
            CT_NEW,
            CT_ESTABLISHED_REPLY,
            CT_RELATED_REPLY,
        ]
        .iter()
        .any(|&slot| h.ct[slot] > 0)
    })
}

/// Builds one family's stats, with rates against `prev` over `interval_ms`.
pub fn family_stats(now: &NfRaw, prev: &NfRaw, interval_ms: u64) -> NfFamilyStats {
    let active = conntrack_active(now);
    let mut out = NfFamilyStats::default();
    for hook in NfHook::ALL {
        let (cur, old) = (&now[hook as usize], &prev[hook as usize]);
        let (entered, entered_bytes) = totals(&cur.head);
        let (accepted, accepted_bytes) = totals(&cur.tail);
        let (old_entered, _) = totals(&old.head);
        let (old_accepted, _) = totals(&old.tail);
        let verdicts = |proto: Proto| {
            Verdicts::new(
                cur.head.by_proto[proto as usize].packets,
                cur.tail.by_proto[proto as usize].packets,
            )
        };
        let ct = &cur.ct;
        let dropped = entered.saturating_sub(accepted);
        let old_dropped = old_entered.saturating_sub(old_accepted);
        *out.hook_mut(hook) = NfHookStats {
            entered,
            accepted,
            dropped,
            entered_bytes,
            accepted_bytes,
            by_proto: ByProtoVerdicts {
                tcp: verdicts(Proto::Tcp),
                udp: verdicts(Proto::Udp),
                icmp: verdicts(Proto::Icmp),
                icmpv6: verdicts(Proto::Icmpv6),
                other: verdicts(Proto::Other),
            },
            ct: CtStates {
                new: ct[CT_NEW],
                established: ct[CT_ESTABLISHED],
                related: ct[CT_RELATED],
                reply: ct[CT_ESTABLISHED_REPLY] + ct[CT_RELATED_REPLY] + ct[CT_NEW_REPLY],
                invalid: if active { ct[CT_NONE] } else { 0 },
                untracked: ct[CT_UNTRACKED],
                none: ct[CT_NONE],
            },
            tcp: TcpClasses::from(&cur.head.tcp),
            tcp_accepted: TcpClasses::from(&cur.tail.tcp),
            pps: rate(entered, old_entered, interval_ms),
            dropped_pps: rate(dropped, old_dropped, interval_ms),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_with(hook: NfHook, f: impl Fn(&mut NfHookCounters)) -> NfRaw {
        let mut raw = NfRaw::default();
        f(&mut raw[hook as usize]);
        raw
    }

    #[test]
    fn dropped_is_entered_minus_accepted_per_protocol() {
        let raw = raw_with(NfHook::Forward, |h| {
            h.head.by_proto[Proto::Udp as usize].packets = 10;
            h.head.by_proto[Proto::Udp as usize].bytes = 1000;
            h.tail.by_proto[Proto::Udp as usize].packets = 7;
            h.tail.by_proto[Proto::Udp as usize].bytes = 700;
            h.head.by_proto[Proto::Tcp as usize].packets = 4;
            h.tail.by_proto[Proto::Tcp as usize].packets = 4;
        });
        let s = family_stats(&raw, &NfRaw::default(), 1000);
        let f = &s.forward;
        assert_eq!((f.entered, f.accepted, f.dropped), (14, 11, 3));
        assert_eq!(
            f.by_proto.udp,
            Verdicts {
                entered: 10,
                accepted: 7,
                dropped: 3
            }
        );
        assert_eq!(f.by_proto.tcp.dropped, 0);
        assert_eq!((f.entered_bytes, f.accepted_bytes), (1000, 700));
        assert_eq!(f.pps, 14.0);
        assert_eq!(f.dropped_pps, 3.0);
        assert_eq!(s.input, NfHookStats::default());
    }

    #[test]
    fn accepted_above_entered_never_shows_a_negative_drop() {
        let raw = raw_with(NfHook::LocalIn, |h| {
            h.head.by_proto[0].packets = 5;
            h.tail.by_proto[0].packets = 6;
        });
        assert_eq!(family_stats(&raw, &NfRaw::default(), 1000).input.dropped, 0);
    }

    #[test]
    fn conntrack_states_and_invalid_only_when_conntrack_is_active() {
        let inactive = raw_with(NfHook::LocalIn, |h| h.ct[CT_NONE] = 9);
        let s = family_stats(&inactive, &NfRaw::default(), 1000);
        assert_eq!((s.input.ct.none, s.input.ct.invalid), (9, 0));

        let mut active = inactive;
        active[NfHook::Forward as usize].ct[CT_NEW] = 1;
        active[NfHook::Forward as usize].ct[CT_ESTABLISHED] = 5;
        active[NfHook::Forward as usize].ct[CT_ESTABLISHED_REPLY] = 4;
        active[NfHook::Forward as usize].ct[CT_RELATED_REPLY] = 1;
        active[NfHook::Forward as usize].ct[CT_UNTRACKED] = 2;
        let s = family_stats(&active, &NfRaw::default(), 1000);
        assert_eq!((s.input.ct.none, s.input.ct.invalid), (9, 9));
        let ct = s.forward.ct;
        assert_eq!(
            (ct.new, ct.established, ct.reply, ct.untracked),
            (1, 5, 5, 2)
        );
    }

    #[test]
    fn tcp_classes_at_entry_and_survival() {
        let raw = raw_with(NfHook::LocalIn, |h| {
            h.head.tcp[TcpClass::Syn as usize] = 3;
            h.tail.tcp[TcpClass::Syn as usize] = 1;
            h.head.tcp[TcpClass::Rst as usize] = 2;
        });
        let s = family_stats(&raw, &NfRaw::default(), 1000);
        assert_eq!((s.input.tcp.syn, s.input.tcp_accepted.syn), (3, 1));
        assert_eq!(s.input.tcp.rst, 2);
    }

    #[test]
    fn since_subtracts_a_baseline() {
        let base = raw_with(NfHook::PreRouting, |h| {
            h.head.by_proto[1].packets = 3;
            h.ct[CT_NEW] = 1;
        });
        let now = raw_with(NfHook::PreRouting, |h| {
            h.head.by_proto[1].packets = 10;
            h.ct[CT_NEW] = 4;
        });
        let d = since(&now, &base);
        assert_eq!(d[0].head.by_proto[1].packets, 7);
        assert_eq!(d[0].ct[CT_NEW], 3);
    }
}
