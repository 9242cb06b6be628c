//! `netpost doctor`'s report: what was watched, then each diagnosis worst first with its
//! evidence and fix, for a person (the JSON has the same content for programs).
use std::fmt::Write as _;

use serde_json::Value;

use super::Diagnosis;
use crate::model::Snapshot;

/// The text report of the last snapshot of a `netpost doctor` run.
pub fn text(snap: &Snapshot, checked: &[&str]) -> String {
    let mut out = String::new();
    let ifaces: Vec<&str> = snap.interfaces.keys().map(String::as_str).collect();
    let _ = writeln!(
        out,
        "netpost doctor: watched {}{} for {:.1} s",
        if ifaces.is_empty() {
            "no interface".to_string()
        } else {
            ifaces.join(", ")
        },
        snap.netns
            .as_deref()
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default(),
        snap.elapsed_ms as f64 / 1000.0
    );
    if snap.diagnoses.is_empty() {
        let _ = writeln!(
            out,
            "\nhealthy: no finding ({} checks: {})",
            checked.len(),
            checked.join(", ")
        );
        return out;
    }
    for d in &snap.diagnoses {
        let _ = writeln!(out);
        out += &diagnosis(d);
    }
    let n = snap.diagnoses.len();
    let _ = writeln!(out, "\n{n} finding{}.", if n == 1 { "" } else { "s" });
    out
}

fn mark(d: &Diagnosis) -> &'static str {
    match d.severity {
        super::Severity::Critical => "✗",
        super::Severity::Warning => "!",
        super::Severity::Info => "i",
    }
}

/// One diagnosis: the headline, the evidence (one line per key), the fix.
pub fn diagnosis(d: &Diagnosis) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} {}: {}",
        mark(d),
        d.severity.name(),
        d.id,
        d.summary
    );
    let window = d
        .evidence
        .get("window_s")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let _ = writeln!(out, "  evidence (last {window} s):");
    for (k, v) in d.evidence.iter().filter(|(k, _)| *k != "window_s") {
        let _ = writeln!(out, "    {k}: {}", compact(v));
    }
    let _ = writeln!(out, "  fix: {}", d.fix);
    if let Some(note) = &d.note {
        let _ = writeln!(out, "       ({note})");
    }
    out
}

/// A JSON value on one line, strings without quotes at the top.
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}
