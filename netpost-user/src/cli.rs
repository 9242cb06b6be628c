//! Command-line flags. They are a contract scripts rely on: extend, never rename or drop
//! (docs/cli.md).
use clap::Parser;

use crate::loader::XdpChoice;

#[derive(Debug, Parser)]
#[command(
    name = "netpost",
    version,
    // The last of a repeated flag wins (an alias with defaults can be overridden).
    args_override_self = true,
    about = "Live packet-path counters for Linux: XDP and tc per interface, per protocol, headers vs payload"
)]
pub struct Cli {
    /// Interface to watch (repeat for several).
    #[arg(short = 'i', long = "interface", value_name = "IFACE", required = true)]
    pub interfaces: Vec<String>,

    /// Enter this network namespace (as `ip netns add` creates them) before attaching.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,

    /// Collection interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: u64,

    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,

    /// Headless: no live view on the terminal.
    #[arg(long)]
    pub no_tui: bool,

    /// Write one JSON object per interval (JSON Lines) to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,

    /// XDP attach mode; `auto` picks per device the one that costs its traffic least.
    #[arg(long, value_enum, default_value_t = XdpChoice::Auto)]
    pub xdp_mode: XdpChoice,

    /// Do not link the netfilter hook programs (PREROUTING ... POSTROUTING).
    #[arg(long)]
    pub no_netfilter: bool,

    /// Flows listed in each ranking (by bytes, by packets).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Size of the kernel's flow table; the least recently seen flows are evicted beyond it
    /// (the global counters stay exact).
    #[arg(long, value_name = "N", default_value_t = netpost_common::flows::DEFAULT_MAX_FLOWS,
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub max_flows: u32,

    /// Stream every flow event (new flow, handshake answered/established, reset, closed) as
    /// JSON Lines to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH|-")]
    pub events: Option<String>,

    /// Size of the kernel's flow event ring buffer in KiB (a power of two, at least 4).
    #[arg(long, value_name = "KIB", default_value_t = 4096, value_parser = parse_ring_kib)]
    pub events_buffer: u32,

    /// Serve Prometheus/OpenMetrics metrics on ADDR:PORT (a bare PORT binds 127.0.0.1).
    #[arg(long, value_name = "ADDR", value_parser = crate::sink::prometheus::parse_addr)]
    pub prometheus: Option<std::net::SocketAddr>,
}

fn parse_ring_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if (4..=1 << 20).contains(&v) && v.is_power_of_two() => Ok(v),
        _ => Err(format!("'{s}' is not a power of two between 4 and 1048576")),
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_flags_parse() {
        let cli = Cli::try_parse_from([
            "netpost",
            "-i",
            "veth0",
            "--interface",
            "veth1",
            "--netns",
            "lab",
            "--interval",
            "250",
            "--duration",
            "1.5",
            "--no-tui",
            "--json",
            "-",
            "--xdp-mode",
            "generic",
        ])
        .unwrap();
        assert_eq!(cli.interfaces, ["veth0", "veth1"]);
        assert_eq!(cli.netns.as_deref(), Some("lab"));
        assert_eq!(cli.interval, 250);
        assert_eq!(cli.duration, Some(1.5));
        assert!(cli.no_tui);
        assert_eq!(cli.json.as_deref(), Some("-"));
        assert_eq!(cli.xdp_mode, XdpChoice::Generic);
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value_and_interfaces_add_up() {
        let cli = Cli::try_parse_from([
            "netpost",
            "-i",
            "veth0",
            "--interval",
            "100",
            "-i",
            "veth1",
            "--interval",
            "5000",
        ])
        .unwrap();
        assert_eq!(cli.interval, 5000);
        assert_eq!(cli.interfaces, ["veth0", "veth1"]);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Cli::try_parse_from(["netpost"]).is_err(), "-i is required");
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--interval", "0"]).is_err());
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--duration", "-3"]).is_err());
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--xdp-mode", "turbo"]).is_err());
    }
}
