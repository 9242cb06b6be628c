//! Map handles for the probes: taken out of the one `Ebpf` object by name (once every probe
//! has loaded), and per-CPU maps summed over CPUs.
use std::{collections::BTreeMap, io};

use aya::{
    Ebpf, Pod,
    maps::{Map, MapData, PerCpuArray, PerCpuHashMap},
};

use crate::error::SetupError;

/// Takes map `name` out of `ebpf` as a typed handle (`PerCpuArray`, `RingBuf`...).
pub fn take<M>(ebpf: &mut Ebpf, name: &str) -> Result<M, SetupError>
where
    M: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| SetupError::Load(format!("map {name} missing")))?;
    M::try_from(map).map_err(|e| SetupError::Load(format!("{name}: {e}")))
}

/// Every slot of a per-CPU u64 array, summed over CPUs.
pub fn sum_array<const N: usize>(map: &PerCpuArray<MapData, u64>) -> io::Result<[u64; N]> {
    let mut out = [0u64; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = map
            .get(&(i as u32), 0)
            .map_err(io::Error::other)?
            .iter()
            .sum();
    }
    Ok(out)
}

/// Every entry of a per-CPU u64 hash map, summed over CPUs.
pub fn sum_hash<K: Pod + Ord>(
    map: &PerCpuHashMap<MapData, K, u64>,
) -> io::Result<BTreeMap<K, u64>> {
    map.iter()
        .map(|entry| {
            let (key, per_cpu) = entry.map_err(io::Error::other)?;
            Ok((key, per_cpu.iter().sum()))
        })
        .collect()
}
