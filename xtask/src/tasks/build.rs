//! `cargo xtask build`: the netpost binary (build.rs embeds the freshly built eBPF object).

use crate::apt::Apt;
use crate::bootstrap;
use crate::cmd::Cmd;

pub fn build(release: bool) -> anyhow::Result<()> {
    bootstrap::ensure_toolchain(&mut Apt::default())?;
    Cmd::cargo()
        .arg("build")
        .arg_if(release, "--release")
        .args(["-p", "netpost-user"])
        .run()
}
