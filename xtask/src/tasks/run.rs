//! `cargo xtask run`: builds netpost and replaces xtask with it, as root. Without arguments
//! it runs `netpost demo` (the lab and its router's dashboard: safe on any machine);
//! `cargo xtask run -- -i eth0` watches eth0 as before.

use std::ffi::OsString;

use crate::apt::Apt;
use crate::cmd::Cmd;
use crate::{bootstrap, probe, workspace};

pub fn run(debug: bool, args: &[OsString]) -> anyhow::Result<()> {
    bootstrap::ensure_toolchain(&mut Apt::default())?;
    Cmd::cargo()
        .arg("build")
        .arg_if(!debug, "--release")
        .args(["-p", "netpost-user"])
        .run()?;

    let profile = if debug { "debug" } else { "release" };
    let netpost = workspace::target_dir()?.join(profile).join("netpost");
    // Loading BPF programs needs root; -E keeps RUST_LOG and friends.
    let cmd = if probe::is_root() {
        Cmd::new(netpost)
    } else {
        Cmd::new("sudo").arg("-E").arg(netpost)
    };
    Err(cmd.args(netpost_args(args)).exec())
}

/// What netpost is given: the arguments, or `demo` when there are none.
fn netpost_args(args: &[OsString]) -> Vec<OsString> {
    if args.is_empty() {
        vec!["demo".into()]
    } else {
        args.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_run_the_demo_and_any_keep_their_meaning() {
        assert_eq!(netpost_args(&[]), ["demo"]);
        let watch: Vec<OsString> = ["-i", "eth0"].map(OsString::from).to_vec();
        assert_eq!(netpost_args(&watch), watch);
    }
}
