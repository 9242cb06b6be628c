//! Which rule dropped it: per hook, what is registered there (the kernel's hook list, or a
//! list composed from nf_tables base chains, legacy iptables tables and netpost's links) and
//! which drop, reject and queue rules account for the drops netpost measured. No programs
//! of its own: it reads nf_tables over netlink and legacy iptables with getsockopt.
//!
//! Cost, with the netfilter probe's counters deciding what to read: every interval one
//! NFT_MSG_GETGEN (the ruleset generation) and /proc/net/ip{,6}_tables_names; the whole
//! nf_tables ruleset only when the generation changed; the counters of the chains that hold
//! drop rules of a hook only when that hook dropped something since the last read; a legacy
//! table only then as well. Reads are spaced so they take at most 0.5% of a core
//! ([`READ_CPU_SHARE`]; small rulesets are read every interval). Rule text
//! (`nft -a -s list table`, `iptables-save -t`) only for rules a hook shows, once per
//! generation. A ruleset larger than [`MAX_RULES`] is not walked at all (`capped`).
pub mod ctstate;
pub mod hooklist;
pub mod hookmap;
pub mod legacy;
pub mod model;
pub mod netlink;
pub mod nft;
pub mod reach;
pub mod ruleset;
pub mod text;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    io,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use aya::Ebpf;
use netpost_common::netfilter::{NfFamily, NfHook};

use crate::{
    error::SetupError,
    model::RawSample,
    probe::{
        api::{Probe, Setup, Target, Tick},
        netfilter::model::{NfRaw, hook_dropped},
        status::Status,
    },
};
use model::{
    Attribution, Backend, Counter, HookRaw, RawRow, Registered, RuleId, RuleInfo, RuleKey,
    RulesInfo, RulesRaw,
};
use reach::{HookId, Hooks};
use ruleset::{Candidate, NftRuleset, Source, build_nft, legacy_candidates, legacy_chains};

/// Rules (nf_tables rules plus legacy entries) beyond which netpost reads no counters: the
/// walk would cost more than the interval's budget. Measured: see docs/json.md.
pub const MAX_RULES: usize = 50_000;
/// A capped ruleset is counted again at most this often.
const CAPPED_RECHECK: Duration = Duration::from_secs(60);
/// The kernel's hook list is read again this often even when the ruleset did not change
/// (conntrack, NAT and BPF links register without a ruleset change).
const HOOK_LIST_EVERY: Duration = Duration::from_secs(10);
/// Reads of counters and of the ruleset take at most 1/READ_CPU_SHARE of a core (0.5%): a
/// read that cost 50 ms of CPU waits 10 s before the next one (drops in between are
/// attributed then). Measured: a 10,000-rule chain costs ~65 ms per read (mostly the kernel
/// filling the netlink dump), so a hook dropping there without pause is read every ~13 s.
const READ_CPU_SHARE: u32 = 200;
/// Rules without a usable counter listed per hook (only where drops are unattributed).
const UNCOUNTED_SHOWN: usize = 10;

#[derive(Default)]
pub struct Rules {
    status: Status,
    /// Read under a lock: `sample` takes `&self`.
    state: Mutex<Option<State>>,
}

/// The last read of one legacy table.
struct LegacyRead {
    candidates: Vec<Candidate>,
    /// Non-policy entries per chain (to check `iptables-save` lines against).
    rules_per_chain: HashMap<String, usize>,
    entries: usize,
    /// The hooks the table is registered at.
    hooks: Hooks,
    /// Its built-in chains' rule order.
    chains: Vec<(Hooks, model::ChainOrder)>,
}

struct State {
    nl: Result<netlink::Socket, String>,
    legacy: legacy::Reader,
    generation: Option<u32>,
    nft: NftRuleset,
    /// (family, table, chain, handle) -> index in `nft.candidates`.
    nft_index: HashMap<(u8, String, String, u64), usize>,
    capped_at: Option<Instant>,
    legacy_names: Vec<(NfFamily, String)>,
    legacy_tables: BTreeMap<(NfFamily, String), LegacyRead>,
    attribution: Attribution,
    /// What each rule seen is (text filled in once fetched).
    known: HashMap<RuleKey, RuleInfo>,
    /// Rule text fetches done: (backend, family, table) per ruleset generation / legacy size.
    texts_tried: HashSet<(Backend, &'static str, String, u64)>,
    /// No text fetch before this: the tools' CPU time counts against the same 0.5%.
    next_text: Option<Instant>,
    hook_list: BTreeMap<HookId, Vec<Registered>>,
    hook_list_at: Option<Instant>,
    /// None until tried; Some(false) when the kernel has no hook list.
    kernel_hook_list: Option<bool>,
    linked: Vec<NfFamily>,
    /// Hooks that dropped since the last read of counters.
    pending: Hooks,
    /// When the last read was (the period its rates cover starts there).
    last_read: Instant,
    /// No read before this (reads of large rulesets are spaced to 0.5% of a core).
    next_read: Option<Instant>,
    info: RulesInfo,
    errors: Vec<String>,
}

/// Measured drops per hook, cumulative since start.
fn dropped_by_hook(netfilter: &BTreeMap<NfFamily, NfRaw>) -> BTreeMap<HookId, u64> {
    netfilter
        .iter()
        .flat_map(|(&family, raw)| {
            let dropped = hook_dropped(raw);
            NfHook::ALL
                .into_iter()
                .map(move |hook| ((family, hook), dropped[hook as usize]))
        })
        .collect()
}

impl State {
    fn new() -> State {
        State {
            nl: netlink::Socket::open().map_err(|e| format!("netlink: {e}")),
            legacy: legacy::Reader::new(),
            generation: None,
            nft: NftRuleset::default(),
            nft_index: HashMap::new(),
            capped_at: None,
            legacy_names: Vec::new(),
            legacy_tables: BTreeMap::new(),
            attribution: Attribution::default(),
            known: HashMap::new(),
            texts_tried: HashSet::new(),
            next_text: None,
            hook_list: BTreeMap::new(),
            hook_list_at: None,
            kernel_hook_list: None,
            linked: Vec::new(),
            pending: Hooks::NONE,
            last_read: Instant::now(),
            next_read: None,
            info: RulesInfo::default(),
            errors: Vec::new(),
        }
    }

    fn socket(&mut self) -> io::Result<&mut netlink::Socket> {
        self.nl.as_mut().map_err(|e| io::Error::other(e.clone()))
    }

    /// Reads the whole nf_tables ruleset again when `generation` is new. Returns the counters
    /// read (every counted candidate) when it did.
    fn refresh_nft(&mut self, generation: u32) -> io::Result<Option<Vec<(RuleKey, Hooks, u64)>>> {
        if self.generation == Some(generation) {
            return Ok(None);
        }
        if let Some(at) = self.capped_at
            && at.elapsed() < CAPPED_RECHECK
        {
            return Ok(None);
        }
        let sock = self.socket()?;
        let tables = nft::tables(sock)?;
        let chains = nft::chains(sock)?;
        let rules = nft::all_rules(sock)?;
        // A change in the middle of the three dumps: read it all next interval.
        if nft::generation(sock)? != generation {
            return Ok(None);
        }
        self.generation = Some(generation);
        if rules.len() > MAX_RULES {
            self.capped_at = Some(Instant::now());
            self.info.capped = Some(format!(
                "{} nf_tables rules (more than {MAX_RULES}): rule counters are not read",
                rules.len()
            ));
            self.nft = build_nft(tables, chains, &[]);
            self.nft.rules = rules.len();
            self.nft_index.clear();
            return Ok(Some(Vec::new()));
        }
        self.capped_at = None;
        self.info.capped = None;
        self.nft = build_nft(tables, chains, &rules);
        self.nft_index = self
            .nft
            .candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.source {
                Source::Nft {
                    family,
                    table,
                    chain,
                    handle: Some(h),
                } => Some(((*family, table.clone(), chain.clone(), *h), i)),
                _ => None,
            })
            .collect();
        for c in &self.nft.candidates {
            remember(&mut self.known, c);
        }
        self.prune();
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory; nothing refers to it.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(Some(counted(&self.nft.candidates)))
    }

    /// Counters of the nf_tables rules and policies that can run at a hook in `dropping`.
    fn read_nft(&mut self, dropping: Hooks) -> io::Result<Vec<(RuleKey, Hooks, u64)>> {
        let mut chains: BTreeSet<(u8, String, String)> = BTreeSet::new();
        let mut policies = Vec::new();
        for c in &self.nft.candidates {
            if c.reach.intersect(dropping).is_empty() || !matches!(c.counter, Counter::Packets(_)) {
                continue;
            }
            if let Source::Nft {
                family,
                table,
                chain,
                handle,
            } = &c.source
            {
                match handle {
                    Some(_) => chains.insert((*family, table.clone(), chain.clone())),
                    None => {
                        policies.push((c.key.clone(), c.reach, *family, table.clone(), chain.clone()));
                        false
                    }
                };
            }
        }
        let mut out = Vec::new();
        for (family, table, chain) in chains {
            let rules = nft::chain_rules(self.socket()?, family, &table, &chain)?;
            for r in rules {
                let at = (family, table.clone(), chain.clone(), r.handle);
                if let (Some(&i), Some(n)) = (self.nft_index.get(&at), r.counter) {
                    let c = &self.nft.candidates[i];
                    out.push((c.key.clone(), c.reach, n));
                }
            }
        }
        for (key, reach, family, table, chain) in policies {
            let c = nft::chain(self.socket()?, family, &table, &chain)?;
            if let Some(n) = c.base.and_then(|b| b.policy_packets) {
                out.push((key, reach, n));
            }
        }
        Ok(out)
    }

    /// Reads the legacy tables registered at a hook in `dropping` (all of them when
    /// `dropping` is None: the baseline).
    fn read_legacy(&mut self, dropping: Option<Hooks>) -> Vec<(RuleKey, Hooks, u64)> {
        let mut out = Vec::new();
        let mut read_any = false;
        for (family, name) in self.legacy_names.clone() {
            // A table read before is read again only when one of its hooks dropped (it has
            // no generation to tell a change by).
            if let (Some(prev), Some(d)) = (self.legacy_tables.get(&(family, name.clone())), dropping)
                && prev.hooks.intersect(d).is_empty()
            {
                continue;
            }
            let table = match self.legacy.read(family, &name) {
                Ok(t) => t,
                Err(e) => {
                    self.errors.push(format!("iptables-legacy {name}: {e}"));
                    continue;
                }
            };
            if table.entries.len() > MAX_RULES {
                self.info.capped = Some(format!(
                    "legacy table {name} has {} entries (more than {MAX_RULES}): its counters are not read",
                    table.entries.len()
                ));
                continue;
            }
            let candidates = legacy_candidates(&table);
            let hooks = Hooks::from_iter(table.hooks.iter().filter_map(|(h, _)| {
                NfHook::ALL.get(*h as usize).map(|&hook| (family, hook))
            }));
            for c in &candidates {
                remember(&mut self.known, c);
                if let Counter::Packets(n) = c.counter {
                    out.push((c.key.clone(), c.reach, n));
                }
            }
            let mut rules_per_chain: HashMap<String, usize> = HashMap::new();
            for e in table.entries.iter().filter(|e| !e.policy) {
                *rules_per_chain.entry(e.chain.clone()).or_default() += 1;
            }
            read_any = true;
            self.legacy_tables.insert(
                (family, name),
                LegacyRead {
                    candidates,
                    rules_per_chain,
                    entries: table.entries.len(),
                    hooks,
                    chains: legacy_chains(&table),
                },
            );
        }
        if read_any {
            self.prune();
        }
        out
    }

    fn legacy_tables_now() -> Vec<(NfFamily, String)> {
        NfFamily::ALL
            .into_iter()
            .flat_map(|f| legacy::table_names(f).into_iter().map(move |n| (f, n)))
            .collect()
    }

    /// The registered list of every hook of the linked families.
    fn refresh_hook_list(&mut self) {
        self.hook_list_at = Some(Instant::now());
        let iptables_nft: HashSet<(u8, String)> = self
            .nft
            .candidates
            .iter()
            .filter(|c| c.key.backend == Backend::IptablesNft)
            .filter_map(|c| match &c.source {
                Source::Nft { family, table, .. } => Some((*family, table.clone())),
                _ => None,
            })
            .chain(self.nft.tables.iter().filter_map(|t| {
                let bases = self
                    .nft
                    .base_chains
                    .iter()
                    .filter(|c| c.family == t.family && c.table == t.name)
                    .filter_map(|c| Some((c.name.as_str(), c.base.as_ref()?.hooknum)));
                hookmap::is_iptables_nft(t.family, &t.name, bases).then(|| (t.family, t.name.clone()))
            }))
            .collect();
        let mut list = BTreeMap::new();
        let mut kernel_ok = self.kernel_hook_list != Some(false) && self.nl.is_ok();
        if kernel_ok {
            'families: for &family in &self.linked {
                let legacy: Vec<&str> = self
                    .legacy_names
                    .iter()
                    .filter(|(f, _)| *f == family)
                    .map(|(_, n)| n.as_str())
                    .collect();
                for hook in NfHook::ALL {
                    let entries = match self.nl.as_mut() {
                        Ok(sock) => hooklist::list(sock, family.pf(), hook as u32),
                        Err(e) => Err(io::Error::other(e.clone())),
                    };
                    match entries {
                        Ok(entries) => {
                            let r = hookmap::from_kernel(hook as u32, &entries, &legacy, |f, t| {
                                iptables_nft.contains(&(f, t.to_string()))
                            });
                            list.insert((family, hook), r);
                        }
                        Err(e) => {
                            if e.kind() == io::ErrorKind::Unsupported {
                                self.kernel_hook_list = Some(false);
                                self.info.hook_list = format!("composed: {e}");
                            } else {
                                self.errors.push(format!("hook list: {e}"));
                            }
                            kernel_ok = false;
                            break 'families;
                        }
                    }
                }
            }
        }
        if kernel_ok {
            self.kernel_hook_list = Some(true);
            self.info.hook_list = "kernel".into();
            self.hook_list = list;
            return;
        }
        if self.info.hook_list.is_empty() || self.info.hook_list == "kernel" {
            self.info.hook_list = "composed: the kernel's hook list could not be read".into();
        }
        self.hook_list = BTreeMap::new();
        for &family in &self.linked {
            for hook in NfHook::ALL {
                let chains: Vec<hookmap::BaseChainAt> = self
                    .nft
                    .base_chains
                    .iter()
                    .filter_map(|c| {
                        let b = c.base.as_ref()?;
                        let hooks = Hooks::of_base_chain(c.family, b.hooknum);
                        (b.device.is_none() && hooks.contains(family, hook)).then(|| {
                            hookmap::BaseChainAt {
                                family: c.family,
                                table: c.table.as_str(),
                                chain: c.name.as_str(),
                                priority: b.priority,
                                iptables_nft: iptables_nft.contains(&(c.family, c.table.clone())),
                            }
                        })
                    })
                    .collect();
                let legacy: Vec<&str> = self
                    .legacy_tables
                    .iter()
                    .filter(|((f, _), t)| *f == family && t.hooks.contains(family, hook))
                    .map(|((_, n), _)| n.as_str())
                    .collect();
                self.hook_list.insert(
                    (family, hook),
                    hookmap::composed(hook as u32, &chains, &legacy, true),
                );
            }
        }
    }

    /// Fills in the text of the rules in `keys`, fetching each table's text once per
    /// generation.
    fn fetch_texts(&mut self, keys: &[RuleKey]) {
        if self.next_text.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let cpu = children_cpu_us();
        for key in keys {
            let needs = self
                .known
                .get(key)
                .is_some_and(|i| is_placeholder(&i.text));
            if !needs {
                continue;
            }
            let (version, family_pf) = match key.backend {
                Backend::Nft | Backend::IptablesNft => (
                    self.generation.unwrap_or(0) as u64,
                    nft_family(key.family),
                ),
                Backend::IptablesLegacy => {
                    let entries = self
                        .legacy_tables
                        .get(&(legacy_family(key.family), key.table.clone()))
                        .map_or(0, |t| t.entries as u64);
                    (entries, 0)
                }
                Backend::Other => continue,
            };
            let tried = (key.backend, key.family, key.table.clone(), version);
            if !self.texts_tried.insert(tried) {
                continue;
            }
            match key.backend {
                Backend::Nft => self.nft_text(key.family, &key.table),
                Backend::IptablesNft => {
                    self.nft_text(key.family, &key.table);
                    self.iptables_nft_text(family_pf, &key.table);
                }
                Backend::IptablesLegacy => self.legacy_text(key.family, &key.table),
                Backend::Other => {}
            }
        }
        let cost = children_cpu_us().saturating_sub(cpu);
        if cost > 0 {
            self.info.text_cpu_us = cost;
            self.next_text = Some(Instant::now() + Duration::from_micros(cost * READ_CPU_SHARE as u64));
        }
    }

    fn nft_text(&mut self, family: &'static str, table: &str) {
        let Some(text) = text::nft_table(family, table) else {
            return;
        };
        for c in &self.nft.candidates {
            if c.key.family != family || c.key.table != table {
                continue;
            }
            if let RuleId::Handle { handle, .. } = c.key.id
                && let Some(t) = text.get(&(c.key.chain.clone(), handle))
                && let Some(info) = self.known.get_mut(&c.key)
                && is_placeholder(&info.text)
            {
                info.text = t.clone();
            }
        }
    }

    fn iptables_nft_text(&mut self, family: u8, table: &str) {
        let ipv6 = family == nft::FAMILY_IPV6;
        let Some(save) = text::iptables_table(ipv6, false, table) else {
            return;
        };
        for c in &self.nft.candidates {
            if c.key.backend != Backend::IptablesNft || c.key.table != table || c.is_policy() {
                continue;
            }
            let order = self
                .nft
                .order
                .get(&(family, table.to_string(), c.key.chain.clone()));
            let lines = save.get(&c.key.chain);
            // Positions match only when both list the same number of rules.
            if let (Some(order), Some(lines), Some(i)) = (order, lines, c.info.handle_or_index)
                && order.len() == lines.len()
                && let Some(line) = lines.get(i as usize - 1)
                && let Some(info) = self.known.get_mut(&c.key)
            {
                info.text = line.clone();
            }
        }
    }

    fn legacy_text(&mut self, family: &'static str, table: &str) {
        let fam = legacy_family(family);
        let Some(save) = text::iptables_table(fam == NfFamily::Ipv6, true, table) else {
            return;
        };
        let Some(read) = self.legacy_tables.get(&(fam, table.to_string())) else {
            return;
        };
        for c in &read.candidates {
            if c.is_policy() {
                continue;
            }
            let lines = save.get(&c.key.chain);
            let count = read.rules_per_chain.get(&c.key.chain);
            if let (Some(lines), Some(&count), Some(i)) = (lines, count, c.info.handle_or_index)
                && lines.len() == count
                && let Some(line) = lines.get(i as usize - 1)
                && let Some(info) = self.known.get_mut(&c.key)
            {
                info.text = line.clone();
            }
        }
    }

    /// Forgets rules that are gone: their last counter value, and what they were unless
    /// packets stay attributed to them (churning rulesets must not grow these maps).
    fn prune(&mut self) {
        let present: HashSet<RuleKey> = self.candidates().map(|c| c.key.clone()).collect();
        self.attribution.retain(|k| present.contains(k));
        let attribution = &self.attribution;
        self.known
            .retain(|k, _| present.contains(k) || attribution.tracks(k));
    }

    /// Every candidate now (nf_tables and legacy).
    fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.nft
            .candidates
            .iter()
            .chain(self.legacy_tables.values().flat_map(|t| t.candidates.iter()))
    }

    /// This sample's part: per hook of the linked families, registered functions, the rules
    /// attributed there, and (where drops remain unattributed) rules without a counter.
    fn raw(&mut self, dropped: &BTreeMap<HookId, u64>) -> RulesRaw {
        let mut hooks = BTreeMap::new();
        let mut wanted: Vec<RuleKey> = Vec::new();
        let capped = self.info.capped.is_some();
        for &family in &self.linked {
            for hook in NfHook::ALL {
                let id = (family, hook);
                let mut rows: Vec<RawRow> = self
                    .attribution
                    .at(id)
                    .filter(|(_, a)| a.packets > 0 || a.shared > 0)
                    .map(|(k, a)| RawRow {
                        key: k.clone(),
                        info: RuleInfo::default(),
                        packets: Some(a.packets),
                        per_s: Some(self.attribution.rate(id, k)),
                        shared: a.shared,
                        note: None,
                    })
                    .collect();
                let attributed: u64 = rows.iter().filter_map(|r| r.packets).sum();
                let measured = dropped.get(&id).copied().unwrap_or(0);
                if measured > attributed {
                    let mut uncounted: Vec<&Candidate> = self
                        .candidates()
                        .filter(|c| c.reach.contains(family, hook))
                        .filter(|c| !matches!(c.counter, Counter::Packets(_)))
                        .collect();
                    uncounted.sort_by(|a, b| a.key.cmp(&b.key));
                    rows.extend(uncounted.into_iter().take(UNCOUNTED_SHOWN).map(|c| RawRow {
                        key: c.key.clone(),
                        info: RuleInfo::default(),
                        packets: None,
                        per_s: None,
                        shared: 0,
                        note: c.counter.note(c.is_policy()),
                    }));
                }
                wanted.extend(rows.iter().map(|r| r.key.clone()));
                let mut chains: Vec<model::ChainOrder> = self
                    .nft
                    .chains
                    .iter()
                    .chain(self.legacy_tables.values().flat_map(|t| t.chains.iter()))
                    .filter(|(h, _)| h.contains(family, hook))
                    .map(|(_, c)| c.clone())
                    .collect();
                chains.sort_by_key(|c| c.priority);
                hooks.insert(
                    id,
                    HookRaw {
                        registered: self.hook_list.get(&id).cloned().unwrap_or_default(),
                        chains,
                        rows,
                        attributed: (!capped || attributed > 0).then_some(attributed),
                    },
                );
            }
        }
        self.fetch_texts(&wanted);
        for h in hooks.values_mut() {
            for row in &mut h.rows {
                row.info = self.known.get(&row.key).cloned().unwrap_or_else(|| RuleInfo {
                    handle_or_index: None,
                    text: if row.key.backend == Backend::Other {
                        "(rules with the fewest drops, together)".into()
                    } else {
                        "(no longer in the ruleset)".into()
                    },
                    verdict: "drop",
                });
            }
        }
        let mut info = self.info.clone();
        info.ruleset_rules = (self.nft.rules
            + self.legacy_tables.values().map(|t| t.entries).sum::<usize>())
            as u64;
        info.errors = std::mem::take(&mut self.errors);
        RulesRaw { hooks, info }
    }
}

fn is_placeholder(text: &str) -> bool {
    text.starts_with("handle ") || text.contains(" (rule ")
}

fn nft_family(name: &str) -> u8 {
    match name {
        "ip" => nft::FAMILY_IPV4,
        "ip6" => nft::FAMILY_IPV6,
        "inet" => nft::FAMILY_INET,
        _ => 0,
    }
}

fn legacy_family(name: &str) -> NfFamily {
    if name == "ip6" {
        NfFamily::Ipv6
    } else {
        NfFamily::Ipv4
    }
}

/// Keeps what a candidate is (its position may have moved; fetched text is kept).
fn remember(known: &mut HashMap<RuleKey, RuleInfo>, c: &Candidate) {
    known
        .entry(c.key.clone())
        .and_modify(|i| i.handle_or_index = c.info.handle_or_index)
        .or_insert_with(|| c.info.clone());
}

/// The counters of the candidates that have one.
fn counted(candidates: &[Candidate]) -> Vec<(RuleKey, Hooks, u64)> {
    candidates
        .iter()
        .filter_map(|c| match c.counter {
            Counter::Packets(n) => Some((c.key.clone(), c.reach, n)),
            _ => None,
        })
        .collect()
}

impl Rules {
    fn state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Probe for Rules {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, _setup: &mut Setup<'_>) {}

    fn load(&mut self, _ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        Ok(())
    }

    fn take_maps(&mut self, _ebpf: &mut Ebpf) -> Result<(), SetupError> {
        Ok(())
    }

    fn attach(&mut self, _ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        self.status.advance(|| Ok(Status::Reading));
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    /// Every counter once: what later reads count from. Errors never stop the run: they
    /// show in `netfilter_rules.errors`.
    fn baseline(&mut self, _zero: &mut RawSample) -> io::Result<()> {
        let mut st = State::new();
        let mut reads = Vec::new();
        let mut complete = true;
        match st
            .socket()
            .and_then(nft::generation)
            .and_then(|g| st.refresh_nft(g))
        {
            Ok(Some(r)) => reads.extend(r),
            Ok(None) => complete = false,
            Err(e) => {
                // No nf_tables (or no netlink): legacy iptables may still be there.
                st.errors.push(format!("nf_tables: {e}"));
            }
        }
        st.legacy_names = State::legacy_tables_now();
        reads.extend(st.read_legacy(None));
        let reads = reads.into_iter().map(|(k, _, n)| (k, n));
        st.attribution.baseline(reads, complete, &BTreeMap::new());
        *self.state() = Some(st);
        Ok(())
    }

    /// Reads what the hooks that dropped need (see the module docs for the cost rules).
    /// Errors never stop the run: they show in `netfilter_rules.errors`.
    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        let mut guard = self.state();
        let Some(st) = guard.as_mut() else {
            return Ok(());
        };
        let dropped = dropped_by_hook(&raw.netfilter);
        let dropping = st.attribution.dropping(&dropped);
        st.pending = st.pending.union(dropping);
        let linked: Vec<NfFamily> = raw.netfilter.keys().copied().collect();
        let mut changed = linked != st.linked;
        st.linked = linked;
        let generation = match st.socket().and_then(nft::generation) {
            Ok(g) => Some(g),
            Err(e) => {
                st.errors.push(format!("nf_tables: {e}"));
                None
            }
        };
        let names = State::legacy_tables_now();
        let new_names = names != st.legacy_names;
        let new_generation = generation.is_some() && generation != st.generation;
        let allowed = st.next_read.is_none_or(|t| Instant::now() >= t);
        if allowed && (new_generation || new_names || !st.pending.is_empty()) {
            let cpu = thread_cpu_us();
            let pending = st.pending;
            let mut reads = Vec::new();
            match generation.map(|g| st.refresh_nft(g)) {
                Some(Ok(Some(r))) => {
                    changed = true;
                    reads.extend(r);
                }
                Some(Ok(None)) if !pending.is_empty() && st.capped_at.is_none() => {
                    match st.read_nft(pending) {
                        Ok(r) => reads.extend(r),
                        Err(e) => st.errors.push(format!("nf_tables: {e}")),
                    }
                }
                Some(Err(e)) => st.errors.push(format!("nf_tables: {e}")),
                _ => {}
            }
            if new_names {
                st.legacy_names = names;
                st.legacy_tables.retain(|k, _| st.legacy_names.contains(k));
                changed = true;
            }
            reads.extend(st.read_legacy(Some(pending)));
            let period = st.last_read.elapsed().as_millis() as u64;
            st.attribution.apply(reads, pending, period);
            st.last_read = Instant::now();
            st.pending = Hooks::NONE;
            let cost = thread_cpu_us().saturating_sub(cpu);
            let spacing = Duration::from_micros(cost * READ_CPU_SHARE as u64);
            st.info.read_cpu_us = cost;
            st.info.read_every_ms = spacing.as_millis() as u64;
            st.next_read = Some(st.last_read + spacing);
        } else if st.pending.is_empty() {
            // Nothing dropped: no rule did; the next read's period starts now.
            st.attribution.idle();
            st.last_read = Instant::now();
        }
        let due = st
            .hook_list_at
            .is_none_or(|at| at.elapsed() >= HOOK_LIST_EVERY && st.kernel_hook_list == Some(true));
        if changed || due {
            st.refresh_hook_list();
        }
        raw.rules = Some(st.raw(&dropped));
        Ok(())
    }
}

/// CPU time (user + system) of the children netpost waited for (nft, iptables-save), µs.
fn children_cpu_us() -> u64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid rusage to write into.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// CPU time (user + system) of the calling thread, µs.
fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}
