//! Traffic through the veth pair: iperf3 for TCP throughput, netpost-bench's sendmmsg
//! generator and recvmmsg sink for the small-packet rate. Senders run in the tx namespace on
//! CPU 0, receivers in the rx namespace on CPU 1, so the two ends do not compete by chance.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::child::{self, Guard};
use super::netns::Pair;

const IPERF_PORT: u16 = 5201;
const UDP_PORT: u16 = 9000;

/// Pinning needs two CPUs; on one, everything shares it anyway.
fn pinned() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

fn cpu_args(cpu: &str) -> Vec<String> {
    if pinned() {
        vec!["--cpu".into(), cpu.into()]
    } else {
        Vec::new()
    }
}

fn in_ns(ns: &str, program: &Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd.stdin(Stdio::null());
    cmd
}

/// The iperf3 server, running for the whole bench.
pub struct IperfServer {
    _guard: Guard,
}

impl IperfServer {
    pub fn start(pair: &Pair, logs: &Path) -> anyhow::Result<IperfServer> {
        let log_path = logs.join("iperf3-server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = in_ns(&pair.rx_ns, Path::new("iperf3"));
        cmd.args(["-s", "--forceflush", "-p", &IPERF_PORT.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut guard = Guard::spawn("iperf3 server", &mut cmd)?;
        child::wait_for_text(
            &log_path,
            "Server listening",
            Duration::from_secs(10),
            || guard.exited().is_none(),
        )
        .context("iperf3 server")?;
        Ok(IperfServer { _guard: guard })
    }
}

/// TCP bits per second received over `secs` (iperf3's own receiver-side figure).
pub fn tcp_bps(pair: &Pair, secs: u32) -> anyhow::Result<f64> {
    let mut cmd = in_ns(&pair.tx_ns, Path::new("iperf3"));
    cmd.args(["-c", pair.rx_ip, "-p", &IPERF_PORT.to_string(), "-J"])
        .args(["-t", &secs.to_string()]);
    if pinned() {
        cmd.args(["-A", "0,1"]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out =
        Guard::spawn("iperf3 client", &mut cmd)?.wait(Duration::from_secs(u64::from(secs) + 30))?;
    let json = String::from_utf8_lossy(&out.stdout);
    let bps = parse_iperf_bps(&json);
    match (out.status.success(), bps) {
        (true, Some(bps)) => Ok(bps),
        _ => bail!(
            "iperf3 client failed: {} {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            iperf_error(&json).unwrap_or_default()
        ),
    }
}

fn parse_iperf_bps(json: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(json).ok()?;
    v["end"]["sum_received"]["bits_per_second"].as_f64()
}

fn iperf_error(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    v["error"].as_str().map(str::to_owned)
}

/// One small-packet run: datagrams per second sent and received.
#[derive(Clone, Copy, Debug)]
pub struct UdpRate {
    pub sent_pps: f64,
    pub received_pps: f64,
}

/// Runs the sink in rx and the generator in tx for `secs`.
pub fn udp_rate(pair: &Pair, bench: &Path, logs: &Path, secs: u32) -> anyhow::Result<UdpRate> {
    let (sink, sink_err) = start_sink(pair, bench, logs, f64::from(secs) + 10.0)?;
    let sent = generate(pair, bench, secs)?;
    let out = sink
        .wait(Duration::from_secs(u64::from(secs) + 20))
        .context("udp sink")?;
    let received: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "udp sink printed no result: {}",
            std::fs::read_to_string(&sink_err).unwrap_or_default()
        )
    })?;
    let secs_sent = sent["secs"]
        .as_f64()
        .filter(|s| *s > 0.0)
        .context("generator: no secs")?;
    Ok(UdpRate {
        sent_pps: sent["sent"].as_f64().context("generator: no count")? / secs_sent,
        received_pps: received["received"].as_f64().context("sink: no count")? / secs_sent,
    })
}

/// The sink, once it is bound; its stderr goes to a log.
fn start_sink(
    pair: &Pair,
    bench: &Path,
    logs: &Path,
    max_secs: f64,
) -> anyhow::Result<(Guard, PathBuf)> {
    let err_path = logs.join("udp-sink.log");
    let mut cmd = in_ns(&pair.rx_ns, bench);
    cmd.args(["sink", "--bind", &format!("0.0.0.0:{UDP_PORT}")])
        .args(cpu_args("1"))
        .args(["--max-secs", &max_secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path)?);
    let mut sink = Guard::spawn("udp sink", &mut cmd)?;
    child::wait_for_text(&err_path, "listening", Duration::from_secs(10), || {
        sink.exited().is_none()
    })
    .context("udp sink")?;
    Ok((sink, err_path))
}

fn generate(pair: &Pair, bench: &Path, secs: u32) -> anyhow::Result<Value> {
    let mut cmd = in_ns(&pair.tx_ns, bench);
    cmd.args(["gen", "--dst", &format!("{}:{UDP_PORT}", pair.rx_ip)])
        .args(cpu_args("0"))
        .args(["--secs", &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out =
        Guard::spawn("udp generator", &mut cmd)?.wait(Duration::from_secs(u64::from(secs) + 20))?;
    if !out.status.success() {
        bail!(
            "udp generator failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("udp generator printed no result")
}

/// Background small-packet load for the userspace-cost runs, from `flows` sockets (that many
/// flows): sink and generator, both stopped by their guards.
pub struct Load {
    _sink: Guard,
    _gen: Guard,
}

impl Load {
    pub fn start(
        pair: &Pair,
        bench: &Path,
        logs: &Path,
        secs: u32,
        flows: u32,
    ) -> anyhow::Result<Load> {
        let (sink, _) = start_sink(pair, bench, logs, f64::from(secs) + 10.0)?;
        let mut cmd = in_ns(&pair.tx_ns, bench);
        cmd.args(["gen", "--dst", &format!("{}:{UDP_PORT}", pair.rx_ip)])
            .args(cpu_args("0"))
            .args(["--secs", &secs.to_string()])
            .args(["--flows", &flows.to_string()])
            .stdout(Stdio::null());
        let generator = Guard::spawn("udp generator", &mut cmd)?;
        Ok(Load {
            _sink: sink,
            _gen: generator,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iperf3_json() {
        let json = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2.0e10},"sum_received":{"bits_per_second":1.5e10}}}"#;
        assert_eq!(parse_iperf_bps(json), Some(1.5e10));
        assert_eq!(parse_iperf_bps(r#"{"error":"unable to connect"}"#), None);
        assert_eq!(
            iperf_error(r#"{"error":"unable to connect"}"#).as_deref(),
            Some("unable to connect")
        );
        assert_eq!(parse_iperf_bps("not json"), None);
    }
}
