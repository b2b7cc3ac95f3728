//! `report.md`: a short Markdown summary for a pull-request comment or
//! `$GITHUB_STEP_SUMMARY`: the verdict, the suite table, each unmet
//! scenario with why and the commands that reproduce it, and the coverage
//! events each scenario's seeds hit.

use crate::{repro_for, violating_seeds, Inputs, SHOWN_PER_INVARIANT};
use pitfall_harness::report::{Report, ScenarioReport};
use std::fmt::Write as _;

/// The whole file.
pub fn render(inputs: &Inputs<'_>) -> String {
    let report = inputs.report;
    let mut out = String::new();
    header(&mut out, report);
    table(&mut out, report);
    let unmet: Vec<(usize, &ScenarioReport)> = report
        .scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.met)
        .collect();
    if !unmet.is_empty() {
        let _ = writeln!(out, "\n### Unmet expectations\n");
    }
    for (index, scenario) in unmet {
        failure(&mut out, report, index, scenario);
    }
    coverage(&mut out, report);
    out
}

/// Per scenario: the declared coverage events met, and every event with the
/// seeds that hit it.
fn coverage(out: &mut String, report: &Report) {
    let scenarios: Vec<&ScenarioReport> = report
        .scenarios
        .iter()
        .filter(|s| !s.coverage.is_empty())
        .collect();
    if scenarios.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Coverage events (seeds that hit each)\n");
    let _ = writeln!(out, "| scenario | sometimes met | events |");
    let _ = writeln!(out, "|---|---|---|");
    for s in scenarios {
        let met = s
            .sometimes
            .iter()
            .filter(|n| s.seeds_hitting(n) > 0)
            .count();
        let events: Vec<String> = s
            .coverage
            .iter()
            .map(|(name, seeds)| format!("{name} {seeds}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {met}/{} | {} |",
            cell(&s.name),
            s.sometimes.len(),
            cell(&events.join(", "))
        );
    }
    if let Some(line) = report.point_coverage_line() {
        let _ = writeln!(out, "\n{line}");
    }
}

fn header(out: &mut String, report: &Report) {
    let verdict = match (report.complete, report.met) {
        (false, _) => {
            "⚠️ **incomplete**: the run was interrupted; verdicts cover the finished seeds only"
        }
        (true, true) => "✅ every scenario met its expectation",
        (true, false) => "❌ some scenarios did not meet their expectation",
    };
    let _ = writeln!(out, "## pitfall: {verdict}\n");
    let _ = writeln!(
        out,
        "{} mode · {} of {} seed(s) run (from seed {}) · build `{}` · pitfall {} · started {}\n",
        report.mode,
        report.seeds_run,
        report.seeds_asked,
        report.start_seed,
        report.provenance.build,
        report.provenance.pitfall_version,
        report.provenance.started_at
    );
}

fn table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| scenario | pitfall | expectation | seeds | met | violating seeds per invariant (first) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for s in &report.scenarios {
        let violations = s.violations_summary();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}/{} | {} | {} |",
            cell(&s.name),
            s.pitfall.map_or("-".to_string(), |p| p.to_string()),
            cell(&s.expect.to_string()),
            s.seeds,
            s.seeds_asked,
            if s.met { "yes" } else { "**NO**" },
            if violations.is_empty() {
                "none".to_string()
            } else {
                cell(&violations.join(", "))
            }
        );
    }
}

fn failure(out: &mut String, report: &Report, index: usize, s: &ScenarioReport) {
    let _ = writeln!(out, "**{}** ({}):", s.name, s.expect);
    for why in &s.unmet {
        let _ = writeln!(out, "- {}", cell(why));
    }
    let mut commands: Vec<String> = s.failed_seeds.iter().map(|f| f.repro.clone()).collect();
    for invariant in s.invariants.keys() {
        if s.is_unexpected(invariant) {
            commands.extend(
                violating_seeds(report, index, invariant)
                    .into_iter()
                    .take(SHOWN_PER_INVARIANT)
                    .filter_map(|seed| repro_for(s, seed)),
            );
        }
    }
    if let Some(shrunk) = &s.shrunk {
        let _ = writeln!(
            out,
            "- shrunk seed {} ({}): {} → {} fault window(s), {} → {} order(s), {} → {} history lines",
            shrunk.seed,
            shrunk.invariant,
            shrunk.windows.0,
            shrunk.windows.1,
            shrunk.orders.0,
            shrunk.orders.1,
            shrunk.history_lines.0,
            shrunk.history_lines.1
        );
        commands.insert(0, shrunk.repro.clone());
    }
    commands.dedup();
    if commands.is_empty() {
        commands.extend(s.repro.clone());
    }
    if !commands.is_empty() {
        let _ = writeln!(out, "\n```sh\n{}\n```\n", commands.join("\n"));
    }
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
