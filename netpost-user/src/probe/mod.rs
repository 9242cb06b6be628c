//! The probes: one folder per capability, each a `mod.rs` that loads, attaches and reads its
//! kernel programs (the [`api::Probe`] trait) and a `model.rs`, pure, that turns what it read
//! into its part of the Snapshot.
//!
//! The list below is the only place that names them all: it declares the modules and builds
//! [`Probes`], which the loader and the collection loop iterate over.
pub mod api;
pub mod profile;
pub mod status;

use api::Probe;

/// Declares each probe's module and gathers the probes into [`Probes`], in list order.
macro_rules! probes {
    ($($module:ident :: $probe:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every probe, in the order they are configured, loaded, attached, reported and
        /// sampled.
        #[derive(Default)]
        pub struct Probes {
            $(pub $module: $module::$probe,)*
        }

        impl Probes {
            pub fn iter(&self) -> impl Iterator<Item = &dyn Probe> {
                [$(&self.$module as &dyn Probe),*].into_iter()
            }

            pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut dyn Probe> {
                [$(&mut self.$module as &mut dyn Probe),*].into_iter()
            }
        }
    };
}

// Tracepoint probes first, then the packet path from netfilter out to the devices: the order
// netpost's startup lines come in, the "watching" lines (counting has started) last. conntrack
// samples before netfilter, which names the top conntrack sources only when the table fills;
// rules after netfilter, whose drops decide which rules are read; the drop recorder after
// rules, whose attribution names the rule in a netfilter drop's packet comment.
probes! {
    drops::Drops,
    sockets::Sockets,
    routes::Routes,
    conntrack::Conntrack,
    netfilter::Netfilter,
    rules::Rules,
    recorder::Recorder,
    flows::Flows,
    interfaces::Interfaces,
}

impl Probes {
    /// The probes the run wants (not off).
    pub fn wanted(&self) -> impl Iterator<Item = &dyn Probe> {
        self.iter().filter(|p| !p.status().is_off())
    }

    pub fn wanted_mut(&mut self) -> impl Iterator<Item = &mut dyn Probe> {
        self.iter_mut().filter(|p| !p.status().is_off())
    }
}
