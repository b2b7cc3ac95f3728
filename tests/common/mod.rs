//! Helpers shared by the command-line tests.

use std::process::{Command, Output};

/// Run the `pitfall` binary from the project root.
pub fn pitfall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pitfall"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("pitfall runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
