//! The TCP handshake funnel with RTT percentiles, and the top flows table (sorted with `s`,
//! filtered with `f`, stage per flow).
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::panel;
use crate::{
    flows::HandshakeStats,
    fmt,
    tui::{app::App, rows::flow_rows, theme::Theme},
};

pub struct HandshakePanel<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl Widget for HandshakePanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = panel(" TCP handshakes ", self.focused, self.theme);
        let lines = match &self.app.shown().handshake {
            Some(h) => funnel(h, self.theme),
            None => vec![],
        };
        Paragraph::new(lines).block(block).render(area, buf);
    }
}

fn funnel(h: &HandshakeStats, t: Theme) -> Vec<Line<'static>> {
    let step = |label: &str, n: u64| {
        vec![
            Span::styled(format!("{label} "), t.dim()),
            Span::styled(fmt::count(n), t.text()),
        ]
    };
    let mut first = step("SYN", h.syn);
    first.push(Span::styled(" → ", t.dim()));
    first.extend(step("SYN-ACK", h.synack));
    first.push(Span::styled(" → ", t.dim()));
    first.extend(step("established", h.established));
    let bad = |n: u64| if n > 0 { t.drop() } else { t.good() };
    vec![
        Line::from(first),
        Line::from(vec![
            Span::styled("half-open ", t.dim()),
            Span::styled(fmt::count(h.half_open), bad(h.half_open)),
            Span::styled("  resets ", t.dim()),
            Span::styled(fmt::count(h.resets), bad(h.resets)),
            Span::styled("  SYN rtx ", t.dim()),
            Span::styled(fmt::count(h.syn_retransmits), bad(h.syn_retransmits)),
            Span::styled("  closed ", t.dim()),
            Span::raw(fmt::count(h.closed)),
        ]),
        Line::from(match h.rtt_us {
            Some(p) => vec![
                Span::styled("handshake RTT ", t.dim()),
                Span::raw(format!(
                    "p50 {}  p90 {}  p99 {}",
                    fmt::micros(p.p50 as u64),
                    fmt::micros(p.p90 as u64),
                    fmt::micros(p.p99 as u64)
                )),
            ],
            None => vec![Span::styled(
                "handshake RTT: no handshake completed yet",
                t.dim(),
            )],
        }),
    ]
}

pub struct FlowsPanel<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl Widget for FlowsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let sort = self.app.flow_sort();
        let block = panel(
            format!(" top flows · sort {} ", sort.label()),
            self.focused,
            t,
        );
        let snap = self.app.shown();
        let mut lines = vec![Line::styled(
            format!(
                "{:<24} {:<24} {:<5} {:<12} {:>7} {:>9} {:>8}",
                "src", "dst", "proto", "stage", "pkts", "bytes", "rtt"
            ),
            t.dim(),
        )];
        for r in flow_rows(snap, self.app.filter(), sort) {
            let stage_style = match r.stage.as_str() {
                "reset" | "syn_sent" | "syn_received" => t.drop(),
                _ => t.text(),
            };
            lines.push(Line::from(vec![
                Span::raw(format!("{:<24} {:<24} {:<5} ", r.src, r.dst, r.proto)),
                Span::styled(format!("{:<12}", r.stage), stage_style),
                Span::raw(format!(
                    " {:>7} {:>9} {:>8}",
                    fmt::count(r.packets),
                    fmt::bytes(r.bytes),
                    r.rtt_us
                        .map(|u| fmt::micros(u as u64))
                        .unwrap_or_else(|| "-".into())
                )),
            ]));
        }
        if lines.len() == 1 {
            lines.push(Line::styled(
                format!("no flows yet ({} in the table)", snap.flows_active),
                t.dim(),
            ));
        }
        Paragraph::new(lines).block(block).render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::{
        flows::{FlowRow, Percentiles},
        model::Snapshot,
        tui::keys::Action,
    };

    fn screen(app: &App, w: u16, h: u16, flows: bool) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| {
            let theme = Theme::plain();
            if flows {
                f.render_widget(
                    FlowsPanel {
                        app,
                        focused: true,
                        theme,
                    },
                    f.area(),
                );
            } else {
                f.render_widget(
                    HandshakePanel {
                        app,
                        focused: true,
                        theme,
                    },
                    f.area(),
                );
            }
        })
        .unwrap();
        let buf = term.backend().buffer();
        buf.content
            .chunks(w as usize)
            .map(|row| row.iter().map(|c| c.symbol()).collect())
            .collect()
    }

    fn snapshot() -> Snapshot {
        let row = |src: &str, bytes, stage: &str, rtt| FlowRow {
            iface: "veth0".into(),
            src: src.into(),
            dst: "10.0.0.2:80".into(),
            proto: "tcp".into(),
            stage: stage.into(),
            packets: bytes / 100,
            bytes,
            rtt_us: rtt,
            ..Default::default()
        };
        Snapshot {
            elapsed_ms: 1000,
            handshake: Some(HandshakeStats {
                syn: 12,
                synack: 11,
                established: 10,
                half_open: 2,
                resets: 1,
                syn_retransmits: 3,
                rtt_us: Some(Percentiles {
                    p50: 120,
                    p90: 480,
                    p99: 2500,
                }),
                ..Default::default()
            }),
            flows: vec![
                row("10.0.0.1:40000", 90_000, "established", Some(150)),
                row("10.0.0.1:40001", 500, "syn_sent", None),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_funnel_and_rtt_percentiles_are_shown() {
        let app = App::new(Arc::new(snapshot()));
        let text = screen(&app, 70, 6, false).join("\n");
        assert!(
            text.contains("SYN 12 → SYN-ACK 11 → established 10"),
            "{text}"
        );
        assert!(text.contains("half-open 2  resets 1  SYN rtx 3"), "{text}");
        assert!(text.contains("p50 120µs"), "{text}");
    }

    #[test]
    fn flows_are_listed_sortable_and_filterable() {
        let mut app = App::new(Arc::new(snapshot()));
        let rows = screen(&app, 100, 6, true);
        assert!(
            rows[2].contains("10.0.0.1:40000") && rows[2].contains("established"),
            "{rows:#?}"
        );
        assert!(rows[3].contains("syn_sent"), "{rows:#?}");
        app.apply(Action::StartFilter);
        for c in "syn".chars() {
            app.apply(Action::FilterPush(c));
        }
        let rows = screen(&app, 100, 6, true);
        assert!(rows[2].contains("40001"), "filtered: {rows:#?}");
        assert!(!rows.iter().any(|r| r.contains("40000")), "{rows:#?}");
    }
}
