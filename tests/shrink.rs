//! `pitfall shrink` and plan files: a naive scenario of each pitfall shrinks
//! to a smaller plan that replays to the same violation, byte for byte; a
//! dual write shrinks to at most 2 fault windows and 3 orders; plan files
//! are strict input.

use std::path::{Path, PathBuf};

mod common;
use common::{pitfall, text};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shrink")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (windows, orders, history lines) of a `before:` or `after:` line.
fn sizes(stdout: &str, which: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(which))
        .unwrap_or_else(|| panic!("no {which} line in {stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

/// Shrink seed 0 of `scenario`, check the plan replays to the same
/// violation twice, byte for byte, and return (before, after).
fn shrink_and_replay(scenario: &str, invariant: &str) -> ((u64, u64, u64), (u64, u64, u64)) {
    let dir = scratch(scenario);
    let plan = dir.join("plan.toml");
    let out = pitfall(&[
        "shrink",
        scenario,
        "--seed",
        "0",
        "--max-runs",
        "80",
        "--out",
        plan.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("keeping {invariant} violated")),
        "{stdout}"
    );
    assert!(stdout.contains("reproduce: pitfall repro "), "{stdout}");
    let (before, after) = (sizes(&stdout, "before:"), sizes(&stdout, "after:"));
    assert!(after.0 <= before.0 && after.1 <= before.1, "{stdout}");
    assert!(after.2 < before.2, "fewer history lines: {stdout}");
    let histories: Vec<String> = (0..2)
        .map(|i| {
            let h = dir.join(format!("replay-{i}.jsonl"));
            let out = pitfall(&[
                "repro",
                scenario,
                "--plan",
                plan.to_str().unwrap(),
                "--history",
                h.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
            assert!(text(&out.stdout).contains(&format!("{invariant:<22} VIOLATED")));
            std::fs::read_to_string(h).unwrap()
        })
        .collect();
    assert_eq!(histories[0], histories[1], "the plan replays byte for byte");
    assert_eq!(histories[0].lines().count() as u64, after.2);
    (before, after)
}

#[test]
fn a_dual_write_shrinks_to_two_windows_and_three_orders() {
    let (_, (windows, orders, _)) = shrink_and_replay("dual-write", "no-lost-payment");
    assert!(
        windows <= 2 && orders <= 3,
        "{windows} window(s), {orders} order(s)"
    );
}

#[test]
fn event_sourcing_shrinks() {
    shrink_and_replay("event-sourced", "read-after-write");
}

#[test]
fn lost_context_shrinks() {
    shrink_and_replay("cdc-no-propagation", "context-complete");
}

#[test]
fn a_naive_claim_check_shrinks() {
    shrink_and_replay("claim-check-naive", "no-dangling-reference");
}

#[test]
fn a_naive_consumer_shrinks() {
    shrink_and_replay("cdc-naive-consumer", "no-double-effect");
}

/// The text each strict-input case writes into a good plan.
fn edited_text(case: &str) -> &'static str {
    match case {
        "past-end" => "end_ms = 99999",
        "unknown-target" => "nowhere-db",
        _ => "colour = 1",
    }
}

#[test]
fn plan_files_are_strict_input() {
    let dir = scratch("strict");
    let plan = dir.join("plan.toml");
    let out = pitfall(&[
        "repro",
        "dual-write",
        "--seed",
        "0",
        "--write-plan",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let good = std::fs::read_to_string(&plan).unwrap();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        (
            "unknown-key",
            good.replacen("start_ms = ", "colour = 1\nstart_ms = ", 1),
            "unknown field `colour`",
        ),
        (
            "past-end",
            good.replacen("end_ms = 2965", "end_ms = 99999", 1),
            "past the end of the run's chaos phase",
        ),
        (
            "unknown-target",
            good.replacen("target = \"payments-db\"", "target = \"nowhere-db\"", 1),
            "unknown target `nowhere-db`",
        ),
    ];
    for (name, body, wanted) in cases {
        assert_ne!(body, good, "{name}: the edit applies");
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, &body).unwrap();
        let out = pitfall(&["repro", "dual-write", "--plan", path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(wanted), "{name}: {stderr}");
        // file:line:column, at the window that is wrong.
        let located = format!("{}:", path.display());
        assert!(stderr.contains(&located), "{name}: {stderr}");
        let after = stderr.split(&located).nth(1).unwrap();
        let line: usize = after
            .split(':')
            .next()
            .unwrap()
            .parse()
            .expect("a line number");
        let column: usize = after.split(':').nth(1).unwrap().parse().expect("a column");
        assert!(column >= 1, "{name}: {stderr}");
        if name == "unknown-key" {
            assert_eq!(line, line_of(&body, "colour = 1"), "{stderr}");
        } else {
            // Within the window that holds the edit: from its header to
            // the edited line.
            let edited = line_of(&body, edited_text(name));
            let header = body.lines().take(edited).collect::<Vec<_>>();
            let header = header.iter().rposition(|l| *l == "[[window]]").unwrap() + 1;
            assert!((header..=edited).contains(&line), "{name}: {stderr}");
        }
    }
}

#[test]
fn run_shrink_puts_the_minimal_plan_of_an_unexpected_failure_in_the_report() {
    let dir = scratch("run-shrink");
    let holds = dir.join("tiny-holds.toml");
    let scenario = std::fs::read_to_string("tests/fixtures/tiny.toml")
        .unwrap()
        .replace(
            "expect = { violated = [\"no-lost-payment\"] }",
            "expect = \"holds\"",
        );
    std::fs::write(&holds, scenario).unwrap();
    let reports = dir.join("reports");
    let out = pitfall(&[
        "run",
        holds.to_str().unwrap(),
        "--seeds",
        "4",
        "--shrink",
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    let shrunk = &report["scenarios"][0]["shrunk"];
    assert_eq!(shrunk["invariant"], "no-lost-payment", "{shrunk}");
    let windows = shrunk["windows"].as_array().unwrap();
    assert!(windows[1].as_u64() <= windows[0].as_u64(), "{shrunk}");
    let plan = shrunk["plan"].as_str().unwrap();
    let replay = pitfall(&["repro", holds.to_str().unwrap(), "--plan", plan]);
    assert_eq!(replay.status.code(), Some(1), "{}", text(&replay.stderr));
    assert!(text(&replay.stdout).contains("no-lost-payment        VIOLATED"));
    let md = std::fs::read_to_string(reports.join("report.md")).unwrap();
    assert!(md.contains("- shrunk seed "), "{md}");
}
