//! Reading pcapng files with a real reader: Wireshark's `tshark` (installed by `cargo xtask
//! test`'s bootstrap), its display filters and fields.
use std::{path::Path, process::Command};

/// `tshark -r FILE [-Y FILTER] -T fields -e F...`: one row per packet, one column per field
/// (several values of one field joined by ',').
pub fn fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=\t"]);
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run tshark ({e}): the recorder tests read pcapng with it (cargo xtask test installs it)")
    });
    // Run as root, tshark warns on stderr; only the exit status and stdout matter.
    assert!(
        out.status.success(),
        "tshark -r {} -Y {filter:?} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// Packets of `file` that match the display filter `filter`.
pub fn count(file: &Path, filter: &str) -> usize {
    fields(file, filter, &["frame.number"]).len()
}
