//! The top line: what is watched (namespace, interfaces, XDP mode, netfilter), for how
//! long, whether the view is live, watched interfaces that were deleted or came back, and
//! pattern matches left out at the 64-interface cap. On a narrow terminal the least useful
//! parts go first; a tall one gets a second line with every attachment spelled out.
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::Widget,
};

use super::Canvas;
use crate::{
    fmt,
    model::IfaceStatus,
    tui::{app::App, theme::Theme},
};

pub struct Header<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

/// A part of the header and how much it matters (0 stays longest).
struct Part {
    priority: u8,
    spans: Vec<Span<'static>>,
}

impl Header<'_> {
    fn parts(&self) -> Vec<Part> {
        let snap = self.app.shown();
        let t = self.theme;
        let field = |label: &str, value: String| {
            vec![
                Span::styled(format!("{label} "), t.dim()),
                Span::styled(value, t.text()),
            ]
        };
        let mut parts = vec![Part {
            priority: 0,
            spans: vec![Span::styled(" netpost ", t.title().reversed())],
        }];
        let status = if !self.app.has_data() {
            vec![Span::styled("waiting for the first interval…", t.warn())]
        } else if self.app.paused() {
            vec![Span::styled(
                format!("⏸ PAUSED ({} new, p resumes)", self.app.behind()),
                t.warn(),
            )]
        } else {
            vec![Span::styled("● live", t.good())]
        };
        parts.push(Part {
            priority: 0,
            spans: status,
        });
        parts.push(Part {
            priority: 1,
            spans: field(
                "netns",
                snap.netns.clone().unwrap_or_else(|| "(current)".into()),
            ),
        });
        let names: Vec<&str> = snap.interfaces.keys().map(String::as_str).collect();
        let ifaces = match names.len() {
            0..=3 => names.join(","),
            n => format!("{},{} +{}", names[0], names[1], n - 2),
        };
        parts.push(Part {
            priority: 1,
            spans: field("iface", ifaces),
        });
        parts.push(Part {
            priority: 2,
            spans: field("up", fmt::uptime(snap.elapsed_ms)),
        });
        let mut modes: Vec<&str> = snap
            .attached
            .values()
            .map(|a| a.xdp_mode.as_str())
            .collect();
        modes.sort_unstable();
        modes.dedup();
        if !modes.is_empty() {
            parts.push(Part {
                priority: 3,
                spans: field("xdp", modes.join("/")),
            });
        }
        // A hook netpost could not attach somewhere: its counts are missing there.
        let missing: Vec<&str> = [
            (
                "xdp",
                snap.attached
                    .values()
                    .any(|a| is_unavailable(&a.xdp_status)),
            ),
            (
                "tc",
                snap.attached.values().any(|a| is_unavailable(&a.tc_status)),
            ),
        ]
        .into_iter()
        .filter_map(|(hook, missing)| missing.then_some(hook))
        .collect();
        if !missing.is_empty() {
            parts.push(Part {
                priority: 1,
                spans: vec![Span::styled(
                    format!("⚠ {} unavailable", missing.join("+")),
                    t.warn(),
                )],
            });
        }
        let mut nf = vec![Span::styled("nf ", t.dim())];
        for (family, status) in &snap.netfilter_status {
            let short = family.replace("ipv", "v");
            let (mark, style) = match status.as_str() {
                "linked" => ("✓", t.good()),
                s if s.starts_with("off") => ("off", t.dim()),
                _ => ("✗", t.warn()),
            };
            nf.push(Span::styled(short, t.text()));
            nf.push(Span::styled(format!("{mark} "), style));
        }
        if snap.netfilter_status.is_empty() {
            nf.push(Span::styled("-", t.dim()));
        }
        parts.push(Part {
            priority: 2,
            spans: nf,
        });
        // Events the kernel could not hand over: flow events and drop samples.
        let lost = snap.events_lost + snap.drops.as_ref().map_or(0, |d| d.events_lost);
        parts.push(Part {
            priority: 1,
            spans: vec![
                Span::styled("lost ", t.dim()),
                Span::styled(fmt::count(lost), if lost > 0 { t.warn() } else { t.text() }),
            ],
        });
        // The doctor: its findings (view 9), or a tick.
        if self.app.has_data() {
            let n = snap.diagnoses.len();
            let worst = snap.diagnoses.first().map(|d| d.severity);
            parts.push(Part {
                priority: if n > 0 { 0 } else { 2 },
                spans: match worst {
                    None => vec![
                        Span::styled("doctor ", t.dim()),
                        Span::styled("✓", t.good()),
                    ],
                    Some(s) => vec![Span::styled(
                        format!("doctor: {n} finding{} (9)", if n == 1 { "" } else { "s" }),
                        if s == crate::doctor::Severity::Critical {
                            t.drop()
                        } else {
                            t.warn()
                        },
                    )],
                },
            });
        }
        if !snap.interfaces_gone.is_empty() {
            parts.push(Part {
                priority: 0,
                spans: vec![Span::styled(
                    format!("⚠ deleted: {}", snap.interfaces_gone.join(",")),
                    t.drop(),
                )],
            });
        }
        let back: Vec<String> = snap
            .interfaces
            .iter()
            .filter(|(_, i)| i.status == IfaceStatus::Reattached)
            .map(|(name, i)| format!("{name}×{}", i.reattached))
            .collect();
        if !back.is_empty() {
            parts.push(Part {
                priority: 1,
                spans: vec![Span::styled(
                    format!("↻ re-attached: {}", back.join(",")),
                    t.warn(),
                )],
            });
        }
        if !snap.interfaces_over_cap.is_empty() {
            parts.push(Part {
                priority: 0,
                spans: vec![Span::styled(
                    format!(
                        "⚠ {} not watched (64-interface cap)",
                        snap.interfaces_over_cap.len()
                    ),
                    t.drop(),
                )],
            });
        }
        if !self.app.filter().is_empty() {
            parts.push(Part {
                priority: 0,
                spans: vec![Span::styled(
                    format!("filter \"{}\"", self.app.filter()),
                    t.warn(),
                )],
            });
        }
        parts
    }

    /// Every attachment and netfilter status in full, for the second line.
    fn details(&self) -> Line<'static> {
        let snap = self.app.shown();
        let t = self.theme;
        let mut spans = vec![Span::raw(" ")];
        for (name, a) in &snap.attached {
            spans.push(Span::styled(name.clone(), t.title()));
            spans.push(Span::styled(format!(" ifindex {} · ", a.ifindex), t.dim()));
            for (hook, mode, status) in [
                ("xdp", &a.xdp_mode, &a.xdp_status),
                ("tc", &a.tc_mode, &a.tc_status),
            ] {
                if is_unavailable(status) {
                    spans.push(Span::styled(format!("{hook} {status}"), t.warn()));
                } else {
                    spans.push(Span::styled(format!("{hook} {mode}"), t.dim()));
                }
                spans.push(Span::styled(
                    if hook == "xdp" { " · " } else { "   " },
                    t.dim(),
                ));
            }
        }
        for name in &snap.interfaces_gone {
            spans.push(Span::styled(name.clone(), t.title()));
            spans.push(Span::styled(" deleted (totals kept)   ", t.drop()));
        }
        for (family, status) in &snap.netfilter_status {
            spans.push(Span::styled(format!("netfilter {family}: "), t.dim()));
            let style = if status == "linked" {
                t.text()
            } else {
                t.warn()
            };
            spans.push(Span::styled(format!("{status}   "), style));
        }
        Line::from(spans)
    }
}

fn is_unavailable(status: &str) -> bool {
    status.starts_with("unavailable")
}

impl Widget for Header<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let parts = self.parts();
        let sep = 2;
        let width = |p: &Part| p.spans.iter().map(|s| s.width()).sum::<usize>() + sep;
        // Keep the most important parts that fit, shown in their original order.
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&i| parts[i].priority);
        let mut room = area.width as usize;
        let mut keep = vec![false; parts.len()];
        for i in order {
            if width(&parts[i]) <= room {
                room -= width(&parts[i]);
                keep[i] = true;
            }
        }
        let mut spans = Vec::new();
        for (part, _) in parts.into_iter().zip(&keep).filter(|(_, k)| **k) {
            spans.extend(part.spans);
            spans.push(Span::raw("  "));
        }
        let mut c = Canvas::new(area, buf);
        c.line(0, 0, &Line::from(spans));
        if area.height > 1 {
            c.line(0, 1, &self.details());
        }
    }
}
