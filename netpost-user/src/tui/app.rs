//! The dashboard's state, owned by the event loop alone: the newest Snapshot and its
//! history, what is shown (frozen while paused), focus, selections, sorts, filter and
//! input mode. Rendering only reads it; only keys and new snapshots change it.
use std::sync::Arc;

use super::{
    history::{DEFAULT_CAPACITY, History},
    keys::{Action, Mode},
    rows::{FlowSort, IfaceSort, NfSort, iface_rows, nf_rows},
};
use crate::model::Snapshot;

/// The panels, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    Path,
    Interfaces,
    Netfilter,
    Rates,
    Handshakes,
    Flows,
    Drops,
    Conntrack,
}

impl Panel {
    pub const ALL: [Panel; 8] = [
        Panel::Path,
        Panel::Interfaces,
        Panel::Netfilter,
        Panel::Rates,
        Panel::Handshakes,
        Panel::Flows,
        Panel::Drops,
        Panel::Conntrack,
    ];

    fn index(self) -> usize {
        Panel::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn next(self) -> Panel {
        Panel::ALL[(self.index() + 1) % Panel::ALL.len()]
    }

    pub fn prev(self) -> Panel {
        Panel::ALL[(self.index() + Panel::ALL.len() - 1) % Panel::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Panel::Path => "packet path",
            Panel::Interfaces => "interfaces",
            Panel::Netfilter => "netfilter",
            Panel::Rates => "rates",
            Panel::Handshakes => "TCP handshakes",
            Panel::Flows => "top flows",
            Panel::Drops => "drop reasons",
            Panel::Conntrack => "conntrack",
        }
    }

    /// Panels that share the lower slot of a small terminal, one at a time.
    pub fn tabbed(self) -> bool {
        !matches!(self, Panel::Path | Panel::Rates)
    }
}

/// What the event loop does after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Quit,
}

/// The view while paused: the snapshot and history as they were.
#[derive(Debug)]
struct Frozen {
    snapshot: Arc<Snapshot>,
    history: History,
    /// Snapshots received when the view froze.
    at: u64,
}

#[derive(Debug)]
pub struct App {
    latest: Arc<Snapshot>,
    history: History,
    frozen: Option<Frozen>,
    received: u64,
    focus: Panel,
    /// The tabbed panel the lower slot shows when focus is on an untabbed one.
    tab: Panel,
    selected: [usize; Panel::ALL.len()],
    iface_sort: IfaceSort,
    flow_sort: FlowSort,
    nf_sort: NfSort,
    filter: String,
    mode: Mode,
}

impl App {
    /// `initial` is the channel's current value: before the first interval an empty
    /// snapshot (shown as waiting).
    pub fn new(initial: Arc<Snapshot>) -> App {
        App::with_capacity(initial, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(initial: Arc<Snapshot>, history: usize) -> App {
        let mut app = App {
            latest: initial.clone(),
            history: History::new(history),
            frozen: None,
            received: 0,
            focus: Panel::Path,
            tab: Panel::Interfaces,
            selected: [0; Panel::ALL.len()],
            iface_sort: IfaceSort::default(),
            nf_sort: NfSort::default(),
            flow_sort: FlowSort::default(),
            filter: String::new(),
            mode: Mode::Normal,
        };
        // A dashboard started after collection began gets a real first snapshot.
        if initial.elapsed_ms > 0 {
            app.ingest(initial);
        }
        app
    }

    /// A new snapshot from the collector. Recorded even while paused: pausing freezes
    /// the view, not the collection.
    pub fn ingest(&mut self, snapshot: Arc<Snapshot>) {
        self.history.push(&snapshot);
        self.latest = snapshot;
        self.received += 1;
        self.clamp_selections();
    }

    pub fn apply(&mut self, action: Action) -> Control {
        match action {
            Action::Quit => return Control::Quit,
            Action::FocusNext => self.set_focus(self.focus.next()),
            Action::FocusPrev => self.set_focus(self.focus.prev()),
            Action::Scroll(by) => self.scroll(|cur, _| cur.saturating_add_signed(by)),
            Action::ScrollTop => self.scroll(|_, _| 0),
            Action::ScrollBottom => self.scroll(|_, rows| rows),
            Action::CycleSort => {
                if self.focus == Panel::Netfilter {
                    self.nf_sort = self.nf_sort.next();
                } else if self.focus == Panel::Flows {
                    self.flow_sort = self.flow_sort.next();
                } else {
                    self.iface_sort = self.iface_sort.next();
                }
            }
            Action::TogglePause => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(Frozen {
                        snapshot: self.latest.clone(),
                        history: self.history.clone(),
                        at: self.received,
                    }),
                }
            }
            Action::StartFilter => self.mode = Mode::Filter,
            Action::FilterPush(c) => self.filter.push(c),
            Action::FilterPop => {
                self.filter.pop();
            }
            Action::FilterKeep => self.mode = Mode::Normal,
            Action::FilterClear => {
                self.filter.clear();
                self.mode = Mode::Normal;
            }
            Action::OpenHelp => self.mode = Mode::Help,
            Action::CloseHelp => self.mode = Mode::Normal,
        }
        self.clamp_selections();
        Control::Continue
    }

    fn set_focus(&mut self, panel: Panel) {
        self.focus = panel;
        if panel.tabbed() {
            self.tab = panel;
        }
    }

    /// Moves the selection of the focused table; `to(current, last_row)`.
    fn scroll(&mut self, to: impl Fn(usize, usize) -> usize) {
        let Some(rows) = self.rows(self.focus) else {
            return;
        };
        let i = self.focus.index();
        self.selected[i] = to(self.selected[i], rows.saturating_sub(1));
    }

    fn clamp_selections(&mut self) {
        for panel in Panel::ALL {
            let rows = self.rows(panel).unwrap_or(0);
            let sel = &mut self.selected[panel.index()];
            *sel = (*sel).min(rows.saturating_sub(1));
        }
    }

    /// Row count of a scrollable panel, None for the others.
    fn rows(&self, panel: Panel) -> Option<usize> {
        match panel {
            Panel::Interfaces => {
                Some(iface_rows(self.shown(), &self.filter, self.iface_sort).len())
            }
            Panel::Netfilter => Some(nf_rows(self.shown(), self.nf_sort).len()),
            _ => None,
        }
    }

    /// The snapshot on screen: the newest, or the one frozen by pause.
    pub fn shown(&self) -> &Snapshot {
        self.frozen.as_ref().map_or(&self.latest, |f| &f.snapshot)
    }

    pub fn history(&self) -> &History {
        self.frozen.as_ref().map_or(&self.history, |f| &f.history)
    }

    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// Snapshots collected since the view froze (0 when live).
    pub fn behind(&self) -> u64 {
        self.frozen.as_ref().map_or(0, |f| self.received - f.at)
    }

    /// Whether any snapshot arrived yet (before the first interval ends there is none).
    pub fn has_data(&self) -> bool {
        self.received > 0
    }

    pub fn focus(&self) -> Panel {
        self.focus
    }

    /// The panel the lower slot of a small terminal shows.
    pub fn tab(&self) -> Panel {
        self.tab
    }

    pub fn selected(&self, panel: Panel) -> usize {
        self.selected[panel.index()]
    }

    pub fn iface_sort(&self) -> IfaceSort {
        self.iface_sort
    }

    pub fn flow_sort(&self) -> FlowSort {
        self.flow_sort
    }

    pub fn nf_sort(&self) -> NfSort {
        self.nf_sort
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::IfaceStats, nf_model::NfFamilyStats};

    fn snap(elapsed_ms: u64, ifaces: &[&str]) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            elapsed_ms,
            interfaces: ifaces
                .iter()
                .map(|n| (n.to_string(), IfaceStats::default()))
                .collect(),
            netfilter: [("ipv4".to_string(), NfFamilyStats::default())].into(),
            ..Default::default()
        })
    }

    fn app() -> App {
        let mut app = App::with_capacity(Arc::default(), 4);
        app.ingest(snap(1000, &["veth-a", "veth-b"]));
        app
    }

    #[test]
    fn tab_cycles_focus_both_ways_and_remembers_the_tabbed_panel() {
        let mut app = app();
        assert_eq!(app.focus(), Panel::Path);
        let mut seen = vec![];
        for _ in 0..Panel::ALL.len() {
            app.apply(Action::FocusNext);
            seen.push(app.focus());
        }
        assert_eq!(seen.last(), Some(&Panel::Path), "wraps around");
        assert_eq!(seen[0], Panel::Interfaces);
        app.apply(Action::FocusPrev);
        assert_eq!(app.focus(), Panel::Conntrack);
        app.apply(Action::FocusNext);
        assert_eq!(app.focus(), Panel::Path);
        assert_eq!(app.tab(), Panel::Conntrack, "Path is not tabbed");
    }

    #[test]
    fn s_cycles_the_sort_of_the_focused_table() {
        let mut app = app();
        app.apply(Action::CycleSort);
        assert_eq!(app.iface_sort(), IfaceSort::Pps);
        app.apply(Action::FocusNext);
        app.apply(Action::FocusNext);
        assert_eq!(app.focus(), Panel::Netfilter);
        app.apply(Action::CycleSort);
        app.apply(Action::CycleSort);
        assert_eq!(app.nf_sort(), NfSort::DropRate);
        assert_eq!(app.iface_sort(), IfaceSort::Pps, "untouched");
    }

    #[test]
    fn pause_freezes_the_view_while_snapshots_keep_arriving() {
        let mut app = app();
        app.apply(Action::TogglePause);
        assert!(app.paused());
        app.ingest(snap(2000, &["veth-a", "veth-b"]));
        app.ingest(snap(3000, &["veth-a", "veth-b"]));
        assert_eq!(app.shown().elapsed_ms, 1000);
        assert_eq!(app.history().len(), 1);
        assert_eq!(app.behind(), 2);
        app.apply(Action::TogglePause);
        assert!(!app.paused());
        assert_eq!(app.shown().elapsed_ms, 3000, "collected while paused");
        assert_eq!(app.history().len(), 3);
        assert_eq!(app.behind(), 0);
    }

    #[test]
    fn history_stays_bounded() {
        let mut app = app();
        for i in 2..100 {
            app.ingest(snap(i * 1000, &["veth-a"]));
        }
        assert_eq!(app.history().len(), 4);
    }

    #[test]
    fn scrolling_is_clamped_to_the_rows_of_the_focused_table() {
        let mut app = app();
        app.apply(Action::Scroll(1));
        assert_eq!(app.selected(Panel::Path), 0, "not scrollable");
        app.apply(Action::FocusNext);
        app.apply(Action::Scroll(4));
        assert_eq!(app.selected(Panel::Interfaces), 4);
        app.apply(Action::Scroll(100));
        assert_eq!(
            app.selected(Panel::Interfaces),
            5,
            "two interfaces x three hooks"
        );
        app.apply(Action::Scroll(-2));
        assert_eq!(app.selected(Panel::Interfaces), 3);
        app.apply(Action::ScrollTop);
        assert_eq!(app.selected(Panel::Interfaces), 0);
        app.apply(Action::ScrollBottom);
        assert_eq!(app.selected(Panel::Interfaces), 5);
    }

    #[test]
    fn filter_text_is_typed_kept_or_cleared_and_narrows_the_rows() {
        let mut app = app();
        app.apply(Action::FocusNext);
        app.apply(Action::ScrollBottom);
        app.apply(Action::StartFilter);
        assert_eq!(app.mode(), Mode::Filter);
        for c in "-b".chars() {
            app.apply(Action::FilterPush(c));
        }
        assert_eq!(app.filter(), "-b");
        assert_eq!(
            app.selected(Panel::Interfaces),
            2,
            "clamped to veth-b's rows"
        );
        app.apply(Action::FilterPop);
        app.apply(Action::FilterPush('a'));
        app.apply(Action::FilterKeep);
        assert_eq!((app.filter(), app.mode()), ("-a", Mode::Normal));
        app.apply(Action::StartFilter);
        app.apply(Action::FilterClear);
        assert_eq!((app.filter(), app.mode()), ("", Mode::Normal));
    }

    #[test]
    fn help_opens_and_closes_and_quit_quits() {
        let mut app = app();
        app.apply(Action::OpenHelp);
        assert_eq!(app.mode(), Mode::Help);
        assert_eq!(app.apply(Action::CloseHelp), Control::Continue);
        assert_eq!(app.mode(), Mode::Normal);
        assert_eq!(app.apply(Action::Quit), Control::Quit);
    }

    #[test]
    fn before_the_first_interval_there_is_no_data() {
        let app = App::new(Arc::default());
        assert!(!app.has_data());
        assert!(app.history().is_empty());
    }
}
