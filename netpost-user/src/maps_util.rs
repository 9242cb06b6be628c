//! Small pieces every tracepoint module needs: raw tracepoint programs by name, and per-CPU
//! maps summed over CPUs.
use std::{collections::BTreeMap, io};

use aya::{
    Ebpf, Pod,
    maps::{MapData, PerCpuArray, PerCpuHashMap},
    programs::RawTracePoint,
};

use crate::loader::error_chain;

fn raw_tp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut RawTracePoint, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("{name} missing from the object"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())
}

/// Loads raw tracepoint program `name` (not attached).
pub fn load_raw_tp(ebpf: &mut Ebpf, name: &str) -> Result<(), String> {
    raw_tp(ebpf, name)?.load().map_err(|e| error_chain(&e))
}

/// Attaches loaded raw tracepoint program `name` to `tracepoint` (an fd-based link).
pub fn attach_raw_tp(ebpf: &mut Ebpf, name: &str, tracepoint: &str) -> Result<(), String> {
    raw_tp(ebpf, name)?
        .attach(tracepoint)
        .map(|_| ())
        .map_err(|e| format!("{tracepoint}: {}", error_chain(&e)))
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
