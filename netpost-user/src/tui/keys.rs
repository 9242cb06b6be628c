//! Keyboard to intent. Which keys mean what depends on the input mode: while typing a
//! filter, `q` is a letter, not quit. Number keys pick a view, Enter opens, Esc goes back
//! (and quits from the overview). Ctrl-C quits in every mode: raw mode turns it into a
//! key press instead of SIGINT.
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What the keyboard is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Normal,
    /// Typing the filter text.
    Filter,
    /// The help overlay is open.
    Help,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Esc: closes the details, else leaves a full-screen view, else quits.
    Back,
    FocusNext,
    FocusPrev,
    /// Move the selection of the focused table by this many rows.
    Scroll(isize),
    ScrollTop,
    ScrollBottom,
    CycleSort,
    /// Number key: the overview (1) or a full-screen view (2-8).
    View(usize),
    /// Enter: the focused panel's view, or the selected row's details there.
    Open,
    TogglePause,
    StartFilter,
    FilterPush(char),
    FilterPop,
    /// Leave filter mode keeping the text.
    FilterKeep,
    /// Leave filter mode and show everything again.
    FilterClear,
    OpenHelp,
    CloseHelp,
    /// Write the flight recorder's dropped packets to a pcapng file.
    SaveDrops,
}

const PAGE: isize = 10;

pub fn action(mode: Mode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Some(Action::Quit);
    }
    // Chords are not text (Esc quickly followed by a key arrives as Alt+key, too).
    let chord = ctrl || key.modifiers.contains(KeyModifiers::ALT);
    match mode {
        Mode::Filter => filter_action(key, chord),
        Mode::Help => match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Some(Action::CloseHelp),
            _ => None,
        },
        Mode::Normal => normal_action(key, chord),
    }
}

fn filter_action(key: KeyEvent, chord: bool) -> Option<Action> {
    match key.code {
        KeyCode::Enter | KeyCode::Tab => Some(Action::FilterKeep),
        KeyCode::Esc => Some(Action::FilterClear),
        KeyCode::Backspace => Some(Action::FilterPop),
        KeyCode::Char(c) if !chord && !c.is_control() => Some(Action::FilterPush(c)),
        _ => None,
    }
}

fn normal_action(key: KeyEvent, chord: bool) -> Option<Action> {
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::Back,
        KeyCode::Enter => Action::Open,
        KeyCode::Char(c @ '1'..='9') if !chord => Action::View(c as usize - '0' as usize),
        KeyCode::Tab => Action::FocusNext,
        KeyCode::BackTab => Action::FocusPrev,
        KeyCode::Down | KeyCode::Char('j') => Action::Scroll(1),
        KeyCode::Up | KeyCode::Char('k') => Action::Scroll(-1),
        KeyCode::PageDown => Action::Scroll(PAGE),
        KeyCode::PageUp => Action::Scroll(-PAGE),
        KeyCode::Char('d') if chord => Action::Scroll(PAGE),
        KeyCode::Char('u') if chord => Action::Scroll(-PAGE),
        KeyCode::Home | KeyCode::Char('g') => Action::ScrollTop,
        KeyCode::End | KeyCode::Char('G') => Action::ScrollBottom,
        KeyCode::Char('s') => Action::CycleSort,
        KeyCode::Char('p') | KeyCode::Char(' ') => Action::TogglePause,
        KeyCode::Char('f') | KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => Action::OpenHelp,
        KeyCode::Char('w') if !chord => Action::SaveDrops,
        _ => return None,
    })
}

#[cfg(test)]
pub fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_quits_except_while_typing_a_filter_and_ctrl_c_always_quits() {
        let q = press(KeyCode::Char('q'));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(Mode::Normal, q), Some(Action::Quit));
        assert_eq!(action(Mode::Help, q), Some(Action::Quit));
        assert_eq!(action(Mode::Filter, q), Some(Action::FilterPush('q')));
        for mode in [Mode::Normal, Mode::Filter, Mode::Help] {
            assert_eq!(action(mode, ctrl_c), Some(Action::Quit), "{mode:?}");
        }
        assert_eq!(
            action(Mode::Normal, press(KeyCode::Esc)),
            Some(Action::Back)
        );
        assert_eq!(
            action(Mode::Filter, press(KeyCode::Esc)),
            Some(Action::FilterClear)
        );
        assert_eq!(
            action(Mode::Help, press(KeyCode::Esc)),
            Some(Action::CloseHelp)
        );
        let alt_p = KeyEvent::new(KeyCode::Char('p'), KeyModifiers::ALT);
        assert_eq!(action(Mode::Filter, alt_p), None, "not text");
    }

    #[test]
    fn navigation_keys() {
        let a = |c| action(Mode::Normal, press(c));
        assert_eq!(a(KeyCode::Char('j')), Some(Action::Scroll(1)));
        assert_eq!(a(KeyCode::Up), Some(Action::Scroll(-1)));
        assert_eq!(a(KeyCode::BackTab), Some(Action::FocusPrev));
        assert_eq!(a(KeyCode::Char('s')), Some(Action::CycleSort));
        assert_eq!(a(KeyCode::Char('p')), Some(Action::TogglePause));
        assert_eq!(a(KeyCode::Char('f')), Some(Action::StartFilter));
        assert_eq!(a(KeyCode::Char('?')), Some(Action::OpenHelp));
        assert_eq!(a(KeyCode::Char('2')), Some(Action::View(2)));
        assert_eq!(a(KeyCode::Char('9')), Some(Action::View(9)));
        assert_eq!(a(KeyCode::Char('0')), None);
        assert_eq!(a(KeyCode::Enter), Some(Action::Open));
        assert_eq!(a(KeyCode::Char('w')), Some(Action::SaveDrops));
        assert_eq!(a(KeyCode::Char('x')), None);
        let mut release = press(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(Mode::Normal, release), None);
    }
}
