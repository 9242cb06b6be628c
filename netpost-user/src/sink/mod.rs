//! Outputs. Each sink renders whole [`Snapshot`]s and never touches maps.
use std::io;

use crate::model::Snapshot;

pub mod json;
pub mod prometheus;
pub mod table;

pub trait Sink {
    fn emit(&mut self, snapshot: &Snapshot) -> io::Result<()>;
}
