//! How long the two parses of the kernel's BTF take that netpost does at start-up: its own
//! (`KernelBtf`, offsets and names for the probes) and aya's (`Btf::from_sys_fs`, inside
//! `EbpfLoader::new`), timed here with the same code so the start-up breakdown can name them.
use std::{path::Path, time::Instant};

use anyhow::Context as _;
use aya::Btf;
use netpost::kernel_btf::KernelBtf;
use serde_json::{Value, json};

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

pub fn run(rounds: usize) -> anyhow::Result<Value> {
    let path = netpost::preflight::btf_path();
    let (mut ours, mut aya) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let btf = KernelBtf::from_file(Path::new(&path)).map_err(|e| anyhow::anyhow!("{e}"))?;
        ours.push(ms(t));
        drop(btf);
        let t = Instant::now();
        let btf = Btf::from_sys_fs().context("aya's BTF parse")?;
        aya.push(ms(t));
        drop(btf);
    }
    Ok(json!({"netpost_ms": ours, "aya_ms": aya}))
}
