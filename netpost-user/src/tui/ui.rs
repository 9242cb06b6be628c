//! One frame: every panel at its place, the help overlay on top.
use ratatui::Frame;

use super::{
    app::{App, Panel},
    keys::Mode,
    layout,
    stats::path_stats,
    theme::Theme,
    widgets::{
        conntrack::ConntrackPanel,
        drops::DropsPanel,
        flows::{FlowsPanel, HandshakePanel},
        footer::Footer,
        header::Header,
        help::Help,
        ifaces::IfaceTable,
        netfilter::NetfilterTable,
        path::PathWidget,
        placeholder::Placeholder,
        rates::Rates,
    },
};

pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let areas = layout::areas(frame.area(), app.tab());
    let focused = |panel: Panel| app.focus() == panel;
    frame.render_widget(Header { app, theme }, areas.header);
    let stats = path_stats(app.shown(), app.filter());
    frame.render_widget(
        PathWidget {
            stats: &stats,
            focused: focused(Panel::Path),
            theme,
            legend: areas.large,
        },
        areas.path,
    );
    frame.render_widget(
        Rates {
            app,
            focused: focused(Panel::Rates),
            theme,
            strip: areas.rates_strip,
        },
        areas.rates,
    );
    for (panel, area) in areas.panels {
        let focused = focused(panel);
        match panel {
            Panel::Interfaces => frame.render_widget(
                IfaceTable {
                    app,
                    focused,
                    theme,
                },
                area,
            ),
            Panel::Netfilter => frame.render_widget(
                NetfilterTable {
                    app,
                    focused,
                    theme,
                },
                area,
            ),
            Panel::Handshakes if app.shown().handshake.is_some() => frame.render_widget(
                HandshakePanel {
                    app,
                    focused,
                    theme,
                },
                area,
            ),
            Panel::Flows if app.shown().handshake.is_some() => frame.render_widget(
                FlowsPanel {
                    app,
                    focused,
                    theme,
                },
                area,
            ),
            Panel::Drops => frame.render_widget(
                DropsPanel {
                    snap: app.shown(),
                    focused,
                    theme,
                },
                area,
            ),
            Panel::Conntrack => frame.render_widget(
                ConntrackPanel {
                    snap: app.shown(),
                    focused,
                    theme,
                },
                area,
            ),
            _ => frame.render_widget(
                Placeholder {
                    panel,
                    app,
                    focused,
                    theme,
                },
                area,
            ),
        }
    }
    frame.render_widget(Footer { app, theme }, areas.footer);
    if app.mode() == Mode::Help {
        frame.render_widget(Help { theme }, frame.area());
    }
}
