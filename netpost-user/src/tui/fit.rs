//! How tall each panel wants to be at a width, from what it would show now: the layout
//! gives panels their content's height, so none shows rows of nothing.
use super::{
    app::{App, Panel},
    layout::Want,
    rows::iface_rows,
    theme::Theme,
    widgets::{
        conntrack::ConntrackPanel, doctor::DoctorPanel, drops::DropsPanel, flows::FlowsPanel,
        flows::HandshakePanel, netfilter, placeholder::Placeholder,
    },
};

/// Borders (2) and a table's header line.
const TABLE_CHROME: u16 = 3;

pub fn want(app: &App, panel: Panel, width: u16) -> Want {
    // Styles do not change sizes.
    let theme = Theme { color: false };
    let text = |lines: usize| Want {
        min: (lines as u16).min(4),
        content: lines as u16,
        grow: false,
    };
    match panel {
        Panel::Interfaces => {
            let rows = iface_rows(app.shown(), app.filter(), app.iface_sort()).len() as u16;
            let content = rows.max(1) + TABLE_CHROME;
            Want {
                min: content.min(TABLE_CHROME + 3),
                content,
                grow: false,
            }
        }
        Panel::Netfilter => {
            let content = netfilter::content_rows(app) + 2;
            Want {
                min: content.min(8),
                content,
                grow: false,
            }
        }
        Panel::Flows if app.shown().handshake.is_some() => {
            let rows = FlowsPanel {
                app,
                focused: false,
                theme,
            }
            .rows() as u16;
            let content = rows.max(1) + TABLE_CHROME;
            Want {
                min: content.min(TABLE_CHROME + 2),
                content,
                grow: true,
            }
        }
        Panel::Handshakes if app.shown().handshake.is_some() => {
            let p = HandshakePanel {
                app,
                focused: false,
                theme,
            };
            text(p.paragraph().line_count(width))
        }
        Panel::Drops => {
            let p = DropsPanel {
                app,
                focused: false,
                theme,
                full: false,
            };
            let content = p.paragraph().line_count(width) as u16;
            Want {
                min: content.min(5),
                content,
                grow: true,
            }
        }
        Panel::Conntrack => {
            let p = ConntrackPanel {
                snap: app.shown(),
                focused: false,
                theme,
            };
            text(p.paragraph(width).line_count(width))
        }
        // Packets in and out, bit rates when there is room for them, drops.
        Panel::Rates => Want {
            min: 4,
            content: 7,
            grow: false,
        },
        Panel::Handshakes | Panel::Flows => {
            let p = Placeholder {
                panel,
                app,
                focused: false,
                theme,
            };
            text(p.paragraph().line_count(width))
        }
        Panel::Doctor => text(
            DoctorPanel {
                snap: app.shown(),
                focused: false,
                theme,
                full: false,
            }
            .paragraph()
            .line_count(width),
        ),
        Panel::Path | Panel::Routing | Panel::Sockets => text(0),
    }
}
