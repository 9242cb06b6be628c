//! `cargo xtask run`: builds netpost and replaces xtask with it, as root.

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
    Err(cmd.args(args).exec())
}
