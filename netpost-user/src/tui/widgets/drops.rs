//! Drop reasons: why the kernel dropped packets in this namespace and which function did it,
//! busiest reason first, with the latest sampled packets (who was dropped).
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};

use super::panel;
use crate::{drops::DropsStats, fmt, model::Snapshot, tui::theme::Theme};

/// Samples listed under the reasons.
const SAMPLES_SHOWN: usize = 3;

pub struct DropsPanel<'a> {
    pub snap: &'a Snapshot,
    pub focused: bool,
    pub theme: Theme,
}

impl Widget for DropsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = panel(" drop reasons ", self.focused, self.theme);
        let lines = match &self.snap.drops {
            Some(d) => lines(d, self.theme),
            None if self.snap.elapsed_ms == 0 => vec![],
            None => vec![Line::styled(
                format!("not collected: {}", self.snap.drops_status),
                self.theme.dim(),
            )],
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(block)
            .render(area, buf);
    }
}

fn lines(d: &DropsStats, t: Theme) -> Vec<Line<'static>> {
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
    ])];
    for (reason, r) in d.busiest() {
        let location = r.top_location();
        let protos: Vec<&str> = r.by_proto.keys().map(String::as_str).collect();
        out.push(Line::from(vec![
            Span::styled(format!("✗ {reason:<18}"), t.drop()),
            Span::raw(format!(
                "{:>7} {:>8}  ",
                fmt::count(r.packets),
                fmt::pps(r.per_s)
            )),
            Span::styled(format!("{location} ({})", protos.join(",")), t.dim()),
        ]));
    }
    for s in d.samples.iter().rev().take(SAMPLES_SHOWN) {
        out.push(Line::styled(
            format!(
                "  e.g. {} {} → {} {}",
                s.proto,
                s.src.as_deref().unwrap_or("?"),
                s.dst.as_deref().unwrap_or("?"),
                s.reason
            ),
            t.dim(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::drops::{ReasonStats, SampleView};

    #[test]
    fn reasons_busiest_first_with_function_and_a_sample() {
        let snap = Snapshot {
            elapsed_ms: 1000,
            drops: Some(DropsStats {
                total: 42,
                reasons: [
                    (
                        "NETFILTER_DROP".to_string(),
                        ReasonStats {
                            packets: 2,
                            locations: [("nf_hook_slow".to_string(), 2)].into(),
                            by_proto: [("tcp".to_string(), 2)].into(),
                            ..Default::default()
                        },
                    ),
                    (
                        "NO_SOCKET".to_string(),
                        ReasonStats {
                            packets: 40,
                            locations: [("__udp4_lib_rcv".to_string(), 40)].into(),
                            by_proto: [("udp".to_string(), 40)].into(),
                            ..Default::default()
                        },
                    ),
                ]
                .into(),
                samples: vec![SampleView {
                    reason: "NO_SOCKET".into(),
                    location: "__udp4_lib_rcv".into(),
                    proto: "udp".into(),
                    src: Some("10.0.0.1:5000".into()),
                    dst: Some("10.0.0.2:9".into()),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut term = Terminal::new(TestBackend::new(70, 8)).unwrap();
        term.draw(|f| {
            f.render_widget(
                DropsPanel {
                    snap: &snap,
                    focused: false,
                    theme: Theme::plain(),
                },
                f.area(),
            )
        })
        .unwrap();
        let text: Vec<String> = term
            .backend()
            .buffer()
            .content
            .chunks(70)
            .map(|row| row.iter().map(|c| c.symbol()).collect())
            .collect();
        let at = |needle: &str| text.iter().position(|l| l.contains(needle));
        let no_socket = at("NO_SOCKET").expect("NO_SOCKET listed");
        let nf = at("NETFILTER_DROP").expect("NETFILTER_DROP listed");
        assert!(no_socket < nf, "busiest first: {text:#?}");
        assert!(
            text[no_socket].contains("__udp4_lib_rcv"),
            "{}",
            text[no_socket]
        );
        assert!(text[no_socket].contains("40"));
        assert!(at("10.0.0.1:5000 → 10.0.0.2:9").is_some(), "{text:#?}");
    }
}
