//! The help overlay: keys, and how to read the diagram.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    text::{Line, Span},
    widgets::{Clear, Paragraph, Widget, Wrap},
};

use super::panel;
use crate::tui::theme::Theme;

pub struct Help {
    pub theme: Theme,
}

const KEYS: [(&str, &str); 11] = [
    ("q  Esc  Ctrl-C", "quit (netpost detaches)"),
    (
        "Tab  Shift-Tab",
        "next / previous panel (small terminals: the lower panel)",
    ),
    ("↑ ↓  j k", "move in the focused table"),
    ("PgUp PgDn  g G", "page / first / last row"),
    (
        "s",
        "cycle the sort of the focused table (interfaces otherwise)",
    ),
    ("p  Space", "pause the view; collection goes on"),
    (
        "f  /",
        "filter interfaces by name (Enter keeps, Esc clears)",
    ),
    ("?", "this help (Esc or ? closes)"),
    ("", ""),
    ("━━▶ bold", "the route most packets take right now"),
    (
        "✗ red",
        "dropped: per second while it happens, then the total",
    ),
];

const NOTES: [&str; 3] = [
    "XDP and tc count the watched interfaces; netfilter the whole namespace.",
    "Packets are wire segments (a GSO super-packet counts each segment).",
    "A netfilter drop entered a hook and never left it: dropped, stolen, queued.",
];

impl Widget for Help {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let popup = area.centered(
            Constraint::Length(area.width.min(92)),
            Constraint::Length(area.height.min((KEYS.len() + NOTES.len() + 4) as u16)),
        );
        Clear.render(popup, buf);
        let mut lines: Vec<Line> = KEYS
            .iter()
            .map(|(k, what)| {
                Line::from(vec![
                    Span::styled(format!(" {k:<16}"), t.title()),
                    Span::styled(*what, t.text()),
                ])
            })
            .collect();
        lines.push(Line::raw(""));
        lines.extend(NOTES.iter().map(|n| Line::styled(format!(" {n}"), t.dim())));
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(" help · netpost dashboard ", true, t))
            .render(popup, buf);
    }
}
