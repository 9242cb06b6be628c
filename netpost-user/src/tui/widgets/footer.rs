//! The bottom line: the keys, or the filter being typed.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::Widget,
};

use super::Canvas;
use crate::tui::{app::App, keys::Mode, theme::Theme};

pub struct Footer<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for Footer<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let line = match self.app.mode() {
            Mode::Filter => Line::from(vec![
                Span::styled(" filter interfaces: ", t.warn()),
                Span::styled(self.app.filter().to_string(), t.text()),
                Span::styled("█", t.text()),
                Span::styled("   Enter keep · Esc clear · Ctrl-C quit", t.dim()),
            ]),
            _ => {
                let pause = if self.app.paused() { "resume" } else { "pause" };
                let keys = [
                    ("q", "quit"),
                    ("Tab", "panel"),
                    ("↑↓", "scroll"),
                    ("s", "sort"),
                    ("p", pause),
                    ("f", "filter"),
                    ("?", "help"),
                ];
                let mut spans = vec![Span::raw(" ")];
                for (key, what) in keys {
                    spans.push(Span::styled(key, t.title()));
                    spans.push(Span::styled(format!(" {what}  "), t.dim()));
                }
                Line::from(spans)
            }
        };
        Canvas::new(area, buf).line(0, 0, &line);
    }
}
