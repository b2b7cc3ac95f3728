//! `junit.xml` (through quick-junit, the crate nextest writes its JUnit
//! with): one test suite per scenario, one test case per invariant of its
//! expectation. An invariant the sweep judged wrongly is a failure that
//! lists its seeds and repro commands; seeds that failed to run (panic,
//! hang) and seeds that never ran are errors, not failures.

use crate::{violating_seeds, Inputs, SHOWN_PER_INVARIANT};
use pitfall_harness::report::{Report, ScenarioReport};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The whole file.
pub fn render(inputs: &Inputs<'_>) -> String {
    let report = inputs.report;
    let mut junit = quick_junit::Report::new("pitfall");
    for (index, scenario) in report.scenarios.iter().enumerate() {
        junit.add_test_suite(suite(report, index, scenario));
    }
    junit.to_string().expect("JUnit XML serializes")
}

fn suite(report: &Report, index: usize, scenario: &ScenarioReport) -> TestSuite {
    let mut suite = TestSuite::new(scenario.name.as_str());
    suite.set_time(Duration::from_secs_f64(scenario.wall_seconds.max(0.0)));
    let expected = scenario.expect.expected();
    for (invariant, r) in &scenario.invariants {
        let seeds = violating_seeds(report, index, invariant);
        let is_expected = expected.iter().any(|e| e == invariant);
        let failure = if is_expected && r.violating_seeds == 0 {
            Some(format!(
                "{invariant} was expected to be violated but held on all {} seed(s)",
                scenario.seeds
            ))
        } else if r.violating_seeds > 0 && scenario.is_unexpected(invariant) {
            Some(format!(
                "{invariant} was violated on {} of {} seed(s)",
                r.violating_seeds, scenario.seeds
            ))
        } else {
            None
        };
        let name = if is_expected {
            format!("{invariant} is violated")
        } else {
            format!("{invariant} holds")
        };
        let status = match failure {
            None => TestCaseStatus::success(),
            Some(message) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(message)
                    .set_type("unmet expectation")
                    .set_description(repro_lines(scenario, &seeds));
                s
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(format!("pitfall.{}", scenario.name));
        suite.add_test_case(case);
    }
    if let Some(case) = seeds_case(scenario) {
        suite.add_test_case(case);
    }
    suite
}

/// The case for the seeds themselves: an error when some failed to run or
/// never ran.
fn seeds_case(scenario: &ScenarioReport) -> Option<TestCase> {
    let missing = scenario.seeds_asked.saturating_sub(scenario.seeds);
    let failed = &scenario.failed_seeds;
    let status = if failed.is_empty() && missing == 0 {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        let mut lines: Vec<String> = failed
            .iter()
            .map(|f| {
                let reason = f.reason.lines().next().unwrap_or_default();
                format!("seed {}: {reason}\n  {}", f.seed, f.repro)
            })
            .collect();
        if missing > 0 {
            lines.push(format!(
                "only {} of {} seed(s) ran",
                scenario.seeds, scenario.seeds_asked
            ));
        }
        s.set_message(format!(
            "{} seed(s) failed to run, {missing} never ran",
            failed.len()
        ))
        .set_type("seed error")
        .set_description(lines.join("\n"));
        s
    };
    let mut case = TestCase::new("every seed ran", status);
    case.set_classname(format!("pitfall.{}", scenario.name));
    Some(case)
}

/// The violating seeds and the commands that reproduce the first few.
fn repro_lines(scenario: &ScenarioReport, seeds: &[u64]) -> String {
    let mut lines = vec![format!(
        "violating seeds: {}",
        if seeds.is_empty() {
            "none".to_string()
        } else {
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    )];
    lines.extend(
        seeds
            .iter()
            .take(SHOWN_PER_INVARIANT)
            .filter_map(|&seed| crate::repro_for(scenario, seed)),
    );
    if seeds.is_empty() {
        lines.extend(scenario.repro.clone());
    }
    lines.join("\n")
}
