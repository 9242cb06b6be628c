//! Netfilter hook traversal: a head and a tail program at the first and last priority of
//! every IPv4 and IPv6 hook (verdicts, TCP handshake classes, conntrack states), and the
//! conntrack entries they see created, per source. Kernels without netfilter links (< 6.4)
//! or without the fields the programs read leave it unavailable; XDP and tc go on.
pub mod bpf;
pub mod model;

use std::{cell::RefCell, collections::BTreeMap, io, path::Path};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap},
};
use netpost_common::netfilter::{CtSource, NfFamily, NfHook, NfHookCounters, NfOffsets};

use crate::{
    error::SetupError,
    kernel_btf::{BtfOffsetError, KernelBtf},
    loader::maps,
    model::{RawSample, RunInfo},
    probe::{
        api::{Probe, Setup, Target, Tick},
        conntrack::model::TopSource,
        status::Status,
    },
};
use bpf::{NfLinks, NfPrograms};
use model::{InvalidCounter, NfRaw};

const MAP_NF: &str = "NETPOST_NF";
const MAP_CT_SOURCES: &str = "NETPOST_CT_SOURCES";
const GLOBAL_NF_OFFSETS: &str = "NETPOST_NF_OFFSETS";
/// Makes netpost behave as on a kernel without netfilter links (to test that path).
pub const ENV_NO_NETFILTER: &str = "NETPOST_TEST_NO_NETFILTER";
/// Makes the programs copy the headers out as kernels before 6.17 must (to test that path
/// on newer kernels, and to measure what reading in place saves).
pub const ENV_COPY_HEADERS: &str = "NETPOST_TEST_NF_COPY";
/// Why netfilter is unavailable on kernels without BPF_PROG_TYPE_NETFILTER.
pub const NO_LINKS: &str =
    "this kernel has no BPF netfilter links (Linux >= 6.4 built with CONFIG_NETFILTER_BPF_LINK)";
/// `netfilter_reads` in JSON: how the programs read packet headers.
const READS_IN_PLACE: &str = "in_place";
const READS_COPIED: &str = "copied";
/// How many top sources of new conntrack entries a snapshot names.
const TOP_SOURCES: usize = 5;

impl KernelBtf {
    /// The offsets the netfilter programs need, with the sizes they read checked.
    pub fn nf_offsets(&self) -> Result<NfOffsets, BtfOffsetError> {
        // IPCB(skb) / IP6CB(skb): the control block at the start of `cb`.
        let cb = self.member_sized("sk_buff", "cb", 48)?;
        Ok(NfOffsets {
            state_hook: self.member_sized("nf_hook_state", "hook", 1)?,
            state_pf: self.member_sized("nf_hook_state", "pf", 1)?,
            skb_len: self.member_sized("sk_buff", "len", 4)?,
            skb_head: self.member_sized("sk_buff", "head", 8)?,
            skb_network_header: self.member_sized("sk_buff", "network_header", 2)?,
            skb_nfct: self.member_sized("sk_buff", "_nfct", 8)?,
            // sk_buff_data_t is an offset from head (unsigned int) on 64-bit kernels.
            skb_end: self.member_sized("sk_buff", "end", 4)?,
            shinfo_gso_segs: self.member_sized("skb_shared_info", "gso_segs", 2)?,
            conn_status: self.member_sized("nf_conn", "status", 8)?,
            skb_tail: self.member_sized("sk_buff", "tail", 4)?,
            shinfo_gso_size: self.member_sized("skb_shared_info", "gso_size", 2)?,
            ip4cb_frag_max: cb + self.member_sized("inet_skb_parm", "frag_max_size", 2)?,
            ip6cb_frag_max: cb + self.member_sized("inet6_skb_parm", "frag_max_size", 2)?,
            // Probed by loading a program, not read from BTF: see `with_reads_in_place`.
            direct_reads: 0,
        })
    }
}

/// `offsets` with `direct_reads` set where this kernel lets the programs read the headers in
/// place (unless [`ENV_COPY_HEADERS`] says to copy them).
pub fn with_reads_in_place(mut offsets: NfOffsets) -> NfOffsets {
    let copy = std::env::var_os(ENV_COPY_HEADERS).is_some();
    offsets.direct_reads = (!copy && bpf::reads_in_place(offsets.skb_head)) as u32;
    offsets
}

/// The offsets the netfilter programs need, from the kernel BTF at `path`
/// (`crate::preflight::btf_path()` gives the default /sys/kernel/btf/vmlinux).
pub fn nf_offsets(path: &Path) -> Result<NfOffsets, BtfOffsetError> {
    KernelBtf::from_file(path)?.nf_offsets()
}

struct Maps {
    counters: PerCpuArray<MapData, NfHookCounters>,
    ct_sources: PerCpuHashMap<MapData, CtSource, u64>,
}

#[derive(Default)]
pub struct Netfilter {
    /// Pending until linked; then linked if any family is.
    status: Status,
    programs: Option<NfPrograms>,
    maps: Option<Maps>,
    links: Vec<(NfFamily, NfLinks)>,
    /// Per family: linked, or why not.
    families: BTreeMap<String, Status>,
    baseline: BTreeMap<NfFamily, NfRaw>,
    /// Conntrack's invalid packets per hook, interval by interval.
    invalid: RefCell<InvalidCounter>,
    /// Whether the programs read the headers in place (else they copy them out).
    reads_in_place: bool,
}

impl Netfilter {
    fn maps(&self) -> io::Result<&Maps> {
        self.maps
            .as_ref()
            .ok_or_else(|| io::Error::other("netfilter maps not taken"))
    }

    /// Cumulative counters of one family, summed over CPUs.
    fn read(&self, family: NfFamily) -> io::Result<NfRaw> {
        let counters = &self.maps()?.counters;
        let mut out = NfRaw::default();
        for hook in NfHook::ALL {
            let per_cpu = counters
                .get(&NfHookCounters::index(family, hook), 0)
                .map_err(io::Error::other)?;
            for cpu in per_cpu.iter() {
                out[hook as usize].add(cpu);
            }
        }
        Ok(out)
    }

    /// Cumulative counters of every linked family.
    fn read_all(&self) -> io::Result<BTreeMap<NfFamily, NfRaw>> {
        self.links
            .iter()
            .map(|(family, _)| Ok((*family, self.read(*family)?)))
            .collect()
    }

    /// The `n` sources that created the most conntrack entries (walks the whole map: call
    /// it only when the table is filling up).
    fn top_ct_sources(&self, n: usize) -> io::Result<Vec<TopSource>> {
        let mut all: Vec<(CtSource, u64)> =
            maps::sum_hash(&self.maps()?.ct_sources)?.into_iter().collect();
        all.sort_by_key(|&(_, new)| std::cmp::Reverse(new));
        Ok(all
            .into_iter()
            .take(n)
            .map(|(key, new)| TopSource {
                src: source_addr(&key),
                new,
            })
            .collect())
    }

    /// Per family: linked, or why not.
    fn family_status(&self) -> BTreeMap<String, Status> {
        match &self.status {
            Status::Off(_) => NfFamily::ALL
                .iter()
                .map(|f| (f.name().to_string(), self.status.clone()))
                .collect(),
            _ => self.families.clone(),
        }
    }
}

fn source_addr(key: &CtSource) -> String {
    if key.family == NfFamily::Ipv4 as u32 {
        std::net::Ipv4Addr::new(key.addr[0], key.addr[1], key.addr[2], key.addr[3]).to_string()
    } else {
        std::net::Ipv6Addr::from(key.addr).to_string()
    }
}

impl Probe for Netfilter {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, setup: &mut Setup<'_>) {
        let offsets = setup
            .btf()
            .and_then(|btf| btf.nf_offsets().map_err(|e| e.to_string()))
            .map(with_reads_in_place);
        setup.set_global(
            GLOBAL_NF_OFFSETS,
            offsets.as_ref().unwrap_or(&NfOffsets::default()),
        );
        self.reads_in_place = offsets.as_ref().is_ok_and(|o| o.direct_reads != 0);
        self.status.advance(|| offsets.map(|_| Status::Pending));
    }

    /// Relocates the programs against the maps inside `ebpf`, so this comes before any probe
    /// takes its maps out (the loader's order).
    fn load(&mut self, ebpf: &mut Ebpf, object: &[u8]) -> Result<(), SetupError> {
        if std::env::var_os(ENV_NO_NETFILTER).is_some() {
            self.status = Status::Unavailable(format!("disabled by {ENV_NO_NETFILTER}"));
        }
        // Asked first: the program type's absence is the reason worth saying, where loading
        // the programs would only answer EINVAL.
        if let Ok(false) = aya::sys::is_program_supported(aya::programs::ProgramType::Netfilter) {
            self.status.advance(|| Err(NO_LINKS.to_string()));
        }
        self.status.advance(|| {
            self.programs = Some(bpf::load(ebpf, object)?);
            Ok(Status::Pending)
        });
        Ok(())
    }

    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        self.maps = Some(Maps {
            counters: maps::take(ebpf, MAP_NF)?,
            ct_sources: maps::take(ebpf, MAP_CT_SOURCES)?,
        });
        Ok(())
    }

    /// Links both programs for every family they can be linked for; a family that cannot be
    /// linked gets its reason instead.
    fn attach(&mut self, _ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        for family in NfFamily::ALL {
            let outcome = match (&self.status, &self.programs) {
                (Status::Pending, Some(programs)) => match programs.link(family) {
                    Ok(links) => {
                        self.links.push((family, links));
                        Status::Linked
                    }
                    Err(e) => Status::Unavailable(e),
                },
                (Status::Unavailable(why), _) => Status::Unavailable(why.clone()),
                (other, _) => Status::Unavailable(format!("netfilter programs {other}")),
            };
            self.families.insert(family.name().to_string(), outcome);
        }
        if !self.links.is_empty() {
            self.status = Status::Linked;
        } else if let Some(why) = self.families.values().next().cloned() {
            self.status = why;
        }
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    fn describe(&self, info: &mut RunInfo) {
        info.status.insert(self.name(), self.status());
        info.netfilter_status = self.family_status();
        if !self.links.is_empty() {
            info.netfilter_reads = Some(if self.reads_in_place {
                READS_IN_PLACE
            } else {
                READS_COPIED
            });
        }
    }

    /// One line per family, or one for both when they share their reason (said once).
    fn report(&self, _netns: Option<&str>) -> Vec<String> {
        let status = self.family_status();
        let statuses: Vec<&Status> = status.values().collect();
        let shared = statuses.len() > 1 && statuses.windows(2).all(|w| w[0] == w[1]);
        let families: Vec<(String, &Status)> = if shared && *statuses[0] != Status::Linked {
            let names: Vec<&str> = status.keys().map(String::as_str).collect();
            vec![(format!("({})", names.join(", ")), statuses[0])]
        } else {
            status.iter().map(|(f, s)| (f.clone(), s)).collect()
        };
        families
            .into_iter()
            .map(|(family, status)| match status {
                Status::Linked => format!(
                    "netpost: netfilter {family}: linked at PREROUTING INPUT FORWARD OUTPUT POSTROUTING (first and last priority)"
                ),
                why => {
                    format!("netpost: netfilter {family}: {why}; XDP and tc counting continues")
                }
            })
            .collect()
    }

    /// (Conntrack's baseline comes first: the kernel's invalid count is in `zero`.)
    fn baseline(&mut self, zero: &mut RawSample) -> io::Result<()> {
        self.baseline = self.read_all()?;
        self.invalid.borrow_mut().baseline(kernel_invalid(zero));
        Ok(())
    }

    /// Counters since the baseline per linked family, and the top conntrack sources when the
    /// table fills up (conntrack samples first).
    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        raw.netfilter = self
            .read_all()?
            .into_iter()
            .map(|(family, now)| {
                let since = self
                    .baseline
                    .get(&family)
                    .map(|b| model::since(&now, b))
                    .unwrap_or(now);
                (family, since)
            })
            .collect();
        raw.nf_invalid = self
            .invalid
            .borrow_mut()
            .step(&raw.netfilter, kernel_invalid(raw))
            .clone();
        if raw.conntrack.as_ref().is_some_and(|c| c.filling()) {
            raw.ct_sources = self.top_ct_sources(TOP_SOURCES)?;
        }
        Ok(())
    }
}

/// The packets the kernel's conntrack called invalid in this namespace (None without
/// conntrack).
fn kernel_invalid(raw: &RawSample) -> Option<u64> {
    raw.conntrack
        .as_ref()
        .map(|c| c.stat.get("invalid").copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_btf::oracle::{Oracle, VMLINUX};

    #[test]
    fn nf_offsets_match_bpftool() {
        let offsets = nf_offsets(Path::new(&crate::preflight::btf_path())).unwrap();
        println!("NfOffsets on this kernel: {offsets:#?}");
        let oracle = Oracle::load();
        let o = |s, m| oracle.member(s, m).0.offset;
        assert_eq!(
            offsets,
            NfOffsets {
                state_hook: o("nf_hook_state", "hook"),
                state_pf: o("nf_hook_state", "pf"),
                skb_len: o("sk_buff", "len"),
                skb_head: o("sk_buff", "head"),
                skb_network_header: o("sk_buff", "network_header"),
                skb_nfct: o("sk_buff", "_nfct"),
                skb_end: o("sk_buff", "end"),
                shinfo_gso_segs: o("skb_shared_info", "gso_segs"),
                conn_status: o("nf_conn", "status"),
                skb_tail: o("sk_buff", "tail"),
                shinfo_gso_size: o("skb_shared_info", "gso_size"),
                ip4cb_frag_max: o("sk_buff", "cb") + o("inet_skb_parm", "frag_max_size"),
                ip6cb_frag_max: o("sk_buff", "cb") + o("inet6_skb_parm", "frag_max_size"),
                direct_reads: 0,
            }
        );
    }

    /// The probe's answer follows the kernel's version: 6.17 made `skb->head` readable.
    #[test]
    fn headers_are_read_in_place_from_linux_6_17_on() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "loading BPF programs needs root");
        let offsets = nf_offsets(Path::new(&crate::preflight::btf_path())).unwrap();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().unwrap().parse().unwrap();
        let minor: u32 = parts.next().unwrap().parse().unwrap();
        assert_eq!(
            bpf::reads_in_place(offsets.skb_head),
            (major, minor) >= (6, 17),
            "kernel {release}"
        );
    }

    #[test]
    fn missing_or_malformed_btf_is_an_error_not_a_panic() {
        let err = nf_offsets(Path::new("/nonexistent/netpost-btf")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read kernel BTF at /nonexistent/netpost-btf: ")
        );
        let data = std::fs::read(VMLINUX).unwrap();
        for len in [0, 1, 3, 23, 24, 1000, data.len() / 2] {
            let err = KernelBtf::from_bytes(data[..len].to_vec()).err();
            assert!(
                matches!(err, Some(BtfOffsetError::Malformed(_))),
                "len {len}"
            );
        }
        assert!(KernelBtf::from_bytes(vec![0; 64]).is_err());
    }
}
