//! What a diagnosis is, as the Snapshot carries it (apart from the doctor, so the model
//! imports nothing else of it).
use serde::Serialize;
use serde_json::{Map, Value};

/// How bad a diagnosis is; the worst come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One diagnosis, as the JSON's `diagnoses[]` has it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnosis {
    pub id: &'static str,
    pub severity: Severity,
    /// When it started to hold without a break (ms since the Unix epoch, as `ts_ms`).
    pub since: u64,
    /// What is wrong, in one sentence with the key numbers.
    pub summary: String,
    /// The numbers that triggered it; `window_s` is the window they cover.
    pub evidence: Map<String, Value>,
    /// The command that fixes it, adapted to what was seen.
    pub fix: String,
    /// What to know before running it (null when nothing).
    pub note: Option<String>,
}
