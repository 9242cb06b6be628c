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

const KEYS: [(&str, &str); 15] = [
    ("q  Ctrl-C", "quit (netpost detaches)"),
    (
        "1 … 8",
        "views: 1 overview, 2 flows, 3 drops, 4 netfilter, 5 conntrack, 6 interfaces, 7 routing, 8 sockets, 9 doctor",
    ),
    (
        "Tab  Shift-Tab",
        "next / previous panel of the overview (the tab bar names those that did not fit)",
    ),
    (
        "Enter",
        "open the focused panel's view; in a view, the selected row's details",
    ),
    (
        "Esc",
        "close the details, then back to the overview, then quit",
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
        "filter interfaces and flows by text (Enter keeps, Esc clears)",
    ),
    (
        "w",
        "save the last dropped packets (flight recorder) to a pcapng file here, with why each died",
    ),
    ("?", "this help (Esc or ? closes)"),
    ("", ""),
    ("━━▶ bold", "the route most packets take right now"),
    (
        "✗ red",
        "dropped: per second while it happens, then the total; · dim: routine drops",
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
        let help = Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(" help · netpost dashboard ", true, t));
        let width = area.width.min(120);
        let height = (help.line_count(width) as u16).min(area.height);
        let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
        Clear.render(popup, buf);
        help.render(popup, buf);
    }
}
