//! Where each panel goes. The packet path sits on top: the three-line diagram from 160x44,
//! else the one-line one, with the rates beside it when there is room (else as a strip
//! below, or among the panels). The other panels are packed below, most important first,
//! each as tall as its content (never less than its minimum), in two columns from 100
//! columns on; a column's spare rows go to its last panel, one that has more to show
//! (flows, drops) when there is one.
//! What does not fit is hidden, and a tab bar names every panel (Tab brings a hidden one
//! in). A small terminal (under 100x28) keeps one lower slot for the tabbed panel.
//!
//! While the doctor has findings its panel comes first.
//!
//! Full-screen views (number keys) give one panel the whole body, under a bar naming
//! every view.
use ratatui::layout::{Constraint, Layout, Rect};

use super::{
    app::Panel,
    widgets::path::{LARGE, SMALL},
};

/// How tall a panel wants to be at a width: its content, and the least it is useful in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub min: u16,
    pub content: u16,
    /// It has more to show than fits (a list): it takes a column's spare rows.
    pub grow: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub path: Rect,
    /// The rates above the panels (beside the diagram or as a strip), when they are there.
    pub rates: Option<Rect>,
    /// Rates drawn as a strip under the diagram rather than a boxed panel.
    pub rates_strip: bool,
    /// The tab bar, when some panel is hidden.
    pub tabs: Option<Rect>,
    pub panels: Vec<(Panel, Rect)>,
    /// Panels that did not fit, in Tab order.
    pub hidden: Vec<Panel>,
    pub footer: Rect,
    pub large: bool,
}

#[cfg(test)]
impl Areas {
    /// Whether `panel` is on screen.
    pub fn shows(&self, panel: Panel) -> bool {
        match panel {
            Panel::Path => self.path.area() > 0,
            Panel::Rates if self.rates.is_some() => true,
            p => self.panels.iter().any(|(q, _)| *q == p),
        }
    }
}

pub const LARGE_MIN: (u16, u16) = (160, 44);
/// From this size on, panels go in two columns under the one-line diagram.
pub const MEDIUM_MIN: (u16, u16) = (100, 28);
/// Rates beside the diagram when this much room is left of the width.
const SIDE_RATES_MIN: u16 = 30;
/// A medium terminal this tall also gets the rates strip under the diagram.
const STRIP_MIN_HEIGHT: u16 = 34;
const STRIP_H: u16 = 4;
const TWO_COLUMNS_MIN: u16 = 100;

/// The packing order below the diagram: what the dashboard is for first (netfilter verdicts,
/// conntrack pressure, drop reasons, the handshake funnel), then the tables.
const PRIORITY: [Panel; 6] = [
    Panel::Netfilter,
    Panel::Conntrack,
    Panel::Drops,
    Panel::Handshakes,
    Panel::Interfaces,
    Panel::Flows,
];

/// The overview at `area`, with `focus` guaranteed a place (a small terminal's lower slot
/// shows `tab`, the last tabbed panel focused); `want` sizes each panel; `findings`: the
/// doctor's panel goes first.
pub fn overview(
    area: Rect,
    focus: Panel,
    tab: Panel,
    findings: bool,
    want: &dyn Fn(Panel, u16) -> Want,
) -> Areas {
    use Constraint::{Length, Min};
    let large = area.width >= LARGE_MIN.0 && area.height >= LARGE_MIN.1;
    let medium = !large && area.width >= MEDIUM_MIN.0 && area.height >= MEDIUM_MIN.1;
    let header_h = if large { 2 } else { 1 };
    let (diagram_w, diagram_h) = if large {
        // The diagram, a blank line and the legend.
        (LARGE.width() + 2, LARGE.height() + 2 + 2)
    } else {
        (SMALL.width() + 2, SMALL.height() + 2)
    };
    let side = area.width >= diagram_w + SIDE_RATES_MIN;
    // A small terminal keeps its strip; it gives up a line for the tab bar when short.
    let strip_h = match (side, large || medium) {
        (true, _) => 0,
        (false, true) if area.height >= STRIP_MIN_HEIGHT => STRIP_H,
        (false, true) => 0,
        (false, false) if area.height < 25 => STRIP_H - 1,
        (false, false) => STRIP_H,
    };
    let [header, top, strip, rest, footer] = Layout::vertical([
        Length(header_h),
        Length(diagram_h),
        Length(strip_h),
        Min(0),
        Length(1),
    ])
    .areas(area);
    let (path, rates) = if side {
        let [path, rates] = Layout::horizontal([Length(diagram_w), Min(0)]).areas(top);
        (path, Some(rates))
    } else {
        (top, (strip_h > 0).then_some(strip))
    };
    let columns = if (large || medium) && rest.width >= TWO_COLUMNS_MIN {
        2
    } else {
        1
    };
    let mut order: Vec<Panel> = PRIORITY.to_vec();
    if findings {
        order.insert(0, Panel::Doctor);
    }
    if rates.is_none() {
        order.push(Panel::Rates);
    }
    let small = !large && !medium;
    let to_front = |order: &mut Vec<Panel>, first: Panel| {
        order.retain(|p| *p != first);
        order.insert(0, first);
    };
    if small {
        // The lower slot of a small terminal shows the focused panel first.
        to_front(&mut order, tab);
    }
    // A panel put first for the user takes whatever room there is, however little.
    let place = |room: Rect, order: &[Panel]| {
        let first = order[0];
        let fitted = |p: Panel, w: u16| {
            let mut x = want(p, w);
            if p == first && (small || p == focus) {
                x.min = x.min.min(3);
            }
            x
        };
        pack(room, columns, order, &fitted)
    };
    let (mut panels, mut hidden) = place(rest, &order);
    let mut tabs = None;
    if !hidden.is_empty() {
        // A line for the tab bar naming what is hidden; the focused panel, if hidden, is
        // placed first.
        let [bar, room] = Layout::vertical([Length(1), Min(0)]).areas(rest);
        (panels, hidden) = place(room, &order);
        if hidden.contains(&focus) {
            to_front(&mut order, focus);
            (panels, hidden) = place(room, &order);
        }
        tabs = Some(bar);
    }
    hidden.sort_by_key(|p| Panel::ALL.iter().position(|q| q == p));
    Areas {
        header,
        path,
        rates,
        rates_strip: rates.is_some() && !side,
        tabs,
        panels,
        hidden,
        footer,
        large,
    }
}

/// The column a panel goes to when there are two: the wider left one holds the tables that
/// need the width (netfilter, flows) and the funnel, the right one conntrack, drops and the
/// interfaces.
fn home_column(panel: Panel) -> usize {
    match panel {
        Panel::Doctor | Panel::Netfilter | Panel::Handshakes | Panel::Flows | Panel::Rates => 0,
        _ => 1,
    }
}

/// Places `order`'s panels in `columns` columns of `area` (two: 55% and 45% of the width):
/// each in its home column if its content fits there, else in the other, else with what is
/// left if that is at least its minimum, else nowhere (hidden). In each column the panels
/// that can use more rows (`grow`) go last and take the spare ones.
pub fn pack(
    area: Rect,
    columns: u16,
    order: &[Panel],
    want: &dyn Fn(Panel, u16) -> Want,
) -> (Vec<(Panel, Rect)>, Vec<Panel>) {
    let cols: Vec<Rect> = if columns >= 2 {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .split(area)
            .to_vec()
    } else {
        vec![area]
    };
    let mut placed: Vec<Vec<(Panel, u16, bool)>> = vec![Vec::new(); cols.len()];
    let mut used = vec![0u16; cols.len()];
    let mut hidden = Vec::new();
    for &panel in order {
        let home = home_column(panel).min(cols.len() - 1);
        let tries: Vec<usize> = std::iter::once(home)
            .chain((0..cols.len()).filter(|c| *c != home))
            .collect();
        let free = |c: usize| cols[c].height - used[c];
        let wants: Vec<Want> = tries.iter().map(|&c| want(panel, cols[c].width)).collect();
        let fits = tries
            .iter()
            .zip(&wants)
            .find(|(c, w)| w.content <= free(**c))
            .map(|(c, w)| (*c, w.content, w.grow))
            .or_else(|| {
                tries
                    .iter()
                    .zip(&wants)
                    .find(|(c, w)| w.min <= free(**c) && free(**c) > 0)
                    .map(|(c, w)| (*c, free(*c), w.grow))
            });
        let Some((c, h, grow)) = fits else {
            hidden.push(panel);
            continue;
        };
        placed[c].push((panel, h, grow));
        used[c] += h;
    }
    let mut out = Vec::new();
    for (c, column) in placed.iter_mut().enumerate() {
        column.sort_by_key(|(_, _, grow)| *grow);
        let spare = cols[c].height - used[c];
        if let Some(last) = column.last_mut() {
            last.1 += spare;
        }
        let mut y = cols[c].y;
        for (panel, h, _) in column.iter() {
            out.push((*panel, Rect::new(cols[c].x, y, cols[c].width, *h)));
            y += h;
        }
    }
    (out, hidden)
}

/// A full-screen view: the header, the bar naming every view, the panel, the footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewAreas {
    pub header: Rect,
    pub bar: Rect,
    pub body: Rect,
    pub footer: Rect,
}

pub fn full(area: Rect) -> ViewAreas {
    use Constraint::{Length, Min};
    let [header, bar, body, footer] =
        Layout::vertical([Length(1), Length(1), Min(0), Length(1)]).areas(area);
    ViewAreas {
        header,
        bar,
        body,
        footer,
    }
}

/// The table and the selected row's details side by side when wide, else stacked.
pub fn split_details(body: Rect) -> (Rect, Rect) {
    use Constraint::Percentage;
    if body.width >= 140 {
        let [table, details] = Layout::horizontal([Percentage(60), Percentage(40)]).areas(body);
        (table, details)
    } else {
        let [table, details] = Layout::vertical([Percentage(50), Percentage(50)]).areas(body);
        (table, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every panel: 8 rows of content, at least 5.
    fn even(_: Panel, _: u16) -> Want {
        Want {
            min: 5,
            content: 8,
            grow: false,
        }
    }

    fn kinds(a: &Areas) -> Vec<Panel> {
        let mut k: Vec<Panel> = a.panels.iter().map(|p| p.0).collect();
        k.sort_by_key(|p| Panel::ALL.iter().position(|q| q == p));
        k
    }

    #[test]
    fn a_small_terminal_shows_the_tabbed_panel_and_names_the_others() {
        let small = overview(
            Rect::new(0, 0, 80, 24),
            Panel::Netfilter,
            Panel::Netfilter,
            false,
            &even,
        );
        assert!(!small.large && small.rates_strip);
        assert_eq!(kinds(&small), [Panel::Netfilter]);
        assert_eq!(small.panels[0].1.height, 7, "the whole lower slot");
        assert!(small.tabs.is_some(), "a tab bar names the hidden ones");
        assert_eq!(
            small.hidden,
            [
                Panel::Interfaces,
                Panel::Handshakes,
                Panel::Flows,
                Panel::Drops,
                Panel::Conntrack
            ]
        );
        assert_eq!(small.path.width, 80);
        assert_eq!(small.footer.y, 23);
    }

    #[test]
    fn large_terminals_show_everything_in_two_columns() {
        let large = overview(
            Rect::new(0, 0, 200, 60),
            Panel::Path,
            Panel::Interfaces,
            false,
            &even,
        );
        assert!(large.large && large.tabs.is_none());
        assert_eq!(large.panels.len(), 6, "{:?}", large.panels);
        assert!(large.rates.unwrap().width >= 60);
        let xs: Vec<u16> = large.panels.iter().map(|p| p.1.x).collect();
        assert!(xs.contains(&0) && xs.contains(&110), "{xs:?}");
    }

    #[test]
    fn panels_take_their_content_and_spare_rows_go_to_a_list() {
        let want = |p: Panel, _| Want {
            min: 4,
            content: if p == Panel::Drops { 6 } else { 5 },
            grow: p == Panel::Drops,
        };
        let (placed, hidden) = pack(
            Rect::new(0, 0, 50, 20),
            1,
            &[Panel::Conntrack, Panel::Drops, Panel::Netfilter],
            &want,
        );
        assert!(hidden.is_empty());
        let h: Vec<(Panel, u16)> = placed.iter().map(|(p, r)| (*p, r.height)).collect();
        assert_eq!(
            h,
            [
                (Panel::Conntrack, 5),
                (Panel::Netfilter, 5),
                (Panel::Drops, 10)
            ],
            "the list last, with the spare rows"
        );
        // No room for the last one's minimum: hidden.
        let (_, hidden) = pack(
            Rect::new(0, 0, 50, 13),
            1,
            &[Panel::Conntrack, Panel::Drops, Panel::Netfilter],
            &want,
        );
        assert_eq!(hidden, [Panel::Netfilter]);
    }

    #[test]
    fn a_hidden_panel_that_gets_focus_is_brought_in() {
        let tall = |p: Panel, _| Want {
            min: 6,
            content: if p == Panel::Flows { 6 } else { 9 },
            grow: false,
        };
        let a = overview(
            Rect::new(0, 0, 100, 30),
            Panel::Path,
            Panel::Interfaces,
            false,
            &tall,
        );
        assert!(a.hidden.contains(&Panel::Flows), "{:?}", a.hidden);
        let b = overview(
            Rect::new(0, 0, 100, 30),
            Panel::Flows,
            Panel::Flows,
            false,
            &tall,
        );
        assert!(b.shows(Panel::Flows), "{:?}", b.panels);
    }
}
