//! `--profile`: which probes a run loads. A probe a profile leaves out is never loaded (its
//! programs cost nothing) and reports `off (profile NAME)`; switches inside a program that
//! several probes share are frozen read-only globals, set from the same choice.
use crate::probe::{flows, routes, sockets};

/// How much netpost does per packet: the per-packet budget each profile fits is measured by
/// `cargo xtask bench` (docs/bench.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Per-interface/hook/protocol counts, netfilter entered/accepted/dropped, conntrack
    /// pressure and drop reasons: the least per packet.
    Counters,
    /// Plus flows, TCP handshakes and local sockets: the default.
    #[default]
    Standard,
    /// Everything, including per-lookup routing decisions.
    Full,
}

impl Profile {
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Counters => "counters",
            Profile::Standard => "standard",
            Profile::Full => "full",
        }
    }

    /// The probes this profile leaves out, by name.
    pub fn leaves_out(self) -> &'static [&'static str] {
        match self {
            Profile::Counters => &[
                flows::model::NAME,
                sockets::model::NAME,
                routes::model::NAME,
            ],
            // Per-lookup routing decisions run for every packet routed (twice for a forwarded
            // one): measured at ~175 ns a lookup, more than the rest of the default together.
            Profile::Standard => &[routes::model::NAME],
            Profile::Full => &[],
        }
    }

    /// `(probe, why)` for [`crate::probe::api::LoadOptions::off`].
    pub fn off(self) -> Vec<(&'static str, String)> {
        self.leaves_out()
            .iter()
            .map(|&name| (name, format!("profile {}", self.name())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_leaves_out_the_per_flow_and_per_lookup_probes() {
        let off = Profile::Counters.off();
        let names: Vec<_> = off.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["flows", "sockets", "routes"]);
        assert_eq!(off[0].1, "profile counters");
        assert!(Profile::Full.off().is_empty());
        assert_eq!(
            Profile::Standard.off(),
            [("routes", "profile standard".to_string())]
        );
        assert_eq!(Profile::default(), Profile::Standard);
    }
}
