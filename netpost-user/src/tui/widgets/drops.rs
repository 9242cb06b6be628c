//! Drop reasons: why the kernel dropped packets in this namespace and which function did it,
//! ranked by rate, then total, with the latest sampled packets (who was dropped). Routine
//! drops (multicast nobody listens to and the like) fold into one dimmed line. The view lists
//! every reason; Enter shows one reason's functions, protocols and sampled packets.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};

use netpost_common::netfilter::NfHook;

use super::{netfilter::rule_place, panel};
use crate::{
    fmt,
    model::{DropsStats, ReasonStats, RecorderStats, RuleDrops, Snapshot},
    tui::{
        app::{App, Panel},
        rows::{DropRow, chain_name, drop_rows},
        theme::Theme,
    },
};

/// Samples listed under the reasons.
const SAMPLES_SHOWN: usize = 3;

pub struct DropsPanel<'a> {
    pub app: &'a App,
    pub focused: bool,
    pub theme: Theme,
    /// The full-screen view: every reason on its own line, the selected one highlighted.
    pub full: bool,
}

impl DropsPanel<'_> {
    pub fn paragraph(&self) -> Paragraph<'static> {
        let snap = self.app.shown();
        let t = self.theme;
        let lines = match &snap.drops {
            Some(d) => lines(
                d,
                snap,
                self.full.then(|| self.app.selected(Panel::Drops)),
                t,
            ),
            None if snap.elapsed_ms == 0 => vec![],
            None => vec![Line::styled(
                format!("not collected: {}", snap.drops_status),
                t.dim(),
            )],
        };
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(panel(
            " drop reasons ",
            self.focused,
            t,
        ))
    }
}

impl Widget for DropsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        self.paragraph().render(area, buf);
    }
}

fn reason_line(row: &DropRow, style: Style, t: Theme) -> Line<'static> {
    let r = row.stats;
    let protos: Vec<&str> = r.by_proto.keys().map(String::as_str).collect();
    let mark = if row.routine.is_some() { "·" } else { "✗" };
    Line::from(vec![
        Span::styled(format!("{mark} {:<16}", row.reason), style),
        Span::styled(
            format!("{:>7} {:>6}  ", fmt::pps(r.per_s), fmt::count(r.packets)),
            if row.routine.is_some() {
                t.dim()
            } else {
                t.text()
            },
        ),
        Span::styled(
            format!("{} ({})", r.top_location(), protos.join(",")),
            t.dim(),
        ),
    ])
}

/// The panel's lines; `selected` (the view) lists routine reasons one by one too.
/// The rule that dropped the most in the last interval (then since start), with its hook.
fn top_rule(snap: &Snapshot) -> Option<(String, &RuleDrops)> {
    snap.netfilter
        .iter()
        .flat_map(|(family, f)| {
            NfHook::ALL.into_iter().flat_map(move |hook| {
                f.hook(hook)
                    .rules
                    .iter()
                    .filter(|r| r.packets.is_some_and(|n| n > 0))
                    .map(move |r| {
                        (
                            format!("{} {}", family.replace("ipv", "v"), chain_name(hook)),
                            r,
                        )
                    })
            })
        })
        .max_by(|(_, a), (_, b)| {
            a.per_s
                .unwrap_or(0.0)
                .total_cmp(&b.per_s.unwrap_or(0.0))
                .then(a.packets.cmp(&b.packets))
        })
}

fn lines(d: &DropsStats, snap: &Snapshot, selected: Option<usize>, t: Theme) -> Vec<Line<'static>> {
    let mut out = vec![Line::from(vec![
        Span::styled("dropped ", t.dim()),
        Span::styled(
            format!("{} ({})", fmt::count(d.total), fmt::pps(d.per_s)),
            if d.total > 0 { t.drop() } else { t.good() },
        ),
        Span::styled(
            if d.events_lost > 0 {
                format!("  samples lost {}", fmt::count(d.events_lost))
            } else {
                String::new()
            },
            t.warn(),
        ),
        Span::styled(
            if selected.is_some() {
                "  rate/s  total  function (protocols)"
            } else {
                ""
            },
            t.dim(),
        ),
    ])];
    if selected.is_some()
        && let Some(r) = &d.recorder
    {
        out.push(recorder_line(r, snap.drop_packets.len(), t));
    }
    let rows = drop_rows(snap);
    let (real, routine): (Vec<&DropRow>, Vec<&DropRow>) =
        rows.iter().partition(|r| r.routine.is_none());
    for (i, row) in rows.iter().enumerate() {
        if row.routine.is_some() && selected.is_none() {
            continue;
        }
        let base = if row.routine.is_some() {
            t.dim()
        } else if row.stats.per_s > 0.0 {
            t.drop()
        } else {
            t.past_drop()
        };
        let mut line = reason_line(row, base, t);
        if selected == Some(i) {
            line = line.patch_style(t.selected());
        }
        out.push(line);
        if row.reason == "NETFILTER_DROP"
            && let Some((hook, r)) = top_rule(snap)
        {
            out.push(Line::from(vec![
                Span::styled("  ↳ ", t.dim()),
                Span::raw(format!(
                    "{} {}  ",
                    fmt::count(r.packets.unwrap_or(0)),
                    fmt::pps(r.per_s.unwrap_or(0.0))
                )),
                Span::styled(format!("{hook}: {}  ", rule_place(r)), t.dim()),
                Span::styled(r.rule.clone(), t.text()),
            ]));
        }
    }
    if selected.is_none() && !routine.is_empty() {
        let packets: u64 = routine.iter().map(|r| r.stats.packets).sum();
        let per_s: f64 = routine.iter().map(|r| r.stats.per_s).sum();
        let names: Vec<String> = routine
            .iter()
            .map(|r| format!("{} in {}", r.reason, r.stats.top_location()))
            .collect();
        out.push(Line::styled(
            format!(
                "· routine {:>10} {:>6}  {}",
                fmt::pps(per_s),
                fmt::count(packets),
                names.join(", ")
            ),
            t.dim(),
        ));
    }
    let shown = if real.is_empty() && selected.is_none() {
        0
    } else {
        SAMPLES_SHOWN
    };
    // The reason goes with a sample only when several are listed.
    let one_reason = real.len() == 1 && selected.is_none();
    for s in d
        .samples
        .iter()
        .rev()
        .filter(|s| selected.is_some() || real.iter().any(|r| r.reason == s.reason))
        .take(shown)
    {
        out.push(Line::styled(
            format!(
                "  e.g. {} {} → {}{}",
                s.proto,
                s.src.as_deref().unwrap_or("?"),
                s.dst.as_deref().unwrap_or("?"),
                if one_reason {
                    String::new()
                } else {
                    format!(" {}", s.reason)
                }
            ),
            t.dim(),
        ));
    }
    out
}

/// What the drop recorder kept: packets recorded, left out, where they go.
fn recorder_line(r: &RecorderStats, in_memory: usize, t: Theme) -> Line<'static> {
    let sum = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    let skipped = sum(&r.skipped_rate) + sum(&r.skipped_lost);
    let to = match &r.file {
        Some(f) => format!(" → {f}"),
        None => String::new(),
    };
    Line::from(vec![
        Span::styled("recorded ", t.dim()),
        Span::styled(fmt::count(sum(&r.recorded)), t.text()),
        Span::styled(
            format!(
                "{to}  skipped {}  last {in_memory} in memory (w saves)",
                fmt::count(skipped)
            ),
            t.dim(),
        ),
    ])
}

/// The selected reason in full: functions, protocols, sampled packets.
pub struct DropDetails<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for DropDetails<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let snap = self.app.shown();
        let rows = drop_rows(snap);
        let block = panel(" drop reason · Esc closes ", true, t);
        let lines = match rows.get(self.app.selected(Panel::Drops)) {
            Some(row) => reason_details(row.reason, row.stats, row.routine, snap, t),
            None => vec![Line::styled("no drop reason selected", t.dim())],
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block)
            .render(area, buf);
    }
}

pub fn reason_details(
    reason: &str,
    r: &ReasonStats,
    routine: Option<&str>,
    snap: &Snapshot,
    t: Theme,
) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled(reason.to_string(), t.title()),
        Span::raw(format!(
            "  {} packets, {} now",
            fmt::count(r.packets),
            fmt::pps(r.per_s)
        )),
    ])];
    if let Some(why) = routine {
        lines.push(Line::styled(format!("routine: {why}"), t.dim()));
    }
    lines.push(Line::styled("dropped in (kernel function):", t.dim()));
    let mut locations: Vec<(&String, &u64)> = r.locations.iter().collect();
    locations.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (function, n) in locations {
        lines.push(Line::raw(format!("  {function:<32} {:>8}", fmt::count(*n))));
    }
    lines.push(Line::styled("protocols:", t.dim()));
    for (proto, n) in &r.by_proto {
        lines.push(Line::raw(format!("  {proto:<32} {:>8}", fmt::count(*n))));
    }
    lines.push(Line::styled("sampled packets, newest first:", t.dim()));
    let samples: Vec<_> = snap
        .drops
        .iter()
        .flat_map(|d| d.samples.iter().rev())
        .filter(|s| s.reason == reason)
        .collect();
    if samples.is_empty() {
        lines.push(Line::styled("  none sampled lately", t.dim()));
    }
    for s in samples {
        lines.push(Line::raw(format!(
            "  {} {} → {} in {}",
            s.proto,
            s.src.as_deref().unwrap_or("?"),
            s.dst.as_deref().unwrap_or("?"),
            s.location
        )));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::model::SampleView;

    fn reason(packets: u64, per_s: f64, location: &str, proto: &str) -> ReasonStats {
        ReasonStats {
            packets,
            per_s,
            locations: [(location.to_string(), packets)].into(),
            by_proto: [(proto.to_string(), packets)].into(),
            hooks: Default::default(),
        }
    }

    pub fn drops() -> DropsStats {
        DropsStats {
            total: 2342,
            per_s: 31.0,
            reasons: [
                (
                    "NETFILTER_DROP".to_string(),
                    reason(1300, 25.0, "nft_do_chain", "udp"),
                ),
                (
                    "NO_SOCKET".to_string(),
                    reason(40, 0.0, "__udp4_lib_rcv", "udp"),
                ),
                (
                    "NOT_SPECIFIED".to_string(),
                    reason(1002, 6.0, "ip6_mc_input", "icmpv6"),
                ),
            ]
            .into(),
            samples: vec![
                SampleView {
                    reason: "NOT_SPECIFIED".into(),
                    location: "ip6_mc_input".into(),
                    proto: "icmpv6".into(),
                    src: Some("fe80::1".into()),
                    dst: Some("ff02::16".into()),
                    hook: None,
                },
                SampleView {
                    reason: "NETFILTER_DROP".into(),
                    location: "nft_do_chain".into(),
                    proto: "udp".into(),
                    src: Some("10.0.0.1:5000".into()),
                    dst: Some("10.0.1.2:9".into()),
                    hook: None,
                },
            ],
            ..Default::default()
        }
    }

    fn screen(app: &App, full: bool) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(90, 10)).unwrap();
        term.draw(|f| {
            f.render_widget(
                DropsPanel {
                    app,
                    focused: false,
                    theme: Theme::plain(),
                    full,
                },
                f.area(),
            )
        })
        .unwrap();
        term.backend()
            .buffer()
            .content
            .chunks(90)
            .map(|row| row.iter().map(|c| c.symbol()).collect())
            .collect()
    }

    #[test]
    fn reasons_rank_by_rate_with_routine_noise_on_one_line() {
        let snap = Snapshot {
            elapsed_ms: 1000,
            drops: Some(drops()),
            ..Default::default()
        };
        let app = App::new(Arc::new(snap));
        let text = screen(&app, false);
        let at = |needle: &str| text.iter().position(|l| l.contains(needle));
        let nf = at("✗ NETFILTER_DROP").expect("listed");
        let no_socket = at("✗ NO_SOCKET").expect("listed");
        let routine = at("· routine").expect("routine line");
        assert!(nf < no_socket && no_socket < routine, "{text:#?}");
        assert!(text[nf].contains("25/s") && text[nf].contains("nft_do_chain (udp)"));
        assert!(
            text[routine].contains("NOT_SPECIFIED in ip6_mc_input")
                && text[routine].contains("1.0k"),
            "{}",
            text[routine]
        );
        assert!(
            at("e.g. udp 10.0.0.1:5000 → 10.0.1.2:9").is_some(),
            "{text:#?}"
        );
        assert!(
            at("ff02::16").is_none(),
            "routine samples stay out: {text:#?}"
        );
        // The view lists the routine reason on its own line.
        let text = screen(&app, true);
        assert!(
            text.iter().any(|l| l.contains("· NOT_SPECIFIED")),
            "{text:#?}"
        );
    }

    #[test]
    fn details_name_functions_protocols_and_samples() {
        let snap = Snapshot {
            drops: Some(drops()),
            ..Default::default()
        };
        let d = snap.drops.as_ref().unwrap();
        let text: Vec<String> = reason_details(
            "NETFILTER_DROP",
            &d.reasons["NETFILTER_DROP"],
            None,
            &snap,
            Theme::plain(),
        )
        .iter()
        .map(|l| l.to_string())
        .collect();
        let text = text.join("\n");
        for want in ["nft_do_chain", "udp", "10.0.0.1:5000 → 10.0.1.2:9"] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert!(!text.contains("ff02::16"), "{text}");
    }

    #[test]
    fn netfilter_drop_names_the_rule_that_dropped_the_most() {
        use crate::model::{NfFamilyStats, RuleDrops};
        let rule =
            |backend, family, table: &str, chain: &str, index, text: &str, n: u64| RuleDrops {
                backend,
                family,
                table: table.into(),
                chain: chain.into(),
                handle_or_index: Some(index),
                rule: text.into(),
                verdict: "drop",
                packets: Some(n),
                per_s: Some(n as f64 / 10.0),
                shared_packets: 0,
                note: None,
            };
        let mut v6 = NfFamilyStats::default();
        v6.input.rules = vec![rule(
            "nft",
            "inet",
            "t",
            "in",
            7,
            "udp dport 53 counter drop",
            9,
        )];
        let mut v4 = NfFamilyStats::default();
        v4.forward.rules = vec![rule(
            "iptables-nft",
            "ip",
            "filter",
            "FORWARD",
            1,
            "-A FORWARD -j DROP",
            30,
        )];
        let snap = Snapshot {
            elapsed_ms: 1000,
            netfilter: [("ipv4".to_string(), v4), ("ipv6".to_string(), v6)].into(),
            drops: Some(DropsStats {
                total: 39,
                reasons: [(
                    "NETFILTER_DROP".to_string(),
                    ReasonStats {
                        packets: 39,
                        locations: [("nf_hook_slow".to_string(), 39)].into(),
                        by_proto: [("udp".to_string(), 39)].into(),
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text: Vec<String> = lines(snap.drops.as_ref().unwrap(), &snap, None, Theme::plain())
            .iter()
            .map(|l| l.to_string())
            .collect();
        let nf = text
            .iter()
            .position(|l| l.contains("NETFILTER_DROP"))
            .unwrap();
        let next = &text[nf + 1];
        assert!(
            next.contains("v4 FORWARD: iptables-nft ip filter FORWARD #1  -A FORWARD -j DROP"),
            "{text:#?}"
        );
        assert!(next.contains("30"), "{next}");
    }
}
