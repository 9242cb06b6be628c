//! The parts of `cargo xtask bench` that need netpost's programs or raw sockets, as one
//! root-only binary the xtask runs (xtask itself must build before the eBPF toolchain
//! exists). Each subcommand prints one JSON object on stdout.
mod btfparse;
mod events;
mod floor;
mod frames;
mod held;
mod inpath;
mod nf;
mod progcost;
mod udp;
mod verifier;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "netpost-bench",
    about = "Measurements behind `cargo xtask bench`"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// ns per packet of every netpost program and its empty floor (BPF_PROG_TEST_RUN).
    Progcost {
        /// Runs per test run (the kernel reports their mean).
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        /// Test runs per (program, frame).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
    },
    /// The event pipeline: flow events produced at rising rates, drained by netpost's reader.
    Events {
        /// Target rates in events/s, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "250000,500000,1000000,2000000,4000000"
        )]
        rates: Vec<u64>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 1.0)]
        secs: f64,
        /// Stream every event as JSON to a discarding sink, as `netpost --events` does.
        #[arg(long)]
        streamed: bool,
    },
    /// Sends small UDP datagrams as fast as sendmmsg allows.
    Gen {
        #[arg(long)]
        dst: SocketAddr,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long)]
        secs: f64,
        /// Send from this many sockets (source ports) in turn: this many flows.
        #[arg(long, default_value_t = 1)]
        flows: usize,
        /// Pin to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Run counts and run time of the programs a netpost process holds, over a window
    /// (kernel BPF statistics, switched on for the window only).
    Inpath {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        secs: f64,
        /// Also count the packets this interface receives (run in its namespace).
        #[arg(long)]
        iface: Option<String>,
        /// Seconds per step of the window (each step is reported too).
        #[arg(long, default_value_t = 0.5)]
        step: f64,
    },
    /// The empty programs attached where netpost attaches its own, and their run time over a
    /// window, as `inpath` reports it (run in the interfaces' namespace).
    Floor {
        /// Attach XDP and tc floors here (repeat).
        #[arg(short = 'i', long = "interface")]
        ifaces: Vec<String>,
        /// Attach the raw tracepoint floor at this tracepoint (repeat).
        #[arg(long)]
        raw_tp: Vec<String>,
        /// Load and attach the tp_btf floor for this tracepoint.
        #[arg(long)]
        tp_btf: Option<String>,
        #[arg(long)]
        secs: f64,
        #[arg(long, default_value_t = 0.5)]
        step: f64,
        /// Count the packets this interface receives.
        #[arg(long)]
        count: Option<String>,
    },
    /// Attaches the empty programs where netpost's default run attaches on a veth (tc
    /// ingress and egress, netfilter head and tail at every hook) and holds them until killed.
    HoldFloors {
        #[arg(short = 'i', long = "interface", required = true)]
        ifaces: Vec<String>,
    },
    /// The programs a process holds: names, types, tracepoints, when each load began.
    Held {
        #[arg(long)]
        pid: u32,
    },
    /// Times netpost's and aya's parses of the kernel BTF.
    BtfParse {
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// What this kernel's verifier makes of every netpost program: loaded or the reason,
    /// instructions processed, translated and JITed sizes.
    Verifier {
        /// Write the whole verifier log of every refused program here (<name>.log).
        #[arg(long)]
        log_dir: Option<std::path::PathBuf>,
    },
    /// Counts the datagrams arriving on an address (recvmmsg).
    Sink {
        #[arg(long)]
        bind: SocketAddr,
        /// Stop once nothing arrived for this long after the first datagram.
        #[arg(long, default_value_t = 500)]
        idle_ms: u64,
        /// Stop after this long in any case.
        #[arg(long)]
        max_secs: f64,
        #[arg(long)]
        cpu: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let out = match Cli::parse().cmd {
        Cmd::Progcost { repeat, rounds } => progcost::run(&progcost::Options { repeat, rounds })?,
        Cmd::Events {
            rates,
            secs,
            streamed,
        } => events::run(&events::Options {
            rates,
            secs,
            streamed,
        })?,
        Cmd::Inpath {
            pid,
            secs,
            iface,
            step,
        } => inpath::measure(&inpath::Options {
            pid,
            secs,
            iface,
            step,
        })?,
        Cmd::Floor {
            ifaces,
            raw_tp,
            tp_btf,
            secs,
            step,
            count,
        } => floor::run(&floor::Options {
            ifaces,
            raw_tp,
            tp_btf,
            secs,
            step,
            count,
        })?,
        Cmd::HoldFloors { ifaces } => floor::hold(&ifaces)?,
        Cmd::Held { pid } => held::run(pid)?,
        Cmd::BtfParse { rounds } => btfparse::run(rounds)?,
        Cmd::Verifier { log_dir } => verifier::run(log_dir.as_deref())?,
        Cmd::Gen {
            dst,
            payload,
            secs,
            flows,
            cpu,
        } => {
            cpu.map(udp::pin).transpose()?;
            udp::generate(dst, payload, secs, flows)?
        }
        Cmd::Sink {
            bind,
            idle_ms,
            max_secs,
            cpu,
        } => {
            cpu.map(udp::pin).transpose()?;
            udp::sink(bind, idle_ms, max_secs)?
        }
    };
    println!("{out}");
    Ok(())
}
