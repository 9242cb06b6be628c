//! The tab bar of the overview (every panel by name: the focused one highlighted, those
//! that did not fit dimmed; Tab brings them in) and the bar of the full-screen views (every
//! view with its number key).
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::Widget,
};

use super::Canvas;
use crate::tui::{
    app::{Panel, View},
    theme::Theme,
};

pub struct TabBar<'a> {
    pub focus: Panel,
    pub hidden: &'a [Panel],
    pub theme: Theme,
}

impl Widget for TabBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let mut spans = vec![Span::styled(" Tab ▸ ", t.dim())];
        for panel in Panel::ALL {
            let listed = panel.tabbed() || self.hidden.contains(&panel);
            if !listed {
                continue;
            }
            let style = if panel == self.focus {
                t.selected().patch(t.title())
            } else if self.hidden.contains(&panel) {
                t.dim()
            } else {
                t.text()
            };
            // Brackets as well as the style: the focus shows without colour or reverse video.
            let text = if panel == self.focus {
                format!("[{}]", panel.short())
            } else {
                format!(" {} ", panel.short())
            };
            spans.push(Span::styled(text, style));
            spans.push(Span::raw(" "));
        }
        let used: usize = spans.iter().map(|s| s.width()).sum();
        let hint = "  1-9 views";
        if used + hint.len() <= area.width as usize {
            spans.push(Span::styled(hint, t.dim()));
        }
        Canvas::new(area, buf).line(0, 0, &Line::from(spans));
    }
}

pub struct ViewBar {
    pub view: View,
    pub theme: Theme,
}

/// How a view is named on the bar.
type Namer = fn(View) -> &'static str;

/// Short names for narrow terminals.
fn short(view: View) -> &'static str {
    match view {
        View::Overview => "all",
        View::Full(Panel::Interfaces) => "ifaces",
        View::Full(Panel::Conntrack) => "ct",
        View::Full(Panel::Netfilter) => "nf",
        View::Full(Panel::Routing) => "routes",
        v => v.name(),
    }
}

impl Widget for ViewBar {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        // The widest form that fits: full names, then tighter, then short names.
        let forms: [(Namer, &str); 3] = [(View::name, "  "), (View::name, " "), (short, " ")];
        let width = |name: Namer, sep: &str| -> usize {
            View::ALL
                .iter()
                .map(|v| name(*v).chars().count() + 4 + sep.len())
                .sum()
        };
        let (name, sep) = forms
            .iter()
            .copied()
            .find(|(n, s)| width(*n, s) <= area.width as usize)
            .unwrap_or(forms[2]);
        let mut spans = Vec::new();
        for (i, v) in View::ALL.iter().enumerate() {
            let style = if *v == self.view {
                t.selected().patch(t.title())
            } else {
                t.text()
            };
            let text = if *v == self.view {
                format!("[{} {}]", i + 1, name(*v))
            } else {
                format!(" {} {} ", i + 1, name(*v))
            };
            spans.push(Span::styled(text, style));
            spans.push(Span::raw(sep));
        }
        Canvas::new(area, buf).line(0, 0, &Line::from(spans));
    }
}
