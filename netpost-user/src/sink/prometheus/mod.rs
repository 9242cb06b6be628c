//! Prometheus/OpenMetrics endpoint (`--prometheus ADDR`): `GET /metrics` answers with the
//! latest Snapshot as `netpost_*` metric families (docs/metrics.md), encoded by
//! prometheus-client as OpenMetrics when the client asks for it (Prometheus does) and as the
//! Prometheus text format 0.0.4 otherwise.
//!
//! - `families`: Snapshot -> metric families (names, labels, values).
//! - `exporter`: the registry (build info, the endpoint's own counters) and the two formats.
//! - `http`: the answer to a request hyper has parsed, pure.
//! - `server`: the serving thread, hyper on each connection, and the limits that keep
//!   hostile clients cheap; `slots` (which connection makes room for a new one) and
//!   `deadline` (for clients that do not take their response) are its parts.
use std::{io, net::SocketAddr, sync::Arc};

use tokio::sync::watch;

use crate::model::Snapshot;

mod deadline;
mod exporter;
mod families;
mod http;
mod server;
mod slots;

pub use exporter::{Exporter, Format};
pub use server::{Limits, MetricsServer, serve_with};

/// `PORT` alone binds 127.0.0.1:PORT (exposing it wider is an explicit choice).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not PORT or ADDR:PORT"))
}

/// Serves /metrics on `addr` from the latest snapshot, on its own thread, with the default
/// [`Limits`]. Binds before returning, so a taken port is an error here.
pub fn serve(
    addr: SocketAddr,
    latest: watch::Receiver<Arc<Snapshot>>,
) -> io::Result<MetricsServer> {
    serve_with(addr, latest, Limits::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_loopback_only() {
        assert_eq!(
            parse_addr("9464"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(
            parse_addr("0.0.0.0:9464"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 9464)))
        );
        assert_eq!(parse_addr("[::1]:9464").unwrap().to_string(), "[::1]:9464");
        for bad in ["", "host:9464", "99999", "127.0.0.1", ":9464", "-1"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }
}
