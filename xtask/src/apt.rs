//! Debian packages: refreshes the index at most once per run, installs non-interactively.

use anyhow::bail;

use crate::cmd::Cmd;
use crate::probe;

#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    pub fn install(&mut self, packages: &[&str]) -> anyhow::Result<()> {
        if !probe::is_root() {
            bail!(
                "installing {} needs root: run `sudo apt-get install {0}`, or this xtask as root",
                packages.join(" ")
            );
        }
        // A fresh machine's package index may be stale or empty.
        if !self.updated {
            Cmd::new("apt-get").arg("update").run()?;
            self.updated = true;
        }
        Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(packages)
            .run()
    }
}

/// Whether dpkg considers `package` installed.
pub fn installed(package: &str) -> bool {
    Cmd::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .probe()
        .is_some_and(|status| probe::dpkg_installed(&status))
}
