//! The netfilter part of the Snapshot: per family and hook, packets that entered the hook,
//! survived it (accepted) and did not (dropped), by protocol, by TCP handshake class, and by
//! conntrack state. Pure, tested without root.
use std::collections::BTreeMap;

use serde::Serialize;

use netpost_common::{
    Proto,
    netfilter::{
        CT_ESTABLISHED, CT_ESTABLISHED_REPLY, CT_NEW, CT_NEW_REPLY, CT_NONE, CT_RELATED,
        CT_RELATED_REPLY, CT_UNTRACKED, NfFamily, NfHook, NfHookCounters, NfProbeCounters,
        TcpClass,
    },
};

use crate::{
    delta::rate,
    probe::rules::model::{ChainOrder, HookView, Registered, RuleDrops},
};

pub const NAME: &str = "netfilter";

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
    /// TCP packets whose header was not in the linear data netfilter can read (flags unknown).
    pub unread: u64,
}

impl TcpClasses {
    fn from(counts: &[u64; TcpClass::COUNT]) -> TcpClasses {
        TcpClasses {
            syn: counts[TcpClass::Syn as usize],
            synack: counts[TcpClass::SynAck as usize],
            rst: counts[TcpClass::Rst as usize],
            fin: counts[TcpClass::Fin as usize],
            other: counts[TcpClass::Other as usize],
            unread: counts[TcpClass::Unread as usize],
        }
    }
}

/// One hook of one family (the JSON schema's `N`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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
    /// What runs at this hook, by priority (the rules probe; empty without it).
    pub registered: Vec<Registered>,
    /// The rule chains at this hook, by priority, with where each one's
    /// ESTABLISHED,RELATED accept is (the rules probe; empty without it).
    pub chains: Vec<ChainOrder>,
    /// Drop, reject and queue rules that dropped here, busiest first, then rules without a
    /// usable counter where drops are unattributed.
    pub rules: Vec<RuleDrops>,
    /// `dropped` packets the rules' counters account for; null when rules are not read.
    pub attributed_drops: Option<u64>,
    /// `dropped - attributed_drops`: conntrack, defrag, NAT, rules without a counter...
    pub unattributed_drops: Option<u64>,
    /// Packets dropped after netpost's tail program had accepted them (conntrack confirm
    /// runs there). Null until the drop program reports it.
    pub dropped_after_last: Option<u64>,
}

impl NfHookStats {
    /// Adds the rules probe's view of this hook.
    pub fn set_rules(&mut self, view: HookView) {
        self.registered = view.registered;
        self.chains = view.chains;
        self.rules = view.rules;
        self.attributed_drops = view.attributed;
        self.unattributed_drops = view.attributed.map(|a| self.dropped.saturating_sub(a));
    }
}

/// The five hooks of one family, in packet-path order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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

    pub fn hook_mut(&mut self, hook: NfHook) -> &mut NfHookStats {
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

/// Per hook, packets conntrack found invalid. Conntrack marks such a packet by attaching no
/// entry, which looks the same as conntrack not running (it runs in a namespace only while a
/// rule or NAT needs it); but the kernel counts the packets it calls invalid, per namespace
/// (`/proc/net/stat/nf_conntrack`). So within one interval a hook's invalid packets are at
/// most its packets without an entry and at most the kernel's count: nothing is called
/// invalid while conntrack does not run, before it starts or after it stops.
#[derive(Clone, Debug, Default)]
pub struct InvalidCounter {
    /// The kernel's invalid count at the last step.
    kernel: u64,
    /// Packets without an entry per (family, hook) at the last step.
    none: BTreeMap<(NfFamily, NfHook), u64>,
    total: BTreeMap<(NfFamily, NfHook), u64>,
}

impl InvalidCounter {
    /// Counting starts: the kernel's count now (None: the kernel has no conntrack).
    pub fn baseline(&mut self, kernel: Option<u64>) {
        *self = InvalidCounter {
            kernel: kernel.unwrap_or(0),
            ..InvalidCounter::default()
        };
    }

    /// One interval: the families' counters since the baseline and the kernel's count now.
    pub fn step(
        &mut self,
        now: &BTreeMap<NfFamily, NfRaw>,
        kernel: Option<u64>,
    ) -> &BTreeMap<(NfFamily, NfHook), u64> {
        let kernel = kernel.unwrap_or(self.kernel);
        let called_invalid = kernel.saturating_sub(self.kernel);
        self.kernel = kernel;
        for (&family, raw) in now {
            for hook in NfHook::ALL {
                let none = raw[hook as usize].ct[CT_NONE];
                let before = self.none.insert((family, hook), none).unwrap_or(0);
                let added = none.saturating_sub(before).min(called_invalid);
                *self.total.entry((family, hook)).or_default() += added;
            }
        }
        &self.total
    }
}

/// Sets `ct.invalid` from the counts of an [`InvalidCounter`].
pub fn set_invalid(
    stats: &mut BTreeMap<String, NfFamilyStats>,
    invalid: &BTreeMap<(NfFamily, NfHook), u64>,
) {
    for (&(family, hook), &n) in invalid {
        if let Some(f) = stats.get_mut(family.name()) {
            f.hook_mut(hook).ct.invalid = n;
        }
    }
}

/// Packets dropped at each hook since the counters' zero (entered - accepted).
pub fn hook_dropped(raw: &NfRaw) -> [u64; NfHook::COUNT] {
    std::array::from_fn(|h| {
        let (entered, _) = totals(&raw[h].head);
        let (accepted, _) = totals(&raw[h].tail);
        entered.saturating_sub(accepted)
    })
}

/// Sets `dropped_after_last` where the drop program measured it (per family and hook).
pub fn set_dropped_after_last(
    stats: &mut BTreeMap<String, NfFamilyStats>,
    after_last: &BTreeMap<(NfFamily, NfHook), u64>,
) {
    for (&(family, hook), &n) in after_last {
        if let Some(f) = stats.get_mut(family.name()) {
            f.hook_mut(hook).dropped_after_last = Some(n);
        }
    }
}

/// Builds one family's stats, with rates against `prev` over `interval_ms`.
pub fn family_stats(now: &NfRaw, prev: &NfRaw, interval_ms: u64) -> NfFamilyStats {
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
                // From an InvalidCounter, which needs the intervals before ([`set_invalid`]).
                invalid: 0,
                untracked: ct[CT_UNTRACKED],
                none: ct[CT_NONE],
            },
            tcp: TcpClasses::from(&cur.head.tcp),
            tcp_accepted: TcpClasses::from(&cur.tail.tcp),
            pps: rate(entered, old_entered, interval_ms),
            dropped_pps: rate(dropped, old_dropped, interval_ms),
            ..Default::default()
        };
    }
    out
}

/// Every linked family's stats ("ipv4", "ipv6"), with rates against `prev`.
pub fn stats(
    now: &BTreeMap<NfFamily, NfRaw>,
    prev: &BTreeMap<NfFamily, NfRaw>,
    interval_ms: u64,
) -> BTreeMap<String, NfFamilyStats> {
    now.iter()
        .map(|(family, raw)| {
            let before = prev.get(family).copied().unwrap_or_default();
            (
                family.name().to_string(),
                family_stats(raw, &before, interval_ms),
            )
        })
        .collect()
}

/// Conntrack entries created, as the netfilter programs saw them (None without links).
pub fn ct_created(families: &BTreeMap<NfFamily, NfRaw>) -> Option<u64> {
    (!families.is_empty()).then(|| {
        families
            .values()
            .flat_map(|raw| raw.iter())
            .map(|hook| hook.ct_created)
            .sum()
    })
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
    fn conntrack_states_split_and_the_reply_directions_add_up() {
        let mut raw = raw_with(NfHook::LocalIn, |h| h.ct[CT_NONE] = 9);
        raw[NfHook::Forward as usize].ct[CT_NEW] = 1;
        raw[NfHook::Forward as usize].ct[CT_ESTABLISHED] = 5;
        raw[NfHook::Forward as usize].ct[CT_ESTABLISHED_REPLY] = 4;
        raw[NfHook::Forward as usize].ct[CT_RELATED_REPLY] = 1;
        raw[NfHook::Forward as usize].ct[CT_UNTRACKED] = 2;
        let s = family_stats(&raw, &NfRaw::default(), 1000);
        assert_eq!((s.input.ct.none, s.input.ct.invalid), (9, 0));
        let ct = s.forward.ct;
        assert_eq!(
            (ct.new, ct.established, ct.reply, ct.untracked),
            (1, 5, 5, 2)
        );
    }

    #[test]
    fn invalid_counts_only_what_the_kernel_called_invalid_in_the_interval() {
        let at = |none: u64| {
            let raw = raw_with(NfHook::LocalIn, |h| h.ct[CT_NONE] = none);
            BTreeMap::from([(NfFamily::Ipv4, raw)])
        };
        let input = (NfFamily::Ipv4, NfHook::LocalIn);
        let mut c = InvalidCounter::default();
        c.baseline(Some(100));
        // Conntrack not running: packets without an entry, the kernel calls none invalid.
        assert_eq!(c.step(&at(4), Some(100))[&input], 0);
        // Running: 2 of the next 3 without an entry were invalid.
        assert_eq!(c.step(&at(7), Some(102))[&input], 2);
        // Stopped: 6 more without an entry, none invalid.
        assert_eq!(c.step(&at(13), Some(102))[&input], 2);
        // The kernel's count is namespace-wide: a hook takes at most its own.
        assert_eq!(c.step(&at(14), Some(110))[&input], 3);
        // Without conntrack in the kernel: nothing is invalid.
        let mut none = InvalidCounter::default();
        none.baseline(None);
        assert_eq!(none.step(&at(5), None)[&input], 0);
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
