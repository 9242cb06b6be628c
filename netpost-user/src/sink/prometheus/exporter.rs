//! The registry a scrape encodes: build info, the endpoint's own request counters, and the
//! Snapshot families; rendered as OpenMetrics or as the Prometheus text format 0.0.4.
use std::{fmt, sync::Arc};

use prometheus_client::{
    encoding::{prometheus_text, text},
    metrics::{counter::Counter, family::Family, info::Info},
    registry::Registry,
};
use tokio::sync::watch;

use super::families::SnapshotCollector;
use crate::model::Snapshot;

/// The exposition formats a client can ask for (`Accept`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus text format 0.0.4: what `promtool check metrics` and older scrapers read.
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_text::CONTENT_TYPE,
        }
    }
}

type CodeLabel = [(&'static str, &'static str); 1];

#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    requests: Family<CodeLabel, Counter>,
    rejected: Counter,
    evicted: Counter,
}

impl Exporter {
    pub fn new(latest: watch::Receiver<Arc<Snapshot>>) -> Exporter {
        let mut registry = Registry::default();
        registry.register(
            "netpost_build",
            "netpost's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let requests = Family::<CodeLabel, Counter>::default();
        registry.register(
            "netpost_exporter_requests",
            "HTTP requests the metrics endpoint answered, by status code",
            requests.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "netpost_exporter_connections_rejected",
            "Connections refused with 503 because every connection slot was busy producing a response",
            rejected.clone(),
        );
        let evicted = Counter::default();
        registry.register(
            "netpost_exporter_connections_evicted",
            "Idle connections closed to make room for a new one when every slot was taken",
            evicted.clone(),
        );
        registry.register_collector(Box::new(SnapshotCollector::new(latest)));
        Exporter {
            registry,
            requests,
            rejected,
            evicted,
        }
    }

    pub fn render(&self, format: Format) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        match format {
            Format::OpenMetrics => text::encode(&mut out, &self.registry)?,
            Format::Text => prometheus_text::encode(&mut out, &self.registry)?,
        }
        Ok(out)
    }

    /// Counts an answered request; `code` is one of the few statuses the endpoint sends.
    pub fn answered(&self, code: &'static str) {
        self.requests.get_or_create(&[("code", code)]).inc();
    }

    pub fn rejected(&self) {
        self.rejected.inc();
    }

    pub fn evicted(&self) {
        self.evicted.inc();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::sink::prometheus::families::tests::{parse, sample_snapshot};

    fn exporter() -> Exporter {
        let (_tx, rx) = watch::channel(Arc::new(sample_snapshot()));
        Exporter::new(rx)
    }

    #[test]
    fn build_info_and_own_counters_are_exported() {
        let e = exporter();
        e.answered("200");
        e.answered("200");
        e.answered("404");
        e.rejected();
        let (meta, samples) = parse(&e.render(Format::Text).unwrap());
        assert_eq!(meta["netpost_build_info"].1, "gauge");
        let info = samples
            .iter()
            .find(|s| s.name == "netpost_build_info")
            .unwrap();
        assert_eq!(info.labels["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(info.value, 1.0);
        let code = |c: &str| {
            samples
                .iter()
                .find(|s| s.name == "netpost_exporter_requests_total" && s.labels["code"] == c)
                .map(|s| s.value)
        };
        assert_eq!((code("200"), code("404")), (Some(2.0), Some(1.0)));
        assert!(
            samples
                .iter()
                .any(|s| s.name == "netpost_exporter_connections_rejected_total" && s.value == 1.0)
        );
    }

    #[test]
    fn openmetrics_has_units_info_type_and_eof() {
        let text = exporter().render(Format::OpenMetrics).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE netpost_build info\n"));
        assert!(text.contains("# TYPE netpost_bytes counter\n# UNIT netpost_bytes bytes\n"));
        assert!(text.contains("# TYPE netpost_packets counter\n"));
        assert!(
            text.contains(
                "netpost_packets_total{interface=\"veth0\",hook=\"xdp\",proto=\"udp\"} 7\n"
            )
        );
    }

    #[test]
    fn both_formats_carry_the_same_samples() {
        let e = exporter();
        let (_, om) = parse(&e.render(Format::OpenMetrics).unwrap());
        let (_, txt) = parse(&e.render(Format::Text).unwrap());
        let key = |s: &crate::sink::prometheus::families::tests::Sample| {
            (s.name.clone(), s.labels.clone())
        };
        let om: Vec<_> = om
            .iter()
            .filter(|s| !s.name.contains("duration") && !s.name.contains("age"))
            .map(|s| (key(s), s.value))
            .collect();
        let txt: Vec<_> = txt
            .iter()
            .filter(|s| !s.name.contains("duration") && !s.name.contains("age"))
            .map(|s| (key(s), s.value))
            .collect();
        assert_eq!(om, txt);
    }

    /// Every name a scrape can hold, as `name` tokens (families with all their series).
    fn served_names() -> BTreeSet<String> {
        let e = exporter();
        e.answered("200");
        let (meta, _) = parse(&e.render(Format::Text).unwrap());
        meta.into_keys().collect()
    }

    fn netpost_names(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (i, _) in text.match_indices("netpost_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            names.insert(name);
        }
        names
    }

    #[test]
    fn docs_list_every_family() {
        let docs = include_str!("../../../../docs/metrics.md");
        for name in served_names() {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} missing from docs/metrics.md"
            );
        }
    }

    #[test]
    fn the_dashboard_queries_only_families_that_exist() {
        let served = served_names();
        let dashboard = include_str!("../../../../deploy/grafana-dashboard.json");
        let used = netpost_names(dashboard);
        assert!(used.len() > 10, "{used:?}");
        for name in used {
            assert!(
                served.contains(&name),
                "the dashboard queries {name}, which is not served"
            );
        }
    }
}
