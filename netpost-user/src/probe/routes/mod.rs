//! Routing decisions: the fib_table_lookup and fib6_table_lookup raw tracepoints, counting
//! lookups in this namespace per (table, result, device, gateway, destination).
pub mod model;

use std::io;

use aya::{
    Ebpf,
    maps::{MapData, PerCpuHashMap},
};
use netpost_common::routes::{Route6Key, RouteKey, RouteOffsets};

use crate::{
    error::SetupError,
    kernel_btf::{BtfOffsetError, KernelBtf},
    loader::{attach, maps},
    model::RawSample,
    netdev::ifname,
    netns,
    probe::{
        api::{Probe, Setup, Target, Tick},
        status::Status,
    },
};
use model::RoutesRaw;

const PROG_FIB_LOOKUP: &str = "netpost_fib_lookup";
const PROG_FIB6_LOOKUP: &str = "netpost_fib6_lookup";
const GLOBAL_ROUTE_OFFSETS: &str = "NETPOST_ROUTE_OFFSETS";
const MAP_ROUTES: &str = "NETPOST_ROUTES";
const MAP_ROUTES6: &str = "NETPOST_ROUTES6";

impl KernelBtf {
    /// The kernel struct offsets the route programs read at (`watch_inum` left 0).
    pub fn route_offsets(&self) -> Result<RouteOffsets, BtfOffsetError> {
        let at = |s: &str, m: &str, size: u32| self.member_sized(s, m, size);
        Ok(RouteOffsets {
            nhc_dev: at("fib_nh_common", "nhc_dev", 8)?,
            nhc_gw_family: at("fib_nh_common", "nhc_gw_family", 1)?,
            // A union of the IPv4 and IPv6 gateway; the IPv4 one sits at its start.
            nhc_gw: self.member("fib_nh_common", "nhc_gw")?.offset,
            dev_ifindex: at("net_device", "ifindex", 4)?,
            dev_net: at("net_device", "nd_net", 8)?,
            net_inum: netns::inum_offset(self)?,
            flow_daddr: at("flowi4", "daddr", 4)?,
            watch_inum: 0,
            res6_nh: at("fib6_result", "nh", 8)?,
            res6_type: at("fib6_result", "fib6_type", 1)?,
            table6_id: at("fib6_table", "tb6_id", 4)?,
            flow6_daddr: at("flowi6", "daddr", 16)?,
        })
    }
}

struct Maps {
    routes: PerCpuHashMap<MapData, RouteKey, u64>,
    routes6: PerCpuHashMap<MapData, Route6Key, u64>,
}

#[derive(Default)]
pub struct Routes {
    status: Status,
    maps: Option<Maps>,
    baseline: RoutesRaw,
}

impl Routes {
    /// Lookups per key, summed over CPUs; None unless attached.
    fn read(&self) -> io::Result<Option<RoutesRaw>> {
        match (&self.status, &self.maps) {
            (Status::Attached, Some(m)) => Ok(Some(RoutesRaw {
                v4: maps::sum_hash(&m.routes)?,
                v6: maps::sum_hash(&m.routes6)?,
            })),
            _ => Ok(None),
        }
    }
}

impl Probe for Routes {
    fn name(&self) -> &'static str {
        model::NAME
    }

    fn off(&mut self, why: &str) {
        self.status = Status::Off(why.to_string());
    }

    fn configure(&mut self, setup: &mut Setup<'_>) {
        let offsets = setup.set_offsets(
            GLOBAL_ROUTE_OFFSETS,
            |btf| btf.route_offsets(),
            |o: &mut RouteOffsets, inum| o.watch_inum = inum,
        );
        self.status.advance(|| offsets.map(|_| Status::Pending));
    }

    fn load(&mut self, ebpf: &mut Ebpf, _object: &[u8]) -> Result<(), SetupError> {
        self.status.advance(|| {
            attach::load_raw_tp(ebpf, PROG_FIB_LOOKUP)?;
            attach::load_raw_tp(ebpf, PROG_FIB6_LOOKUP)?;
            Ok(Status::Pending)
        });
        Ok(())
    }

    fn take_maps(&mut self, ebpf: &mut Ebpf) -> Result<(), SetupError> {
        self.maps = Some(Maps {
            routes: maps::take(ebpf, MAP_ROUTES)?,
            routes6: maps::take(ebpf, MAP_ROUTES6)?,
        });
        Ok(())
    }

    fn attach(&mut self, ebpf: &mut Ebpf, _target: &Target<'_>) -> Result<(), SetupError> {
        self.status.advance(|| {
            attach::attach_raw_tp(ebpf, PROG_FIB_LOOKUP, "fib_table_lookup")?;
            attach::attach_raw_tp(ebpf, PROG_FIB6_LOOKUP, "fib6_table_lookup")?;
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
                "netpost: routing decisions: {why}; the other counters continue"
            )],
        }
    }

    fn baseline(&mut self, _zero: &mut RawSample) -> io::Result<()> {
        self.baseline = self.read()?.unwrap_or_default();
        Ok(())
    }

    /// Lookups since the baseline, and the names of the devices they went out of.
    fn sample(&self, _tick: &Tick, raw: &mut RawSample) -> io::Result<()> {
        let Some(routes) = self.read()? else {
            return Ok(());
        };
        let routes = routes.since(&self.baseline);
        raw.ifnames = routes.oifs().map(|i| (i, ifname(i))).collect();
        raw.routes = Some(routes);
        Ok(())
    }
}
