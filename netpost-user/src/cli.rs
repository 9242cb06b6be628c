//! Command-line flags. They are a contract scripts rely on: extend, never rename or drop
//! (docs/cli.md).
use clap::{Parser, Subcommand};

use crate::{loader::XdpChoice, probe::profile::Profile};

#[derive(Debug, Parser)]
#[command(
    name = "netpost",
    version,
    // The last of a repeated flag wins (an alias with defaults can be overridden).
    args_override_self = true,
    // `netpost -i eth0 ...` keeps working as before; a subcommand (`netpost lab up`) takes
    // none of the watch flags and does not need -i.
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    // No `netpost help` subcommand: --help is the one way, as before subcommands existed.
    disable_help_subcommand = true,
    about = "Live packet-path observability for Linux: packets per interface and hook (XDP, tc, \
             netfilter), drop reasons, routing decisions, conntrack pressure, TCP flows and handshakes"
)]
pub struct Cli {
    /// Interface to watch, or a glob ('veth*') that also watches matching interfaces created
    /// later (repeat for several; at most 64 counted at once); without -i, every interface
    /// that is up in the namespace except lo.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// Enter this network namespace (as `ip netns add` creates them) before attaching.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,

    /// Collection interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: u64,

    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    // Negative numbers are values here, so `--duration -1` is refused as a bad value of
    // --duration rather than taken for an unknown flag.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, allow_negative_numbers = true)]
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

    /// What to load: `counters` (per-hook counts, netfilter verdicts, conntrack, drop
    /// reasons: the least per packet), `standard` (plus flows, handshakes, local sockets) or
    /// `full` (everything, per-lookup routing decisions included).
    #[arg(long, value_enum, default_value_t = Profile::Standard)]
    pub profile: Profile,

    /// Write the packets the kernel drops in the watched namespace to a pcapng file: their
    /// first --snaplen bytes, each with its drop reason, the dropping function, the netfilter
    /// hook and the interface as a packet comment (mode 0600; rotated at --record-max-mib).
    #[arg(long, value_name = "PATH")]
    pub record_drops: Option<std::path::PathBuf>,

    /// Bytes recorded of each dropped packet (--record-drops, the dashboard's flight
    /// recorder); 0 keeps headers only, up to the end of TCP/UDP/ICMP: no payload.
    #[arg(long, value_name = "BYTES", default_value_t = netpost_common::record::DEFAULT_SNAPLEN,
          value_parser = clap::value_parser!(u32).range(0..=netpost_common::record::MAX_SNAPLEN as i64))]
    pub snaplen: u32,

    /// Drop reasons to record, comma-separated as the drop counters name them
    /// (NO_SOCKET,NETFILTER_DROP); default every reason.
    #[arg(long, value_name = "REASONS", value_delimiter = ',')]
    pub record_reasons: Vec<String>,

    /// Dropped packets recorded per second per reason at most (a token bucket in the kernel
    /// with a burst of one second's worth); the rest are counted as skipped_rate.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub record_rate: u32,

    /// Size at which the --record-drops file is renamed to NAME.1.EXT (replacing the one
    /// before) and a new one starts, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub record_max_mib: u64,

    /// Dropped packets the dashboard keeps in memory; key w writes them to a pcapng file
    /// (0: none).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub flight_recorder: u32,

    /// Serve Prometheus/OpenMetrics metrics on ADDR:PORT (a bare PORT binds 127.0.0.1).
    #[arg(long, value_name = "ADDR", value_parser = crate::sink::prometheus::parse_addr)]
    pub prometheus: Option<std::net::SocketAddr>,

    /// The doctor's thresholds, a TOML file (docs/doctor.md); defaults without it.
    #[arg(long, value_name = "PATH")]
    pub doctor_config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands beside the flat watch flags.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, break and remove a client - router - server lab in network namespaces.
    Lab(crate::lab::LabArgs),
    /// Watch for a while and report the pitfalls found (exit 0 healthy, 1 findings, 2 bad
    /// input).
    Doctor(DoctorArgs),
    /// The lab with a mix of traffic, and the dashboard of its router; the lab goes when
    /// the dashboard does.
    Demo(DemoArgs),
    /// Remove the tc filters (and their clsact qdisc) a netpost that did not exit left on the
    /// interfaces of a namespace (kernels < 6.6 only; a running netpost's stay).
    Cleanup(crate::cleanup::CleanupArgs),
}

/// `netpost doctor` (doctor/cli.rs runs it).
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Interface to watch (repeat for several); without -i, every interface that is up in
    /// the namespace except lo.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Enter this network namespace (as `ip netns add` creates them) first.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// How long to watch; the diagnoses cover all of it.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_secs)]
    pub duration: f64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Thresholds (TOML, docs/doctor.md).
    #[arg(long, value_name = "PATH")]
    pub doctor_config: Option<std::path::PathBuf>,
    /// Collection interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: u64,
}

/// `netpost demo` (demo.rs runs it).
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: until the dashboard quits, Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Headless: no live view on the terminal.
    #[arg(long)]
    pub no_tui: bool,
    /// Write one JSON object per interval (JSON Lines) to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// Collection interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: u64,
    /// The doctor's thresholds (TOML, docs/doctor.md).
    #[arg(long, value_name = "PATH")]
    pub doctor_config: Option<std::path::PathBuf>,
}

impl Cli {
    /// Flag combinations that cannot work, as a usage error (exit 2) naming the flags.
    pub fn conflicts(&self) -> Option<String> {
        (self.json.as_deref() == Some("-") && self.events.as_deref() == Some("-")).then(|| {
            "--json - and --events - cannot both write to stdout: send one to a file \
             (e.g. --events events.jsonl)"
                .to_string()
        })
    }
}

/// A clap error as one line: its message with the arguments it names (clap puts those on
/// the lines after the first, e.g. which required argument is missing), without the usage
/// block.
pub fn usage_error(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut out = first.strip_prefix("error: ").unwrap_or(first).to_string();
    let named: Vec<&str> = lines
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| l.starts_with("  ") && !l.trim().is_empty() && !l.trim().starts_with("tip:"))
        .map(str::trim)
        .collect();
    if !named.is_empty() {
        out = format!("{} {}", out.trim_end_matches(':'), named.join(", "));
    }
    format!("{out} (see netpost --help)")
}

/// An output file that cannot be opened, with the fix.
pub fn open_error(flag: &str, path: &str, e: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot open {flag} {path}: {e}; give a path in an existing directory you can write to, or - for stdout"
    )
}

/// The metrics endpoint cannot listen, with the likely fix.
pub fn serve_error(
    addr: std::net::SocketAddr,
    netns: Option<&str>,
    e: &std::io::Error,
) -> anyhow::Error {
    let ip = |cmd: &str| match netns {
        Some(ns) => format!("`ip -n {ns} {cmd}`"),
        None => format!("`ip {cmd}`"),
    };
    let fix = match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) if addr.ip().is_loopback() => format!(
            "; loopback is down in this namespace (a new one starts with lo down): {}",
            ip("link set lo up")
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "; no interface here has that address ({} lists them)",
            ip("addr")
        ),
        Some(libc::EADDRINUSE) => "; the port is taken: choose another one".to_string(),
        _ => String::new(),
    };
    anyhow::anyhow!("cannot serve metrics on --prometheus {addr}: {e}{fix}")
}

fn parse_ring_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if (4..=1 << 20).contains(&v) && v.is_power_of_two() => Ok(v),
        _ => Err(format!("'{s}' is not a power of two between 4 and 1048576")),
    }
}

pub fn parse_secs(s: &str) -> Result<f64, String> {
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
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--top", "many"]).is_err());
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--interval", "0"]).is_err());
        let e = Cli::try_parse_from(["netpost", "-i", "x", "--duration", "-3"]).unwrap_err();
        let line = usage_error(&e.to_string());
        assert!(
            line.contains("--duration") && line.contains("not a positive number"),
            "{line}"
        );
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--xdp-mode", "turbo"]).is_err());
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--snaplen", "4096"]).is_err());
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--record-rate", "0"]).is_err());
        assert!(Cli::try_parse_from(["netpost", "-i", "x", "--record-max-mib", "0"]).is_err());
    }

    #[test]
    fn recorder_flags_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["netpost", "-i", "x"]).unwrap();
        assert_eq!(cli.record_drops, None);
        assert_eq!(
            (
                cli.snaplen,
                cli.record_rate,
                cli.record_max_mib,
                cli.flight_recorder
            ),
            (128, 1000, 100, 1000)
        );
        assert!(cli.record_reasons.is_empty());
        let cli = Cli::try_parse_from([
            "netpost",
            "-i",
            "x",
            "--record-drops",
            "/tmp/d.pcapng",
            "--snaplen",
            "0",
            "--record-reasons",
            "NO_SOCKET,NETFILTER_DROP",
            "--record-rate",
            "50",
            "--record-max-mib",
            "5",
        ])
        .unwrap();
        assert_eq!(
            cli.record_drops.as_deref(),
            Some(std::path::Path::new("/tmp/d.pcapng"))
        );
        assert_eq!(cli.snaplen, 0);
        assert_eq!(cli.record_reasons, ["NO_SOCKET", "NETFILTER_DROP"]);
        assert_eq!((cli.record_rate, cli.record_max_mib), (50, 5));
    }

    #[test]
    fn lab_is_a_subcommand_that_needs_no_interface() {
        use crate::lab::{LabCommand, Name};
        let cli = Cli::try_parse_from(["netpost", "lab", "up"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Lab(crate::lab::LabArgs {
                command: LabCommand::Up
            }))
        ));
        let cli = Cli::try_parse_from([
            "netpost",
            "lab",
            "scenario",
            "rule-order",
            "--duration",
            "2.5",
        ])
        .unwrap();
        let Some(Command::Lab(args)) = cli.command else {
            panic!("no lab")
        };
        let LabCommand::Scenario {
            name,
            duration,
            allow_host_changes,
        } = args.command
        else {
            panic!("not a scenario")
        };
        assert_eq!(
            (name, duration, allow_host_changes),
            (Name::RuleOrder, Some(2.5), false)
        );
        assert!(Cli::try_parse_from(["netpost", "lab", "scenario", "nope"]).is_err());
        assert!(
            Cli::try_parse_from(["netpost", "lab"]).is_err(),
            "lab needs a subcommand"
        );
    }

    #[test]
    fn cleanup_is_a_subcommand_with_its_own_netns() {
        let cli = Cli::try_parse_from(["netpost", "cleanup", "--netns", "lab"]).unwrap();
        let Some(Command::Cleanup(args)) = cli.command else {
            panic!("no cleanup")
        };
        assert_eq!(args.netns.as_deref(), Some("lab"));
        let cli = Cli::try_parse_from(["netpost", "cleanup"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Cleanup(_))));
        assert!(Cli::try_parse_from(["netpost", "-i", "eth0", "cleanup"]).is_err());
    }

    #[test]
    fn without_i_every_up_interface_is_meant() {
        let cli = Cli::try_parse_from(["netpost", "--no-tui"]).unwrap();
        assert!(cli.interfaces.is_empty());
    }

    #[test]
    fn usage_errors_name_the_argument_on_one_line() {
        let text = "error: the following required arguments were not provided:\n  --interface <IFACE>\n\nUsage: netpost --interface <IFACE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error(text),
            "the following required arguments were not provided --interface <IFACE> (see netpost --help)"
        );
        let text = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: netpost [OPTIONS]\n";
        assert_eq!(
            usage_error(text),
            "unexpected argument '--bogus' found (see netpost --help)"
        );
    }

    #[test]
    fn watch_flags_and_subcommands_do_not_mix() {
        assert!(Cli::try_parse_from(["netpost", "-i", "eth0", "lab", "up"]).is_err());
        let cli = Cli::try_parse_from(["netpost", "-i", "lab"]).unwrap();
        assert_eq!(cli.interfaces, ["lab"]);
        assert!(cli.command.is_none());
    }

    #[test]
    fn json_and_events_on_stdout_conflict() {
        let cli = Cli::try_parse_from(["netpost", "-i", "x", "--json", "-", "--events", "-"]);
        let line = cli.unwrap().conflicts().expect("a conflict");
        assert!(
            line.contains("--json -") && line.contains("--events -"),
            "{line}"
        );
        let cli = Cli::try_parse_from(["netpost", "-i", "x", "--json", "-", "--events", "e"]);
        assert_eq!(cli.unwrap().conflicts(), None);
    }
}
