//! The bottom line: the keys that work here (the most useful ones when the line is short),
//! or the filter being typed.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::Widget,
};

use super::Canvas;
use crate::tui::{
    app::{App, View},
    keys::Mode,
    theme::Theme,
};

pub struct Footer<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Footer<'_> {
    /// (key, what, priority: 0 is kept longest), in display order.
    fn keys(&self) -> Vec<(&'static str, &'static str, u8)> {
        let pause = if self.app.paused() { "resume" } else { "pause" };
        match (self.app.view(), self.app.details()) {
            (View::Overview, _) => vec![
                ("q", "quit", 0),
                ("Tab", "panel", 0),
                ("1-9", "views", 0),
                ("⏎", "open", 1),
                ("↑↓", "scroll", 2),
                ("s", "sort", 1),
                ("p", pause, 2),
                ("f", "filter", 2),
                ("w", "save drops", 3),
                ("?", "help", 0),
            ],
            (View::Full(_), details) => vec![
                ("q", "quit", 0),
                ("Esc", if details { "close" } else { "overview" }, 0),
                ("1-9", "views", 1),
                ("↑↓", "select", 1),
                ("⏎", "details", 0),
                ("s", "sort", 2),
                ("p", pause, 2),
                ("f", "filter", 2),
                ("w", "save drops", 3),
                ("?", "help", 0),
            ],
        }
    }
}

impl Widget for Footer<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let line = match self.app.mode() {
            Mode::Filter => Line::from(vec![
                Span::styled(" filter: ", t.warn()),
                Span::styled(self.app.filter().to_string(), t.text()),
                Span::styled("█", t.text()),
                Span::styled(
                    "   (interfaces, flows) Enter keep · Esc clear · Ctrl-C quit",
                    t.dim(),
                ),
            ]),
            _ if self.app.notice().is_some() => Line::from(vec![
                Span::raw(" "),
                Span::styled(self.app.notice().unwrap_or_default().to_string(), t.warn()),
            ]),
            _ => {
                let mut keys = self.keys();
                let width = |keys: &[(&str, &str, u8)]| -> usize {
                    1 + keys
                        .iter()
                        .map(|(k, w, _)| k.chars().count() + w.chars().count() + 3)
                        .sum::<usize>()
                };
                // Drop the least useful keys until the line fits.
                while width(&keys) > area.width as usize {
                    let Some(worst) = keys
                        .iter()
                        .enumerate()
                        .filter(|(_, k)| k.2 > 0)
                        .max_by_key(|(i, k)| (k.2, *i))
                        .map(|(i, _)| i)
                    else {
                        break;
                    };
                    keys.remove(worst);
                }
                let mut spans = vec![Span::raw(" ")];
                for (key, what, _) in keys {
                    spans.push(Span::styled(key, t.title()));
                    spans.push(Span::styled(format!(" {what}  "), t.dim()));
                }
                Line::from(spans)
            }
        };
        Canvas::new(area, buf).line(0, 0, &line);
    }
}
