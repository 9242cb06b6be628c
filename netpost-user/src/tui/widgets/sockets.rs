//! Local sockets: what the host's own TCP stack did, from the socket tracepoints: how many
//! sockets entered each state, SYN-ACKs sent again, resets sent and received.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};

use super::panel;
use crate::{
    fmt,
    model::SocketsStats,
    tui::{app::App, theme::Theme},
};

pub struct SocketsPanel<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for SocketsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let snap = self.app.shown();
        let lines = match &snap.sockets {
            Some(s) => lines(s, t),
            None if snap.elapsed_ms == 0 => vec![],
            None => vec![Line::styled(
                format!("not collected: {}", snap.sockets_status),
                t.dim(),
            )],
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(" local TCP sockets (this namespace) ", true, t))
            .render(area, buf);
    }
}

pub fn lines(s: &SocketsStats, t: Theme) -> Vec<Line<'static>> {
    let bad = |n: u64| if n > 0 { t.warn() } else { t.text() };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("SYN-ACKs sent again ", t.dim()),
            Span::styled(fmt::count(s.synack_retransmits), bad(s.synack_retransmits)),
            Span::styled("   resets sent ", t.dim()),
            Span::styled(fmt::count(s.resets_sent), bad(s.resets_sent)),
            Span::styled("   received ", t.dim()),
            Span::styled(fmt::count(s.resets_received), bad(s.resets_received)),
        ]),
        Line::raw(""),
        Line::styled("sockets that entered each state since start:", t.dim()),
    ];
    if s.states.is_empty() {
        lines.push(Line::styled("  none yet", t.dim()));
    }
    let mut states: Vec<(&String, &u64)> = s.states.iter().collect();
    states.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (state, n) in states {
        lines.push(Line::raw(format!("  {state:<14} {:>9}", fmt::count(*n))));
    }
    lines
}
