//! The readable reports and the fan-out: `junit.xml` parses and counts the
//! right failures, `report.html` opens in headless Chromium with the
//! timeline of a violating seed and no external URL, `pitfall report`
//! renders the same files again, and shards merged equal one run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{comparable, pitfall, text};

const TINY: &str = "tests/fixtures/tiny.toml";
const TINY_CDC: &str = "tests/fixtures/tiny-cdc.toml";

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("reports")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn run(args: &[&str]) -> Output {
    let out = pitfall(args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{:?}: {}",
        args,
        text(&out.stderr)
    );
    out
}

/// tiny, but expected to hold: its dual-write violations are failures.
fn tiny_holds(dir: &Path) -> String {
    let text = std::fs::read_to_string(TINY).unwrap().replace(
        "expect = { violated = [\"no-lost-payment\"] }",
        "expect = \"holds\"",
    );
    let path = dir.join("tiny-holds.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn junit_parses_and_counts_the_failures() {
    let dir = scratch("junit");
    let holds = tiny_holds(&dir);
    let out_dir = dir.join("out");
    run(&[
        "run",
        &holds,
        TINY_CDC,
        "--seeds",
        "4",
        "--report-dir",
        out_dir.to_str().unwrap(),
    ]);
    let r = report(&out_dir);
    // The expected failures, from the report: each invariant a scenario
    // judged against its expectation.
    let unmet: usize = r["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["unmet"].as_array().map_or(0, |u| {
                u.iter()
                    .filter(|m| !m.as_str().unwrap().contains("seed(s) ran"))
                    .count()
            })
        })
        .sum();
    assert!(unmet >= 1, "tiny-holds is violated: {r}");
    let xml = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("junit.xml parses");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2, "one suite per scenario");
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, unmet, "{xml}");
    let root = doc.root_element();
    assert_eq!(root.attribute("failures"), Some(unmet.to_string().as_str()));
    assert_eq!(root.attribute("errors"), Some("0"));
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    let body = failure.text().unwrap_or_default();
    assert!(body.contains("violating seeds: "), "{body}");
    assert!(
        body.contains(&format!("pitfall repro {holds} --seed ")),
        "{body}"
    );
}

#[test]
fn report_renders_the_same_files_again_and_refuses_a_folder_without_a_report() {
    let dir = scratch("rerender");
    let d = dir.to_str().unwrap();
    run(&["run", TINY, "--seeds", "3", "--report-dir", d]);
    let names = ["report.html", "report.md", "junit.xml"];
    let before: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    for n in names {
        std::fs::remove_file(dir.join(n)).unwrap();
    }
    let out = pitfall(&["report", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for (n, b) in names.iter().zip(&before) {
        assert_eq!(&std::fs::read(dir.join(n)).unwrap(), b, "{n}");
    }
    let empty = scratch("no-report");
    let out = pitfall(&["report", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("report.json: cannot read"),
        "{}",
        text(&out.stderr)
    );
}

/// Kept histories are read one at a time while the page is drawn; one that
/// does not parse still fails the rendering, naming its file and line.
#[test]
fn report_names_a_kept_history_that_does_not_parse() {
    let dir = scratch("bad-history");
    let d = dir.to_str().unwrap();
    run(&["run", TINY, "--seeds", "2", "--report-dir", d]);
    let scenario = std::fs::read_dir(dir.join("histories"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let seed = std::fs::read_dir(&scenario)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&seed, "{\"t_ms\": 0}\nnot json\n").unwrap();
    let out = pitfall(&["report", d]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{}:", seed.display())), "{stderr}");
}

#[test]
fn two_shards_merged_equal_one_run() {
    let dir = scratch("shards");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    for i in 0..2 {
        let shard = format!("{i}/2");
        run(&[
            "run",
            TINY,
            TINY_CDC,
            "--seeds",
            "5",
            "--shard",
            &shard,
            "--report-dir",
            &p(&format!("s{i}")),
        ]);
        assert_eq!(report(&dir.join(format!("s{i}")))["shard"], shard);
    }
    let merged = pitfall(&["merge", &p("s0"), &p("s1"), "--out", &p("merged")]);
    let whole = pitfall(&[
        "run",
        TINY,
        TINY_CDC,
        "--seeds",
        "5",
        "--report-dir",
        &p("whole"),
    ]);
    assert_eq!(
        merged.status.code(),
        whole.status.code(),
        "{}",
        text(&merged.stderr)
    );
    assert_eq!(
        comparable(report(&dir.join("merged"))),
        comparable(report(&dir.join("whole")))
    );
    let md = |d: &str| {
        let t = std::fs::read_to_string(dir.join(d).join("report.md")).unwrap();
        t.lines()
            .filter(|l| !l.contains("started "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(md("merged"), md("whole"));

    // Bad input: shards that are not shards, merges of unrelated reports.
    for bad in ["3/2", "a/b", "2/2", "1"] {
        let out = pitfall(&["run", TINY, "--seeds", "2", "--shard", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(text(&out.stderr).contains("shard"), "{}", text(&out.stderr));
    }
    let other_build = dir.join("other-build");
    copy_dir(&dir.join("s1"), &other_build);
    let json = std::fs::read_to_string(other_build.join("report.json")).unwrap();
    let build = report(&dir.join("s1"))["build"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(
        other_build.join("report.json"),
        json.replace(&build, "0123456789ab release"),
    )
    .unwrap();
    let out = pitfall(&[
        "merge",
        &p("s0"),
        other_build.to_str().unwrap(),
        "--out",
        &p("m2"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("was written by build `0123456789ab release`"),
        "{}",
        text(&out.stderr)
    );
    run(&[
        "run",
        TINY,
        "--seeds",
        "5",
        "--shard",
        "1/2",
        "--report-dir",
        &p("other-set"),
    ]);
    let out = pitfall(&["merge", &p("s0"), &p("other-set"), "--out", &p("m3")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("another scenario set"),
        "{}",
        text(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn chromium() -> String {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium: scripts/test.sh installs Debian's `chromium` package")
        .to_string()
}

#[test]
fn report_html_opens_in_headless_chromium_with_a_violating_seeds_timeline() {
    let dir = scratch("chromium");
    run(&[
        "run",
        TINY,
        "--seeds",
        "4",
        "--report-dir",
        dir.to_str().unwrap(),
    ]);
    let r = report(&dir);
    let seed = r["scenarios"][0]["invariants"]["no-lost-payment"]["first_violating_seed"]
        .as_u64()
        .expect("tiny (a dual write) is caught within 4 seeds");
    let html_path = dir.join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    for url in ["http://", "https://", "//cdn", "src=\"//"] {
        assert!(
            !html.contains(url),
            "the page carries an external URL ({url})"
        );
    }
    let url = format!("file://{}", html_path.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let dom = Command::new(chromium())
        .args(common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let stderr = text(&dom.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let dom = text(&dom.stdout);
    let timeline = format!("id=\"timeline-tiny-{seed}\"");
    assert!(
        dom.contains(&timeline),
        "no {timeline} in the rendered page"
    );
    assert!(!dom.contains("http://") && !dom.contains("https://"));
    let shot = dir.join("report.png");
    let out = Command::new(chromium())
        .args(common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2200")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of {} bytes",
        png.len()
    );
}

#[test]
fn failing_seeds_are_kept_and_rerun_first() {
    let dir = scratch("failing");
    let holds = tiny_holds(&dir);
    let out_dir = dir.join("out");
    let d = out_dir.to_str().unwrap();
    run(&["run", &holds, "--seeds", "4", "--report-dir", d]);
    let first = report(&out_dir);
    let failing: Vec<u64> = first["finished"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["violated"].as_array().is_some_and(|v| !v.is_empty()))
        .map(|f| f["seed"].as_u64().unwrap())
        .collect();
    assert!(
        !failing.is_empty(),
        "a dual write expected to hold fails within 4 seeds"
    );
    let corpus = std::fs::read_to_string(out_dir.join("failing-seeds.toml")).unwrap();
    for seed in &failing {
        assert!(corpus.contains(&format!("seed = {seed}\n")), "{corpus}");
    }
    assert!(corpus.contains(&format!("build = \"{}\"", first["build"].as_str().unwrap())));
    // A later run of other seeds reruns the failing ones first, and counts them.
    let out = run(&[
        "run",
        &holds,
        "--seeds",
        "2",
        "--start-seed",
        "100",
        "--rerun-failures",
        "--report-dir",
        d,
    ]);
    assert!(text(&out.stderr).contains(&format!("rerunning {} failing seed(s)", failing.len())));
    let again = report(&out_dir);
    let seeds: Vec<u64> = again["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["seed"].as_u64().unwrap())
        .collect();
    let mut expected = failing.clone();
    expected.extend([100, 101]);
    assert_eq!(seeds, expected);
    assert_eq!(again["seeds_asked"], expected.len() as u64);
    let out = pitfall(&[
        "run",
        &holds,
        "--mode",
        "real",
        "--rerun-failures",
        "--report-dir",
        d,
    ]);
    assert_eq!(out.status.code(), Some(2));
}
