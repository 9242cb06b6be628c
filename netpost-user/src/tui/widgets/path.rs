//! The packet path, drawn in the shape of the kernel's: in from the wire through XDP, tc
//! ingress and PREROUTING to the routing decision, then either INPUT to a local process
//! or FORWARD; out through OUTPUT (local) or FORWARD, POSTROUTING, tc egress to the wire.
//!
//! ```text
//! wire ─▶ XDP ─▶ tc in ─▶ PREROUTING ─▶ routing ─▶ INPUT ─▶ ┌local──┐
//!                                          ▼                │process│
//!                                       FORWARD             │       │
//! wire ◀─────────◀ tc out ◀ POSTROUTING ◀──┴────── OUTPUT ◀ └───────┘
//! ```
//! Every box shows its packets per second; netfilter boxes also their drops (red). The
//! busiest route is drawn bold with heavy lines; idle boxes are dim.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Block, BorderType, Widget},
};

use super::{Canvas, panel};
use crate::{
    fmt,
    tui::{
        stats::{PathStats, Route, Stage, StageStats, StageView},
        theme::Theme,
    },
};

/// Sizes of one rendering of the diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    box_w: u16,
    /// PREROUTING and POSTROUTING boxes (their names are longer).
    wide_w: u16,
    box_h: u16,
    gap: u16,
    route_w: u16,
    local_w: u16,
}

const WIRE_W: u16 = 4;

/// Fits 80 columns (78 inside the panel): one line per box, pps only, drops in the border.
pub const SMALL: Geometry = Geometry {
    box_w: 11,
    wide_w: 13,
    box_h: 3,
    gap: 2,
    route_w: 7,
    local_w: 9,
};

/// Three lines per box: pps, bit rate or drops, totals.
pub const LARGE: Geometry = Geometry {
    box_w: 17,
    wide_w: 17,
    box_h: 5,
    gap: 4,
    route_w: 9,
    local_w: 13,
};

impl Geometry {
    pub const fn width(&self) -> u16 {
        WIRE_W + 6 * self.gap + 4 * self.box_w - self.box_w
            + self.wide_w
            + self.route_w
            + self.local_w
    }

    pub const fn height(&self) -> u16 {
        3 * self.box_h
    }

    /// Left columns of: XDP, tc, the PRE/POSTROUTING boxes, routing, INPUT/OUTPUT, local.
    fn columns(&self) -> [u16; 6] {
        let xdp = WIRE_W + self.gap;
        let tc = xdp + self.box_w + self.gap;
        let nf = tc + self.box_w + self.gap;
        let route = nf + self.wide_w + self.gap;
        let io = route + self.route_w + self.gap;
        let local = io + self.box_w + self.gap;
        [xdp, tc, nf, route, io, local]
    }

    fn x(&self, stage: Stage) -> u16 {
        let [xdp, tc, nf, _, io, _] = self.columns();
        match stage {
            Stage::Xdp => xdp,
            Stage::TcIn | Stage::TcOut => tc,
            Stage::PreRouting | Stage::PostRouting => nf,
            Stage::Input | Stage::Output => io,
            Stage::Forward => self.route_center() - self.box_w / 2,
        }
    }

    fn y(&self, stage: Stage) -> u16 {
        match stage {
            Stage::Xdp | Stage::TcIn | Stage::PreRouting | Stage::Input => 0,
            Stage::Forward => self.box_h,
            Stage::Output | Stage::PostRouting | Stage::TcOut => 2 * self.box_h,
        }
    }

    fn w(&self, stage: Stage) -> u16 {
        match stage {
            Stage::PreRouting | Stage::PostRouting => self.wide_w,
            _ => self.box_w,
        }
    }

    fn route_x(&self) -> u16 {
        self.columns()[3]
    }

    fn route_center(&self) -> u16 {
        self.route_x() + self.route_w / 2
    }

    fn local_x(&self) -> u16 {
        self.columns()[5]
    }

    /// The line arrows run along, in the ingress and egress rows.
    fn mid(&self) -> u16 {
        self.box_h / 2
    }
}

pub struct PathWidget<'a> {
    pub stats: &'a PathStats,
    pub focused: bool,
    pub theme: Theme,
    /// Room for a legend line under the diagram.
    pub legend: bool,
}

impl PathWidget<'_> {
    /// The largest geometry that fits inside a panel of this size, if any.
    pub fn geometry(inner: Rect) -> Option<Geometry> {
        [LARGE, SMALL]
            .into_iter()
            .find(|g| g.width() <= inner.width && g.height() <= inner.height)
    }

    fn title(&self) -> Line<'static> {
        let mut spans = vec![Span::raw(" packet path ")];
        if let Some(route) = self.stats.busiest {
            spans.push(Span::styled("· busiest: ", self.theme.dim()));
            spans.push(Span::styled(
                format!("{} ", route.describe()),
                self.theme.hot(),
            ));
        }
        Line::from(spans)
    }
}

impl Widget for PathWidget<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = panel(self.title(), self.focused, self.theme);
        let inner = block.inner(area);
        block.render(area, buf);
        let Some(geo) = PathWidget::geometry(inner) else {
            render_list(self.stats, self.theme, inner, buf);
            return;
        };
        // Centred, so a wide panel does not leave the diagram hanging to the left.
        let x = inner.x + (inner.width - geo.width()) / 2;
        let diagram = Rect::new(x, inner.y, geo.width(), geo.height());
        let mut canvas = Canvas::new(diagram, buf);
        Drawing {
            geo,
            stats: self.stats,
            theme: self.theme,
        }
        .draw(&mut canvas);
        if self.legend && inner.height > geo.height() + 1 {
            let legend = Rect::new(inner.x, inner.y + geo.height() + 1, inner.width, 1);
            let mut canvas = Canvas::new(legend, buf);
            canvas.line(1, 0, &legend_line(self.theme));
        }
    }
}

fn legend_line(theme: Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled("━━▶", theme.hot()),
        Span::styled(" busiest route   ", theme.dim()),
        Span::styled("✗", theme.drop()),
        Span::styled(
            " dropped (now, then in total)   dim: idle   XDP, tc: watched interfaces; netfilter: whole netns",
            theme.dim(),
        ),
    ])
}

struct Drawing<'a> {
    geo: Geometry,
    stats: &'a PathStats,
    theme: Theme,
}

/// Pieces of line between boxes that light up with a route.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// wire → XDP → tc in → PREROUTING
    In,
    /// PREROUTING → routing
    ToRouting,
    /// routing → INPUT → local process
    Local,
    /// routing ↓ FORWARD ↓
    Forward,
    /// local process → OUTPUT → junction
    Output,
    /// junction → POSTROUTING
    ToPost,
    /// POSTROUTING → tc out → wire
    Out,
}

impl Leg {
    fn on(self, route: Route) -> bool {
        match self {
            Leg::In => route.arrives(),
            Leg::ToRouting => matches!(route, Route::LocalIn | Route::Forward),
            Leg::Local => route == Route::LocalIn,
            Leg::Forward => route == Route::Forward,
            Leg::Output => route == Route::LocalOut,
            Leg::ToPost => matches!(route, Route::Forward | Route::LocalOut),
            Leg::Out => route.leaves(),
        }
    }
}

impl Drawing<'_> {
    fn hot(&self, leg: Leg) -> bool {
        self.stats.busiest.is_some_and(|r| leg.on(r))
    }

    fn line_style(&self, leg: Leg) -> Style {
        if self.hot(leg) {
            self.theme.hot()
        } else {
            self.theme.dim()
        }
    }

    fn horizontal(&self, leg: Leg) -> &'static str {
        if self.hot(leg) { "━" } else { "─" }
    }

    fn vertical(&self, leg: Leg) -> &'static str {
        if self.hot(leg) { "┃" } else { "│" }
    }

    /// An arrow along row `y` from column `from` to `to` (exclusive of the boxes), the
    /// head at the `to` end.
    fn arrow(&self, c: &mut Canvas, y: u16, from: u16, to: u16, leg: Leg) {
        let style = self.line_style(leg);
        let line = self.horizontal(leg);
        if to > from {
            for x in from..to {
                c.put(x, y, line, style);
            }
            c.put(to - 1, y, "▶", style);
        } else {
            for x in to + 1..=from {
                c.put(x, y, line, style);
            }
            c.put(to + 1, y, "◀", style);
        }
    }

    fn draw(&self, c: &mut Canvas) {
        let g = self.geo;
        let (top, bottom) = (g.mid(), 2 * g.box_h + g.mid());
        let end = |s: Stage| g.x(s) + g.w(s);

        // In from the wire.
        c.put(0, top, "wire", self.wire_style(Leg::In));
        self.arrow(c, top, WIRE_W, g.x(Stage::Xdp), Leg::In);
        self.arrow(c, top, end(Stage::Xdp), g.x(Stage::TcIn), Leg::In);
        self.arrow(c, top, end(Stage::TcIn), g.x(Stage::PreRouting), Leg::In);
        self.arrow(c, top, end(Stage::PreRouting), g.route_x(), Leg::ToRouting);
        let routing_style = if self.hot(Leg::ToRouting) {
            self.theme.hot()
        } else {
            self.theme.text()
        };
        c.put_centered(g.route_x(), top, g.route_w, "routing", routing_style);
        self.arrow(
            c,
            top,
            g.route_x() + g.route_w,
            g.x(Stage::Input),
            Leg::Local,
        );
        self.arrow(c, top, end(Stage::Input), g.local_x(), Leg::Local);

        // Down from routing into FORWARD, and from FORWARD onto the way out.
        let cx = g.route_center();
        let fwd = self.line_style(Leg::Forward);
        for y in top + 1..g.box_h {
            c.put(cx, y, self.vertical(Leg::Forward), fwd);
        }
        c.put(cx, g.box_h - 1, "▼", fwd);
        for y in 2 * g.box_h..bottom {
            c.put(cx, y, self.vertical(Leg::Forward), fwd);
        }

        // Out to the wire: local process → OUTPUT → junction → POSTROUTING → tc out → wire.
        self.arrow(
            c,
            bottom,
            g.local_x() - 1,
            end(Stage::Output) - 1,
            Leg::Output,
        );
        for x in cx + 1..g.x(Stage::Output) {
            c.put(
                x,
                bottom,
                self.horizontal(Leg::Output),
                self.line_style(Leg::Output),
            );
        }
        self.arrow(c, bottom, cx, end(Stage::PostRouting) - 1, Leg::ToPost);
        let junction = match (self.hot(Leg::Forward), self.hot(Leg::ToPost)) {
            (true, _) => "┻",
            (false, true) => "┷",
            (false, false) => "┴",
        };
        let junction_style = if self.hot(Leg::Forward) {
            fwd
        } else {
            self.line_style(Leg::ToPost)
        };
        c.put(cx, bottom, junction, junction_style);
        self.arrow(
            c,
            bottom,
            g.x(Stage::PostRouting) - 1,
            end(Stage::TcOut) - 1,
            Leg::Out,
        );
        self.arrow(c, bottom, g.x(Stage::TcOut) - 1, WIRE_W - 1, Leg::Out);
        c.put(0, bottom, "wire", self.wire_style(Leg::Out));

        self.local_box(c);
        for stage in Stage::ALL {
            self.stage_box(c, stage);
        }
    }

    fn wire_style(&self, leg: Leg) -> Style {
        if self.hot(leg) {
            self.theme.hot()
        } else {
            self.theme.text()
        }
    }

    fn local_box(&self, c: &mut Canvas) {
        let g = self.geo;
        let hot = self.hot(Leg::Local) || self.hot(Leg::Output);
        let style = if hot {
            self.theme.hot()
        } else {
            self.theme.text()
        };
        let area = Rect::new(g.local_x(), 0, g.local_w, g.height());
        let block = Block::bordered()
            .border_type(if hot {
                BorderType::Thick
            } else {
                BorderType::Plain
            })
            .border_style(style);
        render_in(c, area, block);
        let inner_w = g.local_w - 2;
        let mid = g.height() / 2;
        c.put_centered(g.local_x() + 1, mid - 1, inner_w, "local", style);
        c.put_centered(g.local_x() + 1, mid, inner_w, "process", style);
        if g.box_h > 3
            && let Some(pps) = self.stats.delivered_pps()
        {
            c.put_centered(
                g.local_x() + 1,
                mid + 2,
                inner_w,
                "delivered",
                self.theme.dim(),
            );
            c.put_centered(
                g.local_x() + 1,
                mid + 3,
                inner_w,
                &fmt::pps(pps),
                self.theme.text(),
            );
        }
    }

    fn stage_box(&self, c: &mut Canvas, stage: Stage) {
        let g = self.geo;
        let view = self.stats.stage(stage);
        let hot = self
            .stats
            .busiest
            .is_some_and(|r| r.stages().contains(&stage));
        let (active, dropping) = match view {
            StageView::Counted(s) => (s.pps > 0.0 || s.packets > 0, s.drop_pps > 0.0),
            StageView::NotCounted(_) => (false, false),
        };
        let border = if dropping {
            self.theme.drop()
        } else if hot {
            self.theme.hot()
        } else if active {
            self.theme.text()
        } else {
            self.theme.dim()
        };
        let text = if active {
            self.theme.text()
        } else {
            self.theme.dim()
        };
        let mut block = Block::bordered()
            .border_type(if hot {
                BorderType::Thick
            } else {
                BorderType::Plain
            })
            .border_style(border)
            .title(Line::from(stage.name()).style(border).centered());
        // One-line boxes carry their drops in the bottom border.
        if let StageView::Counted(s) = view
            && stage.is_netfilter()
            && g.box_h == 3
            && let Some(drops) = drop_label(s, self.theme)
        {
            block = block.title_bottom(drops.centered());
        }
        let area = Rect::new(g.x(stage), g.y(stage), g.w(stage), g.box_h);
        render_in(c, area, block);
        let lines = match view {
            StageView::NotCounted(why) => vec![Line::styled(*why, self.theme.dim())],
            StageView::Counted(s) if g.box_h == 3 => {
                vec![Line::styled(fmt::pps(s.pps), text)]
            }
            StageView::Counted(s) => self.large_lines(stage, s, text),
        };
        let inner_w = area.width - 2;
        for (i, line) in lines.iter().enumerate() {
            let x = area.x + 1 + inner_w.saturating_sub(line.width() as u16) / 2;
            c.line_n(x, area.y + 1 + i as u16, line, inner_w);
        }
    }

    fn large_lines(&self, stage: Stage, s: &StageStats, text: Style) -> Vec<Line<'static>> {
        let dim = self.theme.dim();
        let pps = Line::from(vec![
            Span::styled(fmt::rate_pkts(s.pps), text),
            Span::styled(" pps", dim),
        ]);
        if !stage.is_netfilter() {
            return vec![
                pps,
                Line::styled(fmt::bitrate(s.bps.unwrap_or(0.0)), text),
                Line::styled(format!("{} pkts", fmt::count(s.packets)), dim),
            ];
        }
        let now = if s.drop_pps > 0.0 {
            Line::styled(
                format!("✗ {} drop", fmt::pps(s.drop_pps)),
                self.theme.drop(),
            )
        } else {
            Line::styled("no drops now", dim)
        };
        let total = if s.dropped > 0 {
            Line::styled(
                format!("✗ {} dropped", fmt::count(s.dropped)),
                self.theme.past_drop(),
            )
        } else {
            Line::styled(format!("{} pkts", fmt::count(s.packets)), dim)
        };
        vec![pps, now, total]
    }
}

/// The drop figure of a one-line box: the rate while dropping, else the total if any.
fn drop_label(s: &StageStats, theme: Theme) -> Option<Line<'static>> {
    if s.drop_pps > 0.0 {
        Some(Line::styled(
            format!("✗{}", fmt::pps(s.drop_pps)),
            theme.drop(),
        ))
    } else if s.dropped > 0 {
        Some(Line::styled(
            format!("✗{}", fmt::count(s.dropped)),
            theme.past_drop(),
        ))
    } else {
        None
    }
}

/// Renders a block at a position relative to the canvas, clipped to it.
fn render_in(c: &mut Canvas, rel: Rect, block: Block) {
    let abs = Rect::new(c.area.x + rel.x, c.area.y + rel.y, rel.width, rel.height);
    let clipped = abs.intersection(c.area);
    if !clipped.is_empty() {
        block.render(clipped, c.buf_mut());
    }
}

/// Below the smallest diagram: one line per stage.
fn render_list(stats: &PathStats, theme: Theme, area: Rect, buf: &mut Buffer) {
    let mut c = Canvas::new(area, buf);
    for (i, stage) in Stage::ALL.into_iter().enumerate() {
        let mut spans = vec![Span::styled(format!("{:<12}", stage.name()), theme.title())];
        match stats.stage(stage) {
            StageView::Counted(s) => {
                spans.push(Span::raw(format!("{:>8}", fmt::pps(s.pps))));
                if let Some(d) = drop_label(s, theme) {
                    spans.push(Span::raw(" "));
                    spans.extend(d.spans);
                }
            }
            StageView::NotCounted(why) => spans.push(Span::styled(format!(" {why}"), theme.dim())),
        }
        c.line(0, i as u16, &Line::from(spans));
    }
}
