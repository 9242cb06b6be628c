//! Where the workspace and its build output live.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;

use crate::cmd::Cmd;

/// The workspace root: the parent of xtask's manifest directory. `cargo run` sets
/// CARGO_MANIFEST_DIR at run time, which stays right if the checkout moved since the build.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        match manifest_dir.parent() {
            Some(parent) => parent.to_path_buf(),
            None => manifest_dir,
        }
    })
}

/// Cargo's target directory, which CARGO_TARGET_DIR or a config file may move elsewhere.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let json = Cmd::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    target_directory(&json)
}

fn target_directory(metadata_json: &str) -> anyhow::Result<PathBuf> {
    let metadata: serde_json::Value =
        serde_json::from_str(metadata_json).context("parsing `cargo metadata` output")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` output has no target_directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_target_directory() {
        let json = r#"{"packages":[],"target_directory":"/tmp/t","workspace_root":"/w"}"#;
        assert_eq!(target_directory(json).ok(), Some(PathBuf::from("/tmp/t")));
        assert!(target_directory(r#"{"packages":[]}"#).is_err());
        assert!(target_directory("warning: not json").is_err());
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("xtask").is_dir());
    }
}
