//! The per-interface hook table: one row per interface and hook (XDP, tc ingress, tc
//! egress) with rates, totals, the header share of the bytes and the protocol split. Enter
//! on a row: its protocol and family split with header and payload bytes.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap},
};

use super::{Column, fit_columns, num, panel, widths};
use crate::{
    fmt,
    model::{HookStats, Traffic},
    tui::{
        app::{App, Panel},
        rows::{hook_label, iface_rows},
        theme::Theme,
    },
};

const COLUMNS: [Column; 14] = [
    Column {
        header: "interface",
        width: 12,
        priority: 0,
    },
    Column {
        header: "hook",
        width: 10,
        priority: 0,
    },
    Column {
        header: "pps",
        width: 8,
        priority: 0,
    },
    Column {
        header: "rate",
        width: 10,
        priority: 1,
    },
    Column {
        header: "packets",
        width: 8,
        priority: 0,
    },
    Column {
        header: "bytes",
        width: 10,
        priority: 2,
    },
    Column {
        header: "hdr%",
        width: 5,
        priority: 2,
    },
    Column {
        header: "tcp",
        width: 7,
        priority: 3,
    },
    Column {
        header: "udp",
        width: 7,
        priority: 3,
    },
    Column {
        header: "icmp",
        width: 7,
        priority: 4,
    },
    Column {
        header: "icmp6",
        width: 7,
        priority: 4,
    },
    Column {
        header: "other",
        width: 7,
        priority: 4,
    },
    Column {
        header: "malformed",
        width: 9,
        priority: 5,
    },
    Column {
        header: "frames",
        width: 8,
        priority: 6,
    },
];

fn cells(iface: &str, hook: &'static str, h: &HookStats) -> [String; 14] {
    [
        iface.to_string(),
        hook.to_string(),
        fmt::pps(h.pps),
        fmt::bitrate(h.bps),
        fmt::count(h.packets),
        fmt::bytes(h.bytes),
        fmt::percent(h.header_bytes, h.bytes),
        fmt::count(h.by_proto.tcp.packets),
        fmt::count(h.by_proto.udp.packets),
        fmt::count(h.by_proto.icmp.packets),
        fmt::count(h.by_proto.icmpv6.packets),
        fmt::count(h.by_proto.other.packets),
        fmt::count(h.malformed.packets),
        fmt::count(h.frames),
    ]
}

pub struct IfaceTable<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl Widget for IfaceTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, t) = (self.app, self.theme);
        let title = format!(
            " interfaces · sort {}{} ",
            app.iface_sort().label(),
            if app.filter().is_empty() {
                String::new()
            } else {
                format!(" · filter \"{}\"", app.filter())
            }
        );
        let block = panel(title, self.focused, t);
        let inner = block.inner(area);
        block.render(area, buf);
        let rows = iface_rows(app.shown(), app.filter(), app.iface_sort());
        if rows.is_empty() {
            let why = if app.shown().interfaces.is_empty() {
                "waiting for the first interval…"
            } else {
                "no interface matches the filter (f to change, Esc while typing clears)"
            };
            Paragraph::new(Line::styled(why, t.dim())).render(inner, buf);
            return;
        }
        let keep = fit_columns(&COLUMNS, inner.width);
        let header = Row::new(keep.iter().map(|&i| {
            let h = COLUMNS[i].header;
            if i >= 2 {
                Cell::from(num(h.to_string(), t.dim()))
            } else {
                Cell::from(Line::styled(h, t.dim()))
            }
        }));
        let body = rows.iter().map(|r| {
            let idle = r.stats.packets == 0;
            let style = if idle { t.dim() } else { t.text() };
            let values = cells(r.iface, hook_label(r.hook), r.stats);
            Row::new(keep.iter().map(|&i| {
                let v = values[i].clone();
                if i >= 2 {
                    Cell::from(num(v, style))
                } else {
                    Cell::from(Line::styled(v, style))
                }
            }))
        });
        let table = Table::new(body, widths(&COLUMNS, &keep))
            .header(header)
            .row_highlight_style(if self.focused { t.selected() } else { t.text() });
        let mut state = TableState::default().with_selected(Some(app.selected(Panel::Interfaces)));
        StatefulWidget::render(table, inner, buf, &mut state);
    }
}

/// The selected interface and hook: traffic per protocol and family, headers vs payload.
pub struct IfaceDetails<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for IfaceDetails<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, t) = (self.app, self.theme);
        let rows = iface_rows(app.shown(), app.filter(), app.iface_sort());
        let lines = match rows.get(app.selected(Panel::Interfaces)) {
            Some(r) => split_lines(r.iface, hook_label(r.hook), r.stats, t),
            None => vec![Line::styled("no interface selected", t.dim())],
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(" interface hook · Esc closes ", true, t))
            .render(area, buf);
    }
}

fn split_lines(iface: &str, hook: &str, h: &HookStats, t: Theme) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{iface} {hook}"), t.title()),
            Span::raw(format!(
                "  {}  {}  frames {}",
                fmt::pps(h.pps),
                fmt::bitrate(h.bps),
                fmt::count(h.frames)
            )),
        ]),
        Line::styled(
            format!(
                "{:<10}{:>10}{:>12}{:>12}{:>12}",
                "", "packets", "bytes", "headers", "payload"
            ),
            t.dim(),
        ),
    ];
    let row = |name: &str, x: &Traffic| {
        Line::raw(format!(
            "{name:<10}{:>10}{:>12}{:>12}{:>12}",
            fmt::count(x.packets),
            fmt::bytes(x.bytes),
            fmt::bytes(x.header_bytes),
            fmt::bytes(x.payload_bytes)
        ))
    };
    let p = &h.by_proto;
    for (name, x) in [
        ("tcp", &p.tcp),
        ("udp", &p.udp),
        ("icmp", &p.icmp),
        ("icmpv6", &p.icmpv6),
        ("other", &p.other),
    ] {
        lines.push(row(name, x));
    }
    let f = &h.by_family;
    for (name, x) in [("ipv4", &f.ipv4), ("ipv6", &f.ipv6), ("non-IP", &f.other)] {
        lines.push(row(name, x));
    }
    lines.push(row("malformed", &h.malformed));
    lines
}
