//! The TCP handshake funnel with RTT percentiles, and the flows table: one row per flow
//! with the interfaces it crossed, bytes per direction, rate, state and handshake RTT
//! (sorted with `s`, filtered with `f`); Enter shows one flow in full.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap},
};

use super::{Column, fit_columns, num, panel, widths};
use crate::{
    fmt,
    model::{FlowSummary, HandshakeStats},
    tui::{
        app::{App, Panel},
        rows::flow_rows,
        theme::Theme,
    },
};

pub struct HandshakePanel<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl HandshakePanel<'_> {
    pub fn paragraph(&self) -> Paragraph<'static> {
        let lines = match &self.app.shown().handshake {
            Some(h) => funnel(h, self.theme),
            None => vec![],
        };
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(panel(
            " TCP handshakes ",
            self.focused,
            self.theme,
        ))
    }
}

impl Widget for HandshakePanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        self.paragraph().render(area, buf);
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
            Span::styled("  timed out ", t.dim()),
            Span::styled(fmt::count(h.timed_out), bad(h.timed_out)),
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

/// Columns of the flows table; the wider the panel, the more of them (120 columns show
/// all but the packet counts).
const COLUMNS: [Column; 11] = [
    Column {
        header: "src",
        width: 21,
        priority: 0,
    },
    Column {
        header: "dst",
        width: 21,
        priority: 0,
    },
    Column {
        header: "proto",
        width: 5,
        priority: 3,
    },
    Column {
        header: "seen on",
        width: 13,
        priority: 1,
    },
    Column {
        header: "state",
        width: 11,
        priority: 1,
    },
    Column {
        header: "bytes →",
        width: 9,
        priority: 1,
    },
    Column {
        header: "← bytes",
        width: 9,
        priority: 2,
    },
    Column {
        header: "rate",
        width: 9,
        priority: 0,
    },
    Column {
        header: "rtt",
        width: 7,
        priority: 2,
    },
    Column {
        header: "pkts →",
        width: 7,
        priority: 4,
    },
    Column {
        header: "← pkts",
        width: 7,
        priority: 4,
    },
];

/// Columns 5 and on are numbers (right-aligned).
const FIRST_NUMBER: usize = 5;

fn cells(f: &FlowSummary) -> [String; 11] {
    [
        f.src.clone(),
        f.dst.clone(),
        f.proto.clone(),
        f.ifaces.join("→"),
        f.stage.clone(),
        fmt::bytes(f.from_src.bytes),
        fmt::bytes(f.from_dst.bytes),
        fmt::bitrate(f.bps),
        f.rtt_us
            .map(|u| fmt::micros(u as u64))
            .unwrap_or_else(|| "-".into()),
        fmt::count(f.from_src.packets),
        fmt::count(f.from_dst.packets),
    ]
}

pub struct FlowsPanel<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl FlowsPanel<'_> {
    /// Rows it would list.
    pub fn rows(&self) -> usize {
        flow_rows(self.app.shown(), self.app.filter(), self.app.flow_sort()).len()
    }
}

impl Widget for FlowsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, t) = (self.app, self.theme);
        let sort = app.flow_sort();
        let snap = app.shown();
        let block = panel(
            format!(
                " top flows · sort {} · {} in the table ",
                sort.label(),
                fmt::count(snap.flows_active)
            ),
            self.focused,
            t,
        );
        let inner = block.inner(area);
        block.render(area, buf);
        let rows = flow_rows(snap, app.filter(), sort);
        if rows.is_empty() {
            let why = if snap.flows_merged.is_empty() {
                "no flows yet"
            } else {
                "no flow matches the filter"
            };
            Paragraph::new(Line::styled(why, t.dim())).render(inner, buf);
            return;
        }
        let keep = fit_columns(&COLUMNS, inner.width);
        let header = Row::new(keep.iter().map(|&i| {
            let h = COLUMNS[i].header.to_string();
            if i >= FIRST_NUMBER {
                Cell::from(num(h, t.dim()))
            } else {
                Cell::from(Line::styled(h, t.dim()))
            }
        }));
        let body = rows.iter().map(|f| {
            let values = cells(f);
            let idle = f.bps == 0.0;
            let stage_style = match f.stage.as_str() {
                "reset" | "syn_sent" | "syn_received" => t.drop(),
                _ if idle => t.dim(),
                _ => t.text(),
            };
            let style = if idle { t.dim() } else { t.text() };
            Row::new(keep.iter().map(|&i| {
                let v = values[i].clone();
                match i {
                    4 => Cell::from(Line::styled(v, stage_style)),
                    i if i >= FIRST_NUMBER => Cell::from(num(v, style)),
                    _ => Cell::from(Line::styled(v, style)),
                }
            }))
        });
        let table = Table::new(body, widths(&COLUMNS, &keep))
            .header(header)
            .row_highlight_style(if self.focused { t.selected() } else { t.text() });
        let mut state = TableState::default().with_selected(Some(app.selected(Panel::Flows)));
        StatefulWidget::render(table, inner, buf, &mut state);
    }
}

/// The selected flow in full: both directions, its handshake, every interface it crossed.
pub struct FlowDetails<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for FlowDetails<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let rows = flow_rows(self.app.shown(), self.app.filter(), self.app.flow_sort());
        let block = panel(" flow · Esc closes ", true, t);
        let Some(f) = rows.get(self.app.selected(Panel::Flows)) else {
            Paragraph::new(Line::styled("no flow selected", t.dim()))
                .block(block)
                .render(area, buf);
            return;
        };
        Paragraph::new(flow_lines(f, t))
            .wrap(Wrap { trim: false })
            .block(block)
            .render(area, buf);
    }
}

fn rtt_text(total: Option<u32>, synack: Option<u32>, ack: Option<u32>) -> String {
    let us = |v: Option<u32>| v.map_or("-".to_string(), |u| fmt::micros(u as u64));
    format!(
        "{} (SYN→SYN-ACK {}, SYN-ACK→ACK {})",
        us(total),
        us(synack),
        us(ack)
    )
}

pub fn flow_lines(f: &FlowSummary, t: Theme) -> Vec<Line<'static>> {
    let label = |s: &str| Span::styled(format!("{s:<16}"), t.dim());
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{} → {}", f.src, f.dst), t.title()),
            Span::raw(format!("  {}  {}", f.proto, f.stage)),
        ]),
        Line::from(vec![label("seen on"), Span::raw(f.ifaces.join(" → "))]),
        Line::from(vec![
            label("src → dst"),
            Span::raw(format!(
                "{} packets  {}",
                fmt::count(f.from_src.packets),
                fmt::bytes(f.from_src.bytes)
            )),
        ]),
        Line::from(vec![
            label("dst → src"),
            Span::raw(format!(
                "{} packets  {}",
                fmt::count(f.from_dst.packets),
                fmt::bytes(f.from_dst.bytes)
            )),
        ]),
        Line::from(vec![
            label("now"),
            Span::raw(format!("{}  {}", fmt::bitrate(f.bps), fmt::pps(f.pps))),
        ]),
    ];
    if f.proto == "tcp" {
        lines.push(Line::from(vec![
            label("handshake RTT"),
            Span::raw(rtt_text(f.rtt_us, f.rtt_synack_us, f.rtt_ack_us)),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "as each interface saw it (src → dst / dst → src):",
        t.dim(),
    ));
    for s in &f.seen {
        let mut text = format!(
            "  {:<12} {:<12} {} pkts {} / {} pkts {}",
            s.iface,
            s.stage,
            fmt::count(s.from_src.packets),
            fmt::bytes(s.from_src.bytes),
            fmt::count(s.from_dst.packets),
            fmt::bytes(s.from_dst.bytes),
        );
        if f.proto == "tcp" {
            text.push_str(&format!(
                "  rtt {}",
                rtt_text(s.rtt_us, s.rtt_synack_us, s.rtt_ack_us)
            ));
        }
        lines.push(Line::raw(text));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::{
        model::{Direction, FlowOnIface, Percentiles, Snapshot},
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

    pub fn flow(src: &str, bytes: u64, stage: &str, rtt: Option<u32>) -> FlowSummary {
        let d = |b: u64| Direction {
            packets: b / 1000,
            bytes: b,
        };
        FlowSummary {
            src: src.into(),
            dst: "10.0.0.2:5201".into(),
            proto: "tcp".into(),
            stage: stage.into(),
            ifaces: vec!["vr0".into(), "vr1".into()],
            from_src: d(bytes),
            from_dst: d(bytes / 20),
            packets: bytes / 1000 + bytes / 20_000,
            bytes: bytes + bytes / 20,
            bps: bytes as f64,
            rtt_us: rtt,
            rtt_synack_us: rtt.map(|r| r / 2),
            rtt_ack_us: rtt.map(|r| r / 2),
            seen: ["vr0", "vr1"]
                .iter()
                .map(|i| FlowOnIface {
                    iface: i.to_string(),
                    from_src: d(bytes),
                    from_dst: d(bytes / 20),
                    stage: stage.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn snapshot() -> Snapshot {
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
            flows_merged: vec![
                flow("10.0.0.1:40000", 90_000_000, "established", Some(150)),
                flow("10.0.0.1:40001", 500, "syn_sent", None),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_funnel_and_rtt_percentiles_are_shown() {
        let app = App::new(Arc::new(snapshot()));
        let text = screen(&app, 80, 6, false).join("\n");
        assert!(
            text.contains("SYN 12 → SYN-ACK 11 → established 10"),
            "{text}"
        );
        assert!(text.contains("half-open 2  resets 1  SYN rtx 3"), "{text}");
        assert!(text.contains("p50 120µs"), "{text}");
    }

    #[test]
    fn at_120_columns_a_flow_row_has_its_interfaces_bytes_each_way_rate_state_and_rtt() {
        let app = App::new(Arc::new(snapshot()));
        let rows = screen(&app, 120, 6, true);
        let header = &rows[1];
        for col in [
            "src",
            "dst",
            "seen on",
            "state",
            "bytes →",
            "← bytes",
            "rate",
            "rtt",
        ] {
            assert!(header.contains(col), "{col} missing: {rows:#?}");
        }
        let first = &rows[2];
        for want in [
            "10.0.0.1:40000",
            "10.0.0.2:5201",
            "vr0→vr1",
            "established",
            "85.8MiB",
            "4.3MiB",
            "90.0 Mbps",
            "150µs",
        ] {
            assert!(first.contains(want), "{want} missing: {first}");
        }
    }

    #[test]
    fn flows_are_sortable_and_filterable() {
        let mut app = App::new(Arc::new(snapshot()));
        let rows = screen(&app, 100, 6, true);
        assert!(rows[2].contains("40000"), "{rows:#?}");
        assert!(rows[3].contains("syn_sent"), "{rows:#?}");
        app.apply(Action::StartFilter);
        for c in "syn".chars() {
            app.apply(Action::FilterPush(c));
        }
        let rows = screen(&app, 100, 6, true);
        assert!(rows[2].contains("40001"), "filtered: {rows:#?}");
        assert!(!rows.iter().any(|r| r.contains("40000")), "{rows:#?}");
    }

    #[test]
    fn details_show_both_directions_and_every_interface() {
        let f = flow("10.0.0.1:40000", 90_000, "established", Some(150));
        let text: Vec<String> = flow_lines(&f, Theme::plain())
            .iter()
            .map(|l| l.to_string())
            .collect();
        let text = text.join("\n");
        for want in [
            "10.0.0.1:40000 → 10.0.0.2:5201",
            "vr0 → vr1",
            "90 packets  87.9KiB",
            "4 packets  4.4KiB",
            "150µs (SYN→SYN-ACK 75µs, SYN-ACK→ACK 75µs)",
            "  vr1 ",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
