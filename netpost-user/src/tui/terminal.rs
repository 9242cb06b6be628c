//! The terminal in dashboard mode (raw, alternate screen, cursor hidden) for exactly as
//! long as a [`TerminalGuard`] lives. It is handed back once, by whichever comes first:
//! the guard's drop (quit, error) or the panic hook. Restoring twice would be visible:
//! leaving the alternate screen again moves the cursor back to where it was on entry.
use std::{
    io::{self, Stdout, stdout},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use crossterm::{
    cursor::Show,
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};

/// Whether the terminal is in dashboard mode (raw mode on).
static ACTIVE: AtomicBool = AtomicBool::new(false);

pub type DashboardTerminal = Terminal<CrosstermBackend<Stdout>>;

pub struct TerminalGuard {
    terminal: DashboardTerminal,
}

impl TerminalGuard {
    pub fn enter() -> anyhow::Result<TerminalGuard> {
        install_panic_hook();
        let entered = || -> io::Result<DashboardTerminal> {
            enable_raw_mode()?;
            ACTIVE.store(true, Ordering::SeqCst);
            execute!(stdout(), EnterAlternateScreen)?;
            Terminal::new(CrosstermBackend::new(stdout()))
        };
        match entered() {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e).context(
                    "cannot set up the terminal for the dashboard (--no-tui runs without it)",
                )
            }
        }
    }

    pub fn terminal(&mut self) -> &mut DashboardTerminal {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode off, alternate screen left, cursor shown; once.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Nothing useful to do when this fails: the terminal is what would report it.
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, Show);
    }
}

/// Restores the terminal before the panic message is printed (by the hook installed
/// before this one), so the message lands on the normal screen.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
