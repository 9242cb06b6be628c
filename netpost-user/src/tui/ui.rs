//! One frame: the overview (every panel that fits, a tab bar naming the others) or one
//! panel full-screen with the selected row's details; the help overlay on top.
use ratatui::{Frame, buffer::Buffer, layout::Rect, widgets::Widget};

use super::{
    app::{App, Panel, View},
    fit,
    keys::Mode,
    layout,
    stats::path_stats,
    theme::Theme,
    widgets::{
        conntrack::ConntrackPanel,
        doctor::DoctorPanel,
        drops::{DropDetails, DropsPanel},
        flows::{FlowDetails, FlowsPanel, HandshakePanel},
        footer::Footer,
        header::Header,
        help::Help,
        ifaces::{IfaceDetails, IfaceTable},
        netfilter::{NetfilterTable, NfDetails},
        path::PathWidget,
        placeholder::Placeholder,
        rates::Rates,
        routing::{RouteDetails, RoutingPanel},
        sockets::SocketsPanel,
        tabs::{TabBar, ViewBar},
    },
};

pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    match app.view() {
        View::Overview => overview(frame.buffer_mut(), area, app, theme),
        View::Full(panel) => full(frame.buffer_mut(), area, app, panel, theme),
    }
    if app.mode() == Mode::Help {
        frame.render_widget(Help { theme }, area);
    }
}

/// Where the overview puts every panel at `area` (the render tests ask it what is visible).
pub fn overview_areas(area: Rect, app: &App) -> layout::Areas {
    let findings = !app.shown().diagnoses.is_empty();
    layout::overview(area, app.focus(), app.tab(), findings, &|panel, width| {
        fit::want(app, panel, width)
    })
}

fn overview(buf: &mut Buffer, area: Rect, app: &App, theme: Theme) {
    let areas = overview_areas(area, app);
    let focused = |panel: Panel| app.focus() == panel;
    Header { app, theme }.render(areas.header, buf);
    let stats = path_stats(app.shown(), app.filter());
    PathWidget {
        stats: &stats,
        focused: focused(Panel::Path),
        theme,
        legend: areas.large,
    }
    .render(areas.path, buf);
    if let Some(rates) = areas.rates {
        Rates {
            app,
            focused: focused(Panel::Rates),
            theme,
            strip: areas.rates_strip,
        }
        .render(rates, buf);
    }
    if let Some(tabs) = areas.tabs {
        TabBar {
            focus: app.focus(),
            hidden: &areas.hidden,
            theme,
        }
        .render(tabs, buf);
    }
    for (panel, area) in areas.panels {
        render_panel(buf, area, app, panel, focused(panel), theme);
    }
    Footer { app, theme }.render(areas.footer, buf);
}

/// One overview panel in its area.
fn render_panel(
    buf: &mut Buffer,
    area: Rect,
    app: &App,
    panel: Panel,
    focused: bool,
    theme: Theme,
) {
    let collected = app.shown().handshake.is_some();
    match panel {
        Panel::Interfaces => IfaceTable {
            app,
            focused,
            theme,
        }
        .render(area, buf),
        Panel::Netfilter => NetfilterTable {
            app,
            focused,
            theme,
        }
        .render(area, buf),
        Panel::Handshakes if collected => HandshakePanel {
            app,
            focused,
            theme,
        }
        .render(area, buf),
        Panel::Flows if collected => FlowsPanel {
            app,
            focused,
            theme,
        }
        .render(area, buf),
        Panel::Drops => DropsPanel {
            app,
            focused,
            theme,
            full: false,
        }
        .render(area, buf),
        Panel::Conntrack => ConntrackPanel {
            snap: app.shown(),
            focused,
            theme,
        }
        .render(area, buf),
        Panel::Rates => Rates {
            app,
            focused,
            theme,
            strip: false,
        }
        .render(area, buf),
        Panel::Routing => RoutingPanel { app, theme }.render(area, buf),
        Panel::Sockets => SocketsPanel { app, theme }.render(area, buf),
        Panel::Doctor => DoctorPanel {
            snap: app.shown(),
            focused,
            theme,
            full: false,
        }
        .render(area, buf),
        _ => Placeholder {
            panel,
            app,
            focused,
            theme,
        }
        .render(area, buf),
    }
}

fn full(buf: &mut Buffer, area: Rect, app: &App, panel: Panel, theme: Theme) {
    let areas = layout::full(area);
    Header { app, theme }.render(areas.header, buf);
    ViewBar {
        view: app.view(),
        theme,
    }
    .render(areas.bar, buf);
    let (table, details) = if app.details() {
        let (t, d) = layout::split_details(areas.body);
        (t, Some(d))
    } else {
        (areas.body, None)
    };
    match panel {
        Panel::Drops => DropsPanel {
            app,
            focused: true,
            theme,
            full: true,
        }
        .render(table, buf),
        Panel::Routing => RoutingPanel { app, theme }.render(table, buf),
        Panel::Sockets => SocketsPanel { app, theme }.render(table, buf),
        Panel::Doctor => DoctorPanel {
            snap: app.shown(),
            focused: true,
            theme,
            full: true,
        }
        .render(table, buf),
        p => render_panel(buf, table, app, p, true, theme),
    }
    if let Some(details) = details {
        match panel {
            Panel::Flows => FlowDetails { app, theme }.render(details, buf),
            Panel::Drops => DropDetails { app, theme }.render(details, buf),
            Panel::Netfilter => NfDetails { app, theme }.render(details, buf),
            Panel::Interfaces => IfaceDetails { app, theme }.render(details, buf),
            Panel::Routing => RouteDetails { app, theme }.render(details, buf),
            _ => {}
        }
    }
    Footer { app, theme }.render(areas.footer, buf);
}
