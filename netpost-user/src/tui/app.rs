//! The dashboard's state, owned by the event loop alone: the newest Snapshot and its
//! history, what is shown (frozen while paused), the view (overview or one panel
//! full-screen, with or without the selected row's details), focus, selections, sorts,
//! filter and input mode. Rendering only reads it; only keys and new snapshots change it.
use std::{path::PathBuf, sync::Arc};

use super::{
    flight,
    history::{DEFAULT_CAPACITY, History},
    keys::{Action, Mode},
    rows::{FlowSort, IfaceSort, NfSort, drop_rows, flow_rows, iface_rows, nf_rows},
};
use crate::model::Snapshot;

/// Every panel: the overview's (in Tab order) and the two that only have a view.
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
    Routing,
    Sockets,
    /// The doctor's diagnoses: in the overview (first) only while there are findings.
    Doctor,
}

impl Panel {
    /// The overview's panels, in Tab order.
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

    const EVERY: [Panel; 11] = [
        Panel::Path,
        Panel::Interfaces,
        Panel::Netfilter,
        Panel::Rates,
        Panel::Handshakes,
        Panel::Flows,
        Panel::Drops,
        Panel::Conntrack,
        Panel::Routing,
        Panel::Sockets,
        Panel::Doctor,
    ];

    fn index(self) -> usize {
        Panel::EVERY.iter().position(|p| *p == self).unwrap_or(0)
    }

    fn tab_index(self) -> usize {
        Panel::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn next(self) -> Panel {
        Panel::ALL[(self.tab_index() + 1) % Panel::ALL.len()]
    }

    pub fn prev(self) -> Panel {
        Panel::ALL[(self.tab_index() + Panel::ALL.len() - 1) % Panel::ALL.len()]
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
            Panel::Routing => "routing decisions",
            Panel::Sockets => "local sockets",
            Panel::Doctor => "doctor",
        }
    }

    /// A one-word name, for the tab and view bars.
    pub fn short(self) -> &'static str {
        match self {
            Panel::Path => "path",
            Panel::Interfaces => "interfaces",
            Panel::Netfilter => "netfilter",
            Panel::Rates => "rates",
            Panel::Handshakes => "handshakes",
            Panel::Flows => "flows",
            Panel::Drops => "drops",
            Panel::Conntrack => "conntrack",
            Panel::Routing => "routing",
            Panel::Sockets => "sockets",
            Panel::Doctor => "doctor",
        }
    }

    /// Panels that share the lower slot of a small terminal, one at a time.
    pub fn tabbed(self) -> bool {
        !matches!(self, Panel::Path | Panel::Rates)
    }

    /// Whether the panel is a table with a selection (scrolling, Enter for details).
    pub fn has_rows(self) -> bool {
        matches!(
            self,
            Panel::Interfaces | Panel::Netfilter | Panel::Flows | Panel::Drops | Panel::Routing
        )
    }
}

/// What fills the screen: the overview of every panel, or one panel full-screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Full(Panel),
}

impl View {
    /// The views in number-key order: `1` is the overview.
    pub const ALL: [View; 9] = [
        View::Overview,
        View::Full(Panel::Flows),
        View::Full(Panel::Drops),
        View::Full(Panel::Netfilter),
        View::Full(Panel::Conntrack),
        View::Full(Panel::Interfaces),
        View::Full(Panel::Routing),
        View::Full(Panel::Sockets),
        View::Full(Panel::Doctor),
    ];

    /// The view of number key `n` (1-based).
    pub fn numbered(n: usize) -> Option<View> {
        n.checked_sub(1).and_then(|i| View::ALL.get(i)).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Full(p) => p.short(),
        }
    }

    /// The full-screen view that shows `panel` in detail.
    pub fn of(panel: Panel) -> View {
        match panel {
            Panel::Path => View::Full(Panel::Netfilter),
            Panel::Rates => View::Full(Panel::Interfaces),
            Panel::Handshakes => View::Full(Panel::Flows),
            p => View::Full(p),
        }
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
    view: View,
    /// The selected row's details are open (full-screen views).
    details: bool,
    focus: Panel,
    /// The tabbed panel the lower slot shows when focus is on an untabbed one.
    tab: Panel,
    selected: [usize; Panel::EVERY.len()],
    iface_sort: IfaceSort,
    flow_sort: FlowSort,
    nf_sort: NfSort,
    filter: String,
    mode: Mode,
    /// What the last key did, when it says so (where the dropped packets were saved); shown
    /// until the next key.
    notice: Option<String>,
    /// Where key w saves the flight recorder's packets.
    save_dir: PathBuf,
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
            view: View::Overview,
            details: false,
            focus: Panel::Path,
            tab: Panel::Interfaces,
            selected: [0; Panel::EVERY.len()],
            iface_sort: IfaceSort::default(),
            nf_sort: NfSort::default(),
            flow_sort: FlowSort::default(),
            filter: String::new(),
            mode: Mode::Normal,
            notice: None,
            save_dir: std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()),
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
        self.notice = None;
        match action {
            Action::Quit => return Control::Quit,
            Action::Back => match (self.details, self.view) {
                (true, _) => self.details = false,
                (false, View::Full(_)) => self.view = View::Overview,
                (false, View::Overview) => return Control::Quit,
            },
            Action::FocusNext => self.set_focus(self.focus.next()),
            Action::FocusPrev => self.set_focus(self.focus.prev()),
            Action::View(n) => {
                if let Some(view) = View::numbered(n) {
                    self.view = view;
                    self.details = false;
                }
            }
            Action::Open => match self.view {
                View::Overview => {
                    let view = View::of(self.focus);
                    self.view = view;
                    // A focused table opens on its selected row's details.
                    self.details = view == View::Full(self.focus) && self.focus.has_rows();
                }
                View::Full(panel) => self.details = panel.has_rows() && !self.details,
            },
            Action::Scroll(by) => self.scroll(|cur, _| cur.saturating_add_signed(by)),
            Action::ScrollTop => self.scroll(|_, _| 0),
            Action::ScrollBottom => self.scroll(|_, rows| rows),
            Action::CycleSort => match self.active() {
                Panel::Netfilter => self.nf_sort = self.nf_sort.next(),
                Panel::Flows | Panel::Handshakes => self.flow_sort = self.flow_sort.next(),
                _ => self.iface_sort = self.iface_sort.next(),
            },
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
            Action::SaveDrops => {
                self.notice = Some(flight::save(
                    &self.latest,
                    &self.save_dir,
                    flight::now_secs(),
                ))
            }
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

    /// The panel keys act on: the full-screen one, else the focused one.
    pub fn active(&self) -> Panel {
        match self.view {
            View::Full(panel) => panel,
            View::Overview => self.focus,
        }
    }

    /// Moves the selection of the active table; `to(current, last_row)`.
    fn scroll(&mut self, to: impl Fn(usize, usize) -> usize) {
        let panel = self.active();
        let Some(rows) = self.rows(panel) else {
            return;
        };
        let i = panel.index();
        self.selected[i] = to(self.selected[i], rows.saturating_sub(1));
    }

    fn clamp_selections(&mut self) {
        for panel in Panel::EVERY {
            let rows = self.rows(panel).unwrap_or(0);
            let sel = &mut self.selected[panel.index()];
            *sel = (*sel).min(rows.saturating_sub(1));
        }
    }

    /// Row count of a panel with rows, None for the others.
    fn rows(&self, panel: Panel) -> Option<usize> {
        let snap = self.shown();
        match panel {
            Panel::Interfaces => Some(iface_rows(snap, &self.filter, self.iface_sort).len()),
            Panel::Netfilter => Some(nf_rows(snap, self.nf_sort).len()),
            Panel::Flows => Some(flow_rows(snap, &self.filter, self.flow_sort).len()),
            Panel::Drops => Some(drop_rows(snap).len()),
            Panel::Routing => Some(snap.routing.as_ref().map_or(0, |r| r.by_result.len())),
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

    pub fn view(&self) -> View {
        self.view
    }

    /// Whether the selected row's details are open.
    pub fn details(&self) -> bool {
        self.details
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

    /// What the last key did, when it says so.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Where key w saves dropped packets (the current directory by default).
    #[cfg(test)]
    pub fn set_save_dir(&mut self, dir: PathBuf) {
        self.save_dir = dir;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IfaceStats, NfFamilyStats};

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
    fn w_saves_the_flight_recorder_and_says_where_until_the_next_key() {
        use crate::model::{Link, Packet};
        let dir = std::env::temp_dir().join(format!("netpost-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut app = app();
        app.set_save_dir(dir.clone());
        app.apply(Action::SaveDrops);
        assert!(
            app.notice().unwrap().contains("no dropped packets"),
            "{:?}",
            app.notice()
        );
        let packet = Arc::new(Packet {
            ts_ns: 1,
            iface: "veth-a".into(),
            link: Link::Raw,
            orig_len: 20,
            data: vec![0x45; 20],
            comment: "reason=NO_SOCKET".into(),
        });
        app.ingest(Arc::new(Snapshot {
            elapsed_ms: 2000,
            drop_packets: Arc::new(vec![packet.clone(), packet]),
            ..Default::default()
        }));
        app.apply(Action::SaveDrops);
        let notice = app.notice().unwrap().to_string();
        assert!(
            notice.starts_with("saved the last 2 dropped packets to "),
            "{notice}"
        );
        let path = notice.rsplit(' ').next().unwrap();
        assert!(
            path.starts_with(dir.to_str().unwrap()) && path.ends_with(".pcapng"),
            "{path}"
        );
        assert!(std::path::Path::new(path).exists());
        app.apply(Action::Scroll(1));
        assert_eq!(app.notice(), None, "gone with the next key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn before_the_first_interval_there_is_no_data() {
        let app = App::new(Arc::default());
        assert!(!app.has_data());
        assert!(app.history().is_empty());
    }
}
