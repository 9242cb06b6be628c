//! The subcommands, one module each.

mod bench;
mod build;
mod matrix;
mod run;
mod soak;
mod test;

pub use bench::bench;
pub use build::build;
pub use matrix::matrix;
pub use run::run;
pub use soak::soak;
pub use test::test;

use crate::apt::Apt;
use crate::bootstrap;

pub fn bootstrap() -> anyhow::Result<()> {
    bootstrap::ensure_toolchain(&mut Apt::default())
}
