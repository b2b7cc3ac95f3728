//! The reference system's invariants: pure functions of the history, one
//! module each, beside the harness's generic ones (queue, context-complete,
//! converges). Also the queue policy (which anomalies each producer variant
//! may show) and pitfall 4's figures for the report.

mod state;

mod eos;
mod no_double_effect;
mod no_lost_payment;
mod no_phantom;
pub mod orders;
pub mod payload;
mod per_key_order;
mod stock_conservation;
mod third_party;

#[cfg(test)]
pub(crate) mod fixtures;

use pitfall_harness::checkers::{Anomaly, Invariant};
use pitfall_harness::history::compact::{with_entries, Compact};
use pitfall_harness::history::Entry;
use pitfall_harness::system::{Figures, Latencies};
use serde_json::Value;

/// The reference system's invariants, in the order verdicts are printed.
pub fn invariants() -> Vec<Invariant> {
    vec![
        Invariant::over_compact(
            "stock-conservation",
            "for every product, initial stock = current stock + reserved quantity, and stock is never negative",
            stock_conservation::check,
        ),
        Invariant::over_compact(
            "no-lost-payment",
            "every committed payment has a reservation outcome (reserved or rejected) after the drain",
            no_lost_payment::check,
        ),
        Invariant::over_compact(
            "no-double-effect",
            "no payment's side effect is applied more than once",
            no_double_effect::check,
        ),
        Invariant::over_compact(
            "no-phantom",
            "no reservation outcome exists without a payment committed before it",
            no_phantom::check,
        ),
        Invariant::over_compact(
            "per-key-order",
            "for every payment, the inventory's final effect matches its highest revision, and no older revision is applied after a newer one",
            per_key_order::check,
        ),
        Invariant::over_compact(
            "payload-integrity",
            "every attachment a committed payment names is archived exactly once, intact (size and BLAKE3 digest match)",
            payload::check_integrity,
        ),
        Invariant::over_compact(
            "no-dangling-reference",
            "a claim-check reference never points at an object that does not exist yet",
            payload::check_no_dangling_reference,
        ),
        Invariant::over_compact(
            "no-partial-assembly",
            "no archived attachment is ever visible incomplete or misassembled",
            payload::check_no_partial_assembly,
        ),
        Invariant::over_compact(
            "read-after-write",
            "once a shopper got OK for placing an order, the orders service's read endpoint shows it placed",
            orders::check_read_after_write,
        ),
        Invariant::over_compact(
            "view-convergence",
            "after the drain, the orders service's state agrees with payments, inventory and refunds, and every materialized view and snapshot equals it",
            orders::check_view_convergence,
        ),
        Invariant::over_compact(
            "snapshot-consistency",
            "an event-sourced snapshot never disagrees with a replay of the events up to it",
            orders::check_snapshot_consistency,
        ),
        Invariant::over_compact(
            "output-exactly-once",
            "under kafka-eos, each consumed record's reserved event is committed once in the output topic (aborted transactions' copies are not read), and every payment event got one by the end of the drain",
            eos::check,
        ),
        Invariant::over_compact(
            "no-double-call",
            "the third-party carrier shipped each payment at most once",
            third_party::check_no_double_call,
        ),
        Invariant::over_compact(
            "call-completes",
            "every payment the inventory reserved was shipped by the third-party carrier by the end of the drain",
            third_party::check_call_completes,
        ),
    ]
}

/// The queue policy: producer variant → the anomalies it may show.
/// Producers without idempotence retry into duplicates, and with several
/// requests in flight they reorder; the resilient producer's recovery
/// re-produces and reorders; CDC re-produces after a restart but keeps
/// per-key order. No variant may lose a record or leave one unconsumed, no
/// broker may disagree with itself about an offset, and no consumer may go
/// back or skip without a reason the history shows.
pub const ALLOWED: &[(&str, &[Anomaly])] = &[
    (
        "dual-write",
        &[Anomaly::Duplicate, Anomaly::NonmonotonicSend],
    ),
    (
        "produce-first",
        &[Anomaly::Duplicate, Anomaly::NonmonotonicSend],
    ),
    (
        "resilient-producer",
        &[Anomaly::Duplicate, Anomaly::NonmonotonicSend],
    ),
    ("cdc", &[Anomaly::Duplicate]),
];

/// The anomalies a producer variant may show; none for an unknown one.
pub fn allowed(producer: &str) -> &'static [Anomaly] {
    ALLOWED
        .iter()
        .find(|(v, _)| *v == producer)
        .map_or(&[], |(_, a)| a)
}

/// Pitfall 4's figures over many seeds: attachments, what was archived, the
/// largest attachment, the archive's peak reassembly memory and the
/// compression ratio of compressed records.
/// Each payment's commit to its first reservation outcome (reserved or
/// rejected): the reference system's end-to-end latency, for the report.
pub fn payment_latencies(history: &[Entry]) -> Latencies {
    with_entries(history, latencies)
}

fn latencies(history: &Compact<'_>) -> Latencies {
    let lines = history.lines();
    let outcomes = state::outcomes(history);
    let mut points_ms: Vec<(u64, u64)> = state::payments(history)
        .iter()
        .filter_map(|(id, (_, committed))| {
            let first = outcomes.get(id)?.iter().map(|o| lines[o.entry].t).min()?;
            let start = lines[*committed].t;
            Some((start, first.saturating_sub(start)))
        })
        .collect();
    points_ms.sort_unstable();
    Latencies {
        label: "payment commit → reservation outcome (ms)".into(),
        points_ms,
    }
}

pub fn total_payload_figures(seeds: &[&Value]) -> Option<Figures> {
    let figures: Vec<payload::PayloadFigures> = seeds
        .iter()
        .filter_map(|v| serde_json::from_value((*v).clone()).ok())
        .collect();
    if figures.is_empty() {
        return None;
    }
    let sum = |f: fn(&payload::PayloadFigures) -> u64| figures.iter().map(f).sum::<u64>();
    let max = |f: fn(&payload::PayloadFigures) -> u64| figures.iter().map(f).max().unwrap_or(0);
    let (raw, packed) = (sum(|f| f.uncompressed_bytes), sum(|f| f.compressed_bytes));
    let ratio = (packed > 0).then(|| (raw as f64 / packed as f64 * 100.0).round() / 100.0);
    let (attachments, archived) = (sum(|f| f.attachments), sum(|f| f.archived));
    let (largest, peak) = (max(|f| f.largest_bytes), max(|f| f.peak_reassembly_bytes));
    let mut value = serde_json::json!({
        "attachments": attachments,
        "archived": archived,
        "largest_attachment_bytes": largest,
        "peak_reassembly_bytes": peak,
    });
    if let Some(r) = ratio {
        value["compression_ratio"] = r.into();
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let line = format!(
        "payloads: {archived} archived of {attachments}, largest {:.1} MiB, peak reassembly memory {:.1} MiB{}",
        mib(largest),
        mib(peak),
        ratio.map_or(String::new(), |r| format!(", compression {r:.2}x"))
    );
    Some(Figures {
        key: "payloads".into(),
        value,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payments_latency_runs_from_its_commit_to_its_first_outcome() {
        use fixtures::{payment, reject, reserve, stock};
        let h = vec![
            stock(0, 1, &[("apple", 1)]),
            payment(5, 1, "o1", "apple", 1),
            payment(6, 2, "o2", "apple", 1),
            payment(7, 3, "o3", "apple", 1),
            reserve(40, 2, "o1", "apple", 1, 1, 0),
            reject(90, 3, "o2", "apple", 1),
            reserve(95, 4, "o1", "apple", 1, 1, 0),
        ];
        let l = payment_latencies(&h);
        assert_eq!(l.points_ms, [(5, 35), (6, 84)], "o3 has no outcome yet");
        assert!(l.label.starts_with("payment commit"));
    }

    #[test]
    fn payload_figures_add_up_over_seeds() {
        let a = serde_json::json!({"attachments": 3, "largest_bytes": 10, "archived": 2,
            "peak_reassembly_bytes": 7, "uncompressed_bytes": 300, "compressed_bytes": 100});
        let b = serde_json::json!({"attachments": 1, "largest_bytes": 40, "archived": 1,
            "peak_reassembly_bytes": 5, "uncompressed_bytes": 0, "compressed_bytes": 0});
        let f = total_payload_figures(&[&a, &b]).unwrap();
        assert_eq!(f.key, "payloads");
        assert_eq!(f.value["attachments"], 4);
        assert_eq!(f.value["archived"], 3);
        assert_eq!(f.value["largest_attachment_bytes"], 40);
        assert_eq!(f.value["peak_reassembly_bytes"], 7);
        assert_eq!(f.value["compression_ratio"], 3.0);
        assert!(
            f.line.starts_with("payloads: 3 archived of 4"),
            "{}",
            f.line
        );
        assert!(total_payload_figures(&[]).is_none());
    }

    #[test]
    fn cdc_may_duplicate_but_never_reorder() {
        assert_eq!(allowed("cdc"), [Anomaly::Duplicate]);
        assert!(allowed("resilient-producer").contains(&Anomaly::NonmonotonicSend));
        assert!(allowed("unknown").is_empty());
    }
}
