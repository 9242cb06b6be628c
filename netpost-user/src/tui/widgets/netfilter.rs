//! The netfilter table: per linked family and hook, packets that entered, survived and
//! died there, rates, conntrack states of the survivors and TCP handshake classes; then
//! one line per family that is not linked, saying why.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget},
};

use super::{Column, fit_columns, num, panel, widths};
use crate::{
    fmt,
    nf_model::NfHookStats,
    tui::{
        app::{App, Panel},
        rows::{chain_name, nf_rows},
        theme::Theme,
    },
};

const COLUMNS: [Column; 18] = [
    Column {
        header: "fam",
        width: 4,
        priority: 0,
    },
    Column {
        header: "hook",
        width: 11,
        priority: 0,
    },
    Column {
        header: "entered",
        width: 8,
        priority: 0,
    },
    Column {
        header: "accepted",
        width: 8,
        priority: 1,
    },
    Column {
        header: "dropped",
        width: 8,
        priority: 0,
    },
    Column {
        header: "pps",
        width: 8,
        priority: 0,
    },
    Column {
        header: "drop/s",
        width: 8,
        priority: 0,
    },
    Column {
        header: "ct new",
        width: 7,
        priority: 2,
    },
    Column {
        header: "estab",
        width: 7,
        priority: 2,
    },
    Column {
        header: "reply",
        width: 7,
        priority: 3,
    },
    Column {
        header: "related",
        width: 7,
        priority: 5,
    },
    Column {
        header: "invalid",
        width: 7,
        priority: 3,
    },
    Column {
        header: "untrack",
        width: 7,
        priority: 5,
    },
    Column {
        header: "no ct",
        width: 7,
        priority: 5,
    },
    Column {
        header: "syn",
        width: 6,
        priority: 4,
    },
    Column {
        header: "synack",
        width: 6,
        priority: 4,
    },
    Column {
        header: "rst",
        width: 6,
        priority: 4,
    },
    Column {
        header: "fin",
        width: 6,
        priority: 4,
    },
];

fn cells(family: &str, hook: String, h: &NfHookStats) -> [String; 18] {
    [
        family.replace("ipv", "v"),
        hook,
        fmt::count(h.entered),
        fmt::count(h.accepted),
        fmt::count(h.dropped),
        fmt::pps(h.pps),
        fmt::pps(h.dropped_pps),
        fmt::count(h.ct.new),
        fmt::count(h.ct.established),
        fmt::count(h.ct.reply),
        fmt::count(h.ct.related),
        fmt::count(h.ct.invalid),
        fmt::count(h.ct.untracked),
        fmt::count(h.ct.none),
        fmt::count(h.tcp.syn),
        fmt::count(h.tcp.synack),
        fmt::count(h.tcp.rst),
        fmt::count(h.tcp.fin),
    ]
}

/// Columns that turn red when not zero.
const DROP_COLUMNS: [usize; 2] = [4, 6];

pub struct NetfilterTable<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
}

impl Widget for NetfilterTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, t) = (self.app, self.theme);
        let snap = app.shown();
        let title = format!(
            " netfilter (whole namespace) · sort {} ",
            app.nf_sort().label()
        );
        let block = panel(title, self.focused, t);
        let inner = block.inner(area);
        block.render(area, buf);
        let missing: Vec<Line> = snap
            .netfilter_status
            .iter()
            .filter(|(family, _)| !snap.netfilter.contains_key(*family))
            .map(|(family, status)| {
                Line::from(vec![
                    Span::styled(format!("{family}: "), t.title()),
                    Span::styled(status.clone(), t.warn()),
                ])
            })
            .collect();
        let [table_area, status_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(missing.len() as u16)])
                .areas(inner);
        Paragraph::new(missing).render(status_area, buf);
        let rows = nf_rows(snap, app.nf_sort());
        if rows.is_empty() {
            let why = if snap.netfilter_status.is_empty() {
                "waiting for the first interval…"
            } else {
                "no family linked"
            };
            Paragraph::new(Line::styled(why, t.dim())).render(table_area, buf);
            return;
        }
        let keep = fit_columns(&COLUMNS, table_area.width);
        let header = Row::new(keep.iter().map(|&i| {
            let h = COLUMNS[i].header;
            if i >= 2 {
                Cell::from(num(h.to_string(), t.dim()))
            } else {
                Cell::from(Line::styled(h, t.dim()))
            }
        }));
        let body = rows.iter().map(|r| {
            let style = if r.stats.entered == 0 {
                t.dim()
            } else {
                t.text()
            };
            let values = cells(r.family, chain_name(r.hook), r.stats);
            let red = [r.stats.dropped > 0, r.stats.dropped_pps > 0.0];
            Row::new(keep.iter().map(|&i| {
                let v = values[i].clone();
                let cell_style = match DROP_COLUMNS.iter().position(|c| *c == i) {
                    Some(k) if red[k] => t.drop(),
                    _ => style,
                };
                if i >= 2 {
                    Cell::from(num(v, cell_style))
                } else {
                    Cell::from(Line::styled(v, cell_style))
                }
            }))
        });
        let table = Table::new(body, widths(&COLUMNS, &keep))
            .header(header)
            .row_highlight_style(if self.focused { t.selected() } else { t.text() });
        let mut state = TableState::default().with_selected(Some(app.selected(Panel::Netfilter)));
        StatefulWidget::render(table, table_area, buf, &mut state);
    }
}
