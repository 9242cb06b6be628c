//! The doctor's thresholds: sensible defaults, changed with a TOML file (`--doctor-config
//! PATH`, docs/doctor.md). Every key is optional; an unknown key is an error (a typo would
//! otherwise leave a default in force without a word).
use std::path::Path;

use serde::Deserialize;

/// Every threshold, by diagnosis.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Seconds of recent snapshots the rates and deltas are taken over (`netpost doctor`
    /// uses its whole `--duration`).
    pub window_s: f64,
    pub forwarding_disabled: Forwarding,
    pub rule_drops: RuleDrops,
    pub rule_order: RuleOrder,
    pub conntrack_pressure: ConntrackPressure,
    pub no_route: NoRoute,
    pub rp_filter: RpFilter,
    pub small_buffers: SmallBuffers,
    pub listen_overflow: ListenOverflow,
    pub syn_flood: SynFlood,
    pub reset_storm: ResetStorm,
    pub closed_port: ClosedPort,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            window_s: 10.0,
            forwarding_disabled: Forwarding::default(),
            rule_drops: RuleDrops::default(),
            rule_order: RuleOrder::default(),
            conntrack_pressure: ConntrackPressure::default(),
            no_route: NoRoute::default(),
            rp_filter: RpFilter::default(),
            small_buffers: SmallBuffers::default(),
            listen_overflow: ListenOverflow::default(),
            syn_flood: SynFlood::default(),
            reset_storm: ResetStorm::default(),
            closed_port: ClosedPort::default(),
        }
    }
}

/// Writes a section struct with its defaults: `enabled` plus the given thresholds.
macro_rules! section {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Deserialize)]
        #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
        pub struct $name {
            /// `false` turns the diagnosis off.
            pub enabled: bool,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> $name {
                $name { enabled: true, $($field: $default,)* }
            }
        }
    };
}

section!(
    /// `forwarding-disabled`.
    Forwarding {
        /// Packets for other hosts dropped in the window (with forwarding off).
        min_packets: u64 = 10,
    }
);

section!(
    /// `rule-drops`.
    RuleDrops {
        /// Share of the packets entering a hook that its rules drop.
        min_share: f64 = 0.2,
        /// And at least this many per second.
        min_per_s: f64 = 5.0,
    }
);

section!(
    /// `rule-order`.
    RuleOrder {
        /// Rules before the ESTABLISHED,RELATED accept.
        min_rules_before: u64 = 10,
        /// Share of the hook's accepted packets that belong to established connections.
        min_established_share: f64 = 0.8,
        /// Packets accepted at the hook in the window (a quiet chain costs nothing).
        min_packets: u64 = 200,
    }
);

section!(
    /// `conntrack-pressure`.
    ConntrackPressure {
        /// Table fill, %.
        fill_pct: f64 = 80.0,
        /// Seconds until full at the window's growth...
        time_to_full_s: f64 = 300.0,
        /// ...once the table is at least this full, %.
        time_to_full_min_fill_pct: f64 = 30.0,
        /// Entries refused in the window (`drop` + `early_drop` + `insert_failed`).
        min_drops: u64 = 10,
    }
);

section!(
    /// `no-route`.
    NoRoute {
        /// Packets dropped for lack of a route in the window.
        min_packets: u64 = 10,
    }
);

section!(
    /// `rp-filter`.
    RpFilter {
        /// Packets dropped by the reverse-path filter in the window.
        min_packets: u64 = 10,
    }
);

section!(
    /// `small-buffers`.
    SmallBuffers {
        /// Flows with a shorter RTT are left alone (a LAN needs little buffer).
        min_rtt_ms: f64 = 10.0,
        /// Bytes in flight (rate x RTT) as a share of the largest window the buffer allows
        /// (half its maximum: the kernel keeps the other half for its own overhead).
        min_window_share: f64 = 0.5,
        /// And at least this rate, bytes per second.
        min_bytes_per_s: f64 = 10_000.0,
    }
);

section!(
    /// `listen-overflow`.
    ListenOverflow {
        /// SYNs or completed connections dropped by full listen queues in the window.
        min_drops: u64 = 5,
    }
);

section!(
    /// `syn-flood`.
    SynFlood {
        /// Half-open handshakes now.
        min_half_open: u64 = 16,
        /// SYN-ACK retransmits in the window (answers nobody acknowledges).
        min_synack_retransmits: u64 = 20,
    }
);

section!(
    /// `reset-storm`.
    ResetStorm {
        /// Resets of established connections in the window, by one client or one server
        /// port.
        min_resets: u64 = 20,
        /// And at least this many per second.
        min_per_s: f64 = 2.0,
    }
);

section!(
    /// `closed-port`.
    ClosedPort {
        /// Packets to ports nobody listens on (NO_SOCKET drops) in the window.
        min_packets: u64 = 20,
        /// And at least this many per second.
        min_per_s: f64 = 2.0,
    }
);

impl Config {
    /// Parses a TOML document; errors name the key and line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        if !(c.window_s.is_finite() && c.window_s > 0.0) {
            return Err(format!(
                "window-s must be a positive number of seconds, not {}",
                c.window_s
            ));
        }
        Ok(c)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_optional_and_sections_use_the_ids() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            "window-s = 30\n[rule-drops]\nmin-share = 0.5\n[closed-port]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.window_s, 30.0);
        assert_eq!(c.rule_drops.min_share, 0.5);
        assert_eq!(c.rule_drops.min_per_s, 5.0, "the rest keeps its default");
        assert!(!c.closed_port.enabled);
        assert!(c.no_route.enabled);
    }

    #[test]
    fn typos_and_bad_values_are_errors_that_name_them() {
        let e = Config::parse("[rule-drops]\nmin-shar = 0.5\n").unwrap_err();
        assert!(e.contains("min-shar"), "{e}");
        let e = Config::parse("[no-such-check]\n").unwrap_err();
        assert!(e.contains("no-such-check"), "{e}");
        assert!(
            Config::parse("window-s = -1\n")
                .unwrap_err()
                .contains("window-s")
        );
        assert!(Config::parse("[syn-flood]\nmin-half-open = \"many\"\n").is_err());
    }
}
