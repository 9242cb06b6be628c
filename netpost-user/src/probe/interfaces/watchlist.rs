//! Which interfaces netpost watches, and the counters slot each one counts into: pure
//! bookkeeping, tested without root. The probe (mod.rs) carries out its [`Plan`]s: attach,
//! detach, register an ifindex to a slot.
//!
//! A slot belongs to a name. A watched device that is deleted keeps its slot (its totals); a
//! device of the same name that appears later counts into that slot again, so the name's
//! totals go on from where they were. Only when every slot is taken and a new device wants
//! one does the name deleted longest ago give its slot up, and its totals are forgotten: a
//! present interface matters more than a deleted one's history (on a Kubernetes node pod
//! veths come and go under new names all day).
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::glob;

/// What `-i` asked for: names, and globs that also take the devices created later.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    names: Vec<String>,
    patterns: Vec<String>,
}

/// Why a device is watched, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why<'a> {
    Named,
    Pattern(&'a str),
}

impl Spec {
    /// `-i` arguments: globs ([`glob::is_pattern`]) and names.
    pub fn new(args: &[String]) -> Spec {
        let (patterns, names) = args.iter().cloned().partition(|a| glob::is_pattern(a));
        Spec { names, patterns }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether a device called `name` is to be watched, and why.
    pub fn wants(&self, name: &str) -> Option<Why<'_>> {
        if self.names.iter().any(|n| n == name) {
            return Some(Why::Named);
        }
        self.patterns
            .iter()
            .find(|p| glob::matches(p, name))
            .map(|p| Why::Pattern(p))
    }
}

/// Where a watched name stands (the JSON's `interfaces[if].status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IfaceStatus {
    /// Attached since netpost started, or since it appeared.
    #[default]
    Watching,
    /// Deleted (or renamed away) while netpost ran: its totals stay, frozen.
    Gone,
    /// Deleted and back under the same name: attached again, its totals going on.
    Reattached,
}

impl IfaceStatus {
    pub fn name(self) -> &'static str {
        match self {
            IfaceStatus::Watching => "watching",
            IfaceStatus::Gone => "gone",
            IfaceStatus::Reattached => "reattached",
        }
    }
}

/// One watched name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub slot: u32,
    /// The device counted now; None while the name is gone.
    pub ifindex: Option<u32>,
    pub mtu: u32,
    pub status: IfaceStatus,
    /// How often a device of this name came back after one was deleted.
    pub reattached: u64,
    /// Order of deletion: the smallest gives its slot up first.
    gone_seq: u64,
}

/// How an [`Plan::Attach`] came about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// A name not watched before (at start, or a new device matching a pattern): its slot
    /// counts from now.
    New,
    /// A deleted name is back: its slot's totals go on.
    Back,
    /// A new name in the slot of `forgot`, deleted longest ago: counts from now, and
    /// `forgot`'s totals are dropped.
    Recycled { forgot: String },
}

/// What the probe is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Count device `ifindex`, called `name`, into `slot`, and attach to it.
    Attach {
        name: String,
        ifindex: u32,
        mtu: u32,
        slot: u32,
        how: How,
    },
    /// `name`'s device `ifindex` is gone (or renamed): stop counting it, drop its links.
    Detach { name: String, ifindex: u32 },
    /// A watched device's MTU changed: register it again (XDP's segment estimates use it).
    Mtu { ifindex: u32, slot: u32, mtu: u32 },
    /// `name` is wanted, but every slot holds a present interface.
    OverCap { name: String },
}

/// The watched names and their slots.
#[derive(Clone, Debug)]
pub struct WatchList {
    spec: Spec,
    slots: u32,
    entries: Vec<Entry>,
    /// Wanted devices without a slot: name -> (ifindex, mtu).
    over_cap: BTreeMap<String, (u32, u32)>,
    /// Devices netpost could not attach to (another tool's XDP program, gone meanwhile): not
    /// tried again until deleted, so their notifications do not repeat the failure.
    failed: BTreeSet<u32>,
    seq: u64,
}

impl WatchList {
    /// An empty list for `spec` with `slots` counters slots.
    pub fn new(spec: Spec, slots: u32) -> WatchList {
        WatchList {
            spec,
            slots,
            entries: Vec::new(),
            over_cap: BTreeMap::new(),
            failed: BTreeSet::new(),
            seq: 0,
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Every watched name, present or gone, in slot order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        let mut by_slot: Vec<&Entry> = self.entries.iter().collect();
        by_slot.sort_by_key(|e| e.slot);
        by_slot.into_iter()
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Names deleted while netpost ran and not back.
    pub fn gone(&self) -> Vec<String> {
        let mut gone: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.status == IfaceStatus::Gone)
            .map(|e| e.name.clone())
            .collect();
        gone.sort();
        gone
    }

    /// Wanted devices that have no slot.
    pub fn over_cap(&self) -> Vec<String> {
        self.over_cap.keys().cloned().collect()
    }

    /// Device `ifindex` called `name` exists (at start, or a notification says it changed).
    pub fn present(&mut self, ifindex: u32, name: &str, mtu: u32) -> Vec<Plan> {
        let mut plans = Vec::new();
        if let Some(i) = self.by_ifindex(ifindex) {
            let e = &mut self.entries[i];
            if e.name == name {
                if e.mtu != mtu {
                    e.mtu = mtu;
                    plans.push(Plan::Mtu {
                        ifindex,
                        slot: e.slot,
                        mtu,
                    });
                }
                return plans;
            }
            // Renamed: the old name is gone.
            plans.extend(self.lose(i));
        }
        self.over_cap.retain(|n, (i, _)| *i != ifindex || n == name);
        if self.failed.contains(&ifindex) {
            return plans;
        }
        if let Some(i) = self.entries.iter().position(|e| e.name == name) {
            if self.entries[i].ifindex.is_some() {
                // Another device had this name and its deletion went unnoticed (notifications
                // lost): that one is gone.
                plans.extend(self.lose(i));
            }
            let e = &mut self.entries[i];
            e.ifindex = Some(ifindex);
            e.mtu = mtu;
            e.status = IfaceStatus::Reattached;
            e.reattached += 1;
            plans.push(Plan::Attach {
                name: name.to_string(),
                ifindex,
                mtu,
                slot: e.slot,
                how: How::Back,
            });
            return plans;
        }
        if self.spec.wants(name).is_none() {
            return plans;
        }
        let (slot, how) = match self.free_slot() {
            Some(slot) => (slot, How::New),
            None => match self.oldest_gone() {
                Some(i) => {
                    let old = self.entries.remove(i);
                    (old.slot, How::Recycled { forgot: old.name })
                }
                None => {
                    if self
                        .over_cap
                        .insert(name.to_string(), (ifindex, mtu))
                        .is_none()
                    {
                        plans.push(Plan::OverCap {
                            name: name.to_string(),
                        });
                    }
                    return plans;
                }
            },
        };
        self.entries.push(Entry {
            name: name.to_string(),
            slot,
            ifindex: Some(ifindex),
            mtu,
            status: IfaceStatus::Watching,
            reattached: 0,
            gone_seq: 0,
        });
        plans.push(Plan::Attach {
            name: name.to_string(),
            ifindex,
            mtu,
            slot,
            how,
        });
        plans
    }

    /// Device `ifindex` was deleted (or left the namespace).
    pub fn deleted(&mut self, ifindex: u32) -> Vec<Plan> {
        self.failed.remove(&ifindex);
        self.over_cap.retain(|_, (i, _)| *i != ifindex);
        let Some(i) = self.by_ifindex(ifindex) else {
            return Vec::new();
        };
        let mut plans = self.lose(i);
        plans.extend(self.fill_from_over_cap());
        plans
    }

    /// The devices there are now, `(ifindex, name, mtu)`: at start (after the devices netpost
    /// was started with), and whenever notifications were lost.
    pub fn resync(&mut self, devices: &[(u32, String, u32)]) -> Vec<Plan> {
        let mut plans = Vec::new();
        let exists = |ifindex: u32, name: &str| {
            devices
                .iter()
                .any(|(i, n, _)| *i == ifindex && n.as_str() == name)
        };
        let lost: Vec<u32> = self
            .entries
            .iter()
            .filter_map(|e| e.ifindex.filter(|&i| !exists(i, &e.name)))
            .collect();
        for ifindex in lost {
            if let Some(i) = self.by_ifindex(ifindex) {
                plans.extend(self.lose(i));
            }
        }
        self.over_cap.retain(|n, (i, _)| exists(*i, n));
        self.failed
            .retain(|&i| devices.iter().any(|(index, _, _)| *index == i));
        let mut sorted: Vec<&(u32, String, u32)> = devices.iter().collect();
        sorted.sort();
        for (ifindex, name, mtu) in sorted {
            plans.extend(self.present(*ifindex, name, *mtu));
        }
        plans
    }

    /// Attaching as `plan` said did not work: the name is as before it (a new name is
    /// dropped, a returning one stays gone), and the device is not tried again.
    pub fn failed(&mut self, plan: &Plan) {
        let Plan::Attach {
            name, ifindex, how, ..
        } = plan
        else {
            return;
        };
        self.failed.insert(*ifindex);
        let Some(i) = self.entries.iter().position(|e| &e.name == name) else {
            return;
        };
        match how {
            How::New | How::Recycled { .. } => {
                self.entries.remove(i);
            }
            How::Back => {
                self.seq += 1;
                let e = &mut self.entries[i];
                e.ifindex = None;
                e.status = IfaceStatus::Gone;
                e.reattached -= 1;
                e.gone_seq = self.seq;
            }
        }
    }

    fn by_ifindex(&self, ifindex: u32) -> Option<usize> {
        self.entries.iter().position(|e| e.ifindex == Some(ifindex))
    }

    fn lose(&mut self, i: usize) -> Vec<Plan> {
        self.seq += 1;
        let e = &mut self.entries[i];
        let Some(ifindex) = e.ifindex.take() else {
            return Vec::new();
        };
        e.status = IfaceStatus::Gone;
        e.gone_seq = self.seq;
        vec![Plan::Detach {
            name: e.name.clone(),
            ifindex,
        }]
    }

    fn free_slot(&self) -> Option<u32> {
        (0..self.slots).find(|s| !self.entries.iter().any(|e| e.slot == *s))
    }

    fn oldest_gone(&self) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.ifindex.is_none())
            .min_by_key(|(_, e)| e.gone_seq)
            .map(|(i, _)| i)
    }

    /// A slot became recyclable: the first device waiting for one takes it.
    fn fill_from_over_cap(&mut self) -> Vec<Plan> {
        let Some((name, (ifindex, mtu))) = self.over_cap.pop_first() else {
            return Vec::new();
        };
        self.present(ifindex, &name, mtu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(args: &[&str], slots: u32) -> WatchList {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        WatchList::new(Spec::new(&args), slots)
    }

    fn attach(name: &str, ifindex: u32, slot: u32, how: How) -> Plan {
        Plan::Attach {
            name: name.into(),
            ifindex,
            mtu: 1500,
            slot,
            how,
        }
    }

    fn detach(name: &str, ifindex: u32) -> Plan {
        Plan::Detach {
            name: name.into(),
            ifindex,
        }
    }

    #[test]
    fn names_and_patterns_are_wanted() {
        let spec = Spec::new(&["eth0".into(), "veth*".into()]);
        assert_eq!(spec.wants("eth0"), Some(Why::Named));
        assert_eq!(spec.wants("veth12"), Some(Why::Pattern("veth*")));
        assert_eq!(spec.wants("eth1"), None);
        assert_eq!(spec.names(), ["eth0"]);
        assert_eq!(spec.patterns(), ["veth*"]);
    }

    #[test]
    fn a_deleted_name_keeps_its_slot_and_comes_back_into_it() {
        let mut l = list(&["a", "b"], 4);
        assert_eq!(l.present(5, "a", 1500), [attach("a", 5, 0, How::New)]);
        assert_eq!(l.present(6, "b", 1500), [attach("b", 6, 1, How::New)]);
        assert!(l.present(7, "c", 1500).is_empty(), "not wanted");
        assert_eq!(l.deleted(5), [detach("a", 5)]);
        assert_eq!(l.gone(), ["a"]);
        assert_eq!(l.entry("a").unwrap().status, IfaceStatus::Gone);
        assert!(l.deleted(5).is_empty(), "said once");
        assert_eq!(l.present(9, "a", 1500), [attach("a", 9, 0, How::Back)]);
        let a = l.entry("a").unwrap();
        assert_eq!(
            (a.status, a.reattached, a.ifindex),
            (IfaceStatus::Reattached, 1, Some(9))
        );
        assert!(l.gone().is_empty());
        l.deleted(9);
        l.present(10, "a", 1500);
        assert_eq!(l.entry("a").unwrap().reattached, 2);
    }

    #[test]
    fn notifications_that_repeat_what_is_known_change_nothing() {
        let mut l = list(&["a"], 4);
        l.present(5, "a", 1500);
        assert!(l.present(5, "a", 1500).is_empty());
        assert_eq!(
            l.present(5, "a", 9000),
            [Plan::Mtu {
                ifindex: 5,
                slot: 0,
                mtu: 9000
            }]
        );
    }

    #[test]
    fn a_rename_is_a_deletion_of_the_old_name() {
        let mut l = list(&["veth*"], 4);
        l.present(5, "veth0", 1500);
        assert_eq!(l.present(5, "other", 1500), [detach("veth0", 5)]);
        assert_eq!(
            l.present(5, "veth9", 1500),
            [attach("veth9", 5, 1, How::New)],
            "veth0 keeps slot 0"
        );
    }

    #[test]
    fn a_missed_deletion_is_noticed_when_the_name_reappears() {
        let mut l = list(&["a"], 4);
        l.present(5, "a", 1500);
        assert_eq!(
            l.present(8, "a", 1500),
            [detach("a", 5), attach("a", 8, 0, How::Back)]
        );
    }

    #[test]
    fn patterns_take_new_devices_up_to_the_cap_then_recycle_the_longest_gone() {
        let mut l = list(&["v*"], 2);
        l.present(1, "v1", 1500);
        l.present(2, "v2", 1500);
        assert_eq!(
            l.present(3, "v3", 1500),
            [Plan::OverCap { name: "v3".into() }]
        );
        assert!(l.present(3, "v3", 1500).is_empty(), "said once");
        assert_eq!(l.over_cap(), ["v3"]);
        // v2 goes: its slot is the one v3 waited for.
        assert_eq!(
            l.deleted(2),
            [
                detach("v2", 2),
                attach(
                    "v3",
                    3,
                    1,
                    How::Recycled {
                        forgot: "v2".into()
                    }
                )
            ]
        );
        assert!(l.over_cap().is_empty());
        assert!(l.entry("v2").is_none(), "forgotten");
        // Both gone, then a new one takes the slot gone longest.
        l.deleted(1);
        l.deleted(3);
        assert_eq!(
            l.present(4, "v4", 1500),
            [attach(
                "v4",
                4,
                0,
                How::Recycled {
                    forgot: "v1".into()
                }
            )]
        );
        assert_eq!(l.gone(), ["v3"]);
    }

    #[test]
    fn an_over_cap_device_that_goes_away_is_no_longer_waiting() {
        let mut l = list(&["v*"], 1);
        l.present(1, "v1", 1500);
        l.present(2, "v2", 1500);
        assert!(l.deleted(2).is_empty());
        assert!(l.over_cap().is_empty());
        assert_eq!(l.deleted(1), [detach("v1", 1)], "nobody waits");
    }

    #[test]
    fn resync_finds_what_notifications_missed() {
        let mut l = list(&["a", "v*"], 8);
        l.present(5, "a", 1500);
        l.present(6, "v1", 1500);
        let now = [
            (9, "a".to_string(), 1500),
            (7, "v2".to_string(), 1500),
            (1, "lo".to_string(), 65536),
        ];
        assert_eq!(
            l.resync(&now),
            [
                detach("a", 5),
                detach("v1", 6),
                attach("v2", 7, 2, How::New),
                attach("a", 9, 0, How::Back),
            ]
        );
        assert!(l.resync(&now).is_empty(), "nothing new the second time");
    }

    #[test]
    fn a_failed_attach_is_undone_and_not_retried() {
        let mut l = list(&["a", "v*"], 8);
        let plans = l.present(6, "v1", 1500);
        l.failed(&plans[0]);
        assert!(l.entry("v1").is_none());
        assert!(l.present(6, "v1", 1500).is_empty(), "not retried");
        l.deleted(6);
        assert_eq!(l.present(6, "v1", 1500).len(), 1, "a new device is tried");

        l.present(5, "a", 1500);
        l.deleted(5);
        let plans = l.present(8, "a", 1500);
        l.failed(&plans[0]);
        let a = l.entry("a").unwrap();
        assert_eq!((a.status, a.reattached), (IfaceStatus::Gone, 0));
    }
}
