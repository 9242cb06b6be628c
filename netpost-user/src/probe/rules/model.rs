//! Which rule dropped it: per-rule counters of drop, reject and queue rules (and counted
//! chain policies) turned into drops attributed to the hooks netpost measures, and the
//! hooks' lists of what is registered there. Pure, tested without root.
//!
//! Attribution works on counter deltas. A rule that can run at one hook only (its chain is
//! reached from one base chain of one family) is attributed there. A rule several hooks
//! reach (an `inet` chain runs for IPv4 and IPv6; a user chain jumped to from INPUT and
//! FORWARD) is attributed to the one of them whose measured drops grew in the interval;
//! when several did, its packets are reported at each as `shared_packets` and attributed to
//! none. A counter only counts what its rule's verdict applies to when nothing but
//! statements follows it (`... counter drop`): others are reported without packets, never
//! guessed.
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::reach::{HookId, Hooks};

pub const NAME: &str = "rules";

/// Rules tracked per hook before the ones with the fewest packets are folded into one
/// "other rules" row (rulesets that churn, e.g. ban lists, would grow it without bound).
const TRACKED_PER_HOOK: usize = 512;

/// Where a rule lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    Nft,
    /// iptables with the nf_tables backend: nft rules in the tables iptables-nft manages,
    /// shown as `iptables-save` prints them.
    IptablesNft,
    /// iptables with the legacy backend (x_tables).
    IptablesLegacy,
    /// Rules folded together when a hook tracks too many.
    Other,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::IptablesNft => "iptables-nft",
            Backend::IptablesLegacy => "iptables-legacy",
            Backend::Other => "other",
        }
    }
}

/// Which rule of its chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    /// nf_tables rule handle, in the table with this handle (handles restart in a new table).
    Handle { table_handle: u64, handle: u64 },
    /// x_tables rule: its bytes without counters and which occurrence of them in the chain
    /// (positions shift as rules come and go; the bytes do not).
    Content(u64, u32),
    /// The chain's policy.
    Policy,
    Other,
}

/// A rule's identity across reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    pub backend: Backend,
    /// The table's family as nft names it (`ip`, `ip6`, `inet`).
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub id: RuleId,
}

impl RuleKey {
    fn other() -> RuleKey {
        RuleKey {
            backend: Backend::Other,
            family: "",
            table: String::new(),
            chain: String::new(),
            id: RuleId::Other,
        }
    }
}

/// What a rule is, for people.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleInfo {
    /// Position in the chain for iptables (as `--line-numbers`), the handle for nft; none
    /// for a policy.
    pub handle_or_index: Option<u64>,
    /// The rule as `nft -a list` / `iptables-save` print it (`policy drop` for a policy).
    pub text: String,
    /// `drop`, `reject`, `queue`.
    pub verdict: &'static str,
}

/// The counter of a rule that ends packets, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Packets(u64),
    /// No counter (nft rules and nft chain policies have none unless asked for).
    Missing,
    /// A counter a match follows: it counts packets the verdict may not apply to.
    BeforeMatch,
    /// The verdict comes from a verdict map.
    VerdictMap,
}

impl Counter {
    /// Why there are no packets to show.
    pub fn note(self, policy: bool) -> Option<&'static str> {
        match self {
            Counter::Packets(_) => None,
            Counter::Missing if policy => {
                Some("no counter on this policy: end the chain with a `counter drop` rule to see it")
            }
            Counter::Missing => Some("no counter: add `counter` to see it"),
            Counter::BeforeMatch => {
                Some("its counter comes before a match: move `counter` next to the verdict to see it")
            }
            Counter::VerdictMap => Some("verdict map: its counter cannot tell the drops apart"),
        }
    }
}

/// Packets attributed to one rule at one hook since netpost started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acc {
    pub packets: u64,
    /// Packets of intervals where several of the rule's hooks dropped.
    pub shared: u64,
}

/// The running attribution: counter values at the last read and what was attributed.
#[derive(Debug, Default)]
pub struct Attribution {
    last: HashMap<RuleKey, u64>,
    seen_dropped: BTreeMap<HookId, u64>,
    acc: BTreeMap<HookId, HashMap<RuleKey, Acc>>,
    /// Packets per second each rule dropped at each hook over the period its last read
    /// covered (reads may be several intervals apart on large rulesets).
    rates: HashMap<(HookId, RuleKey), f64>,
    /// The baseline read every rule: a rule seen for the first time later is new.
    complete_baseline: bool,
}

impl Attribution {
    /// The counters at start (`complete`: every rule that ends packets was read) and the
    /// hooks' measured drops then.
    pub fn baseline(
        &mut self,
        reads: impl IntoIterator<Item = (RuleKey, u64)>,
        complete: bool,
        dropped: &BTreeMap<HookId, u64>,
    ) {
        self.last = reads.into_iter().collect();
        self.complete_baseline = complete;
        self.seen_dropped = dropped.clone();
    }

    /// The hooks whose measured drops grew since the last call.
    pub fn dropping(&mut self, dropped: &BTreeMap<HookId, u64>) -> Hooks {
        let mut out = Hooks::NONE;
        for (&hook, &n) in dropped {
            let before = self.seen_dropped.insert(hook, n).unwrap_or(0);
            if n > before {
                out = out.union(Hooks::one(hook.0, hook.1));
            }
        }
        out
    }

    /// Takes one read: `(rule, the hooks it can run at, its counter now)`, with the hooks that
    /// dropped since the last read, which was `period_ms` ago (the rates' period).
    pub fn apply(
        &mut self,
        reads: impl IntoIterator<Item = (RuleKey, Hooks, u64)>,
        dropping: Hooks,
        period_ms: u64,
    ) {
        self.rates.clear();
        for (key, reach, value) in reads {
            let delta = match self.last.insert(key.clone(), value) {
                Some(before) if value >= before => value - before,
                // Reset (`nft reset counters`, `iptables -Z`): counting restarted from 0.
                Some(_) => value,
                // A rule added after the baseline counted from 0 since then.
                None if self.complete_baseline => value,
                None => 0,
            };
            if delta == 0 || reach.is_empty() {
                continue;
            }
            let candidates = if reach.len() == 1 {
                reach
            } else {
                match reach.intersect(dropping) {
                    c if c.is_empty() => reach,
                    c => c,
                }
            };
            let single = candidates.len() == 1;
            let per_s = if period_ms > 0 {
                delta as f64 * 1000.0 / period_ms as f64
            } else {
                0.0
            };
            for hook in candidates.iter() {
                self.rates.insert((hook, key.clone()), per_s);
                let per_hook = self.acc.entry(hook).or_default();
                let acc = per_hook.entry(key.clone()).or_default();
                if single {
                    acc.packets += delta;
                } else {
                    acc.shared += delta;
                }
                if per_hook.len() > TRACKED_PER_HOOK {
                    fold(per_hook);
                }
            }
        }
    }

    /// No hook dropped: every rule's rate is 0 now.
    pub fn idle(&mut self) {
        self.rates.clear();
    }

    /// The rate of `key` at `hook` over the last read's period (0 when it dropped nothing).
    pub fn rate(&self, hook: HookId, key: &RuleKey) -> f64 {
        self.rates.get(&(hook, key.clone())).copied().unwrap_or(0.0)
    }

    /// Forgets the last counter values of rules that are gone (their attributed packets stay).
    pub fn retain(&mut self, mut present: impl FnMut(&RuleKey) -> bool) {
        self.last.retain(|k, _| present(k));
    }

    /// Whether packets are attributed to `key` at some hook.
    pub fn tracks(&self, key: &RuleKey) -> bool {
        self.acc.values().any(|m| m.contains_key(key))
    }

    /// Every rule attributed at `hook`.
    pub fn at(&self, hook: HookId) -> impl Iterator<Item = (&RuleKey, Acc)> {
        self.acc
            .get(&hook)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, a)| (k, *a)))
    }
}

/// Folds the half of the rules with the fewest packets into the "other" row.
fn fold(per_hook: &mut HashMap<RuleKey, Acc>) {
    let other = RuleKey::other();
    let mut keys: Vec<(u64, RuleKey)> = per_hook
        .iter()
        .filter(|(k, _)| **k != other)
        .map(|(k, a)| (a.packets + a.shared, k.clone()))
        .collect();
    keys.sort();
    let mut folded = per_hook.remove(&other).unwrap_or_default();
    for (_, k) in keys.into_iter().take(TRACKED_PER_HOOK / 2) {
        let a = per_hook.remove(&k).unwrap_or_default();
        folded.packets += a.packets;
        folded.shared += a.shared;
    }
    per_hook.insert(other, folded);
}

/// One function registered at a hook (the JSON's `registered[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub priority: i32,
    /// `nftables`, `iptables-nft`, `iptables-legacy`, `conntrack`, `defrag`, `nat`,
    /// `netpost`, `bpf`, or the kernel module / function for anything else.
    pub owner: String,
    /// The table's family (`ip`, `ip6`, `inet`) for nf_tables chains.
    pub family: Option<String>,
    pub table: Option<String>,
    pub chain: Option<String>,
    /// The kernel function, when the kernel's hook list names it.
    pub function: Option<String>,
}

/// A base chain at a hook (nf_tables) or a legacy table's built-in chain there, with where
/// its ESTABLISHED,RELATED accept is (the JSON's `chains[]`): every packet is compared with
/// each rule before that one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainOrder {
    /// `nft`, `iptables-nft`, `iptables-legacy`.
    pub backend: &'static str,
    /// The table's family (`ip`, `ip6`, `inet`).
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub priority: i32,
    /// Rules in the chain (a legacy chain's policy not counted).
    pub rules: u64,
    /// The first ESTABLISHED,RELATED accept of the chain; null without one.
    pub established_accept: Option<EstablishedAccept>,
}

/// Where a chain's ESTABLISHED,RELATED accept is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EstablishedAccept {
    /// 1-based position in the chain (rules before it: position - 1).
    pub position: u64,
    /// The nft rule handle (`nft -a`); for iptables the rule number, as `rules[]` has it.
    pub handle_or_index: u64,
}

/// One row of a hook's rules, cumulative: what the probe hands the model each interval.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRow {
    pub key: RuleKey,
    pub info: RuleInfo,
    /// Attributed packets since start; None when the rule has no usable counter.
    pub packets: Option<u64>,
    /// Packets per second over the period the last read covered; None without a counter.
    pub per_s: Option<f64>,
    pub shared: u64,
    pub note: Option<&'static str>,
}

/// One hook's part of a sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HookRaw {
    pub registered: Vec<Registered>,
    /// The chains at the hook in priority order, with their rule order.
    pub chains: Vec<ChainOrder>,
    pub rows: Vec<RawRow>,
    /// Sum of `packets` over every rule attributed here (rows folded or not shown included);
    /// None when rules are not read (capped, unavailable).
    pub attributed: Option<u64>,
}

/// The rules probe's part of a sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RulesRaw {
    pub hooks: BTreeMap<HookId, HookRaw>,
    pub info: RulesInfo,
}

/// How the rules were read (the JSON's `netfilter_rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RulesInfo {
    /// `kernel` (the kernel's hook list), or `composed: <why>` (nf_tables base chains,
    /// legacy iptables tables and netpost's own programs, without the kernel's list).
    pub hook_list: String,
    /// nf_tables rules plus legacy iptables entries in the namespace.
    pub ruleset_rules: u64,
    /// Why counters are not read (a ruleset over the size netpost walks), or null.
    pub capped: Option<String>,
    /// CPU time (user + system, netlink's kernel side included) of the last read of rule
    /// counters or of the ruleset, µs.
    pub read_cpu_us: u64,
    /// Reads are spaced so that they take at most 0.5% of a core: the next read comes at
    /// least this long after the last one (below the interval: every interval). Drops in
    /// between are attributed at the next read.
    pub read_every_ms: u64,
    /// CPU time of the last fetch of rule text (`nft -a -s list table`, `iptables-save`),
    /// µs; fetches are spaced the same way.
    pub text_cpu_us: u64,
    /// What could not be read in the last interval (nf_tables, a legacy table, the hook list).
    pub errors: Vec<String>,
}

/// One row of a hook's `rules[]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleDrops {
    /// `nft`, `iptables-nft`, `iptables-legacy` (`other`: rules folded together).
    pub backend: &'static str,
    /// The table's family (`ip`, `ip6`, `inet`).
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub handle_or_index: Option<u64>,
    pub rule: String,
    pub verdict: &'static str,
    /// Packets attributed to this rule at this hook since start; null without a usable
    /// counter (see `note`).
    pub packets: Option<u64>,
    pub per_s: Option<f64>,
    /// Packets of intervals where another hook this rule runs at dropped too: not in
    /// `attributed_drops`.
    pub shared_packets: u64,
    pub note: Option<&'static str>,
}

/// A hook's registered functions, ranked rules and attributed drops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HookView {
    pub registered: Vec<Registered>,
    pub chains: Vec<ChainOrder>,
    pub rules: Vec<RuleDrops>,
    pub attributed: Option<u64>,
}

/// The view of one hook: counted rows rank by rate, then packets; rows without a counter
/// come last.
pub fn hook_view(now: &HookRaw) -> HookView {
    let mut rows: Vec<(&RuleKey, RuleDrops)> = now
        .rows
        .iter()
        .map(|r| {
            let drops = RuleDrops {
                backend: r.key.backend.name(),
                family: r.key.family,
                table: r.key.table.clone(),
                chain: r.key.chain.clone(),
                handle_or_index: r.info.handle_or_index,
                rule: r.info.text.clone(),
                verdict: r.info.verdict,
                packets: r.packets,
                per_s: r.per_s,
                shared_packets: r.shared,
                note: r.note,
            };
            (&r.key, drops)
        })
        .collect();
    rows.sort_by(|(ka, a), (kb, b)| {
        let rank = |r: &RuleDrops| (r.packets.is_none(), -r.per_s.unwrap_or(0.0));
        let (ra, rb) = (rank(a), rank(b));
        ra.0.cmp(&rb.0)
            .then(ra.1.total_cmp(&rb.1))
            .then(b.packets.cmp(&a.packets))
            .then(b.shared_packets.cmp(&a.shared_packets))
            .then(ka.cmp(kb))
    });
    HookView {
        registered: now.registered.clone(),
        chains: now.chains.clone(),
        rules: rows.into_iter().map(|(_, r)| r).collect(),
        attributed: now.attributed,
    }
}

#[cfg(test)]
mod tests {
    use netpost_common::netfilter::{NfFamily::*, NfHook::*};

    use super::*;

    fn key(chain: &str, handle: u64) -> RuleKey {
        RuleKey {
            backend: Backend::Nft,
            family: "inet",
            table: "t".into(),
            chain: chain.into(),
            id: RuleId::Handle {
                table_handle: 1,
                handle,
            },
        }
    }

    fn dropped(pairs: &[(HookId, u64)]) -> BTreeMap<HookId, u64> {
        pairs.iter().copied().collect()
    }

    fn acc(a: &Attribution, hook: HookId, k: &RuleKey) -> Acc {
        a.at(hook)
            .find(|(kk, _)| *kk == k)
            .map(|(_, a)| a)
            .unwrap_or_default()
    }

    #[test]
    fn a_single_hook_rule_takes_its_delta_from_the_baseline() {
        let fwd4 = Hooks::one(Ipv4, Forward);
        let k = key("fw", 5);
        let mut a = Attribution::default();
        a.baseline([(k.clone(), 100)], true, &dropped(&[]));
        let d = a.dropping(&dropped(&[((Ipv4, Forward), 7)]));
        a.apply([(k.clone(), fwd4, 107)], d, 1000);
        assert_eq!(a.rate((Ipv4, Forward), &k), 7.0);
        assert_eq!(acc(&a, (Ipv4, Forward), &k).packets, 7);
        // Nothing dropped, nothing read: nothing changes. Then 3 more.
        let d = a.dropping(&dropped(&[((Ipv4, Forward), 7)]));
        assert!(d.is_empty());
        let d = a.dropping(&dropped(&[((Ipv4, Forward), 10)]));
        a.apply([(k.clone(), fwd4, 110)], d, 3000);
        assert_eq!(a.rate((Ipv4, Forward), &k), 1.0, "3 packets over the 3 s the read covers");
        a.idle();
        assert_eq!(a.rate((Ipv4, Forward), &k), 0.0);
        assert_eq!(acc(&a, (Ipv4, Forward), &k).packets, 10);
    }

    #[test]
    fn an_inet_rule_goes_to_the_family_that_dropped_or_is_shared() {
        let both = Hooks::from_iter([(Ipv4, LocalIn), (Ipv6, LocalIn)]);
        let k = key("in", 2);
        let mut a = Attribution::default();
        a.baseline([(k.clone(), 0)], true, &dropped(&[]));
        let d = a.dropping(&dropped(&[((Ipv6, LocalIn), 4)]));
        a.apply([(k.clone(), both, 4)], d, 1000);
        assert_eq!(acc(&a, (Ipv6, LocalIn), &k), Acc { packets: 4, shared: 0 });
        assert_eq!(acc(&a, (Ipv4, LocalIn), &k), Acc::default());
        // Both families dropped: the 6 new packets cannot be split.
        let d = a.dropping(&dropped(&[((Ipv6, LocalIn), 8), ((Ipv4, LocalIn), 2)]));
        a.apply([(k.clone(), both, 10)], d, 1000);
        assert_eq!(acc(&a, (Ipv6, LocalIn), &k), Acc { packets: 4, shared: 6 });
        assert_eq!(acc(&a, (Ipv4, LocalIn), &k), Acc { packets: 0, shared: 6 });
    }

    #[test]
    fn new_rules_count_from_zero_resets_restart_and_unknown_history_is_not_counted() {
        let h = Hooks::one(Ipv4, LocalOut);
        let (old, new) = (key("o", 1), key("o", 9));
        let mut a = Attribution::default();
        a.baseline([(old.clone(), 50)], true, &dropped(&[]));
        a.apply([(old.clone(), h, 20), (new.clone(), h, 3)], h, 1000);
        assert_eq!(acc(&a, (Ipv4, LocalOut), &old).packets, 20, "reset");
        assert_eq!(acc(&a, (Ipv4, LocalOut), &new).packets, 3, "added later");

        let mut partial = Attribution::default();
        partial.baseline([], false, &dropped(&[]));
        partial.apply([(new.clone(), h, 3)], h, 1000);
        assert_eq!(acc(&partial, (Ipv4, LocalOut), &new).packets, 0);
        partial.apply([(new.clone(), h, 5)], h, 1000);
        assert_eq!(acc(&partial, (Ipv4, LocalOut), &new).packets, 2);
    }

    #[test]
    fn too_many_rules_fold_into_other_keeping_the_sum() {
        let h = Hooks::one(Ipv4, Forward);
        let mut a = Attribution::default();
        a.baseline([], true, &dropped(&[]));
        let reads: Vec<_> = (0..TRACKED_PER_HOOK as u64 + 10)
            .map(|i| (key("f", i), h, i + 1))
            .collect();
        let total: u64 = reads.iter().map(|r| r.2).sum();
        a.apply(reads, h, 1000);
        let rows: Vec<_> = a.at((Ipv4, Forward)).collect();
        assert!(rows.len() <= TRACKED_PER_HOOK);
        assert_eq!(rows.iter().map(|(_, a)| a.packets).sum::<u64>(), total);
        assert!(rows.iter().any(|(k, _)| k.backend == Backend::Other));
    }

    fn row(handle: u64, packets: Option<u64>, per_s: f64) -> RawRow {
        RawRow {
            key: key("fw", handle),
            info: RuleInfo {
                handle_or_index: Some(handle),
                text: format!("rule {handle}"),
                verdict: "drop",
            },
            packets,
            per_s: packets.map(|_| per_s),
            shared: 0,
            note: packets.is_none().then_some("no counter: add `counter` to see it"),
        }
    }

    #[test]
    fn rows_rank_by_rate_then_packets_and_uncounted_last() {
        let now = HookRaw {
            rows: vec![row(3, None, 0.0), row(1, Some(110), 10.0), row(2, Some(50), 50.0)],
            attributed: Some(160),
            ..Default::default()
        };
        let v = hook_view(&now);
        let order: Vec<_> = v.rules.iter().map(|r| r.handle_or_index).collect();
        assert_eq!(order, [Some(2), Some(1), Some(3)]);
        assert_eq!(v.rules[0].per_s, Some(50.0));
        assert_eq!(v.rules[1].per_s, Some(10.0));
        assert_eq!(v.rules[2].per_s, None);
        assert_eq!(v.rules[2].packets, None);
        assert!(v.rules[2].note.unwrap().contains("add `counter`"));
        assert_eq!(v.attributed, Some(160));
    }
}
