//! Loads the kernel programs and attaches them. Every attachment is an fd-based bpf link
//! owned by [`Attachment`] (via aya's program objects): dropping it, exiting, or being
//! killed with SIGKILL detaches everything. Only kernels older than 6.6 fall back to
//! netlink tc filters, which [`ClsactGuard`] removes on drop (they survive a SIGKILL).
use std::{collections::BTreeMap, io, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap},
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode, tc},
    util::KernelVersion,
};
use netpost_common::{
    Hook, HookCounters, IFINDEX_ARRAY, IfaceInfo, MAX_IFACES,
    netfilter::{CtSource, NfFamily, NfHook, NfHookCounters},
};

use crate::{
    drop_watch::{self, DropMaps},
    drops::DropsRaw,
    error::SetupError,
    flow_watch::{self, FlowMaps},
    kernel_btf::KernelBtf,
    model::{AttachInfo, IfaceCounters},
    netdev::NetDev,
    netfilter::{self, NfLinks, NfPrograms},
    nf_model::NfRaw,
    preflight,
    route_watch::{self, RouteMap},
    sock_watch::{self, SockMap},
};

/// The compiled kernel programs, embedded at build time by build.rs (aya-build).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netpost"));

pub const PROG_XDP: &str = "netpost_xdp";
pub const PROG_TC_IN: &str = "netpost_tc_in";
pub const PROG_TC_OUT: &str = "netpost_tc_out";
const MAP_IFACES: &str = "NETPOST_IFACES";
const MAP_IFACES_BY_INDEX: &str = "NETPOST_IFACES_BY_INDEX";
const MAP_COUNTERS: &str = "NETPOST_COUNTERS";
const MAP_NF: &str = "NETPOST_NF";
const MAP_CT_SOURCES: &str = "NETPOST_CT_SOURCES";
const GLOBAL_NF_OFFSETS: &str = "NETPOST_NF_OFFSETS";
/// Makes netpost behave as on a kernel without netfilter links (to test that path).
pub const ENV_NO_NETFILTER: &str = "NETPOST_TEST_NO_NETFILTER";

/// How to attach XDP (`--xdp-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpChoice {
    /// Per device, the mode that costs its traffic least: generic on virtual devices (on
    /// veth native XDP cut TCP throughput 3-4x in our measurements), native on NICs, with
    /// generic as the fallback.
    Auto,
    /// Driver mode; fails if the driver has no XDP support.
    Native,
    /// Generic (skb) mode, works on every device.
    Generic,
    /// No XDP program (tc only).
    Off,
}

/// Which mode `auto` tries first for a device.
pub fn preferred_mode(choice: XdpChoice, dev: &NetDev) -> Option<XdpMode> {
    match choice {
        XdpChoice::Off => None,
        XdpChoice::Native => Some(XdpMode::Driver),
        XdpChoice::Generic => Some(XdpMode::Skb),
        XdpChoice::Auto if dev.is_virtual() => Some(XdpMode::Skb),
        XdpChoice::Auto => Some(XdpMode::Driver),
    }
}

fn mode_name(mode: Option<XdpMode>) -> &'static str {
    match mode {
        Some(XdpMode::Driver) => "native",
        Some(XdpMode::Skb) => "generic",
        Some(XdpMode::Hardware) => "offload",
        Some(XdpMode::Default) => "default",
        None => "off",
    }
}

/// Sizes fixed at load time.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Entries of the flow table (`--max-flows`).
    pub max_flows: u32,
    /// Bytes of the flow event ring buffer (`--events-buffer`): a power of two, >= 4096.
    pub events_bytes: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_flows: netpost_common::flows::DEFAULT_MAX_FLOWS,
            events_bytes: 4 << 20,
        }
    }
}

/// The loaded (not necessarily attached) programs and their maps.
pub struct Programs {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, HookCounters>,
    nf_counters: PerCpuArray<MapData, NfHookCounters>,
    ct_sources: PerCpuHashMap<MapData, CtSource, u64>,
    drop_maps: DropMaps,
    /// Whether the kfree_skb program loaded, or why not.
    drops_loaded: Result<(), String>,
    route_map: RouteMap,
    flow_maps: FlowMaps,
    sock_map: SockMap,
    /// Whether the socket tracepoint programs loaded, or why not.
    sockets_loaded: Result<(), String>,
    /// Whether the fib_table_lookup program loaded, or why not.
    routes_loaded: Result<(), String>,
    /// The netfilter programs, or why they could not be loaded (kernels < 6.4, BTF without
    /// the fields they read...): XDP and tc work without them.
    nf: Result<NfPrograms, String>,
}

impl Programs {
    /// Loads the object and every program into the kernel.
    pub fn load(options: &LoadOptions) -> Result<Programs, SetupError> {
        // Parsed once for every offset and name netpost needs from it, and freed before aya
        // parses its own copy (in EbpfLoader::new) so the two are never resident together.
        let kernel_btf =
            KernelBtf::from_file(Path::new(&preflight::btf_path())).map_err(|e| e.to_string());
        let offsets = kernel_btf
            .as_ref()
            .map_err(Clone::clone)
            .and_then(netfilter::offsets);
        let fallback = netpost_common::netfilter::NfOffsets::default();
        let watch = drop_watch::this_netns_inum();
        let btf_and_ns = kernel_btf
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|b| Ok((b, watch.clone()?)));
        let drop_offsets = btf_and_ns
            .clone()
            .and_then(|(b, ns)| drop_watch::offsets(b, ns));
        let drop_fallback = netpost_common::drops::DropOffsets::default();
        let route_offsets = btf_and_ns
            .clone()
            .and_then(|(b, ns)| route_watch::offsets(b, ns));
        let sock_offsets = btf_and_ns.and_then(|(b, ns)| sock_watch::offsets(b, ns));
        let reasons = drop_watch::reasons(kernel_btf.as_ref().ok());
        drop(kernel_btf);
        let sock_fallback = netpost_common::flows::SockOffsets::default();
        let route_fallback = netpost_common::drops::RouteOffsets::default();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(flow_watch::MAP_FLOWS, options.max_flows)
            .map_max_entries(flow_watch::MAP_EVENTS, options.events_bytes)
            .override_global(
                GLOBAL_NF_OFFSETS,
                offsets.as_ref().unwrap_or(&fallback),
                true,
            )
            .override_global(
                drop_watch::GLOBAL_DROP_OFFSETS,
                drop_offsets.as_ref().unwrap_or(&drop_fallback),
                true,
            )
            .override_global(
                route_watch::GLOBAL_ROUTE_OFFSETS,
                route_offsets.as_ref().unwrap_or(&route_fallback),
                true,
            )
            .override_global(
                sock_watch::GLOBAL_SOCK_OFFSETS,
                sock_offsets.as_ref().unwrap_or(&sock_fallback),
                true,
            )
            .load(EBPF_OBJECT)
            .map_err(|e| SetupError::Load(format!("{e:#}")))?;
        for name in [PROG_XDP, PROG_TC_IN, PROG_TC_OUT] {
            let program = ebpf
                .program_mut(name)
                .ok_or_else(|| SetupError::Load(format!("program {name} missing from object")))?;
            let loaded = match program {
                aya::programs::Program::Xdp(p) => p.load(),
                aya::programs::Program::SchedClassifier(p) => p.load(),
                _ => Err(ProgramError::UnexpectedProgramType),
            };
            loaded.map_err(|e| SetupError::Load(format!("{name}: {}", error_chain(&e))))?;
        }
        let drops_loaded = drop_offsets.and_then(|_| drop_watch::load(&mut ebpf));
        let routes_loaded = route_offsets.and_then(|_| route_watch::load(&mut ebpf));
        let sockets_loaded = sock_offsets.and_then(|_| sock_watch::load(&mut ebpf));
        // Before any map is taken out of `ebpf`: the loader relocates against all of them.
        let nf = if std::env::var_os(ENV_NO_NETFILTER).is_some() {
            Err(format!("disabled by {ENV_NO_NETFILTER}"))
        } else {
            offsets.and_then(|_| netfilter::load(&ebpf, EBPF_OBJECT))
        };
        let counters = take_per_cpu_array(&mut ebpf, MAP_COUNTERS)?;
        let nf_counters = take_per_cpu_array(&mut ebpf, MAP_NF)?;
        let ct_sources = ebpf
            .take_map(MAP_CT_SOURCES)
            .ok_or_else(|| SetupError::Load(format!("map {MAP_CT_SOURCES} missing")))?;
        let ct_sources = PerCpuHashMap::try_from(ct_sources)
            .map_err(|e| SetupError::Load(format!("{MAP_CT_SOURCES}: {e}")))?;
        let names = drop_watch::names(reasons);
        let drop_maps = DropMaps::take(&mut ebpf, names).map_err(SetupError::Load)?;
        let route_map = RouteMap::take(&mut ebpf).map_err(SetupError::Load)?;
        let flow_maps = FlowMaps::take(&mut ebpf).map_err(SetupError::Load)?;
        let sock_map = SockMap::take(&mut ebpf).map_err(SetupError::Load)?;
        // aya's parse of the kernel BTF (in EbpfLoader::new) leaves ~16 MB of freed small
        // blocks in glibc's heap; without a trim ~8 MB of them stay resident for good.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory; nothing refers to it.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(Programs {
            ebpf,
            counters,
            nf_counters,
            ct_sources,
            drop_maps,
            drops_loaded,
            route_map,
            flow_maps,
            sock_map,
            sockets_loaded,
            routes_loaded,
            nf,
        })
    }

    /// Conntrack entries created per source address, summed over CPUs (walks the whole
    /// map: call it only when the table is filling up).
    pub fn read_ct_sources(&self) -> io::Result<Vec<(CtSource, u64)>> {
        Ok(crate::maps_util::sum_hash(&self.ct_sources)?
            .into_iter()
            .collect())
    }

    /// Cumulative netfilter counters of one family, summed over CPUs.
    pub fn read_netfilter(&self, family: NfFamily) -> io::Result<NfRaw> {
        let mut out = NfRaw::default();
        for hook in NfHook::ALL {
            let per_cpu = self
                .nf_counters
                .get(&NfHookCounters::index(family, hook), 0)
                .map_err(io::Error::other)?;
            for cpu in per_cpu.iter() {
                out[hook as usize].add(cpu);
            }
        }
        Ok(out)
    }

    /// Tells the programs to count frames of `ifindex` into counters `slot`.
    pub fn register(&mut self, ifindex: u32, slot: u32, mtu: u32) -> Result<(), SetupError> {
        // An MTU of 0 marks an unused array entry; no real device has one.
        let info = IfaceInfo {
            slot,
            mtu: mtu.max(1),
        };
        let missing = |name: &str| SetupError::Load(format!("map {name} missing"));
        if ifindex < IFINDEX_ARRAY {
            let map = self
                .ebpf
                .map_mut(MAP_IFACES_BY_INDEX)
                .ok_or_else(|| missing(MAP_IFACES_BY_INDEX))?;
            let mut ifaces: Array<_, IfaceInfo> =
                Array::try_from(map).map_err(|e| SetupError::Load(e.to_string()))?;
            return ifaces
                .set(ifindex, info, 0)
                .map_err(|e| SetupError::Load(format!("{MAP_IFACES_BY_INDEX}: {e}")));
        }
        let map = self
            .ebpf
            .map_mut(MAP_IFACES)
            .ok_or_else(|| missing(MAP_IFACES))?;
        let mut ifaces: BpfHashMap<_, u32, IfaceInfo> =
            BpfHashMap::try_from(map).map_err(|e| SetupError::Load(e.to_string()))?;
        ifaces
            .insert(ifindex, info, 0)
            .map_err(|e| SetupError::Load(format!("{MAP_IFACES}: {e}")))
    }

    /// Cumulative counters of one slot, summed over CPUs.
    pub fn read(&self, slot: u32) -> io::Result<IfaceCounters> {
        let mut out = IfaceCounters::default();
        for hook in Hook::ALL {
            let per_cpu = self
                .counters
                .get(&HookCounters::index(slot, hook), 0)
                .map_err(io::Error::other)?;
            for cpu in per_cpu.iter() {
                out.hooks[hook as usize].add(cpu);
            }
        }
        Ok(out)
    }

    pub fn xdp(&mut self) -> &mut Xdp {
        self.program(PROG_XDP)
    }

    pub fn tc(&mut self, hook: Hook) -> &mut SchedClassifier {
        self.program(if hook == Hook::TcEgress {
            PROG_TC_OUT
        } else {
            PROG_TC_IN
        })
    }

    fn program<'a, T>(&'a mut self, name: &str) -> &'a mut T
    where
        &'a mut T: TryFrom<&'a mut aya::programs::Program>,
    {
        let program = self.ebpf.program_mut(name).expect("checked in load()");
        match program.try_into() {
            Ok(p) => p,
            Err(_) => unreachable!("{name} has the type load() checked"),
        }
    }
}

/// One watched interface.
#[derive(Clone, Debug)]
pub struct Watched {
    pub dev: NetDev,
    pub slot: u32,
    pub info: AttachInfo,
}

fn take_per_cpu_array<V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
) -> Result<PerCpuArray<MapData, V>, SetupError> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| SetupError::Load(format!("map {name} missing")))?;
    PerCpuArray::try_from(map).map_err(|e| SetupError::Load(format!("{name}: {e}")))
}

/// Programs attached to a set of interfaces and the netfilter hooks; dropping it detaches
/// them all.
pub struct Attachment {
    // Field order is drop order: links go before the qdiscs they may sit on.
    programs: Programs,
    nf_links: Vec<(NfFamily, NfLinks)>,
    nf_status: BTreeMap<String, String>,
    /// "attached", or why the drop program is missing.
    drops_status: String,
    /// "attached", or why the route program is missing.
    routes_status: String,
    /// "attached", or why the socket programs are missing.
    sockets_status: String,
    watched: Vec<Watched>,
    _clsact: Vec<ClsactGuard>,
}

impl Attachment {
    pub fn watched(&self) -> &[Watched] {
        &self.watched
    }

    pub fn attach_info(&self) -> BTreeMap<String, AttachInfo> {
        self.watched
            .iter()
            .map(|w| (w.dev.name.clone(), w.info.clone()))
            .collect()
    }

    /// Cumulative counters of every watched interface.
    pub fn read(&self) -> io::Result<BTreeMap<String, IfaceCounters>> {
        self.watched
            .iter()
            .map(|w| Ok((w.dev.name.clone(), self.programs.read(w.slot)?)))
            .collect()
    }

    /// Per family: "linked", or why its netfilter hooks are missing.
    pub fn netfilter_status(&self) -> &BTreeMap<String, String> {
        &self.nf_status
    }

    /// "attached", or why drop reasons are not collected.
    pub fn drops_status(&self) -> &str {
        &self.drops_status
    }

    /// Raw drop counts now (the baseline for [`Attachment::read_drops`]).
    pub fn drop_counts(&self) -> io::Result<BTreeMap<netpost_common::drops::DropKey, u64>> {
        self.programs.drop_maps.counts()
    }

    /// Drops since `baseline`, named, with recent samples; None when not attached.
    pub fn read_drops(
        &self,
        baseline: &BTreeMap<netpost_common::drops::DropKey, u64>,
    ) -> io::Result<Option<DropsRaw>> {
        if self.drops_status != "attached" {
            return Ok(None);
        }
        self.programs.drop_maps.read(baseline).map(Some)
    }

    /// "attached", or why routing decisions are not collected.
    pub fn routes_status(&self) -> &str {
        &self.routes_status
    }

    /// Route lookups per key now (None when not attached).
    pub fn read_routes(&self) -> io::Result<Option<route_watch::RoutesRaw>> {
        if self.routes_status != "attached" {
            return Ok(None);
        }
        self.programs.route_map.read().map(Some)
    }

    /// "attached", or why the socket tracepoints are not collected.
    pub fn sockets_status(&self) -> &str {
        &self.sockets_status
    }

    /// Socket counters now (None when not attached).
    pub fn read_sockets(&self) -> io::Result<Option<sock_watch::SockCounts>> {
        if self.sockets_status != "attached" {
            return Ok(None);
        }
        self.programs.sock_map.read().map(Some)
    }

    /// The flow table's maps.
    pub fn flows(&self) -> &FlowMaps {
        &self.programs.flow_maps
    }

    /// The `n` sources that created the most conntrack entries.
    pub fn top_ct_sources(&self, n: usize) -> io::Result<Vec<crate::conntrack::TopSource>> {
        let mut all = self.programs.read_ct_sources()?;
        all.sort_by_key(|&(_, new)| std::cmp::Reverse(new));
        Ok(all
            .into_iter()
            .take(n)
            .map(|(key, new)| crate::conntrack::TopSource {
                src: source_addr(&key),
                new,
            })
            .collect())
    }

    /// Cumulative netfilter counters of every linked family.
    pub fn read_netfilter(&self) -> io::Result<BTreeMap<NfFamily, NfRaw>> {
        self.nf_links
            .iter()
            .map(|(family, _)| Ok((*family, self.programs.read_netfilter(*family)?)))
            .collect()
    }
}

fn source_addr(key: &CtSource) -> String {
    if key.family == NfFamily::Ipv4 as u32 {
        std::net::Ipv4Addr::new(key.addr[0], key.addr[1], key.addr[2], key.addr[3]).to_string()
    } else {
        std::net::Ipv6Addr::from(key.addr).to_string()
    }
}

/// "attached", or why a program that loaded (or did not) is missing.
fn attach_status(
    loaded: &Result<(), String>,
    attach: impl FnOnce() -> Result<(), String>,
) -> String {
    match loaded.clone().and_then(|()| attach()) {
        Ok(()) => "attached".to_string(),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// Links the netfilter programs for every family they can be linked for; a family that
/// cannot be linked gets its reason instead.
fn link_netfilter(
    programs: &Programs,
    wanted: bool,
) -> (Vec<(NfFamily, NfLinks)>, BTreeMap<String, String>) {
    let mut links = Vec::new();
    let mut status = BTreeMap::new();
    for family in NfFamily::ALL {
        let outcome = if !wanted {
            "off (--no-netfilter)".to_string()
        } else {
            match programs.nf.as_ref().map(|p| p.link(family)) {
                Ok(Ok(l)) => {
                    links.push((family, l));
                    "linked".to_string()
                }
                Ok(Err(e)) => format!("unavailable: {e}"),
                Err(e) => format!("unavailable: {e}"),
            }
        };
        status.insert(family.name().to_string(), outcome);
    }
    (links, status)
}

/// Loads the programs and attaches XDP and tc ingress/egress to every device. On any
/// error everything attached so far is detached again before the error is returned.
pub fn attach_all(
    devs: &[NetDev],
    xdp: XdpChoice,
    netfilter: bool,
    options: &LoadOptions,
) -> Result<Attachment, SetupError> {
    if devs.len() > MAX_IFACES as usize {
        return Err(SetupError::TooManyInterfaces {
            max: MAX_IFACES,
            given: devs.len(),
        });
    }
    let mut programs = Programs::load(options)?;
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    let mut clsact = Vec::new();
    let mut watched = Vec::new();
    for (slot, dev) in devs.iter().enumerate() {
        let slot = slot as u32;
        programs.register(dev.ifindex, slot, dev.mtu)?;
        if !tcx {
            clsact.push(ClsactGuard::add(&dev.name)?);
        }
        for hook in [Hook::TcIngress, Hook::TcEgress] {
            let attach_type = if hook == Hook::TcIngress {
                TcAttachType::Ingress
            } else {
                TcAttachType::Egress
            };
            programs
                .tc(hook)
                .attach(&dev.name, attach_type)
                .map_err(|e| SetupError::Attach {
                    program: if hook == Hook::TcIngress {
                        PROG_TC_IN
                    } else {
                        PROG_TC_OUT
                    },
                    iface: dev.name.clone(),
                    detail: error_chain(&e),
                })?;
        }
        let mode = attach_xdp(programs.xdp(), dev, xdp)?;
        watched.push(Watched {
            dev: dev.clone(),
            slot,
            info: AttachInfo {
                ifindex: dev.ifindex,
                xdp_mode: mode_name(mode).to_string(),
                tc_mode: if tcx { "tcx" } else { "netlink" }.to_string(),
            },
        });
    }
    let (nf_links, nf_status) = link_netfilter(&programs, netfilter);
    let drops_status = attach_status(&programs.drops_loaded, || {
        drop_watch::attach(&mut programs.ebpf)
    });
    let routes_status = attach_status(&programs.routes_loaded, || {
        route_watch::attach(&mut programs.ebpf)
    });
    let sockets_status = attach_status(&programs.sockets_loaded, || {
        sock_watch::attach(&mut programs.ebpf)
    });
    Ok(Attachment {
        programs,
        nf_links,
        nf_status,
        drops_status,
        routes_status,
        sockets_status,
        watched,
        _clsact: clsact,
    })
}

fn attach_xdp(
    xdp: &mut Xdp,
    dev: &NetDev,
    choice: XdpChoice,
) -> Result<Option<XdpMode>, SetupError> {
    let Some(first) = preferred_mode(choice, dev) else {
        return Ok(None);
    };
    match xdp.attach_to_if_index(dev.ifindex, first) {
        Ok(_) => Ok(Some(first)),
        Err(e) if is_busy(&e) => Err(SetupError::ForeignXdp {
            iface: dev.name.clone(),
            detail: error_chain(&e),
        }),
        // `auto` on a NIC whose driver lacks native XDP: generic still works.
        Err(_) if choice == XdpChoice::Auto && first == XdpMode::Driver => {
            match xdp.attach_to_if_index(dev.ifindex, XdpMode::Skb) {
                Ok(_) => Ok(Some(XdpMode::Skb)),
                Err(e) => Err(xdp_error(dev, &e)),
            }
        }
        Err(e) => Err(xdp_error(dev, &e)),
    }
}

fn xdp_error(dev: &NetDev, e: &ProgramError) -> SetupError {
    if is_busy(e) {
        SetupError::ForeignXdp {
            iface: dev.name.clone(),
            detail: error_chain(e),
        }
    } else {
        SetupError::Attach {
            program: PROG_XDP,
            iface: dev.name.clone(),
            detail: error_chain(e),
        }
    }
}

/// The kernel answers EBUSY (a link exists) or EEXIST (a program attached in another mode)
/// when the device already runs someone else's XDP program.
fn is_busy(e: &ProgramError) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
        {
            return true;
        }
        if let Some(ProgramError::SyscallError(s)) = err.downcast_ref::<ProgramError>()
            && matches!(
                s.io_error.raw_os_error(),
                Some(libc::EBUSY) | Some(libc::EEXIST)
            )
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// "outer: inner: innermost" on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A clsact qdisc netpost added (kernels < 6.6 only), removed again on drop.
pub struct ClsactGuard {
    iface: Option<String>,
}

impl ClsactGuard {
    fn add(iface: &str) -> Result<ClsactGuard, SetupError> {
        match tc::qdisc_add_clsact(iface) {
            Ok(()) => Ok(ClsactGuard {
                iface: Some(iface.to_string()),
            }),
            // Someone else's clsact: use it, leave it.
            Err(tc::TcError::AlreadyAttached) => Ok(ClsactGuard { iface: None }),
            Err(e) => Err(SetupError::Attach {
                program: "clsact qdisc",
                iface: iface.to_string(),
                detail: error_chain(&e),
            }),
        }
    }
}

impl Drop for ClsactGuard {
    fn drop(&mut self) {
        if let Some(iface) = &self.iface {
            let _ = std::process::Command::new("tc")
                .args(["qdisc", "del", "dev", iface, "clsact"])
                .status();
        }
    }
}
