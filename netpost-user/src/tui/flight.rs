//! The flight recorder's save (key w): the last dropped packets the recorder kept, written
//! to a new pcapng file named by the time, and one line saying where (or why not).
use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{model::Snapshot, pcapng};

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A file name in `dir` for a save at `secs` that no earlier save took.
fn free_path(dir: &Path, secs: u64) -> PathBuf {
    let name = pcapng::flight_file_name(secs);
    let first = dir.join(&name);
    if !first.exists() {
        return first;
    }
    let stem = name.trim_end_matches(".pcapng");
    (2..)
        .map(|n| dir.join(format!("{stem}-{n}.pcapng")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Saves `snap`'s dropped packets in `dir`; the line to show.
pub fn save(snap: &Snapshot, dir: &Path, secs: u64) -> String {
    let packets = &snap.drop_packets;
    if packets.is_empty() {
        let status = snap.probes.get("recorder").map(String::as_str);
        return match status {
            Some("reading") | None => "no dropped packets recorded yet: nothing to save".into(),
            Some(why) => format!("the flight recorder is {why}: nothing to save"),
        };
    }
    let snaplen = snap
        .drops
        .as_ref()
        .and_then(|d| d.recorder.as_ref())
        .map_or(0, |r| r.snaplen);
    let path = free_path(dir, secs);
    match pcapng::save(&path, packets.iter().map(|p| &**p), snaplen) {
        Ok(n) => format!("saved the last {n} dropped packets to {}", path.display()),
        Err(e) => format!("cannot save dropped packets to {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_save_in_the_same_second_gets_its_own_file() {
        let dir = std::env::temp_dir().join(format!("netpost-flight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = free_path(&dir, 0);
        assert_eq!(
            first.file_name().unwrap(),
            "netpost-drops-19700101T000000Z.pcapng"
        );
        std::fs::write(&first, b"").unwrap();
        assert_eq!(
            free_path(&dir, 0).file_name().unwrap(),
            "netpost-drops-19700101T000000Z-2.pcapng"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_the_recorder_it_says_why() {
        let snap = Snapshot {
            probes: [(
                "recorder".to_string(),
                "off (no --record-drops)".to_string(),
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            save(&snap, Path::new("/nonexistent"), 0),
            "the flight recorder is off (no --record-drops): nothing to save"
        );
    }
}
