//! Real mode through the command line: it needs the local services
//! (`scripts/services.sh start`, which `scripts/test.sh` runs first).
//! Checks the report's real-mode fields, that `pitfall check` reproduces the
//! run's verdicts from the recorded histories, that nothing is left behind,
//! and that an unreachable service is exit 2 naming it.

use pitfall_real::kafka::KafkaAdmin;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

mod common;
use common::{pitfall, text};

/// The real runs share one Postgres, one broker and the fault proxy's
/// port, and each checks that nothing of its run is left behind: they run
/// one at a time, or one run's slots and tables are the other's leftovers.
static SERVICES: Mutex<()> = Mutex::new(());

/// Holds the services for one test; a test that failed before does not
/// poison the others.
fn services() -> std::sync::MutexGuard<'static, ()> {
    SERVICES.lock().unwrap_or_else(|e| e.into_inner())
}

fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atqc",
            sql,
        ])
        .output()
        .expect("psql runs");
    text(&out.stdout)
}

/// The replication slots, tables and databases of pitfall runs in
/// Postgres, each named with its kind.
/// Of `found`, what a run of process `pid` made: run names are
/// `pitfall_s<seed>_<pid in hex><nanos in hex>_…`, so a real run going on
/// beside the test (another checkout's, say) is not counted as its own.
fn made_by(found: BTreeSet<String>, pid: u32) -> Vec<String> {
    let tag = format!("{pid:x}");
    found
        .into_iter()
        .filter(|kind_name| {
            let name = kind_name.split_once(' ').map_or("", |(_, n)| n);
            name.split('_').nth(2).is_some_and(|t| t.starts_with(&tag))
        })
        .collect()
}

#[test]
fn leftovers_are_told_apart_by_the_process_that_made_them() {
    let found: BTreeSet<String> = [
        "slot pitfall_s0_1a2b337ed449_d0_history",
        "database pitfall_s4_ff01337ea5fc_d1",
        "table pitfall_s1_1a2b0000_d0_payments",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        made_by(found, 0x1a2b),
        [
            "slot pitfall_s0_1a2b337ed449_d0_history",
            "table pitfall_s1_1a2b0000_d0_payments"
        ]
    );
}

fn pg_run_resources() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (kind, sql) in [
        (
            "slot",
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pitfall_s%'",
        ),
        (
            "table",
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'pitfall_s%'",
        ),
        (
            "database",
            "SELECT datname FROM pg_database WHERE datname LIKE 'pitfall_s%'",
        ),
    ] {
        found.extend(psql(sql).lines().map(|name| format!("{kind} {name}")));
    }
    found
}

/// The broker's run topics (`pitfall_s…`). Asks the inter-broker
/// listener, which advertises itself: the client listener advertises the
/// fault proxy, which is down outside a run, and a metadata request the
/// client routes there times out.
fn run_topics() -> BTreeSet<String> {
    let kafka = std::env::var("PITFALL_KAFKA_INTERNAL").unwrap_or_else(|_| "127.0.0.1:9094".into());
    let admin = KafkaAdmin::new(&kafka).unwrap();
    let topics = admin.topics(Duration::from_secs(30)).unwrap();
    topics
        .into_iter()
        .filter(|t| t.starts_with("pitfall_s"))
        .collect()
}

#[test]
fn a_real_run_reports_checks_and_cleans_up() {
    let _services = services();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-run");
    let _ = std::fs::remove_dir_all(&dir);
    // What an earlier, interrupted run may have left is not this run's.
    let topics_before = run_topics();
    let pg_before = pg_run_resources();
    let child = Command::new(env!("CARGO_BIN_EXE_pitfall"))
        .args([
            "run",
            "--mode",
            "real",
            "tests/fixtures/tiny-cdc.toml",
            "--seeds",
            "2",
            "--report-dir",
            dir.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pitfall runs");
    let run_pid = child.id();
    let out = child.wait_with_output().expect("pitfall runs");
    let stderr = text(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{stderr}\n{}",
        text(&out.stdout)
    );
    assert!(stderr.contains("not the timing"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["mode"], "real");
    let s = &report["scenarios"][0];
    assert_eq!(s["failed_seeds"], serde_json::json!([]), "{s}");
    let real = &s["real"];
    // Every client's pinned settings, by kind.
    for producer in real["client_config"]["producer"].as_array().unwrap() {
        assert_eq!(producer["acks"], "all", "{producer}");
        assert!(producer["enable.idempotence"].is_string(), "{producer}");
    }
    for consumer in real["client_config"]["consumer"].as_array().unwrap() {
        assert_eq!(consumer["enable.auto.commit"], "false", "{consumer}");
        // Kafka's group minimum, whatever the service asked for.
        let session: u64 = consumer["session.timeout.ms"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(session >= 6_000, "{consumer}");
    }
    for kind in real["faults"].as_object().unwrap().keys() {
        let how = real["faults"][kind].as_str().unwrap();
        assert!(
            how.starts_with("applied")
                || how.starts_with("emulated")
                || how.starts_with("injected")
                || how.starts_with("skipped")
                || how.starts_with("host→DB links"),
            "{kind}: {how}"
        );
    }
    if let Some(how) = real["faults"]["duplicate-delivery"].as_str() {
        assert!(how.starts_with("skipped: "), "{how}");
    }

    // `pitfall check` on each recorded history gives the report's verdicts.
    let mut violating: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 0..2 {
        let history = dir
            .join("histories/tiny-cdc")
            .join(format!("seed-{seed}.jsonl"));
        let out = pitfall(&["check", history.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{stdout}{}",
            text(&out.stderr)
        );
        for line in stdout.lines().filter(|l| l.contains(" VIOLATED ")) {
            *violating
                .entry(line.split_whitespace().next().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for (name, inv) in s["invariants"].as_object().unwrap() {
        assert_eq!(
            inv["violating_seeds"].as_u64().unwrap(),
            violating.get(name).copied().unwrap_or(0),
            "{name}"
        );
    }

    // The readable reports were written, and `pitfall report` renders the
    // same files again from the folder alone.
    for name in ["report.html", "report.md", "junit.xml"] {
        let before = std::fs::read(dir.join(name)).unwrap();
        std::fs::remove_file(dir.join(name)).unwrap();
        let out = pitfall(&["report", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), before, "{name}");
    }

    // Nothing of this run left behind.
    let new: BTreeSet<String> = pg_run_resources().difference(&pg_before).cloned().collect();
    let left = made_by(new, run_pid);
    assert!(left.is_empty(), "left behind in Postgres: {left:?}");
    let left: Vec<String> = run_topics().difference(&topics_before).cloned().collect();
    assert!(left.is_empty(), "topics left behind: {left:?}");
}

#[test]
fn an_unreachable_service_is_exit_2_naming_it() {
    for (url, says) in [
        (
            "postgres://postgres@127.0.0.1:1/postgres",
            "Postgres is not usable at postgres://postgres@127.0.0.1:1/postgres",
        ),
        (
            "mysql://root@127.0.0.1:1/mysql",
            "MariaDB/MySQL is not usable at mysql://root@127.0.0.1:1/mysql",
        ),
        ("sqlite:///tmp/x.db", "is not a database URL pitfall knows"),
    ] {
        let out = pitfall(&[
            "run",
            "--mode",
            "real",
            "tests/fixtures/tiny-cdc.toml",
            "--seeds",
            "1",
            "--database",
            url,
        ]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("scripts/services.sh start"), "{stderr}");
    }

    let out = pitfall(&[
        "run",
        "--mode",
        "real",
        "tests/fixtures/tiny-cdc.toml",
        "--seeds",
        "1",
        "--kafka",
        "127.0.0.1:1",
        "--kafka-proxy",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Kafka-compatible broker is not usable at 127.0.0.1:1"),
        "{stderr}"
    );
}

/// A crash point in real mode: payments crashed right after its DB commit
/// (target `payments@after-db-commit`, the only window) never produces the
/// dual write's event, so `no-lost-payment` catches it, as in simulation;
/// the history records each crash at the boundary.
#[test]
fn a_real_crash_point_crashes_the_host_at_its_boundary() {
    use pitfall::harness::history::{Event, FaultAction};
    use pitfall::harness::plan_file;
    use pitfall::harness::scenario;
    use pitfall::harness::sweep::SeedStatus;
    use pitfall::harness::system::Registry;
    use std::sync::Arc;

    let _services = services();
    let pg_before = pg_run_resources();
    let registry = Registry::new(vec![Arc::new(pitfall_system::Shop)]).unwrap();
    let path = Path::new("scenarios/1-dual-write.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let dual_write = scenario::parse(path, &text, &registry).unwrap();
    let plan = r#"scenario = "dual-write"
seed = 0

[config]
enabled = ["crash-point"]
disabled = []
latency_ms = [1, 3]

[[window]]
fault = "crash-point"
kind = "crash-point"
target = "payments@after-db-commit"
start_ms = 0
end_ms = 15000
probability = 0.5
"#;
    let (seed, pinned) = plan_file::parse(Path::new("plan.toml"), plan, &dual_write).unwrap();
    let scenario = dual_write.pinned(pinned).unwrap();

    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let targets = pitfall_real::runner::Targets {
        kafka: env("PITFALL_KAFKA", "127.0.0.1:9092"),
        kafka_proxy: env("PITFALL_KAFKA_PROXY", "127.0.0.1:19092"),
        database: env(
            "PITFALL_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        object_store: "file:///tmp/pitfall-objects".into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    let seed_run = runtime.block_on(async {
        let world = pitfall_real::runner::RealWorld::connect(targets)
            .await
            .expect("the local services run (scripts/services.sh start)");
        pitfall_real::runner::run_seed(&world, &scenario, seed)
            .await
            .run
    });

    assert_eq!(seed_run.status, SeedStatus::Completed);
    let crashes = seed_run
        .history
        .iter()
        .filter(|e| {
            matches!(&e.event, Event::Fault { action: FaultAction::Start, kind, target }
                if kind == "crash-point" && target == "payments (after-db-commit)")
        })
        .count();
    assert!(crashes > 0, "no crash point fired in 15 s of payments");
    let violated: BTreeSet<&str> = seed_run
        .violations
        .iter()
        .map(|v| v.invariant.as_str())
        .collect();
    assert!(
        violated.contains("no-lost-payment"),
        "{crashes} crash(es) after the commit lost no payment: {violated:?}"
    );
    // A host stopped at its crash point kept nothing of the run alive.
    let new: BTreeSet<String> = pg_run_resources().difference(&pg_before).cloned().collect();
    let left = made_by(new, std::process::id());
    assert!(left.is_empty(), "left behind in Postgres: {left:?}");
}
