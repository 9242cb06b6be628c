//! Conntrack table pressure: how full the table is (a bar that turns yellow from half,
//! red from 90%), how fast it fills, the kernel's failure counters (drops in red), the
//! sources creating most entries when it is filling, and the states netfilter saw.
use netpost_common::netfilter::NfHook;
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};

use super::panel;
use crate::{
    fmt,
    model::{ConntrackStats, CtStates, HIGH_FILL_PCT, Snapshot},
    tui::theme::Theme,
};

const FULL_PCT: f64 = 90.0;

pub struct ConntrackPanel<'a> {
    pub snap: &'a Snapshot,
    pub focused: bool,
    pub theme: Theme,
}

impl ConntrackPanel<'_> {
    /// The panel at `width` columns (the gauge spans them).
    pub fn paragraph(&self, width: u16) -> Paragraph<'static> {
        let block = panel(" conntrack ", self.focused, self.theme);
        let mut lines = match &self.snap.conntrack {
            Some(ct) => pressure(ct, width.saturating_sub(2), self.theme),
            None if self.snap.elapsed_ms == 0 => vec![],
            None => vec![Line::styled(
                "no conntrack in this kernel or namespace",
                self.theme.dim(),
            )],
        };
        lines.extend(states(self.snap, self.theme));
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block)
    }
}

impl Widget for ConntrackPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        self.paragraph(area.width).render(area, buf);
    }
}

/// "count/max" and a bar of the fill, as wide as the panel.
fn gauge(ct: &ConntrackStats, width: u16, t: Theme) -> Line<'static> {
    let style = if ct.fill_pct >= FULL_PCT {
        t.drop()
    } else if ct.fill_pct >= HIGH_FILL_PCT {
        t.warn()
    } else {
        t.good()
    };
    let label = format!(
        " {}/{} {:.1}%",
        fmt::count(ct.count),
        fmt::count(ct.max),
        ct.fill_pct
    );
    let bar_w = (width as usize)
        .saturating_sub(label.chars().count() + 6)
        .max(4);
    let filled = ((ct.fill_pct / 100.0).clamp(0.0, 1.0) * bar_w as f64).round() as usize;
    Line::from(vec![
        Span::styled("table ", t.dim()),
        Span::styled("█".repeat(filled), style),
        Span::styled("░".repeat(bar_w - filled), t.dim()),
        Span::styled(label, style),
    ])
}

fn counter(name: &str, total: u64, per_s: Option<f64>, t: Theme) -> Vec<Span<'static>> {
    let bad = total > 0 || per_s.is_some_and(|r| r > 0.0);
    let style: Style = if bad { t.drop() } else { t.text() };
    let mut text = fmt::count(total);
    if let Some(r) = per_s.filter(|r| *r > 0.0) {
        text.push_str(&format!(" ({})", fmt::pps(r)));
    }
    vec![
        Span::styled(format!("{name} "), t.dim()),
        Span::styled(text, style),
        Span::raw("  "),
    ]
}

fn pressure(ct: &ConntrackStats, width: u16, t: Theme) -> Vec<Line<'static>> {
    let mut growth = vec![Span::styled("new ", t.dim())];
    growth.push(Span::styled(
        ct.new_per_s.map_or("-".to_string(), fmt::pps),
        t.text(),
    ));
    growth.push(Span::styled("  full in ", t.dim()));
    growth.push(match ct.time_to_full_s {
        Some(s) => Span::styled(fmt::uptime((s * 1000.0) as u64), t.warn()),
        None => Span::styled("- (not growing)", t.text()),
    });
    let mut failures = counter("full-table drops", ct.drop, Some(ct.drop_per_s), t);
    failures.extend(counter(
        "early",
        ct.early_drop,
        Some(ct.early_drop_per_s),
        t,
    ));
    failures.extend(counter(
        "insert failed",
        ct.insert_failed,
        Some(ct.insert_failed_per_s),
        t,
    ));
    let mut others = counter("invalid", ct.invalid, None, t);
    for (name, v) in [
        ("clash", ct.clash_resolve),
        ("restarts", ct.search_restart),
        ("chain too long", ct.chaintoolong),
    ] {
        others.push(Span::styled(format!("{name} "), t.dim()));
        others.push(Span::styled(format!("{}  ", fmt::count(v)), t.text()));
    }
    let mut lines = vec![
        gauge(ct, width, t),
        Line::from(growth),
        Line::from(failures),
        Line::from(others),
    ];
    if !ct.top_sources.is_empty() {
        let mut spans = vec![Span::styled("top sources ", t.dim())];
        for s in &ct.top_sources {
            spans.push(Span::styled(
                format!("{} {}  ", s.src, fmt::count(s.new)),
                t.warn(),
            ));
        }
        lines.push(Line::from(spans));
    }
    lines
}

/// Conntrack states of packets entering the stack (PREROUTING) or leaving a local process
/// (OUTPUT), as netfilter saw them: each packet counted once.
fn states(snap: &Snapshot, t: Theme) -> Vec<Line<'static>> {
    if snap.netfilter.is_empty() {
        return vec![];
    }
    let mut ct = CtStates::default();
    for f in snap.netfilter.values() {
        for hook in [NfHook::PreRouting, NfHook::LocalOut] {
            let c = f.hook(hook).ct;
            ct.new += c.new;
            ct.established += c.established;
            ct.related += c.related;
            ct.reply += c.reply;
            ct.invalid += c.invalid;
            ct.untracked += c.untracked;
            ct.none += c.none;
        }
    }
    let invalid = if ct.invalid > 0 { t.drop() } else { t.text() };
    vec![Line::from(vec![
        Span::styled("packets: ", t.dim()),
        Span::raw(format!(
            "new {}  est {}  rel {}  reply {}  ",
            fmt::count(ct.new),
            fmt::count(ct.established),
            fmt::count(ct.related),
            fmt::count(ct.reply)
        )),
        Span::styled(format!("invalid {}", fmt::count(ct.invalid)), invalid),
        Span::raw(format!(
            "  untracked {}  no entry {}",
            fmt::count(ct.untracked),
            fmt::count(ct.none)
        )),
    ])]
}
