//! Rendering tests: fixed Snapshots drawn on a TestBackend, asserting what a reader would
//! look for (hook names, numbers in the right boxes, drops, order, sizes, NO_COLOR).
use std::sync::Arc;

use ratatui::{Terminal, backend::TestBackend, buffer::Buffer, layout::Rect, style::Color};

use super::{
    app::{App, Panel, View},
    keys::Action,
    theme::Theme,
    ui,
};
use crate::model::{
    AttachInfo, ConntrackStats, Direction, FlowOnIface, FlowSummary, HandshakeStats, IfaceStats,
    NfFamilyStats, Percentiles, RouteResult, RoutingStats, Snapshot, SocketsStats, TopSource,
};

/// A TCP flow forwarded from veth-b to veth-a.
fn router_flow() -> FlowSummary {
    let up = Direction {
        packets: 40_000,
        bytes: 58_000_000,
    };
    let down = Direction {
        packets: 20_000,
        bytes: 1_300_000,
    };
    let seen = |iface: &str| FlowOnIface {
        iface: iface.into(),
        from_src: up,
        from_dst: down,
        stage: "established".into(),
        rtt_us: Some(95),
        rtt_synack_us: Some(40),
        rtt_ack_us: Some(55),
    };
    FlowSummary {
        src: "10.1.0.2:40312".into(),
        dst: "10.2.0.2:5201".into(),
        proto: "tcp".into(),
        stage: "established".into(),
        ifaces: vec!["veth-b".into(), "veth-a".into()],
        from_src: up,
        from_dst: down,
        packets: 60_000,
        bytes: 59_300_000,
        pps: 12_000.0,
        bps: 140_000_000.0,
        rtt_us: Some(95),
        rtt_synack_us: Some(40),
        rtt_ack_us: Some(55),
        seen: vec![seen("veth-b"), seen("veth-a")],
    }
}

/// Traffic arriving on veth-b for a local socket, some of it forwarded and partly
/// dropped at FORWARD, replies going out.
fn fixture() -> Snapshot {
    let mut b = IfaceStats::default();
    b.xdp.pps = 1234.0;
    b.xdp.bps = 14_800_000.0;
    b.xdp.packets = 45_678;
    b.xdp.bytes = 9_000_000;
    b.xdp.header_bytes = 900_000;
    b.xdp.by_proto.udp.packets = 45_000;
    b.tc_ingress = b.xdp;
    b.tc_egress.pps = 56.0;
    b.tc_egress.packets = 2_000;
    let mut a = IfaceStats::default();
    a.tc_egress.pps = 7.0;
    a.tc_egress.packets = 99;
    let mut v4 = NfFamilyStats::default();
    v4.prerouting.pps = 1234.0;
    v4.prerouting.entered = 45_678;
    v4.input.pps = 1000.0;
    v4.input.entered = 40_000;
    v4.forward.pps = 234.0;
    v4.forward.entered = 5_678;
    v4.forward.dropped = 500;
    v4.forward.dropped_pps = 25.0;
    v4.output.pps = 56.0;
    v4.postrouting.pps = 265.0;
    v4.prerouting.ct.established = 45_000;
    Snapshot {
        handshake: Some(HandshakeStats {
            syn: 40,
            synack: 40,
            established: 39,
            half_open: 1,
            closed: 35,
            rtt_us: Some(Percentiles {
                p50: 95,
                p90: 180,
                p99: 400,
            }),
            ..Default::default()
        }),
        flows_merged: vec![router_flow()],
        flows_active: 3,
        drops: Some(crate::model::DropsStats {
            total: 1309,
            per_s: 27.0,
            reasons: [
                ("NO_SOCKET", 7, 1.0, "__udp4_lib_rcv", "udp"),
                ("NETFILTER_DROP", 500, 25.0, "nft_do_chain", "udp"),
                ("NOT_SPECIFIED", 802, 1.0, "ip6_mc_input", "icmpv6"),
            ]
            .map(|(reason, packets, per_s, location, proto)| {
                (
                    reason.to_string(),
                    crate::model::ReasonStats {
                        packets,
                        per_s,
                        locations: [(location.to_string(), packets)].into(),
                        by_proto: [(proto.to_string(), packets)].into(),
                        hooks: Default::default(),
                    },
                )
            })
            .into(),
            samples: vec![crate::model::SampleView {
                reason: "NETFILTER_DROP".into(),
                location: "nft_do_chain".into(),
                proto: "udp".into(),
                src: Some("10.1.0.2:41000".into()),
                dst: Some("10.2.0.2:9".into()),
                hook: None,
            }],
            ..Default::default()
        }),
        routing: Some(RoutingStats {
            lookups: 5678,
            by_result: vec![RouteResult {
                family: Some("ipv4".into()),
                table: Some("main".into()),
                result: "dev veth-a".into(),
                dev: Some("veth-a".into()),
                lookups: 5678,
                destinations: [("10.2.0.2".to_string(), 5678)].into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        sockets: Some(SocketsStats {
            states: [("ESTABLISHED".to_string(), 4), ("LISTEN".to_string(), 1)].into(),
            resets_sent: 2,
            ..Default::default()
        }),
        conntrack: Some(ConntrackStats {
            count: 1200,
            max: 262_144,
            fill_pct: 0.46,
            drop: 3,
            drop_per_s: 1.0,
            new: Some(1300),
            new_per_s: Some(12.0),
            ..Default::default()
        }),
        elapsed_ms: 83_000,
        interval_ms: 1000,
        netns: Some("demo-b".into()),
        interfaces: [("veth-a".to_string(), a), ("veth-b".to_string(), b)].into(),
        attached: [
            ("veth-a".to_string(), attach(3)),
            ("veth-b".to_string(), attach(2)),
        ]
        .into(),
        netfilter: [("ipv4".to_string(), v4)].into(),
        netfilter_status: [
            ("ipv4".to_string(), "linked".to_string()),
            (
                "ipv6".to_string(),
                "unavailable: no BPF netfilter links".to_string(),
            ),
        ]
        .into(),
        ..Default::default()
    }
}

fn attach(ifindex: u32) -> AttachInfo {
    AttachInfo {
        ifindex,
        xdp_mode: "generic".into(),
        tc_mode: "tcx".into(),
        xdp_status: "attached".into(),
        tc_status: "attached".into(),
    }
}

fn app_with(snap: Snapshot) -> App {
    let mut app = App::new(Arc::default());
    app.ingest(Arc::new(snap));
    app
}

fn render(app: &App, theme: Theme, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| ui::draw(f, app, theme)).unwrap();
    terminal.backend().buffer().clone()
}

/// The screen as rows of cells (one string per cell, so columns line up).
fn cells(buf: &Buffer) -> Vec<Vec<String>> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect()
        })
        .collect()
}

fn text(buf: &Buffer) -> String {
    cells(buf)
        .iter()
        .map(|row| row.concat())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Position of `needle` on the screen (row, first cell), the first match.
fn find(grid: &[Vec<String>], needle: &str) -> Option<(usize, usize)> {
    let want: Vec<String> = needle.chars().map(String::from).collect();
    grid.iter().enumerate().find_map(|(y, row)| {
        row.windows(want.len())
            .position(|w| w == want.as_slice())
            .map(|x| (y, x))
    })
}

fn is_corner(s: &str) -> bool {
    matches!(s, "┌" | "┏")
}

/// Row, title column and left corner column of the box whose top border carries `title`
/// (only border lines between the corner and the title).
fn title_of(grid: &[Vec<String>], title: &str) -> (usize, usize, usize) {
    grid.iter()
        .enumerate()
        .find_map(|(y, row)| {
            let at = find(std::slice::from_ref(row), title)?.1;
            let left = row[..at]
                .iter()
                .rposition(|c| !matches!(c.as_str(), "─" | "━"))?;
            is_corner(&row[left]).then_some((y, at, left))
        })
        .unwrap_or_else(|| panic!("no box titled {title}:\n{}", grid_text(grid)))
}

fn boxed_corner(grid: &[Vec<String>], title: &str) -> String {
    let (y, _, left) = title_of(grid, title);
    grid[y][left].clone()
}

/// The box whose top border carries `title`: its inner rows and its bottom border,
/// each as text between the side borders.
fn boxed(grid: &[Vec<String>], title: &str) -> Vec<String> {
    let (y, x, left) = title_of(grid, title);
    let right = x + grid[y][x..]
        .iter()
        .position(|c| matches!(c.as_str(), "┐" | "┓"))
        .unwrap();
    let mut out = vec![];
    for row in &grid[y + 1..] {
        out.push(row[left + 1..right].concat());
        if matches!(row[left].as_str(), "└" | "┗") {
            break;
        }
        // Text never spills over the borders.
        assert!(
            matches!(row[right].as_str(), "│" | "┃"),
            "{title}'s right border overwritten:\n{}",
            grid_text(grid)
        );
    }
    out
}

fn grid_text(grid: &[Vec<String>]) -> String {
    grid.iter()
        .map(|r| r.concat())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn at_80x24_the_whole_path_is_there_with_rates_in_the_right_boxes() {
    let buf = render(&app_with(fixture()), Theme::colored(), 80, 24);
    let screen = text(&buf);
    for name in [
        "wire",
        "XDP",
        "tc in",
        "PREROUTING",
        "routing",
        "INPUT",
        "local",
        "process",
        "FORWARD",
        "OUTPUT",
        "POSTROUTING",
        "tc out",
    ] {
        assert!(screen.contains(name), "{name} missing:\n{screen}");
    }
    let grid = cells(&buf);
    assert!(boxed(&grid, "XDP")[0].contains("1.2k/s"), "{screen}");
    assert!(boxed(&grid, "INPUT")[0].contains("1.0k/s"));
    assert!(
        boxed(&grid, "tc out")[0].contains("63/s"),
        "both interfaces"
    );
    let forward = boxed(&grid, "FORWARD");
    assert!(forward[0].contains("234/s"), "{forward:?}");
    assert!(
        forward[1].contains("✗25/s"),
        "drops in the border: {forward:?}"
    );
    assert!(!boxed(&grid, "INPUT")[1].contains('✗'), "no drops at INPUT");
    // Header and the default lower panel.
    for want in [
        "netns demo-b",
        "veth-a,veth-b",
        "up 1m23s",
        "interfaces",
        "veth-b",
    ] {
        assert!(screen.contains(want), "{want} missing:\n{screen}");
    }
}

#[test]
fn drops_are_red_and_the_busiest_route_is_heavy() {
    let buf = render(&app_with(fixture()), Theme::colored(), 80, 24);
    let grid = cells(&buf);
    let (y, x) = find(&grid, "✗25/s").expect("drop figure");
    assert_eq!(buf[(x as u16, y as u16)].fg, Color::Red);
    // INPUT carries most: wire → XDP → tc in → PREROUTING → INPUT is drawn thick.
    let corner = |title: &str| boxed_corner(&grid, title);
    for title in ["XDP", "PREROUTING", "INPUT"] {
        assert_eq!(corner(title), "┏", "{title} on the busiest route");
    }
    assert_eq!(corner("OUTPUT"), "┌");
    assert_eq!(corner("FORWARD"), "┌");
    assert!(text(&buf).contains("busiest: wire → INPUT → local process"));
}

#[test]
fn no_color_means_no_colour_anywhere() {
    let mut app = app_with(fixture());
    app.apply(Action::OpenHelp);
    for (w, h) in [(80, 24), (200, 60)] {
        let buf = render(&app, Theme::plain(), w, h);
        for cell in buf.content.iter() {
            assert_eq!(cell.fg, Color::Reset, "{:?} at {w}x{h}", cell.symbol());
            assert_eq!(cell.bg, Color::Reset, "{:?} at {w}x{h}", cell.symbol());
        }
        // The meaning survives: drops still carry their mark.
        assert!(text(&buf).contains("✗"));
    }
}

#[test]
fn at_200x60_every_panel_is_shown_with_details() {
    let buf = render(&app_with(fixture()), Theme::colored(), 200, 60);
    let screen = text(&buf);
    let grid = cells(&buf);
    let xdp = boxed(&grid, "XDP");
    assert!(xdp[0].contains("1.2k pps"), "{xdp:?}");
    assert!(xdp[1].contains("14.8 Mbps"), "{xdp:?}");
    assert!(xdp[2].contains("45.7k pkts"), "{xdp:?}");
    let forward = boxed(&grid, "FORWARD");
    assert!(forward[1].contains("✗ 25/s drop"), "{forward:?}");
    assert!(forward[2].contains("✗ 500 dropped"), "{forward:?}");
    // Tables: the interface rows and the netfilter rows with their figures.
    let row = |first: &str, second: &str| -> String {
        screen
            .lines()
            .find(|l| l.contains(first) && l.contains(second))
            .unwrap_or_else(|| panic!("no row {first} {second}:\n{screen}"))
            .to_string()
    };
    let tc_in = row("veth-b", "tc ingress");
    for want in ["1.2k/s", "14.8 Mbps", "45.7k", "8.6MiB", "10.0"] {
        assert!(tc_in.contains(want), "{want} not in {tc_in:?}");
    }
    let fwd = row("v4", "FORWARD");
    let cols: Vec<&str> = fwd
        .split('│')
        .find(|part| part.contains("FORWARD"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &cols[..7],
        ["v4", "FORWARD", "5.7k", "0", "500", "234/s", "25/s"],
        "{fwd}"
    );
    assert!(screen.contains("ipv6: unavailable: no BPF netfilter links"));
    for title in [
        "rates",
        "TCP handshakes",
        "top flows",
        "drop reasons",
        "conntrack",
    ] {
        assert!(screen.contains(title), "{title} missing");
    }
    assert!(
        screen.contains("SYN 40 → SYN-ACK 40 → established 39"),
        "{screen}"
    );
    let flow = row("10.1.0.2:40312", "10.2.0.2:5201");
    for want in [
        "veth-b→veth-a",
        "established",
        "55.3MiB",
        "1.2MiB",
        "140 Mbps",
        "95µs",
    ] {
        assert!(flow.contains(want), "{want} not in {flow:?}");
    }
    assert!(
        screen.contains("ifindex 2 · xdp generic · tc tcx"),
        "header details"
    );
    assert!(
        screen.contains("✗ NO_SOCKET") && screen.contains("__udp4_lib_rcv (udp)"),
        "drops panel: reason and dropping function"
    );
    let at = |needle: &str| {
        screen
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}:\n{screen}"))
    };
    assert!(
        at("✗ NETFILTER_DROP") < at("✗ NO_SOCKET") && at("✗ NO_SOCKET") < at("· routine"),
        "by rate, then total, routine noise last: {screen}"
    );
    assert!(!screen.contains("✗ NOT_SPECIFIED"), "noise folded away");
    for want in [
        "table ",
        "1.2k/262.1k 0.5%",
        "new 12/s",
        "full-table drops 3 (1/s)",
        "est 45.0k",
    ] {
        assert!(
            screen.contains(want),
            "conntrack: {want} missing:\n{screen}"
        );
    }
}

#[test]
fn a_filling_conntrack_table_turns_red_and_names_its_sources() {
    let mut snap = fixture();
    snap.conntrack = Some(ConntrackStats {
        count: 950,
        max: 1000,
        fill_pct: 95.0,
        time_to_full_s: Some(12.0),
        top_sources: vec![TopSource {
            src: "10.9.0.7".into(),
            new: 900,
        }],
        ..Default::default()
    });
    let mut app = app_with(snap);
    while app.focus() != Panel::Conntrack {
        app.apply(Action::FocusNext);
    }
    let buf = render(&app, Theme::colored(), 80, 24);
    let screen = text(&buf);
    for want in ["950/1.0k 95.0%", "full in 12s", "top sources 10.9.0.7 900"] {
        assert!(screen.contains(want), "{want} missing:\n{screen}");
    }
    let (y, x) = find(&cells(&buf), "95.0%").unwrap();
    assert_eq!(buf[(x as u16, y as u16)].fg, Color::Red);
}

#[test]
fn the_interface_table_follows_the_sort() {
    let mut app = app_with(fixture());
    app.apply(Action::CycleSort); // pps
    let screen = text(&render(&app, Theme::plain(), 200, 60));
    assert!(screen.contains("sort pps"));
    // The interfaces panel is the left half of the middle row: (interface, first hook word).
    let order: Vec<(String, String)> = screen
        .lines()
        .filter_map(|l| {
            let cell = l
                .split('│')
                .skip(1)
                .find(|c| c.trim_start().starts_with("veth-"))?;
            let mut words = cell.split_whitespace();
            let iface = words.next()?;
            Some((iface.to_string(), words.next()?.to_string()))
        })
        .collect();
    let order: Vec<String> = order.iter().map(|(i, h)| format!("{i} {h}")).collect();
    // veth-b's xdp and tc ingress (1234 pps), its tc egress (56), veth-a's tc egress (7),
    // then the idle rows in path order.
    assert_eq!(
        order,
        [
            "veth-b xdp",
            "veth-b tc",
            "veth-b tc",
            "veth-a tc",
            "veth-a xdp",
            "veth-a tc"
        ],
        "{screen}"
    );
    let egress_b = screen.find("veth-b       tc egress").unwrap();
    let ingress_b = screen.find("veth-b       tc ingress").unwrap();
    assert!(ingress_b < egress_b, "ties keep path order");
}

#[test]
fn tab_brings_each_panel_into_the_lower_slot_of_a_small_terminal() {
    let mut app = app_with(fixture());
    let mut seen = vec![];
    for _ in 0..Panel::ALL.len() {
        app.apply(Action::FocusNext);
        let buf = render(&app, Theme::plain(), 80, 24);
        let screen = text(&buf);
        let areas = ui::overview_areas(buf.area, &app);
        let lower: Vec<Panel> = areas.panels.iter().map(|p| p.0).collect();
        seen.push(lower[0]);
        assert_eq!(lower.len(), 1, "one lower panel at 80x24: {lower:?}");
        if app.focus() == Panel::Netfilter {
            assert!(
                screen.contains("v4   FORWARD") && screen.contains("500"),
                "{screen}"
            );
        }
        if app.focus() == Panel::Conntrack {
            assert!(screen.contains("1.2k/262.1k"), "{screen}");
        }
    }
    // Conntrack stays in the slot when focus moves on to the untabbed Path.
    assert_eq!(
        seen,
        [
            Panel::Interfaces,
            Panel::Netfilter,
            Panel::Netfilter,
            Panel::Handshakes,
            Panel::Flows,
            Panel::Drops,
            Panel::Conntrack,
            Panel::Conntrack
        ]
    );
}

#[test]
fn paused_filter_and_help_show_on_screen() {
    let mut app = app_with(fixture());
    app.apply(Action::TogglePause);
    app.ingest(Arc::new(fixture()));
    app.apply(Action::StartFilter);
    for c in "veth-b".chars() {
        app.apply(Action::FilterPush(c));
    }
    let screen = text(&render(&app, Theme::plain(), 80, 24));
    assert!(screen.contains("PAUSED (1 new"), "{screen}");
    assert!(screen.contains("filter: veth-b"), "{screen}");
    let grid = cells(&render(&app, Theme::plain(), 80, 24));
    assert!(
        boxed(&grid, "tc out")[0].contains("56/s"),
        "veth-a filtered out"
    );
    app.apply(Action::FilterPush('x'));
    let grid = cells(&render(&app, Theme::plain(), 80, 24));
    for title in ["XDP", "tc in", "tc out"] {
        assert_eq!(boxed(&grid, title)[0].trim(), "filtered", "{title}");
    }
    app.apply(Action::FilterPop);
    app.apply(Action::FilterKeep);
    app.apply(Action::OpenHelp);
    let screen = text(&render(&app, Theme::plain(), 80, 24));
    assert!(
        screen.contains("help") && screen.contains("cycle the sort"),
        "{screen}"
    );
}

#[test]
fn any_size_renders_without_panicking() {
    let app = app_with(fixture());
    let mut waiting = App::new(Arc::default());
    waiting.apply(Action::OpenHelp);
    for (w, h) in [
        (0, 0),
        (1, 1),
        (20, 5),
        (40, 12),
        (79, 23),
        (100, 30),
        (130, 45),
        (160, 44),
        (300, 100),
    ] {
        render(&app, Theme::colored(), w, h);
        render(&waiting, Theme::colored(), w, h);
    }
    let screen = text(&render(&App::new(Arc::default()), Theme::plain(), 80, 24));
    assert!(
        screen.contains("waiting for the first interval"),
        "{screen}"
    );
}

#[test]
fn without_netfilter_the_hooks_say_so_and_xdp_tc_still_count() {
    let mut snap = fixture();
    snap.netfilter.clear();
    snap.netfilter_status = [("ipv4".to_string(), "off (--no-netfilter)".to_string())].into();
    let buf = render(&app_with(snap), Theme::plain(), 80, 24);
    let grid = cells(&buf);
    assert!(boxed(&grid, "PREROUTING")[0].contains("not linked"));
    assert!(boxed(&grid, "XDP")[0].contains("1.2k/s"));
    assert!(text(&buf).contains("busiest: arriving on the wire"));
}

#[test]
fn xdp_that_could_not_load_is_said_in_the_header_and_its_box() {
    let mut snap = fixture();
    for a in snap.attached.values_mut() {
        a.xdp_mode = "off".into();
        a.xdp_status = "unavailable: netpost_xdp: refused by the verifier".into();
    }
    let app = app_with(snap);
    let buf = render(&app, Theme::plain(), 120, 40);
    let screen = text(&buf);
    assert!(
        screen.lines().next().unwrap().contains("⚠ xdp unavailable"),
        "{screen}"
    );
    let grid = cells(&buf);
    assert!(boxed(&grid, "XDP")[0].contains("unavail"), "{screen}");
    assert!(
        boxed(&grid, "tc in")[0].contains("/s"),
        "tc counts on: {screen}"
    );
    // A tall terminal's second header line names the reason.
    let screen = text(&render(&app, Theme::plain(), 200, 60));
    assert!(
        screen.contains("xdp unavailable: netpost_xdp: refused by the verifier"),
        "{screen}"
    );
}

#[test]
fn the_header_counts_lost_events() {
    let mut snap = fixture();
    snap.events_lost = 3;
    let app = app_with(snap);
    let screen = text(&render(&app, Theme::plain(), 200, 60));
    assert!(screen.contains("lost 3"), "{screen}");
}

/// Which panels are on screen at a size, in Tab order (Routing and Sockets have views only).
fn visible(app: &App, w: u16, h: u16) -> Vec<Panel> {
    let areas = ui::overview_areas(Rect::new(0, 0, w, h), app);
    Panel::ALL.into_iter().filter(|p| areas.shows(*p)).collect()
}

#[test]
fn panels_visible_at_the_sizes_people_use() {
    use Panel::*;
    let app = app_with(fixture());
    let table = [
        // The current small layout: one lower panel at a time.
        ((80, 24), vec![Path, Interfaces, Rates]),
        // At least the path, conntrack and drops.
        (
            (100, 30),
            vec![Path, Netfilter, Handshakes, Drops, Conntrack],
        ),
        // Every mission panel: path, netfilter, conntrack pressure, drops, the funnel.
        (
            (120, 40),
            vec![
                Path, Interfaces, Netfilter, Rates, Handshakes, Flows, Drops, Conntrack,
            ],
        ),
        (
            (200, 60),
            vec![
                Path, Interfaces, Netfilter, Rates, Handshakes, Flows, Drops, Conntrack,
            ],
        ),
    ];
    for ((w, h), want) in table {
        let got = visible(&app, w, h);
        assert_eq!(got, want, "at {w}x{h}");
        // What the layout says is what a reader sees: each visible panel's box is drawn.
        let screen = text(&render(&app, Theme::plain(), w, h));
        for panel in got {
            let title = match panel {
                Path => "packet path",
                Rates => "rates",
                p => p.title(),
            };
            assert!(screen.contains(title), "{title} at {w}x{h}:\n{screen}");
        }
        assert!(
            screen.lines().all(|l| l.chars().count() == w as usize),
            "nothing past {w} columns"
        );
    }
}

#[test]
fn panels_are_sized_to_their_content() {
    let app = app_with(fixture());
    let areas = ui::overview_areas(Rect::new(0, 0, 120, 40), &app);
    let height = |p: Panel| areas.panels.iter().find(|x| x.0 == p).unwrap().1.height;
    // Two interfaces x three hooks, a header line and the borders.
    assert_eq!(height(Panel::Interfaces), 9);
    // Five IPv4 hooks, the header, IPv6's status line, the borders.
    assert_eq!(height(Panel::Netfilter), 9);
    assert_eq!(height(Panel::Handshakes), 5);
}

#[test]
fn at_80x24_a_tab_bar_names_every_panel() {
    let mut app = app_with(fixture());
    let screen = text(&render(&app, Theme::plain(), 80, 24));
    let bar = screen
        .lines()
        .find(|l| l.contains("Tab ▸"))
        .unwrap_or_else(|| panic!("no tab bar:\n{screen}"));
    for name in [
        "interfaces",
        "netfilter",
        "handshakes",
        "flows",
        "drops",
        "conntrack",
    ] {
        assert!(bar.contains(name), "{name} not in {bar:?}");
    }
    app.apply(Action::FocusNext);
    app.apply(Action::FocusNext);
    let buf = render(&app, Theme::colored(), 80, 24);
    let grid = cells(&buf);
    let (y, x) = find(&grid, "[netfilter]").expect("the focused panel's tab, bracketed");
    assert!(
        buf[(x as u16 + 1, y as u16)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED),
        "the focused panel's tab stands out"
    );
    assert!(text(&buf).contains("v4   FORWARD"), "and fills the slot");
}

#[test]
fn number_keys_switch_views_and_enter_drills_down() {
    let mut app = app_with(fixture());
    app.apply(Action::View(2));
    assert_eq!(app.view(), View::Full(Panel::Flows));
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    assert!(
        screen.contains("[2 flows]"),
        "the view stands out: {screen}"
    );
    let rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains("10.1.0.2:40312"))
        .collect();
    assert_eq!(rows.len(), 1, "the forwarded flow is one row: {screen}");
    for want in [
        "veth-b→veth-a",
        "established",
        "55.3MiB",
        "1.2MiB",
        "140 Mbps",
        "95µs",
    ] {
        assert!(rows[0].contains(want), "{want} not in {:?}", rows[0]);
    }
    app.apply(Action::Open);
    assert!(app.details());
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    for want in [
        "10.1.0.2:40312 → 10.2.0.2:5201",
        "veth-b → veth-a",
        "40.0k packets  55.3MiB",
        "95µs (SYN→SYN-ACK 40µs, SYN-ACK→ACK 55µs)",
    ] {
        assert!(screen.contains(want), "{want} missing:\n{screen}");
    }
    // Esc closes the details, then leaves the view; q quits anywhere.
    app.apply(Action::Back);
    assert!(!app.details());
    app.apply(Action::Back);
    assert_eq!(app.view(), View::Overview);

    // Drops: every reason, routine ones dimmed on their own line; Enter shows one reason.
    app.apply(Action::View(3));
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    assert!(screen.contains("· NOT_SPECIFIED"), "{screen}");
    app.apply(Action::Open);
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    assert!(
        screen.contains("NETFILTER_DROP  500 packets")
            && screen.contains("10.1.0.2:41000 → 10.2.0.2:9"),
        "{screen}"
    );

    // Netfilter: a hook's protocol and conntrack-state split.
    app.apply(Action::View(4));
    app.apply(Action::Scroll(2));
    app.apply(Action::Open);
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    assert!(screen.contains("ipv4 FORWARD"), "{screen}");
    assert!(
        screen.contains("conntrack state of the accepted packets"),
        "{screen}"
    );

    // Routing decisions and local sockets have views of their own.
    app.apply(Action::View(7));
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    assert!(
        screen.contains("dev veth-a") && screen.contains("10.2.0.2 (5.7k)"),
        "{screen}"
    );
    app.apply(Action::View(8));
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    assert!(
        screen.contains("ESTABLISHED") && screen.contains("resets sent 2"),
        "{screen}"
    );
    app.apply(Action::View(1));
    assert_eq!(app.view(), View::Overview);
}

#[test]
fn enter_on_a_focused_table_opens_its_view_on_the_selected_row() {
    let mut app = app_with(fixture());
    while app.focus() != Panel::Flows {
        app.apply(Action::FocusNext);
    }
    app.apply(Action::Open);
    assert_eq!(
        (app.view(), app.details()),
        (View::Full(Panel::Flows), true)
    );
}

#[test]
fn every_view_renders_at_every_size() {
    let mut app = app_with(fixture());
    for n in 1..=9 {
        app.apply(Action::View(n));
        for details in [false, true] {
            if details != app.details() {
                app.apply(Action::Open);
            }
            for (w, h) in [(40, 12), (80, 24), (120, 40), (200, 60)] {
                render(&app, Theme::colored(), w, h);
            }
        }
    }
}

#[test]
fn a_deleted_interface_shows_in_the_header() {
    let mut snap = fixture();
    snap.interfaces_gone = vec!["veth-a".into()];
    let screen = text(&render(&app_with(snap), Theme::plain(), 120, 40));
    assert!(
        screen.lines().next().unwrap().contains("⚠ deleted: veth-a"),
        "{screen}"
    );
}

#[test]
fn enter_on_a_hook_lists_what_is_registered_its_chains_and_the_rules_that_dropped() {
    use crate::model::{ChainOrder, EstablishedAccept, Registered, RuleDrops};
    let mut snap = fixture();
    let fwd = &mut snap.netfilter.get_mut("ipv4").unwrap().forward;
    let reg = |priority, owner: &str, table: Option<&str>, chain: Option<&str>| Registered {
        priority,
        owner: owner.into(),
        family: table.map(|_| "inet".into()),
        table: table.map(Into::into),
        chain: chain.map(Into::into),
        function: None,
    };
    fwd.registered = vec![
        reg(-2_147_483_647, "netpost", None, Some("netpost_nf_head")),
        reg(0, "nftables", Some("lab"), Some("forward")),
        reg(2_147_483_646, "netpost", None, Some("netpost_nf_tail")),
    ];
    fwd.chains = vec![ChainOrder {
        backend: "nft",
        family: "inet",
        table: "lab".into(),
        chain: "forward".into(),
        priority: 0,
        rules: 62,
        established_accept: Some(EstablishedAccept {
            position: 61,
            handle_or_index: 65,
        }),
    }];
    fwd.rules = vec![RuleDrops {
        backend: "nft",
        family: "inet",
        table: "lab".into(),
        chain: "forward".into(),
        handle_or_index: Some(7),
        rule: "udp dport 7600 counter drop".into(),
        verdict: "drop",
        packets: Some(480),
        per_s: Some(24.0),
        shared_packets: 0,
        note: None,
    }];
    fwd.attributed_drops = Some(480);
    fwd.unattributed_drops = Some(20);
    let mut app = app_with(snap);
    app.apply(Action::View(4));
    app.apply(Action::Scroll(2));
    app.apply(Action::Open);
    assert!(app.details());
    let screen = text(&render(&app, Theme::plain(), 250, 50));
    for want in [
        "registered here, by priority:",
        "first  netpost netpost_nf_head",
        "0  inet lab forward (nftables)",
        "last  netpost netpost_nf_tail",
        "nft inet lab forward (62 rules)  ESTABLISHED,RELATED accept at rule 61: 60 rules before it",
        "rules that dropped here:",
        "dropped 500 = by rules 480 + unattributed 20",
        "nft inet lab forward handle 7  udp dport 7600 counter drop",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    // A hook without rules says so rather than showing nothing.
    app.apply(Action::Back);
    app.apply(Action::ScrollTop);
    app.apply(Action::Open);
    let screen = text(&render(&app, Theme::plain(), 250, 50));
    assert!(
        screen.contains("not read (the rules probe is off)"),
        "{screen}"
    );
}

fn with_findings() -> Snapshot {
    use crate::doctor::{Diagnosis, Severity};
    let mut snap = fixture();
    snap.ts_ms = 1_000_000;
    let evidence = |pairs: &[(&str, serde_json::Value)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<serde_json::Map<_, _>>()
    };
    snap.diagnoses = vec![
        Diagnosis {
            id: "forwarding-disabled",
            severity: Severity::Critical,
            since: 990_000,
            summary: "25/s packets for other hosts are dropped: net.ipv4.ip_forward is 0".into(),
            evidence: evidence(&[("window_s", 10.0.into()), ("dropped", 250.into())]),
            fix: "ip netns exec demo-b sysctl -w net.ipv4.ip_forward=1".into(),
            note: Some("this host is asked to route".into()),
        },
        Diagnosis {
            id: "closed-port",
            severity: Severity::Info,
            since: 995_000,
            summary: "7/s packets to ports nobody listens on (udp 9)".into(),
            evidence: evidence(&[("window_s", 10.0.into())]),
            fix: "ip netns exec demo-b ss -lunp 'sport = :9'".into(),
            note: None,
        },
    ];
    snap
}

#[test]
fn findings_put_the_doctor_panel_first_with_each_summary_and_fix() {
    let app = app_with(with_findings());
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    let doctor = screen
        .lines()
        .position(|l| l.contains("doctor · 2 findings"))
        .unwrap_or_else(|| panic!("no doctor panel:\n{screen}"));
    let netfilter = screen
        .lines()
        .position(|l| l.contains("netfilter (whole"))
        .unwrap();
    assert!(doctor < netfilter, "the doctor comes first:\n{screen}");
    for want in [
        "✗ forwarding-disabled 25/s packets for other hosts are dropped",
        "fix: ip netns exec demo-b sysctl -w net.ipv4.ip_forward=1",
        "i closed-port 7/s packets to ports nobody listens on",
        "doctor: 2 findings (9)",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    // The mission panels stay on a 120x40 screen.
    let areas = ui::overview_areas(Rect::new(0, 0, 120, 40), &app);
    for p in [
        Panel::Path,
        Panel::Netfilter,
        Panel::Conntrack,
        Panel::Drops,
    ] {
        assert!(areas.shows(p), "{p:?} hidden: {:?}", areas.hidden);
    }
    // Healthy: no panel, a tick in the header.
    let healthy = text(&render(&app_with(fixture()), Theme::plain(), 120, 40));
    assert!(
        !healthy.contains("doctor ·") && healthy.contains("doctor ✓"),
        "{healthy}"
    );
}

#[test]
fn view_9_shows_the_evidence_and_notes() {
    let mut app = app_with(with_findings());
    app.apply(Action::View(9));
    assert_eq!(app.view(), View::Full(Panel::Doctor));
    let screen = text(&render(&app, Theme::plain(), 120, 40));
    for want in [
        "[9 doctor]",
        "critical · for 10 s · evidence over the last 10.0 s:",
        "dropped: 250",
        "this host is asked to route",
        "fix: ip netns exec demo-b ss -lunp 'sport = :9'",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
}
#[test]
fn reattached_interfaces_and_the_cap_show_in_the_header() {
    let mut snap = fixture();
    let name = snap.interfaces.keys().next().unwrap().clone();
    let iface = snap.interfaces.get_mut(&name).unwrap();
    iface.status = crate::model::IfaceStatus::Reattached;
    iface.reattached = 2;
    snap.interfaces_over_cap = vec!["veth9".into(), "veth10".into()];
    let screen = text(&render(&app_with(snap), Theme::plain(), 200, 40));
    let first = screen.lines().next().unwrap();
    assert!(
        first.contains(&format!("↻ re-attached: {name}×2")),
        "{first}"
    );
    assert!(
        first.contains("⚠ 2 not watched (64-interface cap)"),
        "{first}"
    );
}
