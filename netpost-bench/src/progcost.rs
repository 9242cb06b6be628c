//! Per-program cost: every crafted frame through netpost's XDP, tc and netfilter programs and
//! through the empty program of the same type (the floor), with BPF_PROG_TEST_RUN. Programs
//! and frames are interleaved within each round so drift on a noisy machine hits all alike.
use std::{collections::BTreeMap, os::fd::AsFd as _, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use netpost::{
    kernel_btf::KernelBtf,
    loader::{EBPF_OBJECT, LoadOptions, Programs},
    probe::interfaces::{PROG_TC_IN, PROG_TC_OUT, PROG_XDP},
};
use netpost_common::{
    Family, Hook, Proto,
    netfilter::{NfFamily, NfHook, NfHookCounters, NfOffsets},
};
use serde_json::{Value, json};

use crate::{frames, nf};

const FLOOR_XDP: &str = "netpost_floor_xdp";
const FLOOR_TC: &str = "netpost_floor_tc";
const FLOOR_NF: &str = "netpost_floor_nf";
const NF_HEAD: &str = netpost::probe::netfilter::bpf::PROG_NF_HEAD;
const NF_TAIL: &str = netpost::probe::netfilter::bpf::PROG_NF_TAIL;
const GLOBAL_NF_OFFSETS: &str = "NETPOST_NF_OFFSETS";
const MAP_NF: &str = "NETPOST_NF";

const XDP_PASS: u32 = 2;
const TC_ACT_UNSPEC: u32 = u32::MAX;
const NF_ACCEPT: u32 = 1;

/// Test runs happen on the caller's loopback device: netpost counts them for ifindex 1.
const LO: u32 = 1;

pub struct Options {
    pub repeat: u32,
    pub rounds: usize,
}

/// Which program a measurement runs. netpost's programs are reached through `Programs`
/// (which lends one at a time), the others through the benchmark's own instance.
#[derive(Clone, Copy)]
enum Runner {
    NetpostXdp,
    NetpostTc(Hook),
    Xdp(&'static str),
    Tc(&'static str),
    /// Index into the loaded netfilter programs.
    Nf(usize),
}

/// Everything a measurement may run.
struct Loaded {
    netpost: Programs,
    own: Ebpf,
    nf: Vec<std::os::fd::OwnedFd>,
    nf_offsets: NfOffsets,
}

/// One program's samples: frame -> ns per run, one per round.
struct Measured {
    name: &'static str,
    kind: &'static str,
    floor: bool,
    runner: Runner,
    samples: BTreeMap<&'static str, Vec<f64>>,
}

/// Runs the measurement and returns the JSON the xtask reads (raw samples, ns per packet).
pub fn run(opts: &Options) -> anyhow::Result<Value> {
    let mut netpost =
        Programs::load(&LoadOptions::default()).context("loading netpost's programs")?;
    // Registered, so each run takes netpost's full path (lookup, parse, count).
    netpost.register(LO, 0, 1500).context("registering lo")?;
    // A second instance of the same object for the floors and netfilter programs, whose
    // loading netpost's loader keeps to itself.
    let offsets = KernelBtf::from_file(Path::new(&netpost::preflight::btf_path()))
        .map_err(|e| e.to_string())
        .and_then(|btf| btf.nf_offsets().map_err(|e| e.to_string()))
        // As netpost runs them: reading the headers in place where the kernel allows it.
        .map(netpost::probe::netfilter::with_reads_in_place);
    let nf_offsets = offsets.clone().unwrap_or_default();
    let mut own = EbpfLoader::new()
        .btf(Btf::from_sys_fs().ok().as_ref())
        .override_global(GLOBAL_NF_OFFSETS, &nf_offsets, true)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;
    load_xdp(&mut own, FLOOR_XDP)?;
    load_tc(&mut own, FLOOR_TC)?;
    let nf_fds = offsets
        .map_err(anyhow::Error::msg)
        .and_then(|_| nf::load(&own, EBPF_OBJECT, &[NF_HEAD, NF_TAIL, FLOOR_NF]));

    let measure = |name, kind, floor, runner| Measured {
        name,
        kind,
        floor,
        runner,
        samples: BTreeMap::new(),
    };
    let mut measured = vec![
        measure(PROG_XDP, "xdp", false, Runner::NetpostXdp),
        measure(FLOOR_XDP, "xdp", true, Runner::Xdp(FLOOR_XDP)),
        measure(PROG_TC_IN, "tc", false, Runner::NetpostTc(Hook::TcIngress)),
        measure(PROG_TC_OUT, "tc", false, Runner::NetpostTc(Hook::TcEgress)),
        measure(FLOOR_TC, "tc", true, Runner::Tc(FLOOR_TC)),
    ];
    let (nf, nf_error) = match nf_fds {
        Ok(fds) => (fds, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    for (i, (name, floor)) in [(NF_HEAD, false), (NF_TAIL, false), (FLOOR_NF, true)]
        .into_iter()
        .enumerate()
        .take(nf.len())
    {
        measured.push(measure(name, "netfilter", floor, Runner::Nf(i)));
    }
    let mut loaded = Loaded {
        netpost,
        own,
        nf,
        nf_offsets,
    };

    let frames = frames::all();
    for _ in 0..opts.rounds {
        for frame in &frames {
            for m in measured.iter_mut() {
                if let Some(ns) = run_once(&mut loaded, m.runner, frame, opts.repeat)? {
                    m.samples.entry(frame.name).or_default().push(ns);
                }
            }
        }
    }
    check_counted(&loaded.netpost)?;
    if !loaded.nf.is_empty() {
        check_nf_counted(&mut loaded.own)?;
    }

    let programs: Vec<Value> = measured
        .iter()
        .map(|m| json!({"name": m.name, "kind": m.kind, "floor": m.floor, "samples": m.samples}))
        .collect();
    Ok(json!({
        "repeat": opts.repeat,
        "rounds": opts.rounds,
        "frames": frames.iter().map(|f| json!({"name": f.name, "len": f.bytes.len()})).collect::<Vec<_>>(),
        "programs": programs,
        "netfilter_error": nf_error,
    }))
}

/// Nanoseconds per run of `frame`, as the kernel timed `repeat` runs; None where the
/// program type never sees such a frame (netfilter and a VLAN tag).
fn run_once(
    loaded: &mut Loaded,
    runner: Runner,
    frame: &frames::Frame,
    repeat: u32,
) -> anyhow::Result<Option<f64>> {
    let opts = || TestRunOptions {
        data_in: Some(&frame.bytes),
        repeat,
        ..Default::default()
    };
    let xdp = |p: &Xdp| p.test_run(opts()).context("XDP test run");
    let tc = |p: &SchedClassifier| p.test_run(opts()).context("tc test run");
    let (ret, want, duration) = match runner {
        Runner::NetpostXdp => {
            xdp(loaded.netpost.xdp()).map(|r| (r.return_value, XDP_PASS, r.duration))?
        }
        Runner::Xdp(name) => {
            xdp(program(&loaded.own, name)?).map(|r| (r.return_value, XDP_PASS, r.duration))?
        }
        Runner::NetpostTc(hook) => {
            tc(loaded.netpost.tc(hook)).map(|r| (r.return_value, TC_ACT_UNSPEC, r.duration))?
        }
        Runner::Tc(name) => {
            tc(program(&loaded.own, name)?).map(|r| (r.return_value, TC_ACT_UNSPEC, r.duration))?
        }
        Runner::Nf(i) => {
            let Some(pf) = frame.nf_pf else {
                return Ok(None);
            };
            let ctx = nf::hook_state(&loaded.nf_offsets, pf);
            let (ret, duration) = nf::test_run(loaded.nf[i].as_fd(), &frame.bytes, &ctx, repeat)?;
            (ret, NF_ACCEPT, duration)
        }
    };
    if ret != want {
        bail!("{}: returned {ret}, expected {want}", frame.name);
    }
    Ok(Some(ns(duration)))
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn load_xdp(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    let p: &mut Xdp = ebpf_program(ebpf, name)?;
    p.load().with_context(|| format!("loading {name}"))
}

fn load_tc(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    let p: &mut SchedClassifier = ebpf_program(ebpf, name)?;
    p.load().with_context(|| format!("loading {name}"))
}

fn ebpf_program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .with_context(|| format!("{name} missing from the object"))?;
    p.try_into()
        .with_context(|| format!("{name}: unexpected program type"))
}

fn program<'a, T>(ebpf: &'a Ebpf, name: &str) -> anyhow::Result<&'a T>
where
    &'a T: TryFrom<&'a aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf
        .program(name)
        .with_context(|| format!("{name} missing from the object"))?;
    p.try_into()
        .with_context(|| format!("{name}: unexpected program type"))
}

/// Proof that netpost's programs took their full path (found lo, parsed, counted) rather
/// than an early return: every hook counted well-formed packets.
fn check_counted(netpost: &Programs) -> anyhow::Result<()> {
    let counters = netpost.read(0).context("reading netpost's counters")?;
    for hook in Hook::ALL {
        let h = &counters.hooks[hook as usize];
        let sum = |protos: &[Proto]| -> u64 {
            Family::ALL
                .iter()
                .flat_map(|&f| protos.iter().map(move |&p| h.get(f, p).frames))
                .sum()
        };
        let good = sum(&[Proto::Tcp, Proto::Udp, Proto::Icmp]);
        if good == 0 || sum(&[Proto::Malformed]) != 0 {
            bail!("{hook:?}: netpost did not count the crafted frames as expected");
        }
    }
    Ok(())
}

fn check_nf_counted(own: &mut Ebpf) -> anyhow::Result<()> {
    let map = own.take_map(MAP_NF).context("map NETPOST_NF missing")?;
    let nf: PerCpuArray<_, NfHookCounters> = PerCpuArray::try_from(map)?;
    for family in NfFamily::ALL {
        let per_cpu = nf.get(&NfHookCounters::index(family, NfHook::PreRouting), 0)?;
        let entered: u64 = per_cpu
            .iter()
            .flat_map(|c| c.head.by_proto.iter().map(|t| t.packets))
            .sum();
        if entered == 0 {
            bail!(
                "netpost_nf_head counted no {} packet at PREROUTING",
                family.name()
            );
        }
    }
    Ok(())
}
