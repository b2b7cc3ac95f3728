//! The `pitfall` command line as a user meets it: exit codes, located errors
//! for bad input, the report's contract keys, and reproducible output.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{history_of, pitfall, text};

/// A fresh scratch folder under the target dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TINY: &str = "tests/fixtures/tiny.toml";

#[test]
fn list_names_every_scenario_and_invariant() {
    let out = pitfall(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for name in [
        "dual-write",
        "resilient-producer",
        "cdc-naive-consumer",
        "cdc-dedupe-offset",
        "stock-conservation",
        "no-lost-payment",
        "no-double-effect",
        "no-phantom",
        "converges",
        "queue",
        "context-complete",
        "per-key-order",
        "order-naive",
        "order-revision",
        // the systems, each pitfall's variants, with the invariants that
        // catch them, and the named crashes
        "SYSTEM shop",
        "(variants.producer)",
        "\"cdc\"",
        "\"no-propagation\"",
        "\"revision\"",
        "checked by: no-double-effect, stock-conservation",
        "checked by: per-key-order",
        "payload-integrity",
        "no-dangling-reference",
        "no-partial-assembly",
        "all-remedies",
        "claim-check-naive",
        "\"chunked-seek\"",
        "checked by: payload-integrity, no-dangling-reference, no-partial-assembly",
        "event-sourced",
        "crud-cdc",
        "\"event-sourced\"",
        "checked by: read-after-write, view-convergence, snapshot-consistency",
        "crash-payments",
        "crash:<host>",
        // the coverage events a scenario's `sometimes` may name
        "COVERAGE EVENTS",
        "duplicate-delivered",
        "cdc-replayed-unconfirmed",
        "crash-point:before-object-delete",
        "fail-point:after-slot-confirm",
    ] {
        assert!(
            stdout.contains(name),
            "`pitfall list` lacks {name}:\n{stdout}"
        );
    }
}

#[test]
fn a_bad_scenario_file_is_exit_2_with_file_and_line() {
    let dir = scratch("bad-scenario");
    let bad = std::fs::read_to_string(TINY)
        .unwrap()
        .replace("\"dual-write\"", "\"dual-writ\"");
    std::fs::write(dir.join("bad.toml"), bad).unwrap();
    let out = pitfall(&["run", dir.to_str().unwrap(), "--seeds", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.toml:7:12: unknown variant `dual-writ`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_and_unknown_scenarios_are_exit_2() {
    assert_eq!(pitfall(&["run", "--seeds", "zero"]).status.code(), Some(2));
    assert_eq!(pitfall(&["run", "--seeds", "0"]).status.code(), Some(2));
    assert_eq!(pitfall(&["run", "--bogus"]).status.code(), Some(2));
    let out = pitfall(&["repro", "no-such-scenario", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no scenario named `no-such-scenario`"));
    assert_eq!(pitfall(&["run", "does/not/exist"]).status.code(), Some(2));
}

#[test]
fn run_writes_the_report_contract_and_its_exit_code_follows_met() {
    let dir = scratch("report");
    let out = pitfall(&[
        "run",
        TINY,
        "--seeds",
        "4",
        "--report-dir",
        dir.to_str().unwrap(),
    ]);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let s = &report["scenarios"][0];
    assert_eq!(s["name"], "tiny");
    assert_eq!(s["pitfall"], 1);
    assert_eq!(
        s["expect"],
        serde_json::json!({"violated": ["no-lost-payment"]})
    );
    assert_eq!(s["seeds"], 4);
    for inv in [
        "stock-conservation",
        "no-lost-payment",
        "no-double-effect",
        "no-phantom",
        "converges",
        "queue",
        "context-complete",
        "per-key-order",
        "payload-integrity",
        "no-dangling-reference",
        "no-partial-assembly",
    ] {
        let r = &s["invariants"][inv];
        assert!(r["violating_seeds"].is_u64(), "{inv}: {r}");
        assert!(
            r["first_violating_seed"].is_u64() || r["first_violating_seed"].is_null(),
            "{inv}: {r}"
        );
    }
    assert!(s["wall_seconds"].is_f64() && s["simulated_seconds"].as_f64().unwrap() > 0.0);
    let met = s["met"].as_bool().unwrap();
    assert_eq!(
        out.status.code(),
        Some(if met { 0 } else { 1 }),
        "{}",
        text(&out.stdout)
    );
    if s["invariants"]["no-lost-payment"]["violating_seeds"].as_u64() > Some(0) {
        let first = s["invariants"]["no-lost-payment"]["first_violating_seed"]
            .as_u64()
            .unwrap();
        assert_eq!(s["repro"], format!("pitfall repro {TINY} --seed {first}"));
        let plan = &s["fault_plans"][first.to_string()];
        assert!(plan["config"]["enabled"].is_array(), "{plan}");
        assert!(plan["plan"]["windows"].is_array(), "{plan}");
    }
}

/// The histories a run keeps for its report are kept from the sweep, not
/// run again at the end: they are the seeds the report shows, each byte
/// for byte what `repro` records, and the staging folder is gone.
#[test]
fn a_runs_kept_histories_are_those_repro_records() {
    let dir = scratch("kept-histories");
    let report = dir.join("report");
    let out = pitfall(&[
        "run",
        TINY,
        "--seeds",
        "12",
        "--jobs",
        "2",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    assert!(!report.join("histories.staged").exists());
    let kept: Vec<PathBuf> = std::fs::read_dir(report.join("histories/tiny"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    let violating = json["finished"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| !s["violated"].as_array().unwrap().is_empty());
    assert!(violating, "the fixture violates on some of 12 seeds");
    assert!(kept.len() >= 2, "{kept:?}");
    for path in kept {
        let name = path.file_name().unwrap().to_str().unwrap();
        let seed = name.trim_start_matches("seed-").trim_end_matches(".jsonl");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            history_of(&dir, TINY, seed),
            "seed {seed}"
        );
    }
}

#[test]
fn repro_prints_the_same_bytes_every_time_and_exits_1_on_a_violation() {
    let dir = scratch("repro");
    let runs: Vec<(Output, String)> = (0..2)
        .map(|i| {
            let history = dir.join(format!("h{i}.jsonl"));
            let out = pitfall(&[
                "repro",
                TINY,
                "--seed",
                "3",
                "--history",
                history.to_str().unwrap(),
            ]);
            (out, std::fs::read_to_string(&history).unwrap())
        })
        .collect();
    let stdout = |o: &Output| text(&o.stdout).replace("h1.jsonl", "h0.jsonl");
    assert_eq!(stdout(&runs[0].0), stdout(&runs[1].0));
    assert_eq!(runs[0].1, runs[1].1, "histories differ");
    let out = stdout(&runs[0].0);
    assert!(out.contains("fault plan:"), "{out}");
    let violated = out.contains("VIOLATED");
    assert_eq!(
        runs[0].0.status.code(),
        Some(if violated { 1 } else { 0 }),
        "{out}"
    );
    assert!(runs[0]
        .1
        .lines()
        .next()
        .unwrap()
        .contains("\"type\":\"run\""));
}

#[test]
fn check_determinism_passes_on_a_short_sweep() {
    let dir = scratch("determinism");
    let out = pitfall(&[
        "run",
        TINY,
        "--seeds",
        "3",
        "--check-determinism",
        "--report-dir",
        dir.to_str().unwrap(),
    ]);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["check_determinism"], true);
    assert_eq!(
        report["scenarios"][0]["failed_seeds"],
        serde_json::json!([]),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn trace_follows_one_request_from_the_shopper_to_the_effect() {
    let dir = scratch("trace");
    let history = dir.join("h.jsonl");
    pitfall(&[
        "repro",
        TINY,
        "--seed",
        "2",
        "--history",
        history.to_str().unwrap(),
    ]);
    // A request whose payment committed: it has a whole chain to follow.
    let history = std::fs::read_to_string(&history).unwrap();
    let request = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "ok" && e["op"] == "pay")
        .map(|e| e["request_id"].as_str().unwrap().to_string())
        .expect("some payment succeeded");
    let out = pitfall(&["trace", TINY, "--seed", "2", "--request", &request]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for step in [
        "invoke pay",
        "ok pay",
        "commit payments-db",
        "append payments/",
        "consume payments/",
        "commit inventory-db",
        "log INFO",
    ] {
        assert!(stdout.contains(step), "no `{step}` in:\n{stdout}");
    }
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    let times: Vec<f64> = lines
        .iter()
        .map(|l| l.trim().split('s').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "not in time order:\n{stdout}"
    );

    let out = pitfall(&["trace", TINY, "--seed", "2", "--request", "r-nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("r-nobody"),
        "{}",
        text(&out.stderr)
    );
}

/// The requestId of the first record a given process appended, from a
/// recorded history.
fn request_appended_by(history: &str, producer: &str) -> Option<String> {
    history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "append" && e["producer"] == producer)
        .find_map(|e| {
            e["headers"]
                .as_array()?
                .iter()
                .find(|h| h[0] == "requestId")
                .map(|h| h[1].as_str().unwrap().to_string())
        })
}

#[test]
fn trace_shows_the_cdc_hop_the_translator_and_the_recovery_path() {
    let dir = scratch("trace-hops");
    for (scenario, hop, steps) in [
        (
            "cdc",
            "cdc",
            &[
                "commit payments-db",
                "append payments-db.payments/",
                "log INFO node{name=\"cdc\"}",
                "consume payments-db.payments/",
                "commit inventory-db",
            ][..],
        ),
        (
            "crud-cdc",
            "translator",
            &[
                "invoke place",
                "commit orders-db",
                "append orders-db.orders/",
                "consume orders-db.orders/",
                "append order-events/",
                "log INFO node{name=\"translator\"}",
                "consume order-events/",
                "log INFO node{name=\"order-view\"}",
            ][..],
        ),
        (
            "resilient-producer",
            "recovery",
            &[
                "commit payments-db",
                "object put fallback/",
                "append payments/",
                "log INFO node{name=\"recovery\"}",
                "object delete fallback/",
                "commit inventory-db",
            ][..],
        ),
    ] {
        // The first seed where the hop re-produced something.
        let (seed, request) = (0..20)
            .find_map(|seed| {
                let path = dir.join(format!("{scenario}-{seed}.jsonl"));
                let seed_s = seed.to_string();
                pitfall(&[
                    "repro",
                    scenario,
                    "--seed",
                    &seed_s,
                    "--history",
                    path.to_str().unwrap(),
                ]);
                let history = std::fs::read_to_string(&path).unwrap();
                request_appended_by(&history, hop).map(|r| (seed_s, r))
            })
            .unwrap_or_else(|| panic!("no {hop} append in 20 seeds of {scenario}"));
        let out = pitfall(&["trace", scenario, "--seed", &seed, "--request", &request]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        for step in steps {
            assert!(
                stdout.contains(step),
                "{scenario} seed {seed}: no `{step}` in:\n{stdout}"
            );
        }
        assert!(stdout.contains(&format!("requestId={request}")), "{stdout}");
        // Only this request's lines: not those of the read that follows a
        // placement (its id extends this one).
        assert!(
            !stdout.contains(&format!("request_id={request}-")),
            "{stdout}"
        );
    }
}

#[test]
fn repro_marks_the_faults_a_scenario_pins_on() {
    // Exit 1: the seed shows the violation the scenario is about.
    let out = pitfall(&["repro", "5-kafka-eos", "--seed", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("faults on:").contains("crash-inventory (always)"),
        "{stdout}"
    );
    assert!(!line("faults off:").contains("crash-inventory"), "{stdout}");
}
