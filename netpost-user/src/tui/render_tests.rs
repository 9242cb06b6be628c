//! Rendering tests: fixed Snapshots drawn on a TestBackend, asserting what a reader would
//! look for (hook names, numbers in the right boxes, drops, order, sizes, NO_COLOR).
use std::sync::Arc;

use ratatui::{Terminal, backend::TestBackend, buffer::Buffer, style::Color};

use super::{
    app::{App, Panel},
    keys::Action,
    theme::Theme,
    ui,
};
use crate::{
    conntrack::{ConntrackStats, TopSource},
    model::{AttachInfo, IfaceStats, Snapshot},
    nf_model::NfFamilyStats,
};

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
        drops: Some(crate::drops::DropsStats {
            total: 7,
            per_s: 1.0,
            reasons: [(
                "NO_SOCKET".to_string(),
                crate::drops::ReasonStats {
                    packets: 7,
                    per_s: 1.0,
                    locations: [("__udp4_lib_rcv".to_string(), 7)].into(),
                    by_proto: [("udp".to_string(), 7)].into(),
                },
            )]
            .into(),
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
    // Handshakes and top flows wait for data; drop reasons have their own panel.
    assert_eq!(screen.matches("not collected yet").count(), 2, "{screen}");
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
        screen.contains("ifindex 2 · xdp generic · tc tcx"),
        "header details"
    );
    assert!(
        screen.contains("✗ NO_SOCKET") && screen.contains("__udp4_lib_rcv (udp)"),
        "drops panel: reason and dropping function"
    );
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
            let mut words = l.split('│').nth(1)?.split_whitespace();
            let iface = words.next().filter(|w| w.starts_with("veth-"))?;
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
        let screen = text(&render(&app, Theme::plain(), 80, 24));
        seen.push(screen.contains("not collected yet"));
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
    // Handshakes and flows wait for data; drop reasons and conntrack have panels (conntrack
    // stays in the slot when focus moves on to the untabbed Path).
    assert_eq!(seen, [false, false, false, true, true, false, false, false]);
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
    assert!(screen.contains("filter interfaces: veth-b"), "{screen}");
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
fn the_header_counts_lost_events() {
    let mut snap = fixture();
    snap.events_lost = 3;
    let app = app_with(snap);
    let screen = text(&render(&app, Theme::plain(), 200, 60));
    assert!(screen.contains("lost 3"), "{screen}");
}
