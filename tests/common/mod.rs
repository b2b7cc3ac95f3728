//! Helpers shared by the command-line tests.

use std::path::Path;
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

/// A report without what differs between two runs of the same seeds: wall
/// times, start time and command line.
#[allow(dead_code)] // not every test binary compares reports
pub fn comparable(mut r: serde_json::Value) -> serde_json::Value {
    let o = r.as_object_mut().unwrap();
    o.remove("started_at");
    o.remove("command_line");
    for s in o["scenarios"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("wall_seconds");
    }
    for f in o["finished"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("wall_ms");
    }
    r
}

/// The history `repro` records for `seed` of `scenario`, written into `dir`.
#[allow(dead_code)] // not every test binary records histories
pub fn history_of(dir: &Path, scenario: &str, seed: &str) -> String {
    let path = dir.join(format!("seed-{seed}.jsonl"));
    let out = pitfall(&[
        "repro",
        scenario,
        "--seed",
        seed,
        "--history",
        path.to_str().unwrap(),
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    std::fs::read_to_string(path).unwrap()
}
