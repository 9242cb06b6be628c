//! Loads the kernel programs and attaches them, probe by probe (`probe::Probes`, in list
//! order) around the one aya `Ebpf` object they share. Every attachment is an fd-based link
//! owned by the programs inside that object or by a probe: dropping the [`Attachment`],
//! exiting, or being killed with SIGKILL detaches everything. Only kernels older than 6.6
//! fall back to netlink tc filters, whose clsact qdisc is removed on drop (those survive a
//! SIGKILL).
pub mod attach;
pub mod leftovers;
pub mod maps;
pub mod tcnl;

use std::{io, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use netpost_common::{Hook, MAX_IFACES};

pub use crate::probe::api::LoadOptions;
use crate::{
    error::SetupError,
    kernel_btf::KernelBtf,
    model::{IfaceCounters, RunInfo},
    netdev::NetDev,
    netns, preflight,
    probe::{
        Probes,
        api::{ObjectConfig, Setup, Target},
        flows::FlowMaps,
        interfaces::{self, links::LinksReady, watchlist::Spec},
        recorder::Recorder,
    },
};
pub use attach::XdpChoice;

/// The compiled kernel programs, embedded at build time by build.rs (aya-build).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netpost"));

/// The loaded (not necessarily attached) programs and their maps.
pub struct Programs {
    // Field order is drop order: the links inside the object go before the probes, whose
    // clsact qdiscs they may sit on.
    ebpf: Ebpf,
    probes: Probes,
}

/// The probes `options` wants, configured: their globals and map sizes for the object. The
/// kernel BTF is parsed once for every offset and name the probes need from it, and freed
/// before aya parses its own copy (in EbpfLoader::new), so the two are never resident
/// together.
pub fn configure(options: &LoadOptions) -> (Probes, ObjectConfig) {
    let mut probes = Probes::default();
    for (name, why) in &options.off {
        let probe = probes.iter_mut().find(|p| p.name() == *name);
        debug_assert!(probe.is_some(), "no probe named {name}");
        if let Some(probe) = probe {
            probe.off(why);
        }
    }
    let btf = KernelBtf::from_file(Path::new(&preflight::btf_path())).map_err(|e| e.to_string());
    let mut setup = Setup::new(
        btf.as_ref().map_err(Clone::clone),
        netns::this_netns_inum(),
        options,
    );
    for probe in probes.wanted_mut() {
        probe.configure(&mut setup);
    }
    let object = setup.into_object();
    (probes, object)
}

impl Programs {
    /// Loads the object and the programs of every probe `options` does not turn off into the
    /// kernel. A probe that cannot load on this kernel reports why; only the interfaces
    /// probe's XDP and tc programs are required.
    pub fn load(options: &LoadOptions) -> Result<Programs, SetupError> {
        let (mut probes, object) = configure(options);
        let mut ebpf = {
            // The loader holds aya's parse of the kernel BTF: gone before the trim below.
            let mut loader = EbpfLoader::new();
            object.apply(&mut loader);
            loader
                .load(EBPF_OBJECT)
                .map_err(|e| SetupError::Load(format!("{e:#}")))?
        };
        for probe in probes.wanted_mut() {
            probe.load(&mut ebpf, EBPF_OBJECT)?;
        }
        // Flows are tracked by the tc programs' tail call: no tail call, no flows.
        if let Some(why) = probes.interfaces.flows_unavailable() {
            probes.flows.cannot_run(&why);
        }
        // Only once every probe has loaded: netfilter's programs are relocated against all the
        // maps while they are still inside `ebpf`.
        for probe in probes.wanted_mut() {
            probe.take_maps(&mut ebpf)?;
        }
        // aya's parse of the kernel BTF (in EbpfLoader::new) leaves ~16 MB of freed small
        // blocks in glibc's heap; without a trim ~8 MB of them stay resident for good.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory; nothing refers to it.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(Programs { ebpf, probes })
    }

    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// Tells the interface programs to count frames of `ifindex` into counters `slot`.
    pub fn register(&mut self, ifindex: u32, slot: u32, mtu: u32) -> Result<(), SetupError> {
        self.probes.interfaces.register(ifindex, slot, mtu)
    }

    /// Cumulative counters of one slot, summed over CPUs.
    pub fn read(&self, slot: u32) -> io::Result<IfaceCounters> {
        self.probes.interfaces.read(slot)
    }

    pub fn xdp(&mut self) -> &mut Xdp {
        interfaces::xdp(&mut self.ebpf)
    }

    pub fn tc(&mut self, hook: Hook) -> &mut SchedClassifier {
        interfaces::tc(&mut self.ebpf, hook)
    }
}

/// Programs attached to a set of interfaces, the netfilter hooks and the tracepoints;
/// dropping it detaches them all.
pub struct Attachment {
    programs: Programs,
}

impl Attachment {
    pub fn probes(&self) -> &Probes {
        &self.programs.probes
    }

    pub fn probes_mut(&mut self) -> &mut Probes {
        &mut self.programs.probes
    }

    /// The flow table and its event ring buffer (None when the run does without flows).
    pub fn flows(&self) -> Option<&FlowMaps> {
        self.programs.probes.flows.maps()
    }

    /// The drop recorder (its ring is drained between samples when the kernel asks).
    pub fn recorder(&self) -> &Recorder {
        &self.programs.probes.recorder
    }

    /// What does not change during the run, as every probe describes its part.
    pub fn run_info(&self, netns: Option<String>) -> RunInfo {
        let mut info = RunInfo {
            netns,
            ..Default::default()
        };
        for probe in self.programs.probes.iter() {
            probe.describe(&mut info);
        }
        info
    }

    /// Readiness of the kernel's link notifications (None when netpost could not subscribe).
    pub fn links_ready(&self) -> Option<io::Result<LinksReady>> {
        self.programs.probes.interfaces.links_ready()
    }

    /// Follows the link notifications waiting: attaches to watched devices that appeared,
    /// lets go of deleted ones. Returns what to say on stderr.
    pub fn follow_links(&mut self, netns: Option<&str>) -> io::Result<Vec<String>> {
        let Programs { ebpf, probes } = &mut self.programs;
        probes.interfaces.follow_links(ebpf, netns)
    }

    /// The lines to print once counting starts: what every probe runs, or why not.
    pub fn report(&self, netns: Option<&str>) -> Vec<String> {
        self.programs
            .probes
            .iter()
            .flat_map(|p| p.report(netns))
            .collect()
    }
}

/// Loads the programs and attaches every probe, the interfaces probe's XDP and tc to every
/// device of `devs` (and, later, to those `spec` names or matches that appear). On any error
/// everything attached so far is detached again before the error is returned. `netns` is the
/// `--netns` name, for messages.
pub fn attach_all(
    devs: &[NetDev],
    spec: &Spec,
    xdp: XdpChoice,
    netns: Option<&str>,
    options: &LoadOptions,
) -> Result<Attachment, SetupError> {
    if devs.len() > MAX_IFACES as usize {
        return Err(SetupError::TooManyInterfaces {
            max: MAX_IFACES,
            given: devs.len(),
            what: "given",
        });
    }
    let mut programs = Programs::load(options)?;
    let target = Target {
        devs,
        spec,
        xdp,
        netns,
    };
    for probe in programs.probes.wanted_mut() {
        probe.attach(&mut programs.ebpf, &target)?;
    }
    Ok(Attachment { programs })
}
