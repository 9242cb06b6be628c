//! The netfilter table: per linked family and hook, packets that entered, survived and
//! died there, rates, conntrack states of the survivors and TCP handshake classes; then
//! one line per family that is not linked, saying why. Enter on a hook: its protocol,
//! conntrack-state and TCP-class split, what is registered there, its chains' rule order and
//! the rules that dropped there.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap},
};

use super::{Column, fit_columns, num, panel, widths};
use crate::{
    fmt,
    model::{NfHookStats, Registered, RuleDrops},
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

/// Top dropping rules listed for the selected hook.
const RULES_SHOWN: usize = 5;

/// `ip filter FORWARD #1` (nft: the handle; iptables: the rule number; policies: none).
pub fn rule_place(r: &RuleDrops) -> String {
    let at = match r.handle_or_index {
        Some(n) if r.backend == "nft" => format!(" handle {n}"),
        Some(n) => format!(" #{n}"),
        None => String::new(),
    };
    format!("{} {} {} {}{at}", r.backend, r.family, r.table, r.chain)
}

/// A registered hook function for people: `inet lab forward (nftables)`, `conntrack`.
fn registered_name(r: &Registered) -> String {
    match (&r.table, &r.chain) {
        (Some(table), Some(chain)) => {
            let fam = r
                .family
                .as_deref()
                .map(|f| format!("{f} "))
                .unwrap_or_default();
            format!("{fam}{table} {chain} ({})", r.owner)
        }
        (None, Some(chain)) => format!("{} {chain}", r.owner),
        _ => r.function.clone().unwrap_or_else(|| r.owner.clone()),
    }
}

/// A priority for people: netpost's extremes as `first`/`last`.
fn priority(p: i32) -> String {
    match p {
        i32::MIN..=-1_000_000 => "first".to_string(),
        1_000_000.. => "last".to_string(),
        p => p.to_string(),
    }
}

/// `dropped N = by rules A + unattributed U`, when the rules were read and it dropped.
fn attribution_line(h: &NfHookStats, t: Theme) -> Option<Line<'static>> {
    let (Some(attributed), Some(unattributed)) = (h.attributed_drops, h.unattributed_drops) else {
        return None;
    };
    (h.dropped > 0).then(|| {
        Line::from(vec![
            Span::styled("  dropped ", t.dim()),
            Span::styled(fmt::count(h.dropped), t.drop()),
            Span::styled(" = by rules ", t.dim()),
            Span::styled(fmt::count(attributed), t.text()),
            Span::styled(" + unattributed ", t.dim()),
            Span::styled(
                fmt::count(unattributed),
                if unattributed > 0 { t.warn() } else { t.text() },
            ),
        ])
    })
}

/// One dropping rule: verdict, packets, rate, where, its text (and why it has no count).
fn rule_line(r: &RuleDrops, t: Theme) -> Line<'static> {
    let numbers = match (r.packets, r.per_s) {
        (Some(n), Some(rate)) => format!("{:>7} {:>8}  ", fmt::count(n), fmt::pps(rate)),
        _ => format!("{:>7} {:>8}  ", "?", ""),
    };
    let mut line = vec![
        Span::styled(format!("  ✗ {:<6}", r.verdict), t.drop()),
        Span::raw(numbers),
        Span::styled(format!("{}  ", rule_place(r)), t.dim()),
        Span::styled(r.rule.clone(), t.text()),
    ];
    if let Some(note) = r.note {
        line.push(Span::styled(format!("  ({note})"), t.warn()));
    }
    Line::from(line)
}

/// What is registered at the hook, then its top dropping rules and the drops none explains.
fn detail_lines(family: &str, hook: &str, h: &NfHookStats, t: Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut reg = vec![Span::styled(format!("{family} {hook} "), t.title())];
    if h.registered.is_empty() {
        reg.push(Span::styled("registered: not read", t.dim()));
    }
    for (i, r) in h.registered.iter().enumerate() {
        if i > 0 {
            reg.push(Span::styled(" · ", t.dim()));
        }
        reg.push(Span::styled(format!("{} ", priority(r.priority)), t.dim()));
        reg.push(Span::styled(registered_name(r), t.text()));
    }
    out.push(Line::from(reg));
    out.extend(attribution_line(h, t));
    out.extend(h.rules.iter().take(RULES_SHOWN).map(|r| rule_line(r, t)));
    out
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
        // The table takes its rows and header; what is left shows the selected hook.
        let [table_area, detail_area] = Layout::vertical([
            Constraint::Length((rows.len() as u16 + 1).min(table_area.height)),
            Constraint::Min(0),
        ])
        .areas(table_area);
        if let Some(r) = rows.get(app.selected(Panel::Netfilter))
            && detail_area.height >= 2
        {
            Paragraph::new(detail_lines(r.family, &chain_name(r.hook), r.stats, t))
                .render(detail_area, buf);
        }
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

/// Rows the table needs: its hooks and one line per family that is not linked.
pub fn content_rows(app: &App) -> u16 {
    let snap = app.shown();
    let missing = snap
        .netfilter_status
        .keys()
        .filter(|family| !snap.netfilter.contains_key(*family))
        .count();
    let rows = nf_rows(snap, app.nf_sort()).len();
    (rows + missing + usize::from(rows > 0)).max(1) as u16
}

/// The selected hook: verdicts per protocol, conntrack states, TCP classes in and out.
pub struct NfDetails<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for NfDetails<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let rows = nf_rows(self.app.shown(), self.app.nf_sort());
        let lines = match rows.get(self.app.selected(Panel::Netfilter)) {
            Some(r) => hook_lines(r.family, &chain_name(r.hook), r.stats, t),
            None => vec![Line::styled("no hook selected", t.dim())],
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(" netfilter hook · Esc closes ", true, t))
            .render(area, buf);
    }
}

pub fn hook_lines(family: &str, hook: &str, h: &NfHookStats, t: Theme) -> Vec<Line<'static>> {
    let n = fmt::count;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{family} {hook}"), t.title()),
            Span::raw(format!(
                "  entered {}  accepted {}  dropped {}  ({} in, {} dropped now)",
                n(h.entered),
                n(h.accepted),
                n(h.dropped),
                fmt::pps(h.pps),
                fmt::pps(h.dropped_pps)
            )),
        ]),
        Line::styled(
            format!(
                "{:<10}{:>10}{:>10}{:>10}",
                "protocol", "entered", "accepted", "dropped"
            ),
            t.dim(),
        ),
    ];
    let p = &h.by_proto;
    for (name, v) in [
        ("tcp", p.tcp),
        ("udp", p.udp),
        ("icmp", p.icmp),
        ("icmpv6", p.icmpv6),
        ("other", p.other),
    ] {
        let style = if v.dropped > 0 { t.drop() } else { t.text() };
        lines.push(Line::styled(
            format!(
                "{name:<10}{:>10}{:>10}{:>10}",
                n(v.entered),
                n(v.accepted),
                n(v.dropped)
            ),
            style,
        ));
    }
    let c = &h.ct;
    lines.push(Line::styled(
        "conntrack state of the accepted packets:",
        t.dim(),
    ));
    lines.push(Line::raw(format!(
        "  new {}  established {}  related {}  reply {}  invalid {}  untracked {}  no entry {}",
        n(c.new),
        n(c.established),
        n(c.related),
        n(c.reply),
        n(c.invalid),
        n(c.untracked),
        n(c.none)
    )));
    lines.push(Line::styled(
        "TCP by handshake class (entered → accepted):",
        t.dim(),
    ));
    let (a, b) = (&h.tcp, &h.tcp_accepted);
    lines.push(Line::raw(format!(
        "  syn {} → {}  synack {} → {}  rst {} → {}  fin {} → {}  other {} → {}",
        n(a.syn),
        n(b.syn),
        n(a.synack),
        n(b.synack),
        n(a.rst),
        n(b.rst),
        n(a.fin),
        n(b.fin),
        n(a.other),
        n(b.other)
    )));
    lines.extend(rules_lines(h, t));
    lines
}

/// Rules listed in a hook's details.
const RULES_DETAILED: usize = 10;

/// The drill-down's second half: what runs at the hook by priority, its chains with where
/// their ESTABLISHED,RELATED accept is, and the rules that dropped there.
fn rules_lines(h: &NfHookStats, t: Theme) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled("registered here, by priority:", t.dim())];
    if h.registered.is_empty() {
        lines.push(Line::styled("  not read (the rules probe is off)", t.dim()));
    }
    for r in &h.registered {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:>11}  ", priority(r.priority)), t.dim()),
            Span::styled(registered_name(r), t.text()),
        ]));
    }
    if !h.chains.is_empty() {
        lines.push(Line::styled("rule chains here:", t.dim()));
    }
    for c in &h.chains {
        let (text, style) = match c.established_accept {
            Some(a) if a.position > 1 => (
                format!(
                    "ESTABLISHED,RELATED accept at rule {}: {} rules before it",
                    a.position,
                    a.position - 1
                ),
                t.warn(),
            ),
            Some(_) => ("ESTABLISHED,RELATED accept first".to_string(), t.text()),
            None => ("no ESTABLISHED,RELATED accept".to_string(), t.dim()),
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!(
                    "  {} {} {} {} ({} rules)  ",
                    c.backend, c.family, c.table, c.chain, c.rules
                ),
                t.text(),
            ),
            Span::styled(text, style),
        ]));
    }
    lines.push(Line::styled("rules that dropped here:", t.dim()));
    if h.rules.is_empty() {
        lines.push(Line::styled("  none", t.dim()));
    }
    lines.extend(attribution_line(h, t));
    lines.extend(h.rules.iter().take(RULES_DETAILED).map(|r| rule_line(r, t)));
    if h.rules.len() > RULES_DETAILED {
        lines.push(Line::styled(
            format!(
                "  … {} more (JSON netfilter.<family>.<hook>.rules)",
                h.rules.len() - RULES_DETAILED
            ),
            t.dim(),
        ));
    }
    lines
}
