//! Local TCP sockets from the kernel's own tracepoints: state transitions, SYN-ACK
//! retransmissions, resets sent and received (the sockets' view, next to the wire's view of
//! the flow table). Four raw tracepoint programs count into one per-CPU array.
pub mod model;

use std::io;

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use netpost_common::sockets::SockOffsets;

use crate::{
    error::SetupError,
    kernel_btf::{BtfOffsetError, KernelBtf},
    loader::{attach, maps},
    model::RawSample,
    netns,
    probe::{
        api::{Probe, Setup, Target, Tick},
        status::Status,
    },
};
use model::SockCounts;

const GLOBAL_SOCK_OFFSETS: &str = "NETPOST_SOCK_OFFSETS";
const MAP_SOCKETS: &str = "NETPOST_SOCKETS";
/// (program, tracepoint)
const PROGRAMS: [(&str, &str); 4] = [
    ("netpost_sk_state", "inet_sock_set_state"),
    ("netpost_synack_rtx", "tcp_retransmit_synack"),
    ("netpost_rst_sent", "tcp_send_reset"),
    ("netpost_rst_recv", "tcp_receive_reset"),
];

impl KernelBtf {
    /// The kernel struct offsets the socket programs read at (`watch_inum` left 0).
    pub fn sock_offsets(&self) -> Result<SockOffsets, BtfOffsetError> {
        let at = |s: &str, m: &str, size: u32| self.member_sized(s, m, size);
        Ok(SockOffsets {
            sk_net: self.member("sock", "__sk_common")?.offset + at("sock_common", "skc_net", 8)?,
            sk_protocol: at("sock", "sk_protocol", 2)?,
            skb_dev: at("sk_buff", "dev", 8)?,
            dev_net: at("net_device", "nd_net", 8)?,
            net_inum: netns::inum_offset(self)?,
            watch_inum: 0,
        })
    }
}

#[derive(Default)]
pub struct Sockets {
    status: Status,
    counts: Option<PerCpuArray<MapData, u64>>,
    baseline: Option<SockCounts>,
}

impl Sockets {
    /// The counters now; None unless attached.
    fn read(&self) -> io::Result<Option<SockCounts>> {
        match (&self.status, &self.counts) {
            (Status::Attached, Some(counts)) => maps::sum_array(counts).map(Some),
            _ => Ok(None),
        }
    }
}

impl Probe for Sockets {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, setup: &mut Setup<'_>) {
        let offsets = setup.set_offsets(
            GLOBAL_SOCK_OFFSETS,
            |btf| btf.sock_offsets(),
            |o: &mut SockOffsets, inum| o.watch_inum = inum,
        );
        self.status.advance(|| offsets.map(|_| Status::Pending));
    }

    fn load(&mut self, ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        self.status.advance(|| {
            for (name, _) in PROGRAMS {
                attach::load_raw_tp(ebpf, name)?;
            }
            Ok(Status::Pending)
        });
        Ok(())
    }

    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        self.counts = Some(maps::take(ebpf, MAP_SOCKETS)?);
        Ok(())
    }

    fn attach(&mut self, ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        self.status.advance(|| {
            for (name, tracepoint) in PROGRAMS {
                attach::attach_raw_tp(ebpf, name, tracepoint)?;
            }
            Ok(Status::Attached)
        });
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }

    fn report(&self, _netns: Option<&str>) -> Vec<String> {
        match &self.status {
            Status::Attached => Vec::new(),
            why => vec![format!(
                "netpost: socket tracepoints: {why}; the other counters continue"
            )],
        }
    }

    fn baseline(&mut self, _zero: &mut RawSample) -> io::Result<()> {
        self.baseline = self.read()?;
        Ok(())
    }

    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        if let (Some(now), Some(base)) = (self.read()?, &self.baseline) {
            raw.sockets = Some(model::stats(&now, base));
        }
        Ok(())
    }
}
