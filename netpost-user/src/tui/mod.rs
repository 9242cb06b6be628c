//! The live dashboard. Until the ratatui dashboard lands, this prints the text table.
use std::sync::Arc;

use tokio::sync::watch;

use crate::{model::Snapshot, sink::table};

/// Runs the dashboard until the user quits or the collector stops (the sender is dropped).
pub async fn run(mut latest: watch::Receiver<Arc<Snapshot>>) -> anyhow::Result<()> {
    while latest.changed().await.is_ok() {
        let snapshot = latest.borrow_and_update().clone();
        println!("{}", table::render(&snapshot));
    }
    Ok(())
}
