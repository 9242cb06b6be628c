//! Exists so netpost-user can list this crate as a build dependency (cargo needs a library
//! target for that); the programs are the `netpost` binary in main.rs.
#![no_std]
