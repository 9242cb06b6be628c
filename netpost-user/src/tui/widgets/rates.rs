//! Rate sparklines over the kept history, newest on the right: packets and bits per
//! second in and out of the watched interfaces (those the filter keeps), and netfilter
//! drops per second.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Borders, Sparkline, SparklineBar, Widget},
};

use super::{Canvas, panel};
use crate::{
    fmt,
    tui::{app::App, history::Series, stats::iface_matches, theme::Theme},
};

const LABEL_W: u16 = 20;

pub struct Rates<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
    /// A strip under the diagram (a top rule instead of a box, one line per series).
    pub strip: bool,
}

struct Plot {
    name: &'static str,
    series: Series,
    style: Style,
    format: fn(f64) -> String,
}

impl Rates<'_> {
    fn plots(&self, room: u16) -> Vec<Plot> {
        let t = self.theme;
        let mut plots = vec![
            Plot {
                name: "pkts in",
                series: Series::RxPps,
                style: t.chart(),
                format: fmt::pps,
            },
            Plot {
                name: "pkts out",
                series: Series::TxPps,
                style: t.chart(),
                format: fmt::pps,
            },
        ];
        // Bit rates only when there is room for them under the packet rates.
        if room >= 8 {
            plots.push(Plot {
                name: "bits in",
                series: Series::RxBps,
                style: t.good(),
                format: fmt::bitrate,
            });
            plots.push(Plot {
                name: "bits out",
                series: Series::TxBps,
                style: t.good(),
                format: fmt::bitrate,
            });
        }
        if !self.app.shown().netfilter.is_empty() {
            plots.push(Plot {
                name: "nf drops",
                series: Series::NfDrops,
                style: t.drop(),
                format: fmt::pps,
            });
            // Two lines only: packets in and drops, the two that matter most.
            if room == 2 {
                plots.remove(1);
            }
        }
        plots
    }
}

impl Widget for Rates<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let history = self.app.history();
        let spark_w = area.width.saturating_sub(LABEL_W + 2);
        let title = format!(
            " rates · last {} ",
            fmt::uptime(history.span_ms(spark_w as usize))
        );
        let block = if self.strip {
            let style = if self.focused {
                self.theme.focus()
            } else {
                self.theme.dim()
            };
            Block::new()
                .borders(Borders::TOP)
                .border_style(style)
                .title(Line::styled(title, self.theme.title()))
        } else {
            panel(title, self.focused, self.theme)
        };
        let inner = block.inner(area);
        block.render(area, buf);
        let plots = self.plots(inner.height);
        let each = (inner.height / plots.len().max(1) as u16).max(1);
        let rows = Layout::vertical(plots.iter().map(|_| Constraint::Length(each))).split(inner);
        let filter = self.app.filter();
        for (plot, row) in plots.iter().zip(rows.iter()) {
            let [label, chart] =
                Layout::horizontal([Constraint::Length(LABEL_W), Constraint::Min(0)]).areas(*row);
            let values = history.series(plot.series, chart.width as usize, |name| {
                iface_matches(name, filter)
            });
            let now = values.last().copied().unwrap_or(0.0);
            let mut c = Canvas::new(label, buf);
            c.line(
                0,
                label.height.saturating_sub(1) / 2,
                &Line::from(vec![
                    Span::styled(format!("{:<9}", plot.name), self.theme.dim()),
                    Span::styled(format!("{:>10}", (plot.format)(now)), self.theme.text()),
                ]),
            );
            // Left-padded with absent bars so the newest value sits at the right edge.
            let pad = (chart.width as usize).saturating_sub(values.len());
            let bars = std::iter::repeat_n(SparklineBar::from(None), pad).chain(
                values
                    .iter()
                    .map(|v| SparklineBar::from(Some(v.ceil() as u64))),
            );
            Sparkline::default()
                .data(bars)
                .style(plot.style)
                .render(chart, buf);
        }
    }
}
