//! The live dashboard (ratatui): the packet path with live rates and drops, rate
//! sparklines, per-interface and netfilter tables, and panels for what is not collected
//! yet. The collector publishes Snapshots on a watch channel; the dashboard takes the
//! newest whenever it is ready, so it never waits on collection nor collection on it.
//!
//! - `app`: the single-owner state; `keys`: keys to actions; `history`: the bounded
//!   sparkline history; `rows`, `stats`: what tables and diagram show, pure and tested.
//! - `event_loop`: snapshots, keys and frame pacing; `terminal`: raw mode and its undoing;
//!   `stderr`: stray messages go to a file while the dashboard is up, replayed after.
//! - `layout`, `ui`, `widgets/*`: one widget per panel; `theme`: colours and NO_COLOR.
mod app;
mod event_loop;
mod history;
mod keys;
mod layout;
mod rows;
mod stats;
mod stderr;
mod terminal;
mod theme;
mod ui;
mod widgets;

#[cfg(test)]
mod render_tests;

use std::sync::Arc;

use crossterm::event::EventStream;
use tokio::sync::watch;

use crate::model::Snapshot;

/// Runs the dashboard until the user quits or the collector stops (the sender is dropped).
/// The terminal is restored on every way out: return, error and panic.
pub async fn run(latest: watch::Receiver<Arc<Snapshot>>) -> anyhow::Result<()> {
    let theme = theme::Theme::from_env();
    let mut guard = terminal::TerminalGuard::enter()?;
    // After the terminal's panic hook, so this one runs first on a panic. Without a
    // private file (unwritable temp dir) stray messages could reach the screen; the
    // dashboard is still worth showing.
    let stderr = stderr::StderrCapture::start().ok();
    let result = event_loop::run(guard.terminal(), latest, EventStream::new(), theme).await;
    drop(guard);
    if let Some(capture) = stderr {
        capture.finish(&mut std::io::stderr());
    }
    result
}
