//! One module per subcommand.

pub mod apply;
pub mod config;
pub mod delete;
pub mod describe;
pub mod dev;
pub mod diff;
pub mod get;
pub mod gitops;
pub mod graph;
pub mod kill;
pub mod logs;
pub mod rollout;
pub mod scale;
pub mod trace;
