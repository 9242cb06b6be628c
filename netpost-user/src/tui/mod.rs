//! The live dashboard (ratatui): the packet path with live rates and drops, rate
//! sparklines, netfilter, conntrack pressure, drop reasons, the handshake funnel, flows and
//! interfaces in an overview, and each of them (with routing decisions and local sockets)
//! full-screen behind a number key. The collector publishes Snapshots on a watch channel; the dashboard takes the
//! newest whenever it is ready, so it never waits on collection nor collection on it.
//!
//! - `app`: the single-owner state; `keys`: keys to actions; `history`: the bounded
//!   sparkline history; `flight`: key w's file of the last dropped packets; `rows`, `stats`: what tables and diagram show, pure and tested.
//! - `event_loop`: snapshots, keys and frame pacing; `terminal`: raw mode and its undoing;
//!   `foreground`: a netpost in the background leaves the terminal alone until `fg`;
//!   `stderr`: stray messages go to a file while the dashboard is up, replayed after.
//! - `layout` (where panels go, sized by `fit` to their content), `ui`, `widgets/*`: one
//!   widget per panel and view; `theme`: colours and NO_COLOR.
mod app;
mod event_loop;
mod fit;
mod flight;
mod foreground;
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
pub async fn run(mut latest: watch::Receiver<Arc<Snapshot>>) -> anyhow::Result<()> {
    let theme = theme::Theme::from_env();
    if !foreground::owns_stdout() {
        eprintln!(
            "netpost: not in the terminal's foreground (started with &?): counting, and waiting for `fg` to open the dashboard"
        );
        if let foreground::Waited::Ended(last) = foreground::wait(&mut latest).await {
            // Never shown: the final numbers as text, as a pipe would have had them.
            print!("{}", crate::sink::table::render(&last));
            return Ok(());
        }
    }
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
