//! Panels for what netpost does not collect yet (handshake funnel with RTT, top flows). Each says so plainly and shows what related figures already exist, so
//! the panel fills in when the collector lands.
use netpost_common::netfilter::NfHook;
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};

use super::panel;
use crate::{
    fmt,
    model::{Snapshot, TcpClasses},
    tui::{
        app::{App, Panel},
        theme::Theme,
    },
};

pub const NOT_COLLECTED: &str = "not collected yet";

pub struct Placeholder<'a> {
    pub panel: Panel,
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl Placeholder<'_> {
    fn lines(&self) -> Vec<Line<'static>> {
        let t = self.theme;
        let snap = self.app.shown();
        let (what, meanwhile) = match self.panel {
            Panel::Handshakes => (
                "the handshake funnel (SYN → SYN/ACK → established) with RTT p50/p90/p99",
                handshakes(snap, t),
            ),
            Panel::Flows => (
                "the top flows by bytes, packets, RTT and handshake stage (f will filter them)",
                vec![],
            ),
            _ => ("", vec![]),
        };
        let mut lines = vec![
            Line::styled(NOT_COLLECTED, t.warn()),
            Line::styled(what, t.dim()),
        ];
        lines.extend(meanwhile);
        lines
    }
}

impl Placeholder<'_> {
    pub fn paragraph(&self) -> Paragraph<'static> {
        let block = panel(
            format!(" {} ", self.panel.title()),
            self.focused,
            self.theme,
        );
        Paragraph::new(self.lines())
            .wrap(Wrap { trim: true })
            .block(block)
    }
}

impl Widget for Placeholder<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        self.paragraph().render(area, buf);
    }
}

fn sum_tcp(snap: &Snapshot, hook: NfHook) -> TcpClasses {
    let mut out = TcpClasses::default();
    for f in snap.netfilter.values() {
        let c = f.hook(hook).tcp;
        out.syn += c.syn;
        out.synack += c.synack;
        out.rst += c.rst;
        out.fin += c.fin;
        out.other += c.other;
        out.unread += c.unread;
    }
    out
}

/// TCP packets by handshake class where they enter the stack (netfilter counts them).
fn handshakes(snap: &Snapshot, t: Theme) -> Vec<Line<'static>> {
    if snap.netfilter.is_empty() {
        return vec![];
    }
    let mut lines = vec![Line::styled(
        format!(
            "{:<22}{:>7} {:>7} {:>4} {:>4}",
            "TCP packets so far", "syn", "synack", "rst", "fin"
        ),
        t.dim(),
    )];
    for (label, hook) in [
        ("arriving (PREROUTING)", NfHook::PreRouting),
        ("sent (OUTPUT)", NfHook::LocalOut),
        ("forwarded (FORWARD)", NfHook::Forward),
    ] {
        let c = sum_tcp(snap, hook);
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<22}"), t.text()),
            Span::raw(format!(
                "{:>7} {:>7} {:>4} {:>4}",
                fmt::count(c.syn),
                fmt::count(c.synack),
                fmt::count(c.rst),
                fmt::count(c.fin)
            )),
        ]));
    }
    lines
}
