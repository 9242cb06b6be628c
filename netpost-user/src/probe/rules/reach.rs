//! Which hooks a chain's rules can run at: base chains are registered at hooks, other chains
//! are reached through jumps and gotos. Pure.
use std::collections::HashMap;

use netpost_common::netfilter::{NfFamily, NfHook};

/// A hook of a family, as the JSON names it (`netfilter.ipv4.forward`).
pub type HookId = (NfFamily, NfHook);

/// A set of (family, hook): bit `family * 5 + hook`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Hooks(u16);

impl Hooks {
    pub const NONE: Hooks = Hooks(0);

    fn bit(family: NfFamily, hook: NfHook) -> u16 {
        1 << (family as usize * NfHook::COUNT + hook as usize)
    }

    pub fn one(family: NfFamily, hook: NfHook) -> Hooks {
        Hooks(Hooks::bit(family, hook))
    }

    /// The hooks a table family's base chain at `hooknum` runs at: `ip` IPv4, `ip6` IPv6,
    /// `inet` both; none for other families or hooks netpost does not watch (ingress).
    pub fn of_base_chain(table_family: u8, hooknum: u32) -> Hooks {
        let Some(hook) = NfHook::ALL.get(hooknum as usize).copied() else {
            return Hooks::NONE;
        };
        match table_family {
            1 => Hooks::one(NfFamily::Ipv4, hook).union(Hooks::one(NfFamily::Ipv6, hook)),
            2 => Hooks::one(NfFamily::Ipv4, hook),
            10 => Hooks::one(NfFamily::Ipv6, hook),
            _ => Hooks::NONE,
        }
    }

    pub fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    pub fn intersect(self, other: Hooks) -> Hooks {
        Hooks(self.0 & other.0)
    }

    pub fn contains(self, family: NfFamily, hook: NfHook) -> bool {
        self.0 & Hooks::bit(family, hook) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Only the hooks of the family `nfproto` names (NFPROTO_IPV4 2, NFPROTO_IPV6 10), when a
    /// rule matches on it (`meta nfproto`, `ip saddr` in an inet table).
    pub fn restrict(self, nfproto: Option<u8>) -> Hooks {
        let Some(family) = nfproto.and_then(NfFamily::from_pf) else {
            return self;
        };
        let mask = NfHook::ALL
            .iter()
            .fold(Hooks::NONE, |m, &h| m.union(Hooks::one(family, h)));
        self.intersect(mask)
    }

    pub fn iter(self) -> impl Iterator<Item = HookId> {
        NfFamily::ALL
            .into_iter()
            .flat_map(|f| NfHook::ALL.into_iter().map(move |h| (f, h)))
            .filter(move |&(f, h)| self.contains(f, h))
    }

}

impl FromIterator<HookId> for Hooks {
    fn from_iter<I: IntoIterator<Item = HookId>>(ids: I) -> Hooks {
        ids.into_iter()
            .fold(Hooks::NONE, |m, (f, h)| m.union(Hooks::one(f, h)))
    }
}

/// A jump or goto from one chain to another of the same table; `restrict` is the jumping
/// rule's `meta nfproto`, if any.
pub struct Edge<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub restrict: Option<u8>,
}

/// The hooks every chain of one table runs at, given its base chains' hooks and its jumps.
/// Chains nothing reaches are absent.
pub fn reach<'a>(
    bases: impl IntoIterator<Item = (&'a str, Hooks)>,
    edges: &[Edge<'a>],
) -> HashMap<&'a str, Hooks> {
    let mut out: HashMap<&str, Hooks> = HashMap::new();
    let mut work: Vec<&str> = Vec::new();
    for (chain, hooks) in bases {
        let e = out.entry(chain).or_default();
        *e = e.union(hooks);
        work.push(chain);
    }
    let mut by_from: HashMap<&str, Vec<&Edge>> = HashMap::new();
    for e in edges {
        by_from.entry(e.from).or_default().push(e);
    }
    // Each chain's set only grows and has 10 bits, so this ends.
    while let Some(chain) = work.pop() {
        let hooks = out[chain];
        for e in by_from.get(chain).into_iter().flatten() {
            let add = hooks.restrict(e.restrict);
            let target = out.entry(e.to).or_default();
            let grown = target.union(add);
            if grown != *target {
                *target = grown;
                work.push(e.to);
            }
        }
    }
    out.retain(|_, h| !h.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use NfFamily::*;
    use NfHook::*;

    #[test]
    fn base_chain_families() {
        assert_eq!(Hooks::of_base_chain(2, 2), Hooks::one(Ipv4, Forward));
        assert_eq!(Hooks::of_base_chain(10, 0), Hooks::one(Ipv6, PreRouting));
        let inet = Hooks::of_base_chain(1, 1);
        assert_eq!(inet.iter().collect::<Vec<_>>(), [(Ipv4, LocalIn), (Ipv6, LocalIn)]);
        assert_eq!(inet.restrict(Some(10)), Hooks::one(Ipv6, LocalIn));
        // Ingress (5) and non-IP families are not netpost's hooks.
        assert!(Hooks::of_base_chain(1, 5).is_empty());
        assert!(Hooks::of_base_chain(7, 1).is_empty());
    }

    #[test]
    fn jumps_carry_hooks_to_user_chains_through_cycles_and_restrictions() {
        let bases = [
            ("input", Hooks::of_base_chain(1, 1)),
            ("forward", Hooks::of_base_chain(1, 2)),
        ];
        let edges = [
            Edge {
                from: "input",
                to: "common",
                restrict: None,
            },
            Edge {
                from: "forward",
                to: "common",
                restrict: Some(2),
            },
            Edge {
                from: "common",
                to: "deep",
                restrict: None,
            },
            // A cycle nft would refuse, but the walk must end anyway.
            Edge {
                from: "deep",
                to: "common",
                restrict: None,
            },
        ];
        let r = reach(bases, &edges);
        let want = Hooks::from_iter([(Ipv4, LocalIn), (Ipv6, LocalIn), (Ipv4, Forward)]);
        assert_eq!(r["common"], want);
        assert_eq!(r["deep"], want);
        assert!(!r.contains_key("orphan"));
        assert_eq!(r["forward"].len(), 2);
    }
}
