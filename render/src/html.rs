//! `report.html`: one self-contained page (inline CSS and SVG, no script, no
//! external URL) that shows why a seed failed: the run's header, the suite
//! table, and per scenario its verdict, a strip chart of violating seeds,
//! latency and throughput plots of its first kept seed, and per shown seed
//! the repro command, the fault plan, the violations with their evidence,
//! a timeline of the history and the consumer lag.

use crate::svg::{escape, Marks, Scale, Svg};
use crate::{shown_seeds, violating_seeds, Inputs, KeptSeed};
use pitfall_harness::history::{Entry, Event, FaultAction};
use pitfall_harness::report::{Report, ScenarioReport, SeedPlan};
use pitfall_harness::sweep::SeedSummary;
use pitfall_harness::system::Latencies;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

const WIDTH_PX: u32 = 960;
const LEFT_PX: f64 = 64.0;
const RIGHT_PX: f64 = 56.0;
const LANE_LEFT_PX: f64 = 150.0;
const LANE_H_PX: f64 = 18.0;
const EVIDENCE_LINES_PER_VIOLATION: usize = 20;
const VIOLATIONS_PER_SEED: usize = 10;
const EVIDENCE_MARKS_MAX: usize = 200;
const FAULT_BANDS_MAX: usize = 300;
const LATENCY_POINTS_MAX: usize = 3000;
const RATE_BUCKETS_MAX: u64 = 600;
const TITLE_CHARS_MAX: usize = 300;

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1000px;padding:0 16px 48px;color:#1d1d1f}
h1{margin:16px 0 4px}h2{margin:40px 0 4px;border-bottom:2px solid #ddd}h3{margin:20px 0 6px}h4{margin:12px 0 4px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f6}table.kv th{font-weight:600;white-space:nowrap}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{background:#f6f6f8;padding:6px 8px;overflow-x:auto;margin:4px 0}
pre.repro{background:#1d1d1f;color:#f5f5f7;user-select:all}pre.evidence{white-space:pre;max-height:420px}
.ok{color:#0a7a2f;font-weight:600}.bad{color:#b3261e;font-weight:600}
.banner{background:#b3261e;color:#fff;padding:8px 12px;font-weight:700;font-size:16px}
.verdict{font-size:16px}.muted{color:#666}tr.unmet td{background:#fff3f2}
section.seed{border-left:4px solid #b3261e;padding:2px 0 8px 12px;margin:18px 0}
svg{display:block;margin:6px 0;background:#fff;font:11px system-ui,sans-serif}
svg .axis{stroke:#888;stroke-width:1}svg .tick{fill:#555}svg .label{fill:#333;font-weight:600}
svg .lane{fill:#333}svg .laneline{stroke:#eee}
svg .shade{fill:#f4b400;fill-opacity:.13}svg .band{fill:#f4b400;fill-opacity:.75}svg .band.crash{fill:#7b1fa2;fill-opacity:.6}
svg .phase{stroke:#555;stroke-dasharray:4 3}svg .phaselabel{fill:#555;font-style:italic}
svg .dots{stroke:#1565c0;stroke-width:3;stroke-linecap:round;fill:none;stroke-opacity:.6}
svg .p50{stroke:#0a7a2f;stroke-width:1.5}svg .p99{stroke:#b3261e;stroke-width:1.5}
svg .produced{stroke:#1565c0;stroke-width:1.5;fill:none}svg .consumed{stroke:#e65100;stroke-width:1.5;fill:none}
svg .lg-produced{fill:#1565c0}svg .lg-consumed{fill:#e65100}
svg .strip{fill:#f4f4f6}svg .viol{stroke:#b3261e;stroke-width:2}
svg .mk{stroke-width:1.5}svg .mk-invoke{stroke:#9e9e9e}svg .mk-ok{stroke:#0a7a2f}svg .mk-fail{stroke:#b3261e}
svg .mk-info{stroke:#f57c00}svg .mk-commit{stroke:#6a1b9a}svg .mk-append{stroke:#1565c0}svg .mk-consume{stroke:#00838f}
svg .mk-offset{stroke:#2e7d32}svg .mk-rebalance{stroke:#795548}svg .mk-crash{stroke:#7b1fa2;stroke-width:3}
svg .mk-object{stroke:#607d8b}svg .mk-other{stroke:#333}
svg .ev{fill:#ff1744;stroke:#000;stroke-width:1.5}
svg .g0{stroke:#1565c0}svg .g1{stroke:#e65100}svg .g2{stroke:#2e7d32}svg .g3{stroke:#6a1b9a}svg .g4{stroke:#00838f}
svg .lag{fill:none;stroke-width:1.5}svg .lg0{fill:#1565c0}svg .lg1{fill:#e65100}svg .lg2{fill:#2e7d32}svg .lg3{fill:#6a1b9a}svg .lg4{fill:#00838f}
";

/// The whole page.
pub fn render(inputs: &Inputs<'_>) -> String {
    let report = inputs.report;
    let mut out = String::with_capacity(1 << 16);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>pitfall report: {}</title><style>{STYLE}</style></head><body>\n",
        if report.met { "met" } else { "NOT met" }
    );
    out.push_str(&header(report));
    out.push_str(&suite_table(report));
    for index in 0..report.scenarios.len() {
        out.push_str(&scenario_section(inputs, index));
    }
    out.push_str("</body></html>\n");
    out
}

// ---------------------------------------------------------------- header

fn header(report: &Report) -> String {
    let mut out = String::from("<header><h1>pitfall report</h1>\n");
    if !report.complete {
        let _ = writeln!(
            out,
            "<p class=\"banner\">INCOMPLETE: the run did not finish; the verdicts cover only \
             the {} finished seed(s), and an incomplete report never passes.</p>",
            report.finished.len()
        );
    }
    let missed = report.scenarios.iter().filter(|s| !s.met).count();
    let verdict = if report.met {
        "<span class=\"ok\">Every expectation was met.</span>".to_string()
    } else {
        format!("<span class=\"bad\">Not every expectation was met: {missed} scenario(s) missed theirs.</span>")
    };
    let _ = writeln!(out, "<p class=\"verdict\">{verdict}</p>");
    let wall_s: f64 = report.scenarios.iter().map(|s| s.wall_seconds).sum();
    let sim_s: f64 = report.scenarios.iter().map(|s| s.simulated_seconds).sum();
    let p = &report.provenance;
    let mut seeds = format!(
        "{} run of {} asked ({} per scenario from seed {})",
        report.seeds_run, report.seeds_asked, report.seeds, report.start_seed
    );
    if let Some(shard) = &report.shard {
        let _ = write!(seeds, ", shard {shard}");
    }
    let rows = [
        ("mode", escape(&report.mode)),
        ("reproducibility", escape(&report.reproducibility)),
        ("seeds", escape(&seeds)),
        ("build", format!("<code>{}</code>", escape(&p.build))),
        ("pitfall version", escape(&p.pitfall_version)),
        ("started at", escape(&p.started_at)),
        (
            "command line",
            format!("<code>{}</code>", escape(&shell_words(&p.command_line))),
        ),
        ("wall time", format!("{wall_s:.1} s (sum over scenarios)")),
        (
            "simulated time",
            format!("{sim_s:.1} s (sum over scenarios)"),
        ),
    ];
    out.push_str(&kv_table(&rows));
    out.push_str("</header>\n");
    out
}

/// A command line as a shell would take it back.
fn shell_words(words: &[String]) -> String {
    let safe = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    };
    let quoted: Vec<String> = words
        .iter()
        .map(|w| {
            if safe(w) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect();
    quoted.join(" ")
}

/// A two-column table; values are already HTML.
fn kv_table(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<table class=\"kv\">");
    for (key, value_html) in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{value_html}</td></tr>",
            escape(key)
        );
    }
    out.push_str("</table>\n");
    out
}

// ---------------------------------------------------------------- suite table

fn suite_table(report: &Report) -> String {
    let mut out = String::from(
        "<h2>Suite</h2><table class=\"suite\"><tr><th>scenario</th><th>pf</th><th>variants</th>\
         <th>expectation</th><th>seeds</th><th>met</th>\
         <th>violating seeds per invariant (first seed)</th><th>payloads</th></tr>\n",
    );
    for s in &report.scenarios {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td><a href=\"#scenario-{name}\">{name}</a></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if s.met { "met" } else { "unmet" },
            s.pitfall.map_or("-".to_string(), |p| p.to_string()),
            escape(&variants(s)),
            escape(&expectation(s)),
            s.seeds,
            s.seeds_asked,
            met_html(s.met),
            escape(&violations_line(s)),
            escape(s.figures_line.as_deref().unwrap_or("")),
            name = escape(&s.name),
        );
    }
    out.push_str("</table>\n");
    out
}

fn met_html(met: bool) -> &'static str {
    if met {
        "<span class=\"ok\">yes</span>"
    } else {
        "<span class=\"bad\">NO</span>"
    }
}

fn variants(s: &ScenarioReport) -> String {
    let pairs: Vec<String> = s.variants.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(", ")
}

/// The expectation, and what it tolerates.
fn expectation(s: &ScenarioReport) -> String {
    if s.tolerate.is_empty() {
        s.expect.to_string()
    } else {
        format!("{}; tolerates {}", s.expect, s.tolerate.join(", "))
    }
}

fn violations_line(s: &ScenarioReport) -> String {
    let parts = s.violations_summary();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

// ---------------------------------------------------------------- scenario

fn scenario_section(inputs: &Inputs<'_>, index: usize) -> String {
    let s = &inputs.report.scenarios[index];
    let name = escape(&s.name);
    let mut out = format!(
        "<section id=\"scenario-{name}\" class=\"scenario\">\n<h2>{name} {}</h2>\n<p>{}</p>\n",
        if s.met {
            "<span class=\"ok\">met</span>"
        } else {
            "<span class=\"bad\">NOT met</span>"
        },
        escape(&s.description)
    );
    out.push_str(&scenario_facts(s));
    if !s.unmet.is_empty() {
        out.push_str("<ul class=\"bad\">");
        for why in &s.unmet {
            let _ = write!(out, "<li>{}</li>", escape(why));
        }
        out.push_str("</ul>\n");
    }
    if let Some(repro) = &s.repro {
        let _ = writeln!(
            out,
            "<p>Reproduce:</p><pre class=\"repro\"><code>{}</code></pre>",
            escape(repro)
        );
    }
    out.push_str(&figures_tables(s));
    out.push_str(&invariants_table(s));
    out.push_str(&coverage_table(s));
    out.push_str("<h3>Violating seeds across the seed range</h3>\n");
    out.push_str(&seeds_chart(inputs.report, index));
    out.push_str(&first_seed_plots(inputs, index));
    out.push_str(&seed_sections(inputs, index));
    out.push_str("</section>\n");
    out
}

fn scenario_facts(s: &ScenarioReport) -> String {
    let rows = [
        ("system", escape(&s.system)),
        (
            "pitfall",
            s.pitfall.map_or("-".to_string(), |p| p.to_string()),
        ),
        ("variants", escape(&variants(s))),
        ("expectation", escape(&expectation(s))),
        (
            "seeds",
            format!(
                "{} run of {} asked, from seed {}",
                s.seeds, s.seeds_asked, s.start_seed
            ),
        ),
        ("met", met_html(s.met).to_string()),
        (
            "time",
            format!(
                "{:.1} s wall, {:.1} s simulated",
                s.wall_seconds, s.simulated_seconds
            ),
        ),
        ("file", format!("<code>{}</code>", escape(&s.file))),
    ];
    kv_table(&rows)
}

/// The system's figures (`payloads`: sizes, compression) as key/value tables.
fn figures_tables(s: &ScenarioReport) -> String {
    let mut out = String::new();
    if let Some(line) = &s.figures_line {
        let _ = writeln!(out, "<p>{}</p>", escape(line));
    }
    for (key, value) in &s.figures {
        let rows: Vec<(String, String)> = match value {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), escape(&value_text(v))))
                .collect(),
            other => vec![(key.clone(), escape(&value_text(other)))],
        };
        let _ = write!(
            out,
            "<table class=\"kv figures\"><caption>{}</caption>",
            escape(key)
        );
        for (k, v) in rows {
            let _ = write!(out, "<tr><th>{}</th><td>{v}</td></tr>", escape(&k));
        }
        out.push_str("</table>\n");
    }
    out
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn invariants_table(s: &ScenarioReport) -> String {
    let mut out = String::from(
        "<table class=\"invariants\"><tr><th>invariant</th><th>violating seeds</th>\
         <th>first</th><th>example</th></tr>",
    );
    for (name, r) in &s.invariants {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            r.violating_seeds,
            r.first_violating_seed
                .map_or("-".to_string(), |seed| seed.to_string()),
            escape(r.example.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
    out
}

/// Per coverage event, the seeds that hit it; the declared (`sometimes`)
/// ones first, marked, a miss in red.
fn coverage_table(s: &ScenarioReport) -> String {
    if s.coverage.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<h3>Coverage events</h3>\n<table class=\"coverage\"><tr><th>event</th>\
         <th>seeds that hit it (of {})</th><th>declared in <code>sometimes</code></th></tr>",
        s.seeds
    );
    let declared = |name: &String| s.sometimes.contains(name);
    let mut rows: Vec<(&String, &u64)> = s.coverage.iter().collect();
    rows.sort_by_key(|(name, _)| !declared(name));
    for (name, seeds) in rows {
        let class = if declared(name) && *seeds == 0 {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{class}><td>{}</td><td>{seeds}</td><td>{}</td></tr>",
            escape(name),
            if declared(name) { "yes" } else { "" }
        );
    }
    out.push_str("</table>\n");
    out
}

// ---------------------------------------------------------------- seeds chart

/// One strip per invariant (and one for seeds that failed to run), a mark
/// per violating seed across the seed range.
fn seeds_chart(report: &Report, index: usize) -> String {
    let s = &report.scenarios[index];
    let mut rows: Vec<(String, Vec<u64>)> = s
        .invariants
        .keys()
        .map(|inv| (inv.clone(), violating_seeds(report, index, inv)))
        .collect();
    let failed: Vec<u64> = report
        .finished
        .iter()
        .filter(|f| f.scenario == index && f.failure.is_some())
        .map(|f| f.seed)
        .collect();
    if !failed.is_empty() {
        rows.push(("failed to run".into(), failed));
    }
    // The range asked, and any seed run besides it (--rerun-failures).
    let mine = || {
        report
            .finished
            .iter()
            .filter(|f| f.scenario == index)
            .map(|f| f.seed)
    };
    let first_seed = mine().min().map_or(s.start_seed, |m| m.min(s.start_seed));
    let last_seed = s
        .start_seed
        .saturating_add(report.seeds.max(1) - 1)
        .max(mine().max().unwrap_or(0));
    let left_px = 200.0;
    let x = Scale::new(
        (first_seed as f64, last_seed as f64),
        (left_px, f64::from(WIDTH_PX) - RIGHT_PX),
    );
    let row_px = 20.0;
    let height_px = 10.0 + row_px * rows.len() as f64 + 40.0;
    let mut svg = Svg::new(
        &format!("seeds-{}", s.name),
        "seeds",
        WIDTH_PX,
        height_px as u32,
        &format!("violating seeds of {} per invariant", s.name),
    );
    for (i, (label, seeds)) in rows.iter().enumerate() {
        let y = 10.0 + row_px * i as f64;
        svg.rect(
            left_px,
            y + 2.0,
            x.at(last_seed as f64) - left_px,
            row_px - 4.0,
            "strip",
            "",
        );
        svg.text(
            left_px - 6.0,
            y + 14.0,
            "end",
            "lane",
            &format!("{} ({})", clip(label, 24), seeds.len()),
        );
        let mut marks = Marks::default();
        for &seed in seeds {
            marks.tick(x.at(seed as f64), y + 3.0, row_px - 6.0);
        }
        svg.marks(&marks, "viol");
    }
    svg.x_axis(&x, 10.0 + row_px * rows.len() as f64 + 2.0, "seed", true);
    svg.finish()
}

fn clip(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        text.to_string()
    } else {
        let head: String = text.chars().take(chars_max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

// ---------------------------------------------------------------- history facts

/// A fault window as the history shows it (start to stop).
struct Band {
    kind: String,
    target: String,
    lane: String,
    start_ms: u64,
    end_ms: u64,
}

impl Band {
    fn is_crash(&self) -> bool {
        self.kind.contains("crash")
    }

    fn title(&self) -> String {
        let what = if self.is_crash() {
            " (stop = restart)"
        } else {
            ""
        };
        format!(
            "{} on {}: {} ms to {} ms{what}",
            self.kind, self.target, self.start_ms, self.end_ms
        )
    }
}

fn end_ms(history: &[Entry]) -> u64 {
    history.iter().map(|e| e.t).max().unwrap_or(0).max(1)
}

fn lane_of_target(target: &str) -> String {
    target.split(" (").next().unwrap_or(target).to_string()
}

/// Fault windows from the history's start and stop events; one still open
/// at the end lasts to the end.
fn fault_bands(history: &[Entry]) -> Vec<Band> {
    let mut open: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    let mut bands = Vec::new();
    let band = |kind: &str, target: &str, start_ms: u64, end_ms: u64| Band {
        kind: kind.to_string(),
        target: target.to_string(),
        lane: lane_of_target(target),
        start_ms,
        end_ms,
    };
    for e in history {
        if let Event::Fault {
            action,
            kind,
            target,
        } = &e.event
        {
            let starts = open.entry((kind, target)).or_default();
            match action {
                FaultAction::Start => starts.push(e.t),
                FaultAction::Stop if !starts.is_empty() => {
                    let start_ms = starts.remove(0);
                    bands.push(band(kind, target, start_ms, e.t));
                }
                FaultAction::Stop => {}
            }
        }
    }
    let end = end_ms(history);
    for ((kind, target), starts) in open {
        bands.extend(starts.into_iter().map(|s| band(kind, target, s, end)));
    }
    bands.sort_by_key(|b| (b.start_ms, b.end_ms));
    bands.truncate(FAULT_BANDS_MAX);
    bands
}

/// (append time, end-to-end latency) of every record consumed: from its
/// append to its first consumption, matched on (topic, partition, offset).
fn latencies(history: &[Entry]) -> Vec<(u64, u64)> {
    let mut appended: BTreeMap<(&str, u32, u64), u64> = BTreeMap::new();
    let mut consumed: BTreeSet<(&str, u32, u64)> = BTreeSet::new();
    let mut out = Vec::new();
    for e in history {
        match &e.event {
            Event::Append {
                topic,
                partition,
                offset,
                ..
            } => {
                appended.entry((topic, *partition, *offset)).or_insert(e.t);
            }
            Event::Consume {
                topic,
                partition,
                offset,
                ..
            } => {
                let key = (topic.as_str(), *partition, *offset);
                if let Some(&t0) = appended.get(&key) {
                    if consumed.insert(key) {
                        out.push((t0, e.t.saturating_sub(t0)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Per group: (time, lag) at every append to its topics and every offset
/// commit of it. Lag = Σ over partitions (last appended offset + 1 −
/// committed offset).
fn lag_series(history: &[Entry]) -> BTreeMap<String, Vec<(u64, i64)>> {
    let groups_of = groups_by_topic(history);
    let mut end: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    let mut committed: BTreeMap<(&str, &str, u32), u64> = BTreeMap::new();
    let mut lag: BTreeMap<&str, i64> = BTreeMap::new();
    let mut series: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for e in history {
        match &e.event {
            Event::Append {
                topic,
                partition,
                offset,
                ..
            } => {
                let old = end.entry((topic, *partition)).or_insert(0);
                let grown = offset.saturating_add(1).saturating_sub(*old);
                *old += grown;
                for group in groups_of.get(topic.as_str()).into_iter().flatten() {
                    let l = lag.entry(group).or_insert(0);
                    *l += grown as i64;
                    series.entry(group.to_string()).or_default().push((e.t, *l));
                }
            }
            Event::OffsetCommit {
                group,
                topic,
                partition,
                offset,
                ..
            } => {
                let old = committed
                    .insert((group, topic, *partition), *offset)
                    .unwrap_or(0);
                let l = lag.entry(group).or_insert(0);
                *l -= *offset as i64 - old as i64;
                series.entry(group.clone()).or_default().push((e.t, *l));
            }
            _ => {}
        }
    }
    series
}

/// Topic → the groups that consume, commit or are assigned it.
fn groups_by_topic(history: &[Entry]) -> BTreeMap<String, BTreeSet<&str>> {
    let mut map: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let topic_of = |tp: &str| tp.rsplit_once('/').map_or(tp, |(t, _)| t).to_string();
    for e in history {
        match &e.event {
            Event::Consume { group, topic, .. } | Event::OffsetCommit { group, topic, .. } => {
                map.entry(topic.clone()).or_default().insert(group);
            }
            Event::Assigned {
                group, partitions, ..
            } => {
                for p in partitions {
                    map.entry(topic_of(p)).or_default().insert(group);
                }
            }
            Event::Rebalance {
                group, assignment, ..
            } => {
                for p in assignment.values().flatten() {
                    map.entry(topic_of(p)).or_default().insert(group);
                }
            }
            _ => {}
        }
    }
    map
}

// ---------------------------------------------------------------- plots of the first kept seed

/// The scenario's first shown seed with a kept history.
fn first_kept(inputs: &Inputs<'_>, index: usize) -> Option<(u64, KeptSeed)> {
    let name = &inputs.report.scenarios[index].name;
    shown_seeds(inputs.report, index)
        .into_iter()
        .find_map(|seed| Some((seed, inputs.kept(name, seed)?)))
}

fn first_seed_plots(inputs: &Inputs<'_>, index: usize) -> String {
    let s = &inputs.report.scenarios[index];
    let Some((seed, kept)) = first_kept(inputs, index) else {
        return "<h3>Latency and throughput</h3><p class=\"muted\">history not kept: \
                no seed of this scenario has a kept history.</p>\n"
            .into();
    };
    let bands = fault_bands(&kept.history);
    let mut out = format!(
        "<h3>Latency and throughput of seed {seed} (simulated time)</h3>\n\
         <p class=\"muted\">Seed {seed}, the first seed kept; shaded: fault windows.</p>\n"
    );
    let generic;
    let latencies = match &kept.latencies {
        Some(l) => l,
        None => {
            generic = Latencies {
                label: "append → first consume (ms)".into(),
                points_ms: latencies(&kept.history),
            };
            &generic
        }
    };
    out.push_str(&latency_chart(
        &s.name,
        seed,
        &kept.history,
        latencies,
        &bands,
    ));
    out.push_str(&rate_chart(&s.name, seed, &kept.history, &bands));
    out
}

/// The time axis of a history's charts, in seconds.
fn time_scale(history: &[Entry], left_px: f64) -> Scale {
    Scale::new(
        (0.0, end_ms(history) as f64 / 1000.0),
        (left_px, f64::from(WIDTH_PX) - RIGHT_PX),
    )
}

fn x_ms(x: &Scale, t_ms: u64) -> f64 {
    x.at(t_ms as f64 / 1000.0)
}

/// Fault windows shaded over a plot's full height.
fn shade_bands(svg: &mut Svg, x: &Scale, bands: &[Band], top_px: f64, bottom_px: f64) {
    for b in bands {
        let x0 = x_ms(x, b.start_ms);
        let w = x_ms(x, b.end_ms) - x0;
        svg.rect(x0, top_px, w, bottom_px - top_px, "shade", &b.title());
    }
}

fn latency_chart(
    name: &str,
    seed: u64,
    history: &[Entry],
    latencies: &Latencies,
    bands: &[Band],
) -> String {
    let (top_px, bottom_px) = (28.0, 236.0);
    let points = &latencies.points_ms;
    let mut sorted: Vec<u64> = points.iter().map(|p| p.1).collect();
    sorted.sort_unstable();
    let max_ms = sorted.last().copied().unwrap_or(1).max(1) as f64;
    let x = time_scale(history, LEFT_PX);
    let y = Scale::new((0.0, max_ms), (bottom_px, top_px));
    let mut svg = Svg::new(
        &format!("latency-{name}"),
        "latency",
        WIDTH_PX,
        280,
        &format!("end-to-end latency of seed {seed}"),
    );
    shade_bands(&mut svg, &x, bands, top_px, bottom_px);
    let p99 = crate::svg::percentile(&sorted, 99.0).unwrap_or(0);
    let stride = points.len().div_ceil(LATENCY_POINTS_MAX).max(1);
    let mut dots = Marks::default();
    let mut outliers = 0;
    for (i, &(t_ms, lat_ms)) in points.iter().enumerate() {
        let outlier = lat_ms >= p99 && outliers < LATENCY_POINTS_MAX / 3;
        outliers += usize::from(outlier);
        if i % stride == 0 || outlier {
            dots.dot(x_ms(&x, t_ms), y.at(lat_ms as f64));
        }
    }
    svg.marks(&dots, "dots");
    for (p, class) in [(50.0, "p50"), (99.0, "p99")] {
        if let Some(v) = crate::svg::percentile(&sorted, p) {
            let yv = y.at(v as f64);
            svg.line((LEFT_PX, yv), (f64::from(WIDTH_PX) - RIGHT_PX, yv), class);
            let label = format!("{class} {v} ms");
            svg.text(
                f64::from(WIDTH_PX) - RIGHT_PX - 4.0,
                yv - 4.0,
                "end",
                "tick",
                &label,
            );
        }
    }
    let empty = points.is_empty().then_some((120.0, "nothing completed"));
    close_chart(
        &mut svg,
        empty,
        (&x, &y, bottom_px),
        (
            &latencies.label,
            &format!("simulated time (s), seed {seed}: start time"),
        ),
    );
    svg.finish()
}

/// A chart's closing: a note in the middle when it has nothing to plot,
/// then its axes with their labels (y, then x).
fn close_chart(
    svg: &mut Svg,
    empty: Option<(f64, &str)>,
    (x, y, bottom_px): (&Scale, &Scale, f64),
    (y_label, x_label): (&str, &str),
) {
    if let Some((y_px, note)) = empty {
        svg.text(f64::from(WIDTH_PX) / 2.0, y_px, "middle", "label", note);
    }
    svg.y_axis(y, LEFT_PX, y_label);
    svg.x_axis(x, bottom_px, x_label, false);
}

fn rate_chart(name: &str, seed: u64, history: &[Entry], bands: &[Band]) -> String {
    let (top_px, bottom_px) = (28.0, 196.0);
    let end = end_ms(history);
    let bucket_ms = 1000 * (end / 1000 / RATE_BUCKETS_MAX + 1);
    let buckets = (end / bucket_ms + 1) as usize;
    let (mut produced, mut consumed) = (vec![0u64; buckets], vec![0u64; buckets]);
    for e in history {
        let i = (e.t / bucket_ms) as usize;
        match e.event {
            Event::Append { .. } => produced[i] += 1,
            Event::Consume { .. } => consumed[i] += 1,
            _ => {}
        }
    }
    let per_s = |n: u64| n as f64 * 1000.0 / bucket_ms as f64;
    let max_rate = produced
        .iter()
        .chain(&consumed)
        .map(|&n| per_s(n))
        .fold(1.0, f64::max);
    let x = time_scale(history, LEFT_PX);
    let y = Scale::new((0.0, max_rate), (bottom_px, top_px));
    let mut svg = Svg::new(
        &format!("rate-{name}"),
        "rate",
        WIDTH_PX,
        240,
        &format!("records produced and consumed per second, seed {seed}"),
    );
    shade_bands(&mut svg, &x, bands, top_px, bottom_px);
    for (counts, class) in [(&produced, "produced"), (&consumed, "consumed")] {
        let line: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                (
                    x_ms(&x, i as u64 * bucket_ms + bucket_ms / 2),
                    y.at(per_s(n)),
                )
            })
            .collect();
        svg.polyline(&line, class);
    }
    let legend_x = f64::from(WIDTH_PX) - RIGHT_PX - 200.0;
    svg.text(
        legend_x,
        12.0,
        "start",
        "lg-produced",
        "— produced (appends)",
    );
    svg.text(legend_x + 130.0, 12.0, "start", "lg-consumed", "— consumed");
    let x_label = format!("simulated time (s), seed {seed}");
    close_chart(&mut svg, None, (&x, &y, bottom_px), ("records/s", &x_label));
    svg.finish()
}

// ---------------------------------------------------------------- seed sections

/// The violating and failed seeds the report shows, each in its section.
fn seed_sections(inputs: &Inputs<'_>, index: usize) -> String {
    let report = inputs.report;
    let shown = shown_seeds(report, index);
    let summaries: BTreeMap<u64, &SeedSummary> = report
        .finished
        .iter()
        .filter(|f| f.scenario == index && shown.contains(&f.seed))
        .map(|f| (f.seed, f))
        .collect();
    let mut out = String::new();
    for summary in summaries.values() {
        if summary.failure.is_some() || !summary.violated.is_empty() {
            out.push_str(&seed_section(inputs, &report.scenarios[index], summary));
        }
    }
    if out.is_empty() {
        "<p class=\"muted\">No seed violated an invariant or failed to run.</p>\n".into()
    } else {
        format!("<h3>Seeds shown</h3>\n{out}")
    }
}

/// The command that reruns `seed` of a scenario.
fn repro_command(s: &ScenarioReport, seed: u64) -> String {
    if let Some(f) = s.failed_seeds.iter().find(|f| f.seed == seed) {
        return f.repro.clone();
    }
    crate::repro_for(s, seed).unwrap_or_else(|| format!("pitfall repro {} --seed {seed}", s.name))
}

fn seed_section(inputs: &Inputs<'_>, s: &ScenarioReport, summary: &SeedSummary) -> String {
    let seed = summary.seed;
    let what = if let Some(reason) = &summary.failure {
        format!(
            "failed to run: {}",
            reason.lines().next().unwrap_or_default()
        )
    } else {
        let names: Vec<&str> = summary.violated.iter().map(String::as_str).collect();
        format!("violates {}", names.join(", "))
    };
    let mut out = format!(
        "<section id=\"seed-{}-{seed}\" class=\"seed\">\n<h4>seed {seed}: {}</h4>\n\
         <pre class=\"repro\"><code>{}</code></pre>\n",
        escape(&s.name),
        escape(&what),
        escape(&repro_command(s, seed))
    );
    if let Some(reason) = &summary.failure {
        let _ = writeln!(out, "<pre class=\"failure\">{}</pre>", escape(reason));
    }
    out.push_str(&fault_plan(s.fault_plans.get(&seed)));
    match inputs.kept(&s.name, seed) {
        Some(kept) => out.push_str(&kept_seed(&s.name, seed, &kept)),
        None => out.push_str(&not_kept(summary)),
    }
    out.push_str("</section>\n");
    out
}

fn not_kept(summary: &SeedSummary) -> String {
    let mut out =
        String::from("<p class=\"muted\">history not kept: run the repro command to see it.</p>\n");
    for (invariant, message) in &summary.examples {
        let _ = writeln!(
            out,
            "<p><b>{}</b>: {}</p>",
            escape(invariant),
            escape(message)
        );
    }
    out
}

fn fault_plan(plan: Option<&SeedPlan>) -> String {
    let Some(plan) = plan else {
        return "<p class=\"muted\">The report records the fault plan of the first violating \
                seed of each invariant and of failed seeds; the timeline shows this seed's \
                faults as its history recorded them.</p>\n"
            .into();
    };
    let c = &plan.config;
    let mut out = format!(
        "<details open><summary>drawn fault configuration and plan ({} window(s))</summary>\n\
         <p>enabled: <code>{}</code>; disabled: <code>{}</code>; network latency {}–{} ms</p>\n",
        plan.plan.windows.len(),
        escape(&or_none(&c.enabled)),
        escape(&or_none(&c.disabled)),
        c.latency_ms.0,
        c.latency_ms.1
    );
    out.push_str(
        "<table class=\"plan\"><tr><th>fault</th><th>kind</th><th>target</th>\
         <th>start ms</th><th>end ms</th><th>parameters</th></tr>",
    );
    for w in &plan.plan.windows {
        let mut params: Vec<String> = Vec::new();
        params.extend(w.probability.map(|p| format!("p={p:.2}")));
        if w.blackhole {
            params.push("blackhole".into());
        }
        params.extend(w.delay_ms.map(|(a, b)| format!("delay {a}–{b} ms")));
        params.extend(w.grace_ms.map(|g| format!("grace {g} ms")));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&w.fault),
            escape(w.kind.name()),
            escape(&w.target),
            w.start_ms,
            w.end_ms,
            escape(&params.join(", "))
        );
    }
    out.push_str("</table></details>\n");
    out
}

fn or_none(list: &[String]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

fn kept_seed(name: &str, seed: u64, kept: &KeptSeed) -> String {
    let mut out = String::new();
    let shown = &kept.violations[..kept.violations.len().min(VIOLATIONS_PER_SEED)];
    for v in shown {
        let _ = writeln!(
            out,
            "<div class=\"violation\"><p><b>{}</b>: {}</p>",
            escape(&v.invariant),
            escape(&v.message)
        );
        out.push_str(&evidence(&kept.history, &v.events));
        out.push_str("</div>\n");
    }
    if kept.violations.len() > shown.len() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">… and {} more violation(s).</p>",
            kept.violations.len() - shown.len()
        );
    }
    let evidence: BTreeSet<usize> = shown
        .iter()
        .flat_map(|v| v.events.iter().copied())
        .take(EVIDENCE_MARKS_MAX)
        .collect();
    let _ = writeln!(
        out,
        "<p class=\"muted\">Timeline of seed {seed} ({} history lines): fault windows as bands \
         per target, events as ticks per kind, evidence as red dots, phases as dashed lines.</p>",
        kept.history.len()
    );
    out.push_str(&timeline(name, seed, &kept.history, &evidence));
    out.push_str(&lag_chart(name, seed, &kept.history));
    out
}

/// The history lines at `events`, as JSON Lines (at most a screenful).
fn evidence(history: &[Entry], events: &[usize]) -> String {
    let mut out = format!(
        "<details open><summary>evidence: {} line(s)</summary><pre class=\"evidence\">",
        events.len()
    );
    for &i in events.iter().take(EVIDENCE_LINES_PER_VIOLATION) {
        let line = history
            .get(i)
            .and_then(|e| serde_json::to_string(e).ok())
            .unwrap_or_else(|| "(not in the kept history)".into());
        let _ = writeln!(out, "line {:>6}  {}", i + 1, escape(&line));
    }
    if events.len() > EVIDENCE_LINES_PER_VIOLATION {
        let _ = writeln!(
            out,
            "… and {} more",
            events.len() - EVIDENCE_LINES_PER_VIOLATION
        );
    }
    out.push_str("</pre></details>\n");
    out
}

// ---------------------------------------------------------------- timeline

/// Lanes of marks by event kind: (label, CSS class).
const KIND_LANES: [(&str, &str); 11] = [
    ("client invoke", "mk-invoke"),
    ("client ok", "mk-ok"),
    ("client fail", "mk-fail"),
    ("client info", "mk-info"),
    ("db commit", "mk-commit"),
    ("append", "mk-append"),
    ("consume", "mk-consume"),
    ("offset commit", "mk-offset"),
    ("rebalance", "mk-rebalance"),
    ("crash / restart", "mk-crash"),
    ("object store", "mk-object"),
];

/// The kind lane (index into [`KIND_LANES`]) an event is marked in.
fn kind_lane(event: &Event) -> Option<usize> {
    Some(match event {
        Event::Invoke { .. } => 0,
        Event::Ok { .. } => 1,
        Event::Fail { .. } => 2,
        Event::Info { .. } => 3,
        Event::DbCommit { .. } => 4,
        Event::Append { .. } => 5,
        Event::Consume { .. } => 6,
        Event::OffsetCommit { .. } => 7,
        Event::Assigned { .. } | Event::Rebalance { .. } | Event::Rewind { .. } => 8,
        Event::Fault { kind, .. } if kind.contains("crash") => 9,
        Event::ObjectPut { .. } | Event::ObjectDelete { .. } | Event::ObjectGet { .. } => 10,
        _ => return None,
    })
}

/// The timeline's rows: fault targets first, then the kinds present.
struct Lanes {
    targets: Vec<String>,
    kinds: Vec<usize>,
}

impl Lanes {
    fn new(history: &[Entry], bands: &[Band]) -> Lanes {
        let targets: BTreeSet<String> = bands.iter().map(|b| b.lane.clone()).collect();
        let kinds: BTreeSet<usize> = history.iter().filter_map(|e| kind_lane(&e.event)).collect();
        Lanes {
            targets: targets.into_iter().collect(),
            kinds: kinds.into_iter().collect(),
        }
    }

    fn count(&self) -> usize {
        self.targets.len() + self.kinds.len()
    }

    fn y_px(&self, row: usize) -> f64 {
        20.0 + LANE_H_PX * row as f64
    }

    fn target_row(&self, lane: &str) -> Option<usize> {
        self.targets.iter().position(|t| t == lane)
    }

    fn kind_row(&self, kind: usize) -> Option<usize> {
        self.kinds
            .iter()
            .position(|&k| k == kind)
            .map(|i| self.targets.len() + i)
    }

    /// Where an event is marked: its kind's lane, else its fault target's.
    fn row_of(&self, event: &Event) -> Option<usize> {
        match (kind_lane(event), event) {
            (Some(k), _) => self.kind_row(k),
            (None, Event::Fault { target, .. }) => self.target_row(&lane_of_target(target)),
            _ => None,
        }
    }
}

fn timeline(name: &str, seed: u64, history: &[Entry], evidence: &BTreeSet<usize>) -> String {
    let bands = fault_bands(history);
    let lanes = Lanes::new(history, &bands);
    let bottom_px = lanes.y_px(lanes.count()) + 4.0;
    let x = time_scale(history, LANE_LEFT_PX);
    let mut svg = Svg::new(
        &format!("timeline-{name}-{seed}"),
        "timeline",
        WIDTH_PX,
        (bottom_px + 40.0) as u32,
        &format!("timeline of seed {seed} of {name}"),
    );
    timeline_lanes(&mut svg, &lanes);
    shade_bands(&mut svg, &x, &bands, 16.0, bottom_px);
    for b in &bands {
        let Some(row) = lanes.target_row(&b.lane) else {
            continue;
        };
        let x0 = x_ms(&x, b.start_ms);
        let class = if b.is_crash() { "band crash" } else { "band" };
        svg.rect(
            x0,
            lanes.y_px(row) + 2.0,
            x_ms(&x, b.end_ms) - x0,
            LANE_H_PX - 4.0,
            class,
            &b.title(),
        );
    }
    timeline_marks(&mut svg, &x, &lanes, history);
    phase_lines(&mut svg, &x, history, bottom_px);
    evidence_dots(&mut svg, &x, &lanes, history, evidence);
    svg.x_axis(&x, bottom_px, "simulated time (s)", false);
    svg.finish()
}

fn timeline_lanes(svg: &mut Svg, lanes: &Lanes) {
    let labels = lanes
        .targets
        .iter()
        .map(|t| format!("fault: {}", clip(t, 16)))
        .chain(lanes.kinds.iter().map(|&k| KIND_LANES[k].0.to_string()));
    for (row, label) in labels.enumerate() {
        let y = lanes.y_px(row);
        svg.line(
            (LANE_LEFT_PX, y + LANE_H_PX),
            (f64::from(WIDTH_PX) - RIGHT_PX, y + LANE_H_PX),
            "laneline",
        );
        svg.text(LANE_LEFT_PX - 6.0, y + 13.0, "end", "lane", &label);
    }
}

/// One tick per event and pixel, a path per lane.
fn timeline_marks(svg: &mut Svg, x: &Scale, lanes: &Lanes, history: &[Entry]) {
    let mut marks: BTreeMap<usize, Marks> = BTreeMap::new();
    for e in history {
        if let Some(k) = kind_lane(&e.event) {
            let Some(row) = lanes.kind_row(k) else {
                continue;
            };
            let y = lanes.y_px(row) + 3.0;
            marks
                .entry(k)
                .or_default()
                .tick(x_ms(x, e.t), y, LANE_H_PX - 6.0);
        }
    }
    for (k, m) in &marks {
        svg.marks(m, &format!("mk {}", KIND_LANES[*k].1));
    }
}

fn phase_lines(svg: &mut Svg, x: &Scale, history: &[Entry], bottom_px: f64) {
    for e in history {
        if let Event::Phase { phase } = &e.event {
            let xp = x_ms(x, e.t);
            svg.line((xp, 12.0), (xp, bottom_px), "phase");
            svg.text(xp + 3.0, 11.0, "start", "phaselabel", phase);
        }
    }
}

fn evidence_dots(
    svg: &mut Svg,
    x: &Scale,
    lanes: &Lanes,
    history: &[Entry],
    evidence: &BTreeSet<usize>,
) {
    for &i in evidence {
        let Some(e) = history.get(i) else { continue };
        let y = lanes
            .row_of(&e.event)
            .map_or(14.0, |row| lanes.y_px(row) + LANE_H_PX / 2.0);
        let json = serde_json::to_string(e).unwrap_or_default();
        let title = format!(
            "evidence, line {} at {} ms: {}",
            i + 1,
            e.t,
            clip(&json, TITLE_CHARS_MAX)
        );
        svg.circle(x_ms(x, e.t), y, 5.0, "ev", &title);
    }
}

// ---------------------------------------------------------------- lag

fn lag_chart(name: &str, seed: u64, history: &[Entry]) -> String {
    let (top_px, bottom_px) = (28.0, 176.0);
    let series = lag_series(history);
    let (lo, hi) = series
        .values()
        .flatten()
        .fold((0i64, 1i64), |(lo, hi), &(_, l)| (lo.min(l), hi.max(l)));
    let x = time_scale(history, LEFT_PX);
    let end_x_px = x_ms(&x, end_ms(history));
    let y = Scale::new((lo as f64, hi as f64), (bottom_px, top_px));
    let mut svg = Svg::new(
        &format!("lag-{name}-{seed}"),
        "lag",
        WIDTH_PX,
        220,
        &format!("consumer lag per group, seed {seed}"),
    );
    shade_bands(&mut svg, &x, &fault_bands(history), top_px, bottom_px);
    for (i, (group, points)) in series.iter().enumerate() {
        let mut line = Vec::with_capacity(points.len() * 2 + 1);
        let mut last = 0i64;
        line.push((x_ms(&x, 0), y.at(0.0)));
        for &(t_ms, lag) in points {
            line.push((x_ms(&x, t_ms), y.at(last as f64)));
            line.push((x_ms(&x, t_ms), y.at(lag as f64)));
            last = lag;
        }
        line.push((end_x_px, y.at(last as f64)));
        svg.polyline(&line, &format!("lag g{}", i % 5));
        let label = format!("— {}", clip(group, 30));
        svg.text(
            LEFT_PX + 200.0 + 170.0 * (i % 4) as f64,
            12.0 + 12.0 * (i / 4) as f64,
            "start",
            &format!("lg{}", i % 5),
            &label,
        );
    }
    let empty = series.is_empty().then_some((90.0, "no consumer group"));
    close_chart(
        &mut svg,
        empty,
        (&x, &y, bottom_px),
        ("lag (records)", &format!("simulated time (s), seed {seed}")),
    );
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitfall_harness::checkers::Violation;
    use pitfall_harness::faults::{DrawnConfig, FaultKind, FaultPlan, FaultWindow};
    use pitfall_harness::report::{InvariantReport, Provenance};
    use pitfall_harness::scenario::Expect;
    use serde_json::json;

    const REPRO: &str = "pitfall repro dual-write --seed 3";

    fn summary(seed: u64, violated: &[&str]) -> SeedSummary {
        SeedSummary {
            scenario: 0,
            seed,
            failure: None,
            violated: violated.iter().map(|s| s.to_string()).collect(),
            examples: violated
                .iter()
                .map(|s| (s.to_string(), format!("{s} broke on seed {seed}")))
                .collect(),
            sim_ms: 30_000,
            wall_ms: 20,
            history_lines: 10,
            figures: None,
            coverage: Default::default(),
        }
    }

    fn scenario() -> ScenarioReport {
        let window = FaultWindow {
            fault: "broker-outage".into(),
            kind: FaultKind::BrokerOutage,
            target: "broker".into(),
            start_ms: 1000,
            end_ms: 2000,
            probability: None,
            blackhole: false,
            delay_ms: None,
            grace_ms: None,
        };
        let plan = SeedPlan {
            config: DrawnConfig {
                enabled: vec!["broker-outage".into()],
                disabled: vec!["crash-workers".into()],
                latency_ms: (1, 5),
            },
            plan: FaultPlan {
                windows: vec![window],
            },
        };
        let invariant = InvariantReport {
            violating_seeds: 2,
            first_violating_seed: Some(3),
            example: Some("payment p-1 committed but never published".into()),
        };
        ScenarioReport {
            name: "dual-write".into(),
            system: "payments".into(),
            pitfall: Some(1),
            description: "writes the DB then the broker <script>alert(1)</script>".into(),
            variants: BTreeMap::from([("producer".into(), "dual-write".into())]),
            expect: Expect::Violated(vec!["no-lost-payment".into()]),
            tolerate: vec![],
            file: "scenarios/dual-write.toml".into(),
            file_sha256: "00".into(),
            seeds: 5,
            seeds_asked: 5,
            start_seed: 0,
            met: true,
            unmet: vec![],
            invariants: BTreeMap::from([("no-lost-payment".into(), invariant)]),
            repro: Some(REPRO.into()),
            failed_seeds: vec![],
            fault_plans: BTreeMap::from([(3, plan)]),
            wall_seconds: 0.1,
            simulated_seconds: 150.0,
            figures: BTreeMap::from([("payloads".into(), json!({"attachments": 4, "ratio": 0.5}))]),
            figures_line: Some("payloads: 4 attachments".into()),
            shrunk: None,
            real: None,
            coverage: BTreeMap::from([
                ("duplicate-delivered".into(), 3),
                ("event-parked".into(), 0),
            ]),
            sometimes: vec!["duplicate-delivered".into()],
        }
    }

    fn report() -> Report {
        Report {
            complete: true,
            provenance: Provenance {
                pitfall_version: "0.1.0".into(),
                build: "abc123 release".into(),
                started_at: "2024-01-01T00:00:00Z".into(),
                command_line: vec!["pitfall".into(), "run".into(), "--seeds".into(), "5".into()],
            },
            mode: "sim".into(),
            reproducibility: "exact".into(),
            seeds: 5,
            start_seed: 0,
            shard: None,
            check_determinism: false,
            seeds_asked: 5,
            seeds_run: 5,
            met: true,
            scenarios: vec![scenario()],
            finished: vec![
                summary(0, &[]),
                summary(1, &[]),
                summary(2, &[]),
                summary(3, &["no-lost-payment"]),
                summary(4, &["no-lost-payment"]),
            ],
        }
    }

    fn at(t: u64, event: Event) -> Entry {
        Entry { t, event }
    }

    fn append(t: u64, offset: u64) -> Entry {
        at(
            t,
            Event::Append {
                topic: "payments".into(),
                partition: 0,
                offset,
                key: format!("p-{offset}"),
                headers: vec![],
                producer: "api".into(),
                value: json!({}),
                wire_bytes: None,
            },
        )
    }

    fn consume(t: u64, offset: u64) -> Entry {
        at(
            t,
            Event::Consume {
                process: "worker".into(),
                group: "ledger".into(),
                topic: "payments".into(),
                partition: 0,
                offset,
                key: format!("p-{offset}"),
            },
        )
    }

    fn offset_commit(t: u64, offset: u64) -> Entry {
        at(
            t,
            Event::OffsetCommit {
                process: "worker".into(),
                group: "ledger".into(),
                topic: "payments".into(),
                partition: 0,
                offset,
            },
        )
    }

    fn fault(t: u64, action: FaultAction) -> Entry {
        at(
            t,
            Event::Fault {
                action,
                kind: "broker-outage".into(),
                target: "broker".into(),
            },
        )
    }

    fn history() -> Vec<Entry> {
        vec![
            at(
                0,
                Event::Run {
                    scenario: "dual-write".into(),
                    seed: 3,
                    mode: "sim".into(),
                    system: "payments".into(),
                    variants: BTreeMap::new(),
                },
            ),
            at(
                0,
                Event::Phase {
                    phase: "chaos".into(),
                },
            ),
            append(100, 0),
            consume(150, 0),
            offset_commit(160, 1),
            append(200, 1),
            at(
                900,
                Event::DbCommit {
                    db: "payments-db".into(),
                    process: "api".into(),
                    lsn: 7,
                    changes: vec![],
                },
            ),
            fault(1000, FaultAction::Start),
            fault(2000, FaultAction::Stop),
            consume(2100, 1),
            offset_commit(2200, 2),
            at(
                3000,
                Event::Phase {
                    phase: "heal".into(),
                },
            ),
        ]
    }

    fn kept() -> BTreeMap<(String, u64), KeptSeed> {
        let seed = KeptSeed {
            history: history(),
            violations: vec![Violation {
                invariant: "no-lost-payment".into(),
                message: "payment p-9 committed at lsn 7 but never published".into(),
                events: vec![6],
            }],
            latencies: None,
        };
        BTreeMap::from([(("dual-write".to_string(), 3), seed)])
    }

    #[test]
    fn the_systems_own_latency_replaces_the_generic_one() {
        let report = report();
        let mut kept = kept();
        for k in kept.values_mut() {
            k.latencies = Some(Latencies {
                label: "payment commit → reservation outcome (ms)".into(),
                points_ms: vec![(100, 40), (200, 900)],
            });
        }
        let page = render(&Inputs {
            report: &report,
            kept: &kept,
        });
        assert!(page.contains("payment commit → reservation outcome (ms)"));
        assert!(!page.contains("append → first consume (ms)"));
        assert!(
            page.contains("p99 900 ms"),
            "the percentile lines follow the points"
        );
    }

    #[test]
    fn the_page_shows_the_violating_seed_with_its_charts_and_evidence() {
        let (report, kept) = (report(), kept());
        let page = render(&Inputs {
            report: &report,
            kept: &kept,
        });
        for id in [
            "id=\"scenario-dual-write\"",
            "id=\"seeds-dual-write\"",
            "id=\"latency-dual-write\"",
            "id=\"rate-dual-write\"",
            "id=\"seed-dual-write-3\"",
            "id=\"timeline-dual-write-3\"",
            "id=\"lag-dual-write-3\"",
            "href=\"#scenario-dual-write\"",
        ] {
            assert!(page.contains(id), "missing {id}");
        }
        assert!(page.contains(REPRO));
        assert!(page.contains("pitfall repro dual-write --seed 4"));
        let line = serde_json::to_string(&history()[6]).unwrap();
        assert!(page.contains(&escape(&line)), "evidence line missing");
        assert!(page.contains("class=\"ev\""));
        assert!(page.contains("broker-outage on broker: 1000 ms to 2000 ms"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("xmlns"));
    }

    #[test]
    fn the_coverage_table_lists_declared_events_first_and_flags_misses() {
        let mut report = report();
        let table = coverage_table(&report.scenarios[0]);
        assert!(table.contains("<h3>Coverage events</h3>"), "{table}");
        let declared = table.find("duplicate-delivered").unwrap();
        let other = table.find("event-parked").unwrap();
        assert!(declared < other, "declared events come first: {table}");
        assert!(table.contains("<td>duplicate-delivered</td><td>3</td><td>yes</td>"));
        assert!(!table.contains("class=\"bad\""), "{table}");
        report.scenarios[0].sometimes = vec!["event-parked".into()];
        let table = coverage_table(&report.scenarios[0]);
        assert!(
            table.contains("<tr class=\"bad\"><td>event-parked</td><td>0</td><td>yes</td>"),
            "{table}"
        );
        report.scenarios[0].coverage.clear();
        assert_eq!(coverage_table(&report.scenarios[0]), "");
    }

    #[test]
    fn the_point_line_counts_points_fired_in_any_scenario() {
        let mut report = report();
        assert_eq!(report.point_coverage_line(), None, "no point fired");
        report.scenarios[0]
            .coverage
            .insert("crash-point:after-db-commit".into(), 2);
        report.scenarios[0]
            .coverage
            .insert("fail-point:before-produce".into(), 0);
        let line = report.point_coverage_line().unwrap();
        assert!(
            line.starts_with("crash and fail points fired across the suite: 1 of 24 (never: "),
            "{line}"
        );
        assert!(line.contains("fail-point:before-produce"), "{line}");
        assert!(!line.contains("crash-point:after-db-commit"), "{line}");
    }

    #[test]
    fn text_is_escaped() {
        let mut report = report();
        report.scenarios[0].unmet = vec!["see https://example.org & <b>".into()];
        let page = render(&Inputs {
            report: &report,
            kept: &kept(),
        });
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&amp; &lt;b&gt;"));
        assert!(!page.contains("https://"));
    }

    #[test]
    fn a_seed_without_a_kept_history_renders() {
        let mut report = report();
        report.complete = false;
        report.finished[1].failure = Some("panicked at sim.rs:1".into());
        let page = render(&Inputs {
            report: &report,
            kept: &BTreeMap::new(),
        });
        assert!(page.contains("INCOMPLETE"));
        assert!(page.contains("history not kept"));
        assert!(page.contains("id=\"seed-dual-write-4\""));
        assert!(page.contains("id=\"seed-dual-write-1\""));
        assert!(page.contains("panicked at sim.rs:1"));
        assert!(page.contains("id=\"seeds-dual-write\""));
        assert!(!page.contains("id=\"timeline-dual-write-3\""));
    }

    #[test]
    fn latency_matches_appends_to_first_consumptions() {
        let mut h = history();
        h.push(consume(4000, 0)); // a redelivery does not count again
        assert_eq!(latencies(&h), vec![(100, 50), (200, 1900)]);
    }

    #[test]
    fn lag_steps_at_appends_and_offset_commits() {
        let series = lag_series(&history());
        let lag: Vec<i64> = series["ledger"].iter().map(|p| p.1).collect();
        assert_eq!(lag, vec![1, 0, 1, 0]);
    }

    #[test]
    fn fault_bands_pair_starts_with_stops() {
        let mut h = history();
        h.push(fault(3500, FaultAction::Start));
        let bands = fault_bands(&h);
        let spans: Vec<(u64, u64)> = bands.iter().map(|b| (b.start_ms, b.end_ms)).collect();
        assert_eq!(spans, vec![(1000, 2000), (3500, 3500)]);
        assert_eq!(bands[0].lane, "broker");
    }

    #[test]
    fn a_long_history_stays_bounded() {
        let mut h = history();
        let t0 = 3000;
        for i in 0..100_000u64 {
            h.push(append(t0 + i, 2 + i));
            h.push(consume(t0 + i + 5, 2 + i));
            h.push(offset_commit(t0 + i + 6, 3 + i));
        }
        let mut kept = kept();
        kept.get_mut(&("dual-write".to_string(), 3))
            .unwrap()
            .history = h;
        let page = render(&Inputs {
            report: &report(),
            kept: &kept,
        });
        assert!(page.len() < 1_000_000, "page is {} bytes", page.len());
        let start = page.find("id=\"timeline-dual-write-3\"").unwrap();
        let end = start + page[start..].find("</svg>").unwrap();
        assert!(page[start..end].matches('<').count() < 3000);
    }

    #[test]
    fn repro_commands_swap_the_seed() {
        let s = scenario();
        assert_eq!(repro_command(&s, 17), "pitfall repro dual-write --seed 17");
        let mut bare = scenario();
        bare.repro = None;
        assert_eq!(repro_command(&bare, 2), "pitfall repro dual-write --seed 2");
    }
}
