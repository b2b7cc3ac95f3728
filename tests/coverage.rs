//! Coverage ("sometimes") events: a scenario that forbids duplicate
//! delivery but declares `sometimes = ["duplicate-delivered"]` fails with a
//! clear message; the same declaration with duplicate delivery allowed is
//! met; too few seeds leave the list unjudged; an unknown event name is bad
//! input. The report lists the events per scenario.

use std::path::{Path, PathBuf};

mod common;
use common::{pitfall, text};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("coverage")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// CDC into one inventory consumer, declaring that some seed delivers a
/// duplicate. With no fault allowed nothing re-serves a record (even a slow
/// DB can expire the consumer's session and so redeliver after the rebalance).
fn scenario(faults: &str, min_seeds: u64) -> String {
    format!(
        r#"name = "no-dups"
description = "One consumer, no fault that redelivers unless allowed, yet some seed must deliver a duplicate."
expect = "holds"
sometimes = ["duplicate-delivered"]
sometimes_min_seeds = {min_seeds}

[variants]
producer = "cdc"
consumer = "dedupe-event-id"

[workload]
shoppers = 2
products = 2
initial_stock = 10
orders = 30
inventory_consumers = 1

[faults]
allowed = [{faults}]
"#
    )
}

fn run(dir: &Path, text_of_file: &str, seeds: &str) -> (Option<i32>, String, serde_json::Value) {
    let file = dir.join("no-dups.toml");
    std::fs::write(&file, text_of_file).unwrap();
    let reports = dir.join("reports");
    let out = pitfall(&[
        "run",
        file.to_str().unwrap(),
        "--seeds",
        seeds,
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout) + &text(&out.stderr);
    let report = std::fs::read_to_string(reports.join("report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (out.status.code(), stdout, report)
}

#[test]
fn a_declared_event_that_never_happens_fails_the_sweep_with_a_clear_message() {
    let dir = scratch("never");
    let (code, stdout, report) = run(&dir, &scenario("", 3), "3");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "sometimes `duplicate-delivered` never happened in 3 seed(s): the fault or code path it marks was never exercised"
        ),
        "{stdout}"
    );
    let s = &report["scenarios"][0];
    assert_eq!(s["met"], false);
    assert_eq!(s["coverage"]["duplicate-delivered"], 0);
    let md = std::fs::read_to_string(dir.join("reports/report.md")).unwrap();
    assert!(
        md.contains("| no-dups | 0/1 | duplicate-delivered 0 |"),
        "{md}"
    );
}

#[test]
fn the_same_declaration_is_met_when_the_fault_is_allowed() {
    let dir = scratch("met");
    let (code, stdout, report) = run(&dir, &scenario(r#""duplicate-delivery""#, 4), "4");
    assert_eq!(code, Some(0), "{stdout}");
    let hit = report["scenarios"][0]["coverage"]["duplicate-delivered"]
        .as_u64()
        .unwrap();
    assert!((1..=4).contains(&hit), "{report}");
    let html = std::fs::read_to_string(dir.join("reports/report.html")).unwrap();
    assert!(
        html.contains("<h3>Coverage events</h3>"),
        "no coverage table"
    );
}

#[test]
fn fewer_seeds_than_the_minimum_leave_the_list_unjudged() {
    let dir = scratch("few");
    let (code, stdout, _) = run(&dir, &scenario(r#""db-slow""#, 50), "2");
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn an_unknown_event_is_bad_input_located_in_the_file() {
    let dir = scratch("unknown");
    let bad = scenario(r#""db-slow""#, 3).replace(
        r#"sometimes = ["duplicate-delivered"]"#,
        r#"sometimes = ["duplicate-delivred"]"#,
    );
    let (code, stdout, _) = run(&dir, &bad, "1");
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.contains("no-dups.toml:4:14: unknown coverage event `duplicate-delivred`, expected one of duplicate-delivered,"),
        "{stdout}"
    );
    let zero = scenario(r#""db-slow""#, 0);
    let (code, stdout, _) = run(&dir, &zero, "1");
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.contains("no-dups.toml:5:23: sometimes_min_seeds must be at least 1"),
        "{stdout}"
    );
}
