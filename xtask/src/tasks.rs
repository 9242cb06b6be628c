//! The subcommands, one module each.

mod bench;
mod build;
mod run;
mod test;

pub use bench::bench;
pub use build::build;
pub use run::run;
pub use test::test;

use crate::apt::Apt;
use crate::bootstrap;

pub fn bootstrap() -> anyhow::Result<()> {
    bootstrap::ensure_toolchain(&mut Apt::default())
}
