//! One module per subcommand.

pub mod apply;
pub mod delete;
pub mod describe;
pub mod dev;
pub mod diff;
pub mod get;
pub mod kill;
pub mod rollout;
pub mod scale;
