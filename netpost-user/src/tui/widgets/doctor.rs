//! The doctor's panel: the diagnoses of the window ending with the snapshot shown, worst
//! first, each with its summary and fix; in its full view (9) also the evidence, what to
//! know before the fix, and since when it holds.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};
use serde_json::Value;

use super::panel;
use crate::{
    doctor::{Diagnosis, IDS, Severity},
    model::Snapshot,
    tui::theme::Theme,
};

/// Diagnoses the overview's panel lists (the view lists every one).
pub const OVERVIEW_SHOWN: usize = 3;

pub struct DoctorPanel<'a> {
    pub snap: &'a Snapshot,
    pub focused: bool,
    pub theme: Theme,
    /// The full view: evidence and notes too.
    pub full: bool,
}

fn mark(s: Severity, t: Theme) -> (&'static str, Style) {
    match s {
        Severity::Critical => ("✗", t.drop()),
        Severity::Warning => ("!", t.warn()),
        Severity::Info => ("i", t.text()),
    }
}

/// An evidence value on one line (strings bare).
fn value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

impl DoctorPanel<'_> {
    pub fn paragraph(&self) -> Paragraph<'static> {
        let t = self.theme;
        let d = &self.snap.diagnoses;
        let title = match d.len() {
            0 => " doctor ".to_string(),
            n => format!(" doctor · {n} finding{} ", if n == 1 { "" } else { "s" }),
        };
        let mut lines = Vec::new();
        if d.is_empty() {
            lines.push(Line::from(vec![
                Span::styled("✓ ", t.good()),
                Span::styled(
                    if self.snap.elapsed_ms == 0 {
                        "waiting for the first interval…".to_string()
                    } else {
                        format!("no finding ({} checks: {})", IDS.len(), IDS.join(", "))
                    },
                    t.dim(),
                ),
            ]));
        }
        let shown = if self.full { d.len() } else { OVERVIEW_SHOWN };
        for diag in d.iter().take(shown) {
            lines.extend(self.diagnosis(diag));
        }
        if d.len() > shown {
            lines.push(Line::styled(
                format!("… {} more: press 9", d.len() - shown),
                t.dim(),
            ));
        }
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(title, self.focused, t))
    }

    fn diagnosis(&self, d: &Diagnosis) -> Vec<Line<'static>> {
        let t = self.theme;
        let (m, style) = mark(d.severity, t);
        let mut out = vec![Line::from(vec![
            Span::styled(format!("{m} {} ", d.id), style.patch(t.title())),
            Span::styled(d.summary.clone(), t.text()),
        ])];
        if self.full {
            let held = self.snap.ts_ms.saturating_sub(d.since) / 1000;
            let window = d.evidence.get("window_s").map(value).unwrap_or_default();
            out.push(Line::styled(
                format!(
                    "  {} · for {held} s · evidence over the last {window} s:",
                    d.severity.name()
                ),
                t.dim(),
            ));
            for (k, v) in d.evidence.iter().filter(|(k, _)| *k != "window_s") {
                out.push(Line::from(vec![
                    Span::styled(format!("    {k}: "), t.dim()),
                    Span::styled(value(v), t.text()),
                ]));
            }
        }
        out.push(Line::from(vec![
            Span::styled("  fix: ", t.dim()),
            Span::styled(d.fix.clone(), t.good()),
        ]));
        if self.full
            && let Some(note) = &d.note
        {
            out.push(Line::styled(format!("       {note}"), t.dim()));
        }
        out
    }
}

impl Widget for DoctorPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        self.paragraph().render(area, buf);
    }
}
