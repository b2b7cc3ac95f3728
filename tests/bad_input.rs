//! The bad-input corpus: every way a careful user was found to break the
//! command line, each with the exit code and message it must get now. Bad
//! input is exit 2 with the file, line and column where there is one; never
//! a panic (101) or an abort (134), never a false green.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::{comparable, history_of, pitfall, text};

const TINY: &str = "tests/fixtures/tiny.toml";
const TINY_CDC: &str = "tests/fixtures/tiny-cdc.toml";

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bad-input")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit 2, no panic, and stderr contains `wanted`.
fn refused(out: &Output, wanted: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(wanted), "wanted {wanted:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// The tiny scenario with `from` replaced by `to`, written to `dir/name`.
fn variant_of(base: &str, dir: &Path, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(base).unwrap();
    assert!(text.contains(from), "{from:?} not in {base}");
    let path = dir.join(name);
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path.to_str().unwrap().to_string()
}

// 1. False green.

#[test]
fn the_last_seed_runs_and_a_range_past_it_is_refused() {
    let dir = scratch("last-seed");
    let d = dir.to_str().unwrap();
    let max = u64::MAX.to_string();
    let out = pitfall(&[
        "run",
        TINY_CDC,
        "--start-seed",
        &max,
        "--seeds",
        "1",
        "--report-dir",
        d,
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    let r = report(&dir);
    assert_eq!(r["seeds_run"], 1, "the one seed asked for ran");
    assert_eq!(r["scenarios"][0]["seeds"], 1);
    assert_eq!(r["finished"][0]["seed"], u64::MAX);
    refused(
        &pitfall(&[
            "run",
            TINY_CDC,
            "--start-seed",
            &max,
            "--seeds",
            "2",
            "--report-dir",
            d,
        ]),
        "runs past the last seed",
    );
}

// 2. Crashes on input.

#[test]
fn huge_seed_counts_are_refused_before_any_work() {
    for seeds in ["18446744073709551615", "100000000000"] {
        refused(
            &pitfall(&["run", TINY, "--seeds", seeds]),
            "is not in 1..=10000000",
        );
    }
}

#[test]
fn huge_workloads_are_refused_with_their_location() {
    let dir = scratch("huge-workload");
    for (key, line) in [("shoppers", "10"), ("orders", "10")] {
        let from = match key {
            "shoppers" => "shoppers = 2",
            _ => "orders = 12",
        };
        let file = variant_of(
            TINY,
            &dir,
            &format!("{key}.toml"),
            from,
            &format!("{key} = 4294967295"),
        );
        refused(
            &pitfall(&[
                "run",
                &file,
                "--seeds",
                "1",
                "--report-dir",
                dir.to_str().unwrap(),
            ]),
            &format!("{key}.toml:{line}:1: workload.{key} must be 1 to "),
        );
    }
}

// 3. The repro command of a scenario outside ./scenarios.

#[test]
fn the_repro_command_names_a_scenario_outside_the_folder_by_path() {
    let dir = scratch("outside");
    // Named like a scenario in ./scenarios that holds: rerunning by name
    // would pass; the file given by path fails.
    let file = variant_of(TINY, &dir, "x.toml", "name = \"tiny\"", "name = \"cdc\"");
    let out = pitfall(&[
        "run",
        &file,
        "--seeds",
        "4",
        "--report-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let repro = report(&dir)["scenarios"][0]["repro"]
        .as_str()
        .unwrap()
        .to_string();
    let args: Vec<&str> = repro.split(' ').collect();
    assert_eq!(&args[..3], ["pitfall", "repro", file.as_str()], "{repro}");
    let again = pitfall(&args[1..]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "the repro shows the violation again"
    );
    assert!(text(&again.stdout).contains("no-lost-payment"));
}

#[test]
fn repro_takes_a_file_stem() {
    let out = pitfall(&["repro", "1-cdc", "--seed", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("scenario cdc (system shop, pitfall 1), seed 0"));
}

// 4. `check` on corrupt histories, and its expectation.

#[test]
fn check_refuses_corrupt_histories_as_bad_input() {
    let dir = scratch("corrupt");
    let good = history_of(&dir, TINY, "3");
    let lines: Vec<&str> = good.lines().collect();
    let joined = |ls: &[&str]| ls.join("\n") + "\n";
    let reversed: Vec<&str> = lines.iter().rev().copied().collect();
    let mut shuffled = lines.clone();
    let n = shuffled.len();
    shuffled[1..n].rotate_left(n / 2);
    let each_twice: Vec<&str> = lines.iter().flat_map(|l| [*l, *l]).collect();
    let cases = [
        (
            "reversed",
            joined(&reversed),
            "a history starts with its run header",
        ),
        ("shuffled", joined(&shuffled), "time goes backwards"),
        ("whole-twice", good.repeat(2), "time goes backwards"),
        ("line-twice", joined(&each_twice), "a second run header"),
    ];
    for (name, body, wanted) in cases {
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, body).unwrap();
        refused(&pitfall(&["check", path.to_str().unwrap()]), wanted);
    }
    // The same history, intact, is judged: exit 1 for its violation.
    let path = dir.join("good.jsonl");
    std::fs::write(&path, &good).unwrap();
    assert_eq!(
        pitfall(&["check", path.to_str().unwrap()]).status.code(),
        Some(1)
    );
}

#[test]
fn check_with_a_scenario_exits_by_its_expectation() {
    let dir = scratch("expectation");
    let path = dir.join("h.jsonl");
    std::fs::write(&path, history_of(&dir, TINY, "3")).unwrap();
    let h = path.to_str().unwrap();
    // tiny expects no-lost-payment violated, and seed 3 shows it: met.
    let out = pitfall(&["check", h, "--scenario", TINY]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("met by this history"));
    // The same history against a scenario that expects everything to hold.
    let holds = variant_of(
        TINY,
        &dir,
        "holds.toml",
        "{ violated = [\"no-lost-payment\"] }",
        "\"holds\"",
    );
    let out = pitfall(&["check", h, "--scenario", &holds]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("NOT met by this history: no-lost-payment violated"));
}

// 5. Interrupted runs, stale reports, two runs on one folder.

fn spawn_run(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pitfall"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigint_keeps_the_finished_seeds_and_resume_equals_an_uninterrupted_run() {
    let dir = scratch("interrupted");
    let d = dir.to_str().unwrap();
    let args = [
        "run",
        TINY,
        "--seeds",
        "60",
        "--jobs",
        "1",
        "--report-dir",
        d,
    ];
    let child = spawn_run(&args);
    // The report is written when the first seed finishes: interrupt then.
    let mut waited = Duration::ZERO;
    loop {
        let started = std::fs::read_to_string(dir.join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|r| r["seeds_run"].as_u64() > Some(0));
        if started {
            break;
        }
        assert!(waited < Duration::from_secs(120), "no seed finished");
        std::thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
    let partial = report(&dir);
    assert_eq!(partial["complete"], false);
    assert_eq!(partial["met"], false, "an incomplete sweep never passes");
    let ran = partial["seeds_run"].as_u64().unwrap();
    assert!((1..60).contains(&ran), "{ran}");
    assert_eq!(partial["finished"].as_array().unwrap().len() as u64, ran);
    assert!(partial["scenarios"][0]["unmet"][0]
        .as_str()
        .unwrap()
        .starts_with(&format!("only {ran} of 60 seed(s) ran")));
    for key in ["started_at", "command_line", "build", "pitfall_version"] {
        assert!(!partial[key].is_null(), "{key}");
    }

    let mut resumed_args = args.to_vec();
    resumed_args.push("--resume");
    let resumed = pitfall(&resumed_args);
    let whole_dir = scratch("uninterrupted");
    let mut whole_args = args.to_vec();
    whole_args[7] = whole_dir.to_str().unwrap();
    let whole = pitfall(&whole_args);
    assert_eq!(resumed.status.code(), whole.status.code());
    let (a, b) = (report(&dir), report(&whole_dir));
    assert_eq!(a["complete"], true);
    assert_eq!(comparable(a), comparable(b));
}

#[test]
fn resume_refuses_a_report_of_other_seeds() {
    let dir = scratch("resume-other");
    let d = dir.to_str().unwrap();
    assert!(matches!(
        pitfall(&["run", TINY_CDC, "--seeds", "1", "--report-dir", d])
            .status
            .code(),
        Some(0 | 1)
    ));
    refused(
        &pitfall(&[
            "run",
            TINY_CDC,
            "--seeds",
            "2",
            "--report-dir",
            d,
            "--resume",
        ]),
        "cannot resume: it ran --seeds 1 --start-seed 0, not --seeds 2 --start-seed 0",
    );
    let empty = scratch("resume-nothing");
    refused(
        &pitfall(&[
            "run",
            TINY_CDC,
            "--seeds",
            "1",
            "--resume",
            "--report-dir",
            empty.to_str().unwrap(),
        ]),
        "nothing to resume",
    );
}

#[test]
fn a_second_run_on_the_same_report_folder_is_refused() {
    let dir = scratch("two-runs");
    let d = dir.to_str().unwrap();
    let mut first = spawn_run(&[
        "run",
        TINY,
        "--seeds",
        "60",
        "--jobs",
        "1",
        "--report-dir",
        d,
    ]);
    let mut waited = Duration::ZERO;
    while !dir.join("report.json").exists() {
        assert!(
            waited < Duration::from_secs(60),
            "the first run never wrote"
        );
        std::thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    }
    let second = pitfall(&["run", TINY, "--seeds", "1", "--report-dir", d]);
    first.kill().unwrap();
    let _ = first.wait();
    refused(&second, "another pitfall run (pid ");
}

// 6. Late errors, now found before any seed runs.

#[test]
fn an_unwritable_report_folder_or_history_is_refused_up_front() {
    let dir = scratch("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    for report_dir in [file.to_str().unwrap(), "/proc/pitfall-reports"] {
        let out = pitfall(&["run", TINY, "--seeds", "200", "--report-dir", report_dir]);
        refused(&out, "cannot create");
        assert!(
            text(&out.stdout).is_empty(),
            "no seed ran: {}",
            text(&out.stdout)
        );
    }
    let out = pitfall(&[
        "repro",
        TINY,
        "--seed",
        "3",
        "--history",
        dir.to_str().unwrap(),
    ]);
    refused(&out, "cannot write");
    assert!(
        text(&out.stdout).is_empty(),
        "nothing ran: {}",
        text(&out.stdout)
    );
}

// 7. Smaller gaps.

#[test]
fn non_utf8_input_is_located() {
    let dir = scratch("non-utf8");
    let mut bytes = std::fs::read(TINY).unwrap();
    let at = bytes.windows(9).position(|w| w == b"[workload").unwrap();
    bytes.splice(at..at, [b'#', 0xff, b'\n']);
    std::fs::write(dir.join("s.toml"), bytes).unwrap();
    refused(
        &pitfall(&["run", dir.join("s.toml").to_str().unwrap(), "--seeds", "1"]),
        "s.toml:10:2: not UTF-8: invalid byte 0xff",
    );
    std::fs::write(dir.join("h.jsonl"), b"{\"t\":0}\n\xfe\n").unwrap();
    refused(
        &pitfall(&["check", dir.join("h.jsonl").to_str().unwrap()]),
        "h.jsonl:2:1: not UTF-8: invalid byte 0xfe",
    );
}

#[test]
fn toml_columns_count_characters() {
    let dir = scratch("columns");
    // The stray word after the two-byte `ü` is at character 19 (byte 20).
    let file = variant_of(
        TINY,
        &dir,
        "s.toml",
        "description = \"A short dual-write run for the CLI tests.\"",
        "description = \"ü\" oops",
    );
    refused(&pitfall(&["run", &file, "--seeds", "1"]), "s.toml:2:19: ");
}

#[test]
fn producer_settings_and_contradictory_expectations_are_checked() {
    let dir = scratch("producer");
    let zero = variant_of(
        TINY,
        &dir,
        "zero.toml",
        "[faults]",
        "[producer]\nrequest_timeout_ms = 0\ndelivery_timeout_ms = 0\n\n[faults]",
    );
    refused(
        &pitfall(&["run", &zero, "--seeds", "1"]),
        "zero.toml:16:1: producer.request_timeout_ms must be 100 to 300000",
    );
    let both = variant_of(
        TINY,
        &dir,
        "both.toml",
        "[variants]",
        "tolerate = [\"no-lost-payment\"]\n\n[variants]",
    );
    refused(
        &pitfall(&["run", &both, "--seeds", "1"]),
        "both.toml:6:13: `no-lost-payment` is both expected to be violated and tolerated",
    );
}

#[test]
fn help_states_the_seed_and_the_exit_codes() {
    for cmd in ["repro", "trace"] {
        let help = text(&pitfall(&[cmd, "--help"]).stdout);
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with("--seed <SEED>"));
        assert!(
            line.is_some_and(|l| l.contains("The seed to rerun")),
            "{cmd}: {help}"
        );
    }
    let help = text(&pitfall(&["run", "--help"]).stdout);
    for code in ["0 ", "1 ", "2 ", "130"] {
        assert!(help.contains(&format!("\n  {code}")), "{help}");
    }
}

#[test]
fn outside_the_project_folder_the_error_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_pitfall"))
        .args(["run", "--seeds", "1"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    refused(&out, "scenarios: no such file or folder (relative to ");
    assert!(text(&out.stderr).contains("run from the folder that holds `scenarios/`"));
}
