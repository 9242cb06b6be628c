//! Per-device packet counters: the XDP program and the tc ingress/egress programs (which also
//! feed the flow table), attached to every watched device. A program this kernel refuses, or
//! an attachment a device refuses, is off with its reason and the others count on (XDP alone,
//! tc alone); only a device where neither can run aborts the run, and so does another tool's
//! XDP program on a device (netpost never replaces it).
//!
//! Devices come and go while netpost runs: the kernel's link notifications ([`links`]) tell
//! the probe, the watch list ([`watchlist`]) decides, and the probe attaches to a device of a
//! watched name or pattern that appears, and lets go of one that is deleted (its totals stay
//! in its slot).
mod device;
pub mod glob;
pub mod links;
pub mod model;
pub mod watchlist;

use std::{collections::BTreeMap, io};

use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, ProgramArray},
    programs::{Program, ProgramError, SchedClassifier, Xdp},
};
use netpost_common::{Hook, HookCounters, IFINDEX_ARRAY, IfaceInfo, MAX_IFACES};

use crate::{
    error::SetupError,
    loader::{
        attach::{self, XdpChoice},
        maps,
    },
    model::RawSample,
    netdev::{self, NetDev},
    probe::{
        api::{Probe, Setup, Target, Tick},
        status::Status,
    },
};
use device::DevLinks;
use links::{LinkEvent, LinkWatch, LinksReady};
use model::{AttachInfo, IfaceCounters, IfaceState};
use watchlist::{How, Plan, Spec, WatchList, Why};

pub const PROG_XDP: &str = "netpost_xdp";
pub const PROG_TC_IN: &str = "netpost_tc_in";
pub const PROG_TC_OUT: &str = "netpost_tc_out";
/// What follows the count at tc (a tunnel's inner headers, the flow): tail-called by the two
/// tc programs through [`MAP_TC_AFTER`], never attached.
pub const PROG_TC_AFTER: &str = "netpost_tc_after";
const MAP_TC_AFTER: &str = "NETPOST_TC_AFTER";
const MAP_IFACES: &str = "NETPOST_IFACES";
const MAP_IFACES_BY_INDEX: &str = "NETPOST_IFACES_BY_INDEX";
const MAP_COUNTERS: &str = "NETPOST_COUNTERS";

/// A watched device netpost is attached to now.
struct Attached {
    dev: NetDev,
    info: AttachInfo,
    links: DevLinks,
}

/// The handles of the programs' maps.
struct Maps {
    counters: PerCpuArray<MapData, HookCounters>,
    /// Holds `netpost_tc_after` for the tail call (the kernel empties a program array once
    /// no process holds it).
    after: ProgramArray<MapData>,
    by_index: Array<MapData, IfaceInfo>,
    by_hash: BpfHashMap<MapData, u32, IfaceInfo>,
}

pub struct Interfaces {
    status: Status,
    maps: Option<Maps>,
    list: WatchList,
    /// The devices attached now, by watched name.
    attached: BTreeMap<String, Attached>,
    /// Per slot: the reading its name counts from (taken when the name got the slot, and for
    /// every slot at the start of counting).
    base: BTreeMap<u32, IfaceCounters>,
    /// Link notifications (None if the socket could not be opened: devices are then only
    /// those netpost started with).
    links: Option<LinkWatch>,
    xdp: XdpChoice,
    tcx: bool,
    /// What happened at start beyond the devices given (a pattern's later matches, a device
    /// over the cap, filters a killed netpost left), for [`Probe::report`].
    notes: Vec<String>,
    /// Programs this kernel refused to load, with why: no device runs them.
    refused: BTreeMap<&'static str, String>,
}

impl Default for Interfaces {
    fn default() -> Self {
        Interfaces {
            status: Status::default(),
            maps: None,
            list: WatchList::new(Spec::default(), MAX_IFACES),
            attached: BTreeMap::new(),
            base: BTreeMap::new(),
            links: None,
            xdp: XdpChoice::Auto,
            tcx: true,
            notes: Vec::new(),
            refused: BTreeMap::new(),
        }
    }
}

/// The XDP program inside `ebpf` (loaded by [`Interfaces::load`]).
pub fn xdp(ebpf: &mut Ebpf) -> &mut Xdp {
    program(ebpf, PROG_XDP)
}

/// The tc program of `hook` inside `ebpf`.
pub fn tc(ebpf: &mut Ebpf, hook: Hook) -> &mut SchedClassifier {
    program(ebpf, tc_name(hook))
}

fn tc_name(hook: Hook) -> &'static str {
    if hook == Hook::TcEgress {
        PROG_TC_OUT
    } else {
        PROG_TC_IN
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut T
where
    &'a mut T: TryFrom<&'a mut Program>,
{
    let program = ebpf.program_mut(name).expect("checked in load()");
    match program.try_into() {
        Ok(p) => p,
        Err(_) => unreachable!("{name} has the type load() checked"),
    }
}

impl Interfaces {
    fn maps(&self) -> io::Result<&Maps> {
        self.maps
            .as_ref()
            .ok_or_else(|| io::Error::other("interface maps not taken"))
    }

    /// Tells the programs to count frames of `ifindex` into counters `slot`.
    pub fn register(&mut self, ifindex: u32, slot: u32, mtu: u32) -> Result<(), SetupError> {
        // An MTU of 0 marks an unused array entry; no real device has one.
        self.set_info(
            ifindex,
            IfaceInfo {
                slot,
                mtu: mtu.max(1),
            },
        )
    }

    /// Tells the programs to count nothing of `ifindex` (a device deleted: a later one may get
    /// its number).
    fn unregister(&mut self, ifindex: u32) -> Result<(), SetupError> {
        if ifindex < IFINDEX_ARRAY {
            return self.set_info(ifindex, IfaceInfo::default());
        }
        let maps = self
            .maps
            .as_mut()
            .ok_or_else(|| SetupError::Load("interface maps not taken".into()))?;
        match maps.by_hash.remove(&ifindex) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(SetupError::Load(format!("{MAP_IFACES}: {e}"))),
        }
    }

    fn set_info(&mut self, ifindex: u32, info: IfaceInfo) -> Result<(), SetupError> {
        let maps = self
            .maps
            .as_mut()
            .ok_or_else(|| SetupError::Load("interface maps not taken".into()))?;
        if ifindex < IFINDEX_ARRAY {
            return maps
                .by_index
                .set(ifindex, info, 0)
                .map_err(|e| SetupError::Load(format!("{MAP_IFACES_BY_INDEX}: {e}")));
        }
        maps.by_hash
            .insert(ifindex, info, 0)
            .map_err(|e| SetupError::Load(format!("{MAP_IFACES}: {e}")))
    }

    /// Cumulative counters of one slot, summed over CPUs.
    pub fn read(&self, slot: u32) -> io::Result<IfaceCounters> {
        let counters = &self.maps()?.counters;
        let mut out = IfaceCounters::default();
        for hook in Hook::ALL {
            let per_cpu = counters
                .get(&HookCounters::index(slot, hook), 0)
                .map_err(io::Error::other)?;
            for cpu in per_cpu.iter() {
                out.hooks[hook as usize].add(cpu);
            }
        }
        Ok(out)
    }

    /// Why flows cannot be tracked: their code runs in the tc programs' tail call.
    pub fn flows_unavailable(&self) -> Option<String> {
        if let Some(why) = self.refused.get(PROG_TC_AFTER) {
            return Some(format!("{PROG_TC_AFTER} (flow tracking at tc): {why}"));
        }
        [PROG_TC_IN, PROG_TC_OUT]
            .iter()
            .all(|n| self.refused.contains_key(n))
            .then(|| "no tc program loaded".to_string())
    }

    /// Readiness of the link notifications, for the collection loop (None without them).
    pub fn links_ready(&self) -> Option<io::Result<LinksReady>> {
        self.links.as_ref().map(LinkWatch::ready)
    }

    /// Reads the link notifications waiting and follows them: attaches to devices of
    /// watched names and patterns that appeared, lets go of those deleted. Returns what to
    /// say on stderr. `netns` is the `--netns` name, for the messages.
    pub fn follow_links(&mut self, ebpf: &mut Ebpf, netns: Option<&str>) -> io::Result<Vec<String>> {
        let Some(watch) = self.links.as_mut() else {
            return Ok(Vec::new());
        };
        let batch = watch.read()?;
        let mut said = Vec::new();
        for event in batch.events {
            let plans = match event {
                LinkEvent::New { ifindex, name, mtu } => self.list.present(ifindex, &name, mtu),
                LinkEvent::Del { ifindex } => self.list.deleted(ifindex),
            };
            self.carry_out(ebpf, plans, netns, &mut said)
                .map_err(io::Error::other)?;
        }
        if batch.lost {
            said.push(
                "netpost: link notifications were lost (too many at once): listing the interfaces again"
                    .to_string(),
            );
            self.resync(ebpf, netns, &mut said)
                .map_err(io::Error::other)?;
        }
        Ok(said)
    }

    /// Compares the watch list with every device there is now.
    fn resync(
        &mut self,
        ebpf: &mut Ebpf,
        netns: Option<&str>,
        said: &mut Vec<String>,
    ) -> Result<(), SetupError> {
        let devices = netdev::all_interfaces()
            .map_err(|e| SetupError::Load(format!("listing interfaces: {e}")))?;
        let plans = self.list.resync(&devices);
        self.carry_out(ebpf, plans, netns, said)
    }

    /// Does what the watch list planned. Attaching at runtime may fail (the device is gone
    /// again, another tool's XDP program): that is said, and the device left alone. Only a
    /// failing map write is an error.
    fn carry_out(
        &mut self,
        ebpf: &mut Ebpf,
        plans: Vec<Plan>,
        netns: Option<&str>,
        said: &mut Vec<String>,
    ) -> Result<(), SetupError> {
        for plan in plans {
            match &plan {
                Plan::Attach {
                    name,
                    ifindex,
                    slot,
                    how,
                    ..
                } => match self.attach_one(ebpf, &plan) {
                    Ok(notes) => {
                        said.extend(notes);
                        said.push(self.attached_line(name, how, netns));
                    }
                    Err(e) => {
                        self.list.failed(&plan);
                        let _ = self.unregister(*ifindex);
                        // A device deleted before netpost got to it is not worth a word.
                        if netdev::ifindex(name) == Some(*ifindex) {
                            said.push(format!("netpost: cannot watch '{name}': {e}"));
                        }
                        if !matches!(how, How::Back) {
                            self.base.remove(slot);
                        }
                    }
                },
                Plan::Detach { name, ifindex } => {
                    self.unregister(*ifindex)?;
                    let now = netdev::ifname_of(*ifindex);
                    if let Some(a) = self.attached.remove(name) {
                        a.links.release(ebpf, now.is_none());
                    }
                    said.push(match now {
                        Some(new) => format!(
                            "netpost: interface '{name}' was renamed to '{new}': its totals stay; netpost counts on into them if an interface called '{name}' appears again"
                        ),
                        None => format!(
                            "netpost: interface '{name}' was deleted: its totals stay; netpost counts on into them if an interface of that name appears again"
                        ),
                    });
                }
                Plan::Mtu { ifindex, slot, mtu } => self.register(*ifindex, *slot, *mtu)?,
                Plan::OverCap { name } => said.push(format!(
                    "netpost: not watching '{name}': {MAX_IFACES} interfaces are watched, the most netpost can; it is watched once one of them is deleted"
                )),
            }
        }
        Ok(())
    }

    /// Registers and attaches as an Attach plan says; returns what to say besides.
    fn attach_one(&mut self, ebpf: &mut Ebpf, plan: &Plan) -> Result<Vec<String>, SetupError> {
        let Plan::Attach {
            name,
            ifindex,
            mtu,
            slot,
            how,
        } = plan
        else {
            return Ok(Vec::new());
        };
        let dev = netdev::lookup(name)
            .ok()
            .filter(|d| d.ifindex == *ifindex)
            .ok_or_else(|| SetupError::Load(format!("interface '{name}' is gone again")))?;
        // A slot new to this name counts from what it holds now; a returning name's totals
        // go on.
        if !matches!(how, How::Back) {
            let now = self.read(*slot).map_err(|e| SetupError::Load(e.to_string()))?;
            self.base.insert(*slot, now);
        }
        self.register(*ifindex, *slot, *mtu)?;
        let how = device::How {
            xdp: self.xdp,
            tcx: self.tcx,
            refused: &self.refused,
        };
        let (links, info, notes) = device::attach(ebpf, &dev, &how)?;
        self.attached.insert(name.clone(), Attached { dev, info, links });
        Ok(notes)
    }

    /// What to say once a device is attached at runtime.
    fn attached_line(&self, name: &str, how: &How, netns: Option<&str>) -> String {
        let reattached = self.list.entry(name).map_or(0, |e| e.reattached);
        let Some(a) = self.attached.get(name) else {
            return String::new();
        };
        match how {
            How::Back => format!(
                "netpost: interface '{name}' is back (ifindex {}): watching it again, its totals go on (re-attached {reattached} time{})",
                a.dev.ifindex,
                if reattached == 1 { "" } else { "s" }
            ),
            How::New => {
                let why = match self.list.spec().wants(name) {
                    Some(Why::Pattern(p)) => format!(" (new, matches '{p}')"),
                    _ => " (new)".to_string(),
                };
                format!("{}{why}", watching_line(a, netns))
            }
            How::Recycled { forgot } => format!(
                "{} (new; {MAX_IFACES} interfaces is the most netpost counts at once: the totals of '{forgot}', deleted longest ago, were dropped for it)",
                watching_line(a, netns)
            ),
        }
    }
}

/// "netpost: watching IF ...": where and how netpost attached.
fn watching_line(a: &Attached, netns: Option<&str>) -> String {
    let xdp = match a.info.xdp_status.as_str() {
        "attached" => {
            let why = match (a.info.xdp_mode.as_str(), a.dev.is_virtual()) {
                ("generic", false) => " (driver has no native XDP)",
                ("generic", true) if a.info.tc_status != "attached" => " (tc could not attach)",
                _ => "",
            };
            format!("XDP {}{why}", a.info.xdp_mode)
        }
        // "off (--xdp-mode off)", "off (virtual device: ...)".
        s if s.starts_with("off") => format!("XDP {s}"),
        s if s.starts_with("unavailable") && s.contains(PROG_XDP) => {
            "XDP unavailable".to_string()
        }
        s => format!("XDP {s}"),
    };
    let tc = match a.info.tc_status.as_str() {
        "attached" => format!("tc ingress+egress via {}", a.info.tc_mode),
        s => format!("tc via {}: {s}", a.info.tc_mode),
    };
    format!(
        "netpost: watching {}{} (ifindex {}, driver {}): {xdp}, {tc}",
        a.dev.name,
        netns.map(|n| format!(" in netns {n}")).unwrap_or_default(),
        a.dev.ifindex,
        if a.dev.driver.is_empty() {
            "?"
        } else {
            &a.dev.driver
        },
    )
}

/// The one line said about a program this kernel refused, and what goes without it.
fn refusal_line(name: &str, why: &str) -> String {
    let without = match name {
        PROG_XDP => "counting at tc only",
        PROG_TC_IN => "no tc ingress counts (XDP counts arriving frames)",
        PROG_TC_OUT => "no tc egress counts",
        PROG_TC_AFTER => {
            "no flows or handshakes, tunnelled super-packets counted without their inner headers; the counts go on"
        }
        _ => "",
    };
    format!("netpost: {name} unavailable on this kernel: {why}; {without}")
}

impl Probe for Interfaces {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, _setup: &mut Setup<'_>) {}

    /// The kernel's verifier takes most of netpost's start (the flow-tracking tc programs
    /// about 0.6 s each here) and checks one program per call, on one CPU: the programs load
    /// at once, each on a thread of its own. A program the kernel refuses is left out with
    /// the verifier's reason; only when neither XDP nor tc loads can nothing count.
    fn load(&mut self, ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        let names = [PROG_XDP, PROG_TC_IN, PROG_TC_OUT, PROG_TC_AFTER];
        let programs: Vec<(&str, &mut Program)> = ebpf
            .programs_mut()
            .filter(|(name, _)| names.contains(name))
            .collect();
        for name in names {
            if !programs.iter().any(|(n, _)| *n == name) {
                return Err(SetupError::Load(format!(
                    "program {name} missing from object"
                )));
            }
        }
        let outcomes: Vec<(&'static str, Result<(), String>)> = std::thread::scope(|scope| {
            let loads: Vec<_> = programs
                .into_iter()
                .map(|(name, program)| {
                    let name = names.into_iter().find(|n| *n == name).expect("checked");
                    let load = scope.spawn(move || match program {
                        Program::Xdp(p) => p.load(),
                        Program::SchedClassifier(p) => p.load(),
                        _ => Err(ProgramError::UnexpectedProgramType),
                    });
                    (name, load)
                })
                .collect();
            loads
                .into_iter()
                .map(|(name, load)| {
                    let loaded = load
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (name, loaded.map_err(|e| attach::load_error(&e)))
                })
                .collect()
        });
        for (name, outcome) in outcomes {
            if let Err(why) = outcome {
                self.refused.insert(name, why);
            }
        }
        if [PROG_XDP, PROG_TC_IN, PROG_TC_OUT]
            .iter()
            .all(|n| self.refused.contains_key(n))
        {
            let why: Vec<String> = self
                .refused
                .iter()
                .map(|(name, why)| format!("{name}: {why}"))
                .collect();
            return Err(SetupError::Load(why.join("; ")));
        }
        Ok(())
    }

    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        self.maps = Some(Maps {
            counters: maps::take(ebpf, MAP_COUNTERS)?,
            after: maps::take(ebpf, MAP_TC_AFTER)?,
            by_index: maps::take(ebpf, MAP_IFACES_BY_INDEX)?,
            by_hash: maps::take(ebpf, MAP_IFACES)?,
        });
        // Before the tc programs run (and before a test run of one): they tail-call it (an
        // empty slot: they count on alone).
        if !self.refused.contains_key(PROG_TC_AFTER) {
            let after: &SchedClassifier = ebpf
                .program(PROG_TC_AFTER)
                .ok_or_else(|| SetupError::Load(format!("program {PROG_TC_AFTER} missing")))?
                .try_into()
                .map_err(|e: ProgramError| SetupError::Load(e.to_string()))?;
            let fd = after
                .fd()
                .map_err(|e| SetupError::Load(format!("{PROG_TC_AFTER}: {e}")))?;
            self.maps
                .as_mut()
                .ok_or_else(|| SetupError::Load("maps not taken".into()))?
                .after
                .set(0, fd, 0)
                .map_err(|e| SetupError::Load(format!("{MAP_TC_AFTER}: {e}")))?;
        }
        Ok(())
    }

    /// Registers each device, then attaches tc ingress and egress and XDP to it; subscribes to
    /// link notifications first, and then compares the list with every device there is, so a
    /// device created meanwhile is not missed.
    fn attach(&mut self, ebpf: &mut Ebpf, target: &Target<'_>) -> Result<(), SetupError> {
        self.tcx = attach::tcx_available();
        self.xdp = target.xdp;
        self.list = WatchList::new(target.spec.clone(), MAX_IFACES);
        self.links = match LinkWatch::open() {
            Ok(watch) => Some(watch),
            Err(e) => {
                self.notes.push(format!(
                    "netpost: cannot subscribe to link notifications ({e}): deleted or new interfaces go unnoticed"
                ));
                None
            }
        };
        for dev in target.devs {
            for plan in self.list.present(dev.ifindex, &dev.name, dev.mtu) {
                match self.attach_one(ebpf, &plan) {
                    Ok(notes) => self.notes.extend(notes),
                    Err(e) => {
                        self.list.failed(&plan);
                        return Err(e);
                    }
                }
            }
        }
        if self.links.is_some() {
            let mut said = Vec::new();
            self.resync(ebpf, target.netns, &mut said)?;
            // What it attached is among the "watching" lines of report().
            self.notes
                .extend(said.into_iter().filter(|l| !l.starts_with("netpost: watching")));
        }
        for pattern in target.spec.patterns() {
            let now: Vec<&str> = self
                .list
                .entries()
                .filter(|e| glob::matches(pattern, &e.name))
                .map(|e| e.name.as_str())
                .collect();
            let later = if self.links.is_some() {
                "interfaces created later that match are watched too"
            } else {
                "interfaces created later are not noticed"
            };
            self.notes.push(if now.is_empty() {
                format!("netpost: -i '{pattern}' matches no interface yet; {later}")
            } else {
                format!("netpost: -i '{pattern}' matches {}; {later}", now.join(", "))
            });
        }
        self.status = Status::Attached;
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    fn report(&self, netns: Option<&str>) -> Vec<String> {
        let mut lines = self.notes.clone();
        lines.extend(self.refused.iter().map(|(name, why)| refusal_line(name, why)));
        lines.extend(self.attached.values().map(|a| watching_line(a, netns)));
        lines
    }

    /// Hooks are attached one after another; counting from this read on gives every hook the
    /// same window. The first rates are taken against zero.
    fn baseline(&mut self, zero: &mut RawSample) -> io::Result<()> {
        let slots: Vec<u32> = self.list.entries().map(|e| e.slot).collect();
        for slot in slots {
            let now = self.read(slot)?;
            self.base.insert(slot, now);
        }
        zero.interfaces = self
            .list
            .entries()
            .map(|e| (e.name.clone(), IfaceCounters::default()))
            .collect();
        Ok(())
    }

    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        for e in self.list.entries() {
            let now = self.read(e.slot)?;
            let since = match self.base.get(&e.slot) {
                Some(base) => now.since(base),
                None => now,
            };
            raw.interfaces.insert(e.name.clone(), since);
            raw.iface_state.insert(
                e.name.clone(),
                IfaceState {
                    status: e.status,
                    reattached: e.reattached,
                },
            );
        }
        raw.attached = self
            .attached
            .iter()
            .map(|(name, a)| (name.clone(), a.info.clone()))
            .collect();
        raw.gone = self.list.gone();
        raw.over_cap = self.list.over_cap();
        Ok(())
    }
}
