//! netpost's userspace: the probes (one folder per capability), the loader that attaches
//! them, the collection loop, the Snapshot model and its sinks. main.rs is a thin CLI over
//! this library so tests reuse the same code.
pub mod bpf_sys;
pub mod cleanup;
pub mod cli;
pub mod delta;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod fmt;
pub mod kernel_btf;
pub mod ksyms;
pub mod lab;
pub mod loader;
pub mod model;
pub mod netdev;
pub mod netns;
pub mod pcapng;
pub mod preflight;
pub mod probe;
pub mod run;
pub mod sink;
pub mod tui;
