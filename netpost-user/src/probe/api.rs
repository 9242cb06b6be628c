//! The contract between the loader, the collection loop and every probe: the [`Probe`] trait
//! and what the loader hands a probe at each step.
use std::io;

use aya::{Ebpf, EbpfLoader, Pod};

use crate::{
    error::SetupError,
    kernel_btf::KernelBtf,
    loader::attach::XdpChoice,
    model::{RawSample, RunInfo},
    netdev::NetDev,
    probe::{interfaces::watchlist::Spec, status::Status},
};

/// One capability end to end on the collection side: its kernel programs and maps, their
/// load and attach, the BTF offsets they read at, its baseline, its part of each sample.
///
/// The loader calls, for every probe the run wants, in the order of `probe::Probes`:
/// `configure` (while the kernel BTF is parsed), then aya loads the object, `load`, then
/// `take_maps` (only once every probe has loaded: netfilter's programs are relocated against
/// all the maps still inside the object), then `attach`. A probe the run does not want gets
/// `off` instead of all four and loads nothing. The collection loop then calls `baseline`
/// once and `sample` once per interval.
pub trait Probe {
    /// Short name (`drops`, `sockets`...): the key of its status in `RunInfo`.
    fn name(&self) -> &'static str;

    /// The run does not want this probe: it loads nothing and reports `off (why)`.
    fn off(&mut self, why: &str);

    /// Before aya parses the object: finds the kernel struct offsets its programs read at and
    /// sets its globals and map sizes. A missing offset makes it unavailable, not the run fail.
    fn configure(&mut self, setup: &mut Setup<'_>);

    /// Loads its programs into the kernel (not attached). `object` is the ELF aya loaded, for
    /// programs aya cannot load itself. Maps stay inside `ebpf`. An error aborts the run, so
    /// only a probe netpost cannot do without returns one; the others become unavailable.
    fn load(&mut self, ebpf: &mut Ebpf, object: &[u8]) -> Result<(), SetupError>;

    /// Takes the maps it reads out of `ebpf`.
    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError>;

    /// Attaches what loaded. As with `load`, an error aborts the run (and detaches everything
    /// attached so far); a probe the run can do without records why in its status instead.
    fn attach(&mut self, ebpf: &mut Ebpf, target: &Target<'_>) -> Result<(), SetupError>;

    fn status(&self) -> Status;

    /// Its part of what does not change during the run (its status, where it attached).
    fn describe(&self, info: &mut RunInfo) {
        info.status.insert(self.name(), self.status());
    }

    /// The lines netpost prints on stderr once counting starts (what runs, what does not).
    fn report(&self, _netns: Option<&str>) -> Vec<String> {
        Vec::new()
    }

    /// Reads its counters once every probe is attached: the zero its samples count from. It
    /// may fill its part of `zero`, the sample the first interval's rates are taken against.
    fn baseline(&mut self, zero: &mut RawSample) -> io::Result<()>;

    /// Fills its part of one sample (counts since the baseline). Probes sample in list
    /// order, so a part may depend on the parts of the probes before it.
    fn sample(&self, tick: &Tick, raw: &mut RawSample) -> io::Result<()>;
}

/// Sizes fixed at load time, and the probes a run does without.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Entries of the flow table (`--max-flows`).
    pub max_flows: u32,
    /// Bytes of the flow event ring buffer (`--events-buffer`): a power of two, >= 4096.
    pub events_bytes: u32,
    /// Probes not to load, by name, each with why (`("netfilter", "--no-netfilter")`).
    pub off: Vec<(&'static str, String)>,
    /// The drop recorder's settings (None: the recorder is off).
    pub record: Option<RecordOptions>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_flows: netpost_common::flows::DEFAULT_MAX_FLOWS,
            events_bytes: 4 << 20,
            off: Vec::new(),
            record: None,
        }
    }
}

/// What the drop recorder keeps (`--record-drops`, `--snaplen`, `--record-*`, the dashboard's
/// flight recorder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOptions {
    /// The `--record-drops` file (written by the recorder once the run starts), or None when
    /// only the dashboard's flight recorder wants the packets.
    pub file: Option<std::path::PathBuf>,
    /// Bytes per packet; 0: headers only.
    pub snaplen: u32,
    /// Packets per second per reason.
    pub rate: u32,
    /// Reasons to record, as the drop counters name them (`NO_SOCKET`); empty: every reason.
    pub reasons: Vec<String>,
    /// The last packets kept in memory for the dashboard (0: none).
    pub flight: usize,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            file: None,
            snaplen: netpost_common::record::DEFAULT_SNAPLEN,
            rate: 1000,
            reasons: Vec::new(),
            flight: 0,
        }
    }
}

/// What `configure` gets: the running kernel's BTF (parsed once for every probe, and freed
/// before aya parses its own copy, so the two are never resident together), the namespace
/// the tracepoint programs count, and where the probe's globals and map sizes go.
pub struct Setup<'a> {
    btf: Result<&'a KernelBtf, String>,
    netns_inum: Result<u32, String>,
    pub options: &'a LoadOptions,
    object: ObjectConfig,
}

impl<'a> Setup<'a> {
    pub fn new(
        btf: Result<&'a KernelBtf, String>,
        netns_inum: Result<u32, String>,
        options: &'a LoadOptions,
    ) -> Self {
        Setup {
            btf,
            netns_inum,
            options,
            object: ObjectConfig::default(),
        }
    }

    /// The kernel's BTF, or why it could not be read.
    pub fn btf(&self) -> Result<&'a KernelBtf, String> {
        self.btf.clone()
    }

    /// Sets global `name` to the kernel struct offsets `find` reads from the BTF, with `watch`
    /// putting in the inode number of the network namespace netpost runs in (netpost entered
    /// `--netns` before loading: tracepoint programs count that namespace only). Where either
    /// is missing the global stays zeroed and the error says why the probe cannot run.
    pub fn set_offsets<T: Pod + Default, E: ToString>(
        &mut self,
        name: &'static str,
        find: impl FnOnce(&KernelBtf) -> Result<T, E>,
        watch: impl FnOnce(&mut T, u32),
    ) -> Result<(), String> {
        let offsets = self.btf().and_then(|btf| {
            let inum = self.netns_inum.clone()?;
            let mut offsets = find(btf).map_err(|e| e.to_string())?;
            watch(&mut offsets, inum);
            Ok(offsets)
        });
        self.set_global(name, offsets.as_ref().unwrap_or(&T::default()));
        offsets.map(|_| ())
    }

    /// Sets global `name` of the object (a `static` the programs read) to `value`.
    pub fn set_global<T: Pod>(&mut self, name: &'static str, value: &T) {
        // SAFETY: T is Pod: plain bytes, no padding, no pointers.
        let bytes =
            unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
        self.object.globals.push((name, bytes.to_vec()));
    }

    /// Sizes map `name` (entries; bytes for a ring buffer).
    pub fn set_max_entries(&mut self, name: &'static str, entries: u32) {
        self.object.max_entries.push((name, entries));
    }

    /// What the probes asked of the object; the BTF can go.
    pub fn into_object(self) -> ObjectConfig {
        self.object
    }
}

/// Globals and map sizes the probes set, for aya's loader.
#[derive(Debug, Default)]
pub struct ObjectConfig {
    globals: Vec<(&'static str, Vec<u8>)>,
    max_entries: Vec<(&'static str, u32)>,
}

impl ObjectConfig {
    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        for (name, entries) in &self.max_entries {
            loader.map_max_entries(name, *entries);
        }
        for (name, bytes) in &self.globals {
            loader.override_global(name, bytes.as_slice(), true);
        }
    }
}

/// Where the run attaches.
pub struct Target<'a> {
    /// The devices to watch from the start, in counters-slot order.
    pub devs: &'a [NetDev],
    /// What `-i` asked for: the names to attach to again when they reappear, and the
    /// patterns whose later matches are watched too.
    pub spec: &'a Spec,
    pub xdp: XdpChoice,
    /// The `--netns` name, for messages.
    pub netns: Option<&'a str>,
}

/// What a sample needs besides the probe's own state.
pub struct Tick {
    /// Flows listed per ranking (`--top`).
    pub top: usize,
}
