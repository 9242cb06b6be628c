//! Routing decisions: where route lookups sent packets (table, result, lookups, the busiest
//! destination), busiest first, and the packets dropped for want of a route. Enter on a
//! result: its top destinations.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap},
};

use super::{Column, fit_columns, num, panel, widths};
use crate::{
    fmt,
    model::RouteResult,
    tui::{
        app::{App, Panel},
        theme::Theme,
    },
};

const COLUMNS: [Column; 5] = [
    Column {
        header: "family",
        width: 6,
        priority: 1,
    },
    Column {
        header: "table",
        width: 7,
        priority: 0,
    },
    Column {
        header: "result",
        width: 40,
        priority: 0,
    },
    Column {
        header: "lookups",
        width: 9,
        priority: 0,
    },
    Column {
        header: "busiest destination",
        width: 40,
        priority: 2,
    },
];

fn cells(r: &RouteResult) -> [String; 5] {
    let top = r
        .destinations
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(d, n)| format!("{d} ({})", fmt::count(*n)))
        .unwrap_or_default();
    [
        r.family.clone().unwrap_or_else(|| "-".into()),
        r.table.clone().unwrap_or_else(|| "-".into()),
        r.result.clone(),
        fmt::count(r.lookups),
        top,
    ]
}

pub struct RoutingPanel<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for RoutingPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, t) = (self.app, self.theme);
        let snap = app.shown();
        let Some(routing) = &snap.routing else {
            let why = if snap.elapsed_ms == 0 {
                String::new()
            } else {
                format!("not collected: {}", snap.routes_status)
            };
            Paragraph::new(Line::styled(why, t.dim()))
                .block(panel(" routing decisions ", true, t))
                .render(area, buf);
            return;
        };
        let title = format!(
            " routing decisions · {} lookups · no route {} · IPv6 without a route {} ",
            fmt::count(routing.lookups),
            fmt::count(routing.no_route),
            fmt::count(routing.ipv6_no_route_lookups)
        );
        let block = panel(title, true, t);
        let inner = block.inner(area);
        block.render(area, buf);
        if routing.by_result.is_empty() {
            Paragraph::new(Line::styled("no route lookups yet", t.dim())).render(inner, buf);
            return;
        }
        let keep = fit_columns(&COLUMNS, inner.width);
        let header = Row::new(keep.iter().map(|&i| {
            let h = COLUMNS[i].header.to_string();
            if i == 3 {
                Cell::from(num(h, t.dim()))
            } else {
                Cell::from(Line::styled(h, t.dim()))
            }
        }));
        let body = routing.by_result.iter().map(|r| {
            let style = if r.result == "no route" || r.family.is_some() && r.dev.is_none() {
                t.drop()
            } else {
                t.text()
            };
            let values = cells(r);
            Row::new(keep.iter().map(|&i| {
                let v = values[i].clone();
                if i == 3 {
                    Cell::from(num(v, style))
                } else {
                    Cell::from(Line::styled(v, style))
                }
            }))
        });
        let table = Table::new(body, widths(&COLUMNS, &keep))
            .header(header)
            .row_highlight_style(t.selected());
        let mut state = TableState::default().with_selected(Some(app.selected(Panel::Routing)));
        StatefulWidget::render(table, inner, buf, &mut state);
    }
}

/// The selected result's destinations.
pub struct RouteDetails<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for RouteDetails<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let selected = self.app.selected(Panel::Routing);
        let lines = match self
            .app
            .shown()
            .routing
            .as_ref()
            .and_then(|r| r.by_result.get(selected))
        {
            Some(r) => {
                let mut lines = vec![Line::from(vec![
                    Span::styled(r.result.clone(), t.title()),
                    Span::raw(format!(
                        "  table {}  {} lookups",
                        r.table.as_deref().unwrap_or("-"),
                        fmt::count(r.lookups)
                    )),
                ])];
                lines.push(Line::styled("busiest destinations:", t.dim()));
                let mut dsts: Vec<(&String, &u64)> = r.destinations.iter().collect();
                dsts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                for (d, n) in dsts {
                    lines.push(Line::raw(format!("  {d:<40} {:>9}", fmt::count(*n))));
                }
                lines
            }
            None => vec![Line::styled("no result selected", t.dim())],
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(" route · Esc closes ", true, t))
            .render(area, buf);
    }
}
