//! The subcommands, one module each.

pub mod list;
pub mod repro;
pub mod run;
