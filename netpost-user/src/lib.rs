//! netpost's userspace: loader (attach, own links), collector loop, the Snapshot model and
//! its sinks. main.rs is a thin CLI over this library so tests reuse the same code.
pub mod bpf_sys;
pub mod cli;
pub mod conntrack;
pub mod drop_watch;
pub mod drops;
pub mod error;
pub mod flow_watch;
pub mod flows;
pub mod fmt;
pub mod kernel_btf;
pub mod ksyms;
pub mod loader;
pub mod maps_util;
pub mod model;
pub mod netdev;
pub mod netfilter;
pub mod netns;
pub mod nf_model;
pub mod preflight;
pub mod route_watch;
pub mod run;
pub mod sink;
pub mod sock_watch;
pub mod tui;
