//! The subcommands, one module each.

pub mod check;
pub mod failing;
pub mod list;
pub mod logs;
pub mod merge;
pub mod real;
pub mod render;
pub mod report_dir;
pub mod repro;
pub mod run;
pub mod shrink;
pub mod trace;
pub mod verdicts;
