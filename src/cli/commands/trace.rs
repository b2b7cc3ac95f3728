//! `pitfall trace`: the whole causal chain of one request in a simulated
//! seed, in simulated-time order — the shopper's operations, the DB commits
//! that carry it, the records it produced (with topic/partition/offset and
//! headers), their consumption, the effects applied, parked objects, and the
//! log lines handled for it.

use super::logs::Captured;
use crate::cli::BAD_INPUT;
use pitfall_blocks::publish::FALLBACK_PREFIX;
use pitfall_harness::history::{Entry, Event};
use pitfall_harness::scenario;
use pitfall_harness::sweep::{run_isolated, Limits};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario name or file stem (looked up in --scenarios), or path to a
    /// scenario file.
    scenario: String,
    /// The seed to rerun (any 64-bit number; `run` prints the ones worth
    /// rerunning).
    #[arg(long)]
    seed: u64,
    /// The requestId to follow.
    #[arg(long)]
    request: String,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
}

/// The request a payload names, directly or as a changed row.
fn payload_request(value: &Value) -> Option<&str> {
    value
        .get("request_id")
        .or_else(|| value.get("after").and_then(|a| a.get("request_id")))
        .and_then(Value::as_str)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One line of the chain: simulated milliseconds, who, what.
struct Step {
    t: u64,
    order: usize,
    who: String,
    what: String,
}

/// The history entries that belong to `request`, rendered.
fn chain(history: &[Entry], request: &str, parked_keys: &BTreeSet<String>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut records: BTreeSet<(String, u32, u64)> = BTreeSet::new();
    let mut push = |t: u64, order: usize, who: &str, what: String| {
        steps.push(Step {
            t,
            order,
            who: who.to_string(),
            what,
        })
    };
    for (i, e) in history.iter().enumerate() {
        match &e.event {
            Event::Invoke {
                process,
                op,
                request_id,
                attempt,
                value,
            } if request_id == request => push(
                e.t,
                i,
                process,
                format!("invoke {op} (attempt {attempt}) {value}"),
            ),
            Event::Ok {
                process,
                op,
                request_id,
                attempt,
                value,
            } if request_id == request => {
                let shown = value.as_ref().map_or(String::new(), |v| format!(" -> {v}"));
                push(
                    e.t,
                    i,
                    process,
                    format!("ok {op} (attempt {attempt}){shown}"),
                )
            }
            Event::Fail {
                process,
                op,
                request_id,
                attempt,
                error,
            } if request_id == request => push(
                e.t,
                i,
                process,
                format!("fail {op} (attempt {attempt}): {error}"),
            ),
            Event::Info {
                process,
                op,
                request_id,
                attempt,
                error,
            } if request_id == request => push(
                e.t,
                i,
                process,
                format!("info {op} (attempt {attempt}): {error}"),
            ),
            Event::DbCommit {
                db,
                process,
                lsn,
                changes,
            } => {
                let mine: Vec<String> = changes
                    .iter()
                    .filter(|c| payload_request(&c.data) == Some(request))
                    .map(|c| format!("{}/{} {:?} v{}", c.table, c.key, c.op, c.version))
                    .collect();
                if !mine.is_empty() {
                    let others = changes.len() - mine.len();
                    let also = if others > 0 {
                        format!(" (+{others} other change(s))")
                    } else {
                        String::new()
                    };
                    push(
                        e.t,
                        i,
                        process,
                        format!("commit {db} @{lsn}: {}{also}", mine.join(", ")),
                    );
                }
            }
            Event::Append {
                topic,
                partition,
                offset,
                key,
                headers,
                producer,
                value,
                ..
            } => {
                let by_header = header(headers, "requestId") == Some(request);
                if by_header || payload_request(value) == Some(request) {
                    records.insert((topic.clone(), *partition, *offset));
                    let context = match (header(headers, "requestId"), header(headers, "userId")) {
                        (Some(r), Some(u)) => format!("requestId={r} userId={u}"),
                        _ => "NO CONTEXT HEADERS".to_string(),
                    };
                    push(
                        e.t,
                        i,
                        producer,
                        format!("append {topic}/{partition}@{offset} key {key} [{context}]"),
                    );
                }
            }
            Event::Consume {
                process,
                topic,
                partition,
                offset,
                ..
            } if records.contains(&(topic.clone(), *partition, *offset)) => push(
                e.t,
                i,
                process,
                format!("consume {topic}/{partition}@{offset}"),
            ),
            Event::ObjectPut { process, key, size } if parked_keys.contains(key) => {
                push(e.t, i, process, format!("object put {key} ({size} bytes)"))
            }
            Event::ObjectDelete { process, key } if parked_keys.contains(key) => {
                push(e.t, i, process, format!("object delete {key}"))
            }
            _ => {}
        }
    }
    steps
}

/// A captured log line of this request: (simulated ms, host, text).
fn log_step(line: &str, request: &str) -> Option<(u64, String, String)> {
    let marker = format!("request_id={request}");
    let at = line.find(&marker)?;
    // The id ends the field: `r1` must not match `r1-read` or `r12`.
    let after = line[at + marker.len()..].chars().next();
    if !matches!(after, None | Some(' ' | '}' | ',')) {
        return None;
    }
    let (time, rest) = line.trim_start().split_once("s ")?;
    let ms = (time.parse::<f64>().ok()? * 1000.0).round() as u64;
    let host = rest
        .split("name=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("-")
        .to_string();
    Some((ms, host, format!("log {}", rest.trim())))
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    let scenario = match scenario::find(&args.scenario, &args.scenarios, registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let logs = Captured::install(tracing::Level::INFO);
    let (parts, history) = run_isolated(run_seed, &scenario, args.seed, Limits::default());
    if let Some(failure) = &parts.failure {
        eprintln!("error: seed {} failed to run: {failure}", args.seed);
        return 1;
    }
    let requests: BTreeSet<&str> = history
        .iter()
        .filter_map(|e| match &e.event {
            Event::Invoke { request_id, .. } => Some(request_id.as_str()),
            _ => None,
        })
        .collect();
    if !requests.contains(args.request.as_str()) {
        let some: Vec<&str> = requests.iter().take(8).copied().collect();
        eprintln!(
            "error: no request {} in seed {} of {}; some that are: {}",
            args.request,
            args.seed,
            scenario.name,
            some.join(", ")
        );
        return BAD_INPUT;
    }
    let log_lines: Vec<(u64, String, String)> = logs
        .lines()
        .iter()
        .filter_map(|l| log_step(l, &args.request))
        .collect();
    // Objects the request's log lines name: the parked copies of its events.
    let parked: BTreeSet<String> = log_lines
        .iter()
        .flat_map(|(_, _, text)| {
            text.split(['"', ' ', '}', '{', ','])
                .filter(|w| w.starts_with(FALLBACK_PREFIX))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut steps = chain(&history, &args.request, &parked);
    let base = history.len();
    steps.extend(
        log_lines
            .into_iter()
            .enumerate()
            .map(|(n, (t, who, what))| Step {
                t,
                order: base + n,
                who,
                what,
            }),
    );
    steps.sort_by_key(|s| (s.t, s.order));
    println!(
        "request {} in scenario {}, seed {}: {} step(s)",
        args.request,
        scenario.name,
        args.seed,
        steps.len()
    );
    for s in &steps {
        println!("{:>9.3}s  {:<12} {}", s.t as f64 / 1000.0, s.who, s.what);
    }
    0
}
