//! Per-program cost: runs `netpost-bench progcost` (BPF_PROG_TEST_RUN needs the programs,
//! which only a crate built with the eBPF toolchain embeds) and reads its raw samples.
use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Config, Paths};

pub struct Program {
    pub name: String,
    /// "xdp", "tc" or "netfilter".
    pub kind: String,
    pub floor: bool,
    /// frame name -> ns per packet, one per round.
    pub samples: BTreeMap<String, Vec<f64>>,
}

pub struct ProgCost {
    pub repeat: u64,
    pub rounds: u64,
    /// (name, length in bytes), in report order.
    pub frames: Vec<(String, u64)>,
    pub programs: Vec<Program>,
    /// Why the netfilter programs could not be test-run, if they could not.
    pub netfilter_error: Option<String>,
}

pub fn measure(cfg: &Config, paths: &Paths) -> anyhow::Result<ProgCost> {
    let out = Command::new(&paths.bench)
        .args(["progcost", "--repeat", &cfg.repeat.to_string()])
        .args(["--rounds", &cfg.prog_rounds.to_string()])
        .output()
        .context("cannot run netpost-bench")?;
    if !out.status.success() {
        bail!(
            "netpost-bench progcost failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(json: &str) -> anyhow::Result<ProgCost> {
    let v: Value = serde_json::from_str(json).context("netpost-bench progcost output")?;
    let frames = v["frames"]
        .as_array()
        .context("no frames")?
        .iter()
        .map(|f| Some((f["name"].as_str()?.to_owned(), f["len"].as_u64()?)))
        .collect::<Option<Vec<_>>>()
        .context("bad frame entry")?;
    let programs = v["programs"]
        .as_array()
        .context("no programs")?
        .iter()
        .map(|p| {
            let samples = p["samples"]
                .as_object()?
                .iter()
                .map(|(frame, s)| {
                    let s = s
                        .as_array()?
                        .iter()
                        .map(Value::as_f64)
                        .collect::<Option<Vec<_>>>()?;
                    Some((frame.clone(), s))
                })
                .collect::<Option<BTreeMap<_, _>>>()?;
            Some(Program {
                name: p["name"].as_str()?.to_owned(),
                kind: p["kind"].as_str()?.to_owned(),
                floor: p["floor"].as_bool()?,
                samples,
            })
        })
        .collect::<Option<Vec<_>>>()
        .context("bad program entry")?;
    Ok(ProgCost {
        repeat: v["repeat"].as_u64().unwrap_or_default(),
        rounds: v["rounds"].as_u64().unwrap_or_default(),
        frames,
        programs,
        netfilter_error: v["netfilter_error"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netpost_bench_output() {
        let json = r#"{"repeat":1000,"rounds":2,"frames":[{"name":"udp_64","len":106}],
            "programs":[{"name":"netpost_xdp","kind":"xdp","floor":false,"samples":{"udp_64":[70.0,72.0]}},
                        {"name":"netpost_floor_xdp","kind":"xdp","floor":true,"samples":{"udp_64":[25.0,26.0]}}],
            "netfilter_error":"no BTF"}"#;
        let p = parse(json).unwrap();
        assert_eq!(p.frames, [("udp_64".to_owned(), 106)]);
        assert_eq!(p.programs.len(), 2);
        assert!(p.programs[1].floor);
        assert_eq!(p.programs[0].samples["udp_64"], [70.0, 72.0]);
        assert_eq!(p.netfilter_error.as_deref(), Some("no BTF"));
        assert!(parse(r#"{"frames":[]}"#).is_err());
    }
}
