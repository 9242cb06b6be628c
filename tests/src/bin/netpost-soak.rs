//! netpost under churn for minutes (see netpost_tests::soak): writes report.md and
//! report.json into `--out`, prints the Markdown, and exits 1 when a check failed.
//!
//! `netpost-soak --netpost PATH [--minutes N] [--out DIR] [--label TEXT]`
//! `[--tcp-rate N] [--udp-pps N]`; `cargo xtask soak` builds netpost and runs it.
use std::{path::PathBuf, process::ExitCode};

use netpost_tests::soak::{self, Options};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut opts = Options::new(30.0, PathBuf::new());
    let mut out = PathBuf::from("target/soak");
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--minutes" => {
                opts.minutes = value()
                    .parse()
                    .ok()
                    .filter(|m: &f64| *m >= 1.0)
                    .unwrap_or_else(|| usage("--minutes takes a number, at least 1"))
            }
            "--netpost" => opts.netpost = PathBuf::from(value()),
            "--out" => out = PathBuf::from(value()),
            "--label" => opts.label = value(),
            "--tcp-rate" => {
                opts.tcp_rate = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--tcp-rate takes a number"))
            }
            "--udp-pps" => {
                opts.udp_pps = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--udp-pps takes a number"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !opts.netpost.is_file() {
        usage("--netpost names the netpost binary to soak");
    }
    std::fs::create_dir_all(&out).expect("create the report directory");
    let report = soak::run(&opts, &out);
    let markdown = report.markdown();
    std::fs::write(out.join("report.md"), &markdown).expect("write report.md");
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report.json()).unwrap(),
    )
    .expect("write report.json");
    println!("{markdown}");
    println!("report: {}", out.join("report.md").display());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!("netpost-soak: a check failed (see the report)");
        ExitCode::FAILURE
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "netpost-soak: {why}\nusage: netpost-soak --netpost PATH [--minutes N] [--out DIR] [--label TEXT] [--tcp-rate N] [--udp-pps N]"
    );
    std::process::exit(2)
}
