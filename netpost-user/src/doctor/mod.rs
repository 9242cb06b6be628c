//! The doctor: the article's common pitfalls diagnosed from what netpost sees. Each
//! diagnosis is a pure function of a window of recent snapshots (rates and deltas) and of
//! the kernel readings taken with them (sysctls, MIB counters: [`kernel`]); none fires
//! without evidence, and each names the numbers that triggered it, over which window, and
//! the command that fixes it, adapted to what was seen (docs/doctor.md).
//!
//! [`Doctor`] runs in the collection loop: every snapshot gets the diagnoses of the window
//! ending with it (the JSON's `diagnoses`, the dashboard's doctor panel, the metrics'
//! `netpost_diagnosis`); `netpost doctor` prints those of its last snapshot ([`report`]).
pub mod checks;
pub mod cli;
pub mod config;
pub mod diagnosis;
pub mod fix;
pub mod kernel;
pub mod report;
pub mod window;

use std::{collections::HashMap, sync::Arc};

use serde_json::{Map, Value};

pub use config::Config;
pub use diagnosis::{Diagnosis, Severity};
use kernel::{Reader, Reading};
use window::{Entry, View, Window};

use crate::model::Snapshot;

/// Every diagnosis id, in the order the checks run.
pub const IDS: [&str; 11] = [
    "forwarding-disabled",
    "rule-drops",
    "rule-order",
    "conntrack-pressure",
    "no-route",
    "rp-filter",
    "small-buffers",
    "listen-overflow",
    "syn-flood",
    "reset-storm",
    "closed-port",
];

/// The severity each diagnosis has (conntrack-pressure: critical once it refuses entries,
/// a warning while the table only fills).
pub fn usual_severity(id: &str) -> Severity {
    match id {
        "forwarding-disabled" | "conntrack-pressure" | "listen-overflow" | "syn-flood" => {
            Severity::Critical
        }
        "rule-order" | "closed-port" => Severity::Info,
        _ => Severity::Warning,
    }
}

/// What a check found: everything of a diagnosis but when it started.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Map<String, Value>,
    pub fix: String,
    pub note: Option<String>,
}

/// Every check on one window, worst first (severity, then the order of [`IDS`]).
pub fn diagnose(view: &View<'_>, config: &Config) -> Vec<Finding> {
    let mut out = checks::run(view, config);
    out.sort_by_key(|f| {
        (
            std::cmp::Reverse(f.severity),
            IDS.iter().position(|id| *id == f.id),
        )
    });
    out
}

/// The doctor of one run: the window, when each diagnosis started, the kernel reader.
#[derive(Debug)]
pub struct Doctor {
    config: Config,
    window: Window,
    reader: Reader,
    since: HashMap<&'static str, u64>,
}

impl Doctor {
    /// Takes the first kernel reading: call it when counting starts.
    pub fn new(config: Config) -> Doctor {
        let mut reader = Reader::default();
        let start = reader.read();
        Doctor::with_start(config, reader, start)
    }

    fn with_start(config: Config, reader: Reader, start: Reading) -> Doctor {
        Doctor {
            window: Window::new((config.window_s * 1000.0) as u64, start),
            config,
            reader,
            since: HashMap::new(),
        }
    }

    /// Reads the kernel, diagnoses the window ending with `snapshot`, and returns it with
    /// its `diagnoses`.
    pub fn examine(&mut self, snapshot: Snapshot) -> Arc<Snapshot> {
        let reading = self.reader.read();
        self.examine_with(snapshot, reading)
    }

    /// [`Doctor::examine`] with a given reading (tests).
    pub fn examine_with(&mut self, snapshot: Snapshot, reading: Reading) -> Arc<Snapshot> {
        self.window.push(Entry {
            snap: Arc::new(snapshot),
            kernel: Arc::new(reading),
        });
        let findings = match self.window.view() {
            Some(view) => diagnose(&view, &self.config),
            None => Vec::new(),
        };
        // The newest entry gets its diagnoses (no copy: nothing else holds it yet).
        let mut newest = self.window.take_newest();
        let mut snapshot = Arc::unwrap_or_clone(newest.snap);
        self.since
            .retain(|id, _| findings.iter().any(|f| f.id == *id));
        snapshot.diagnoses = findings
            .into_iter()
            .map(|f| Diagnosis {
                since: *self.since.entry(f.id).or_insert(snapshot.ts_ms),
                id: f.id,
                severity: f.severity,
                summary: f.summary,
                evidence: f.evidence,
                fix: f.fix,
                note: f.note,
            })
            .collect();
        let snapshot = Arc::new(snapshot);
        newest.snap = snapshot.clone();
        self.window.put_back(newest);
        snapshot
    }
}
