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
        self.install_with(packages, &[])
    }

    /// Only the packages and what they depend on. For the VM tools: a kernel's
    /// recommendations (firmware, AppArmor) are of no use in a VM, and qemu's (GUI, block
    /// drivers) replaced a newer qemu-utils of the machine image.
    pub fn install_without_recommends(&mut self, packages: &[&str]) -> anyhow::Result<()> {
        self.install_with(packages, &["--no-install-recommends"])
    }

    /// `apt-cache search --names-only PATTERN`, refreshing the index first when it finds
    /// nothing (a fresh machine's index may be empty).
    pub fn search_names(&mut self, pattern: &str) -> anyhow::Result<String> {
        let search = || {
            Cmd::new("apt-cache")
                .args(["search", "--names-only", pattern])
                .probe()
                .unwrap_or_default()
        };
        let found = search();
        if !found.trim().is_empty() || self.updated {
            return Ok(found);
        }
        self.update()?;
        Ok(search())
    }

    fn update(&mut self) -> anyhow::Result<()> {
        if !probe::is_root() {
            bail!("refreshing the package index needs root: run `sudo apt-get update`");
        }
        Cmd::new("apt-get").arg("update").run()?;
        self.updated = true;
        Ok(())
    }

    fn install_with(&mut self, packages: &[&str], options: &[&str]) -> anyhow::Result<()> {
        if !probe::is_root() {
            bail!(
                "installing {} needs root: run `sudo apt-get install {0}`, or this xtask as root",
                packages.join(" ")
            );
        }
        // A fresh machine's package index may be stale or empty.
        if !self.updated {
            self.update()?;
        }
        Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(options)
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
