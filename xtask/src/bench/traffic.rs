//! Traffic through the bench's network: iperf3 for TCP throughput, netpost-bench's sendmmsg
//! generator and recvmmsg sink for the small-packet rate. Senders run in the tx namespace on
//! CPU 0, receivers in the rx namespace on CPU 1, so the two ends do not compete by chance.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::child::{self, Guard};
use super::netns::Net;

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
    pub fn start(net: &Net, logs: &Path) -> anyhow::Result<IperfServer> {
        let log_path = logs.join("iperf3-server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = in_ns(&net.rx_ns, Path::new("iperf3"));
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
pub fn tcp_bps(net: &Net, secs: u32) -> anyhow::Result<f64> {
    let mut cmd = in_ns(&net.tx_ns, Path::new("iperf3"));
    cmd.args(["-c", net.rx_ip, "-p", &IPERF_PORT.to_string(), "-J"])
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

/// Flows in the small-packet load: the issue's "10,000 flows" (one socket, so one source
/// port, each).
pub const FLOWS: u32 = 10_000;

/// How long the sink waits after the last datagram before it reports: short where a
/// measurement waits for it, long under a background load, which pauses while netpost
/// attaches (a sink gone would turn the load into ICMP errors and drops).
const SINK_IDLE_MS: u32 = 100;
const LOAD_SINK_IDLE_MS: u32 = 30_000;

/// One small-packet run: datagrams per second sent and received.
#[derive(Clone, Copy, Debug)]
pub struct UdpRate {
    pub sent_pps: f64,
    pub received_pps: f64,
}

/// Runs the sink in rx and the generator (`FLOWS` flows) in tx for `secs`.
pub fn udp_rate(net: &Net, bench: &Path, logs: &Path, secs: f64) -> anyhow::Result<UdpRate> {
    let (sink, sink_err) = start_sink(net, bench, logs, secs + 10.0, SINK_IDLE_MS)?;
    let sent = generate(net, bench, secs)?;
    let out = sink
        .wait(Duration::from_secs_f64(secs + 20.0))
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
    net: &Net,
    bench: &Path,
    logs: &Path,
    max_secs: f64,
    idle_ms: u32,
) -> anyhow::Result<(Guard, PathBuf)> {
    let err_path = logs.join("udp-sink.log");
    let mut cmd = in_ns(&net.rx_ns, bench);
    cmd.args(["sink", "--bind", &format!("0.0.0.0:{UDP_PORT}")])
        .args(cpu_args("1"))
        .args(["--max-secs", &max_secs.to_string()])
        .args(["--idle-ms", &idle_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path)?);
    let mut sink = Guard::spawn("udp sink", &mut cmd)?;
    child::wait_for_text(&err_path, "listening", Duration::from_secs(10), || {
        sink.exited().is_none()
    })
    .context("udp sink")?;
    Ok((sink, err_path))
}

fn generate(net: &Net, bench: &Path, secs: f64) -> anyhow::Result<Value> {
    let mut cmd = in_ns(&net.tx_ns, bench);
    cmd.args(["gen", "--dst", &format!("{}:{UDP_PORT}", net.rx_ip)])
        .args(cpu_args("0"))
        .args(["--secs", &secs.to_string()])
        .args(["--flows", &FLOWS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out =
        Guard::spawn("udp generator", &mut cmd)?.wait(Duration::from_secs_f64(secs + 20.0))?;
    if !out.status.success() {
        bail!(
            "udp generator failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("udp generator printed no result")
}

/// Background small-packet load (`FLOWS` flows) for the userspace-cost and in-path runs:
/// sink and generator, both stopped by their guards (at the latest after `secs`).
pub struct Load {
    _sink: Guard,
    _gen: Guard,
}

impl Load {
    pub fn start(net: &Net, bench: &Path, logs: &Path, secs: u32) -> anyhow::Result<Load> {
        let (sink, _) = start_sink(net, bench, logs, f64::from(secs) + 10.0, LOAD_SINK_IDLE_MS)?;
        let mut cmd = in_ns(&net.tx_ns, bench);
        cmd.args(["gen", "--dst", &format!("{}:{UDP_PORT}", net.rx_ip)])
            .args(cpu_args("0"))
            .args(["--secs", &secs.to_string()])
            .args(["--flows", &FLOWS.to_string()])
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
