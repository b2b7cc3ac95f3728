//! A short sweep of the bank's scenarios through pitfall's library API, as
//! a team would put one in its own `cargo test`: the naive variants are
//! caught, the outbox holds, and a seed replays byte for byte.

use pitfall::harness::history::to_jsonl;
use pitfall::harness::report::{scenario_report, Repro, Sometimes};
use pitfall::harness::scenario;
use pitfall::harness::sweep::{self, Limits, SweepOptions};
use pitfall::harness::system::Registry;
use pitfall::sim::runner::run_seed;
use pitfall_example_bank::Bank;
use std::path::Path;
use std::sync::Arc;

fn scenarios() -> Vec<scenario::Scenario> {
    let registry = Registry::new(vec![Arc::new(Bank)]).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    scenario::load(&[dir], &registry).unwrap()
}

#[test]
fn every_scenario_meets_its_expectation_over_a_short_sweep() {
    let scenarios = scenarios();
    assert_eq!(scenarios.len(), 3);
    let opts = SweepOptions {
        seeds: 20,
        start_seed: 0,
        jobs: 2,
        check_determinism: false,
        limits: Limits::default(),
        skip: Default::default(),
        shard: Default::default(),
        first: Default::default(),
    };
    let results = sweep::run(run_seed, &scenarios, &opts, |_| {});
    for (i, s) in scenarios.iter().enumerate() {
        let mine: Vec<_> = results.iter().filter(|r| r.scenario == i).collect();
        let report = scenario_report(s, 0, 20, &mine, &Repro::default(), Sometimes::Judged);
        assert!(report.met, "{}: {:?}", s.name, report.unmet);
        assert_eq!(report.system, "bank");
        let caught = report.invariants["booked-exactly-once"].violating_seeds;
        match s.name.as_str() {
            "bank-outbox" => assert_eq!(caught, 0),
            _ => assert!(caught > 0, "{} was never caught", s.name),
        }
    }
}

#[test]
fn a_seed_replays_byte_for_byte() {
    let scenarios = scenarios();
    let naive = scenarios
        .iter()
        .find(|s| s.name == "bank-naive-ledger")
        .unwrap();
    let first = to_jsonl(&run_seed(naive, 3, Limits::default()).history);
    let again = to_jsonl(&run_seed(naive, 3, Limits::default()).history);
    assert!(first.lines().count() > 100, "the seed did something");
    assert_eq!(first, again);
}
