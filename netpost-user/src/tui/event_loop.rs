//! The dashboard's loop: waits on whichever comes first of a new snapshot, a terminal
//! event or the next frame. Snapshots only mark the view stale, and it is redrawn at most
//! every FRAME, so a fast --interval never makes the dashboard busy; keys and resizes
//! redraw at once. Generic over the backend and the event stream so tests drive it
//! with a TestBackend and scripted keys.
use std::{io, sync::Arc, time::Duration};

use anyhow::Context as _;
use crossterm::event::Event;
use futures::{Stream, StreamExt as _};
use ratatui::{Terminal, backend::Backend};
use tokio::{
    sync::watch,
    time::{Instant, sleep_until},
};

use super::{
    app::{App, Control},
    keys,
    theme::Theme,
    ui,
};
use crate::model::Snapshot;

/// At most ~4 redraws a second for new data.
pub const FRAME: Duration = Duration::from_millis(250);

/// Runs until the user quits or the collector stops (the sender is dropped).
pub async fn run<B, E>(
    terminal: &mut Terminal<B>,
    mut latest: watch::Receiver<Arc<Snapshot>>,
    mut events: E,
    theme: Theme,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    E: Stream<Item = io::Result<Event>> + Unpin,
{
    let mut app = App::new(latest.borrow_and_update().clone());
    let mut draw = |app: &App| -> anyhow::Result<Instant> {
        terminal
            .draw(|frame| ui::draw(frame, app, theme))
            .context("drawing the dashboard")?;
        Ok(Instant::now())
    };
    let mut drawn_at = draw(&app)?;
    let mut stale = false;
    let mut input_open = true;
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let snapshot = latest.borrow_and_update().clone();
                app.ingest(snapshot);
                stale = true;
            }
            event = events.next(), if input_open => match event {
                Some(Ok(Event::Key(key))) => {
                    if let Some(action) = keys::action(app.mode(), key)
                        && app.apply(action) == Control::Quit
                    {
                        return Ok(());
                    }
                    drawn_at = draw(&app)?;
                    stale = false;
                }
                Some(Ok(Event::Resize(..))) => {
                    drawn_at = draw(&app)?;
                    stale = false;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                // No more input (the terminal went away): keep showing until collection ends.
                None => input_open = false,
            },
            _ = sleep_until(drawn_at + FRAME), if stale => {
                drawn_at = draw(&app)?;
                stale = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use futures::stream;
    use ratatui::backend::TestBackend;

    fn key(c: char) -> io::Result<Event> {
        Ok(Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )))
    }

    fn screen(terminal: &Terminal<TestBackend>) -> String {
        let buf = terminal.backend().buffer();
        buf.content.iter().map(|c| c.symbol()).collect()
    }

    #[tokio::test]
    async fn the_collector_stopping_ends_the_dashboard() {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let events = stream::pending::<io::Result<Event>>();
        let stop = async move {
            tx.send_replace(Arc::new(Snapshot {
                elapsed_ms: 65_000,
                ..Default::default()
            }));
            drop(tx);
        };
        let (result, ()) = tokio::join!(run(&mut terminal, rx, events, Theme::plain()), stop);
        result.unwrap();
    }

    #[tokio::test]
    async fn q_quits_and_keys_redraw_at_once() {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        // '?' opens the help, Esc closes it, 'q' quits; the stream then stays open.
        let events = stream::iter([
            key('?'),
            Ok(Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE))),
            key('q'),
        ])
        .chain(stream::pending());
        run(&mut terminal, rx, events, Theme::plain())
            .await
            .unwrap();
        assert!(
            !screen(&terminal).contains("help · netpost"),
            "help was closed"
        );
    }

    #[tokio::test]
    async fn ctrl_c_quits() {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        let events = stream::iter([Ok(Event::Key(ctrl_c))]).chain(stream::pending());
        run(&mut terminal, rx, events, Theme::plain())
            .await
            .unwrap();
    }
}
