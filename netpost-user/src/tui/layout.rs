//! Where each panel goes. A large terminal (from 160x44) shows everything at once with the
//! three-line diagram; a smaller one shows the one-line diagram, the rates (beside it when
//! wide enough, else as a strip below) and the tabbed panels in the lower slot (two when
//! it is tall enough).
use ratatui::layout::{Constraint, Layout, Rect};

use super::{
    app::Panel,
    widgets::path::{LARGE, SMALL},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub path: Rect,
    pub rates: Rect,
    /// Rates drawn as a strip under the diagram rather than a boxed panel.
    pub rates_strip: bool,
    pub panels: Vec<(Panel, Rect)>,
    pub footer: Rect,
    pub large: bool,
}

const LARGE_MIN: (u16, u16) = (160, 44);
/// Rates beside the small diagram when this much room is left of the width.
const SIDE_RATES_MIN: u16 = 40;
const LOWER: [Panel; 4] = [
    Panel::Handshakes,
    Panel::Flows,
    Panel::Drops,
    Panel::Conntrack,
];

pub fn areas(area: Rect, tab: Panel) -> Areas {
    use Constraint::{Length, Min, Percentage, Ratio};
    if area.width >= LARGE_MIN.0 && area.height >= LARGE_MIN.1 {
        // The diagram panel: diagram, a blank line and the legend.
        let path_h = LARGE.height() + 2 + 2;
        let [header, top, middle, bottom, footer] =
            Layout::vertical([Length(2), Length(path_h), Min(6), Length(11), Length(1)])
                .areas(area);
        let [path, rates] = Layout::horizontal([Length(LARGE.width() + 2), Min(0)]).areas(top);
        let [ifaces, netfilter] =
            Layout::horizontal([Percentage(50), Percentage(50)]).areas(middle);
        let lower = Layout::horizontal([Ratio(1, 4); 4]).split(bottom);
        let mut panels = vec![(Panel::Interfaces, ifaces), (Panel::Netfilter, netfilter)];
        panels.extend(LOWER.into_iter().zip(lower.iter().copied()));
        return Areas {
            header,
            path,
            rates,
            rates_strip: false,
            panels,
            footer,
            large: true,
        };
    }
    let path_w = SMALL.width() + 2;
    let side = area.width >= path_w + SIDE_RATES_MIN;
    let strip_h = if side { 0 } else { 4 };
    let [header, top, strip, bottom, footer] = Layout::vertical([
        Length(1),
        Length(SMALL.height() + 2),
        Length(strip_h),
        Min(3),
        Length(1),
    ])
    .areas(area);
    let (path, rates) = if side {
        let [path, rates] = Layout::horizontal([Length(path_w), Min(0)]).areas(top);
        (path, rates)
    } else {
        (top, strip)
    };
    let panels = if bottom.height >= 18 {
        let second = if tab == Panel::Interfaces {
            Panel::Netfilter
        } else {
            tab
        };
        let [a, b] = Layout::vertical([Percentage(50), Percentage(50)]).areas(bottom);
        vec![(Panel::Interfaces, a), (second, b)]
    } else {
        vec![(tab, bottom)]
    };
    Areas {
        header,
        path,
        rates,
        rates_strip: !side,
        panels,
        footer,
        large: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_terminals_show_the_tabbed_panel_and_large_ones_everything() {
        let small = areas(Rect::new(0, 0, 80, 24), Panel::Netfilter);
        assert!(!small.large && small.rates_strip);
        assert_eq!(small.panels.len(), 1);
        assert_eq!(small.panels[0].0, Panel::Netfilter);
        assert_eq!(small.path.width, 80);
        assert_eq!(small.footer.y, 23);

        let large = areas(Rect::new(0, 0, 200, 60), Panel::Netfilter);
        assert!(large.large);
        assert_eq!(large.panels.len(), 6, "interfaces, netfilter, four others");
        assert!(large.rates.width >= 60);
    }

    #[test]
    fn a_tall_medium_terminal_stacks_two_panels() {
        let a = areas(Rect::new(0, 0, 130, 45), Panel::Flows);
        assert!(!a.large && !a.rates_strip, "rates beside the diagram");
        let kinds: Vec<Panel> = a.panels.iter().map(|p| p.0).collect();
        assert_eq!(kinds, [Panel::Interfaces, Panel::Flows]);
    }
}
