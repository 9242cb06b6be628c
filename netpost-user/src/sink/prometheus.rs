//! Prometheus/OpenMetrics endpoint. Placeholder until the exporter lands.
use std::{io, net::SocketAddr, sync::Arc};

use tokio::sync::watch;

use crate::model::Snapshot;

/// The running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    pub addr: SocketAddr,
}

/// `PORT` alone binds 127.0.0.1:PORT (exposing it wider is an explicit choice).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not PORT or ADDR:PORT"))
}

/// Serves /metrics on `addr` from the latest snapshot, on its own thread.
pub fn serve(
    addr: SocketAddr,
    _latest: watch::Receiver<Arc<Snapshot>>,
) -> io::Result<MetricsServer> {
    Ok(MetricsServer { addr })
}
