//! Pitfall 4's invariants over large payloads, and the figures the report
//! shows for them:
//!
//! - **payload-integrity**: every committed payment that names an attachment
//!   has it archived exactly once, intact (size and SHA-256 digest match);
//! - **no-dangling-reference**: no claim-check reference was ever read before
//!   its object existed;
//! - **no-partial-assembly**: no archived attachment was ever visible with
//!   bytes other than the ones sent — incomplete or misassembled.
//!
//! The payments table names each attachment's size and digest; the archive
//! writes one invoice row per order with the digest of what it reassembled.

use super::state::{payments, rows};
use crate::events::AttachmentRef;
use crate::schema::{InvoiceRow, INVOICES, INVOICES_TOPIC};
use crate::topology::INVENTORY_DB;
use pitfall_blocks::payload::{CLAIM_PREFIX, PAYLOAD_CODEC, PAYLOAD_SIZE};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::{with_entries, Compact, Ev};
use pitfall_harness::history::Entry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Order id → (the attachment its payment names, the commit's entry).
fn attachments(history: &Compact<'_>) -> BTreeMap<String, (AttachmentRef, usize)> {
    payments(history)
        .values()
        .filter_map(|(p, entry)| Some((p.order_id.clone(), (p.attachment.clone()?, *entry))))
        .collect()
}

/// Order id → every invoice row the archive wrote for it, with its entry.
fn invoices(history: &Compact<'_>) -> BTreeMap<String, Vec<(InvoiceRow, usize)>> {
    let mut out: BTreeMap<String, Vec<(InvoiceRow, usize)>> = BTreeMap::new();
    for w in rows::<InvoiceRow>(history, INVENTORY_DB, INVOICES).iter() {
        out.entry(w.row.order_id.clone())
            .or_default()
            .push((w.row.clone(), w.entry));
    }
    out
}

/// The shopper's failed attempts whose error names the attachment: the
/// visible side of an attachment that could not be sent.
fn attachment_failures(history: &Compact<'_>, order: &str) -> Vec<(usize, String)> {
    let mut request = None;
    let mut out = Vec::new();
    for (i, e) in history.lines().iter().enumerate() {
        match e.event {
            Ev::Invoke {
                op,
                value,
                request_id,
                ..
            } if op == "pay"
                && value.get("order_id").and_then(|v| v.as_str()).as_deref() == Some(order) =>
            {
                request = Some(request_id);
            }
            Ev::Fail {
                request_id, error, ..
            }
            | Ev::Info {
                request_id, error, ..
            } if Some(request_id) == request && error.contains("attachment") => {
                out.push((i, error.to_string()));
            }
            _ => {}
        }
    }
    out
}

pub fn check_integrity(history: &Compact<'_>) -> Vec<Finding> {
    let archived = invoices(history);
    let mut found = Vec::new();
    for (order, (expected, committed)) in attachments(history) {
        let rows = archived.get(&order).map(Vec::as_slice).unwrap_or_default();
        let mut evidence = vec![committed];
        evidence.extend(rows.iter().map(|(_, i)| *i));
        match rows {
            [] => {
                let failures = attachment_failures(history, &order);
                let why = failures
                    .last()
                    .map_or("".to_string(), |(_, e)| format!("; the payments service said: {e}"));
                evidence.extend(failures.iter().map(|(i, _)| *i));
                found.push((
                    format!(
                        "order {order}'s attachment ({} bytes) was never archived{why}",
                        expected.size
                    ),
                    evidence,
                ));
            }
            [(row, _)] if row.digest == expected.digest && row.size == expected.size => {}
            [(row, _)] => found.push((
                format!(
                    "order {order}'s attachment was archived with {} bytes, digest {}…, but {} bytes, digest {}… were sent",
                    row.size,
                    &row.digest[..12.min(row.digest.len())],
                    expected.size,
                    &expected.digest[..12.min(expected.digest.len())]
                ),
                evidence,
            )),
            many => found.push((
                format!(
                    "order {order}'s attachment was archived {} times",
                    many.len()
                ),
                evidence,
            )),
        }
    }
    found
}

pub fn check_no_dangling_reference(history: &Compact<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let lines = history.lines();
    for (i, e) in lines.iter().enumerate() {
        let Ev::ObjectGet {
            process,
            key,
            found: false,
        } = e.event
        else {
            continue;
        };
        if !key.starts_with(CLAIM_PREFIX) {
            continue;
        }
        let upload = lines
            .iter()
            .position(|e| matches!(e.event, Ev::ObjectPut { key: k, .. } if k == key));
        let mut evidence = vec![i];
        evidence.extend(upload);
        evidence.sort_unstable();
        let put = match upload {
            Some(j) if j > i => format!("; it was uploaded at line {}", j + 1),
            Some(_) => String::new(),
            None => "; it was never uploaded".to_string(),
        };
        found.push((
            format!("{process} followed a reference to {key}, which did not exist yet{put}"),
            evidence,
        ));
    }
    found
}

pub fn check_no_partial_assembly(history: &Compact<'_>) -> Vec<Finding> {
    let expected = attachments(history);
    let mut found = Vec::new();
    for (order, rows) in invoices(history) {
        for (row, i) in rows {
            match expected.get(&order) {
                Some((a, _)) if a.digest == row.digest && a.size == row.size => {}
                Some((a, committed)) => found.push((
                    format!(
                        "order {order}: an attachment of {} bytes became visible, not the {} bytes sent ({})",
                        row.size,
                        a.size,
                        if row.size < a.size { "incomplete" } else { "misassembled" }
                    ),
                    vec![*committed, i],
                )),
                None => found.push((
                    format!("order {order}: an attachment became visible for a payment that names none"),
                    vec![i],
                )),
            }
        }
    }
    found
}

/// What the report shows about a seed's payloads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PayloadFigures {
    pub attachments: u64,
    pub largest_bytes: u64,
    pub archived: u64,
    /// The archive's reassembly-memory high-water mark.
    pub peak_reassembly_bytes: u64,
    /// Attachment bytes before and after compression, over compressed records.
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
}

/// The figures of a history recorded in memory.
pub fn figures(history: &[Entry]) -> Option<PayloadFigures> {
    with_entries(history, compact_figures)
}

fn compact_figures(history: &Compact<'_>) -> Option<PayloadFigures> {
    let attached = attachments(history);
    let archived = invoices(history);
    if attached.is_empty() && archived.is_empty() {
        return None;
    }
    let mut f = PayloadFigures {
        attachments: attached.len() as u64,
        largest_bytes: attached.values().map(|(a, _)| a.size).max().unwrap_or(0),
        archived: archived.len() as u64,
        peak_reassembly_bytes: archived
            .values()
            .flatten()
            .map(|(r, _)| r.peak_memory_bytes)
            .max()
            .unwrap_or(0),
        ..PayloadFigures::default()
    };
    for e in history.lines() {
        let Ev::Append {
            topic,
            headers,
            wire_bytes,
            ..
        } = e.event
        else {
            continue;
        };
        let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        if topic != INVOICES_TOPIC || header(PAYLOAD_CODEC).is_none() {
            continue;
        }
        // The producer compressed the batch: the broker saw `wire_bytes`.
        let original = header(PAYLOAD_SIZE).and_then(|s| s.parse::<u64>().ok());
        if let (Some(original), Some(stored)) = (original, wire_bytes) {
            f.uncompressed_bytes += original;
            f.compressed_bytes += stored;
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::PAYMENTS;
    use crate::topology::PAYMENTS_DB;
    use pitfall_harness::history::{Entry, Event};

    fn check_integrity(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_integrity)
    }

    fn check_no_dangling_reference(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_no_dangling_reference)
    }

    fn check_no_partial_assembly(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_no_partial_assembly)
    }
    use pitfall_ports::{Change, ChangeOp};
    use serde_json::json;

    fn commit(t: u64, db: &str, table: &str, key: &str, data: serde_json::Value) -> Entry {
        Entry {
            t,
            event: Event::DbCommit {
                db: db.into(),
                process: "test".into(),
                lsn: t,
                changes: vec![Change {
                    lsn: t,
                    table: table.into(),
                    key: key.into(),
                    op: ChangeOp::Insert,
                    version: 1,
                    data,
                }],
            },
        }
    }

    /// A payment for `order` naming an attachment of `size` bytes.
    fn paid(t: u64, order: &str, size: u64, digest: &str) -> Entry {
        let mut p = super::super::fixtures::payment_row(order, "apple", 1);
        p.attachment = Some(AttachmentRef {
            size,
            digest: digest.into(),
        });
        commit(t, PAYMENTS_DB, PAYMENTS, order, json!(p))
    }

    fn archived(t: u64, order: &str, size: u64, digest: &str) -> Entry {
        let row = InvoiceRow {
            order_id: order.into(),
            size,
            digest: digest.into(),
            peak_memory_bytes: size,
        };
        commit(t, INVENTORY_DB, INVOICES, order, json!(row))
    }

    fn event(t: u64, event: Event) -> Entry {
        Entry { t, event }
    }

    fn failed_pay(t: u64, order: &str, error: &str) -> [Entry; 2] {
        [
            event(
                t,
                Event::Invoke {
                    process: "shopper-1".into(),
                    op: "pay".into(),
                    request_id: format!("r-{order}"),
                    attempt: 1,
                    value: json!({ "order_id": order }),
                },
            ),
            event(
                t + 1,
                Event::Fail {
                    process: "shopper-1".into(),
                    op: "pay".into(),
                    request_id: format!("r-{order}"),
                    attempt: 1,
                    error: error.into(),
                },
            ),
        ]
    }

    #[test]
    fn integrity_holds_when_every_attachment_is_archived_once_intact() {
        let h = vec![
            paid(1, "o1", 100, "aa"),
            paid(2, "o2", 5_000_000, "bb"),
            archived(5, "o1", 100, "aa"),
            archived(6, "o2", 5_000_000, "bb"),
        ];
        assert!(check_integrity(&h).is_empty(), "{:?}", check_integrity(&h));
        assert!(check_no_partial_assembly(&h).is_empty());
    }

    #[test]
    fn integrity_catches_a_missing_a_corrupt_and_a_doubled_attachment() {
        let [invoke, fail] = failed_pay(
            2,
            "o1",
            "rejected: attachment: a 2000000-byte record exceeds the maximum",
        );
        let h = vec![
            paid(1, "o1", 2_000_000, "aa"),
            invoke,
            fail,
            paid(4, "o2", 100, "bb"),
            paid(5, "o3", 100, "cc"),
            archived(6, "o2", 100, "XX"),
            archived(7, "o3", 100, "cc"),
            archived(8, "o3", 100, "cc"),
        ];
        let v = check_integrity(&h);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].0.contains("o1's attachment (2000000 bytes) was never archived; the payments service said: rejected"), "{}", v[0].0);
        assert_eq!(v[0].1, vec![0, 2], "the payment and the visible failure");
        assert!(
            v[1].0
                .contains("o2's attachment was archived with 100 bytes, digest XX"),
            "{}",
            v[1].0
        );
        assert!(
            v[2].0.contains("o3's attachment was archived 2 times"),
            "{}",
            v[2].0
        );
    }

    #[test]
    fn dangling_reference_holds_when_references_resolve() {
        let h = vec![
            event(
                1,
                Event::ObjectPut {
                    process: "payments".into(),
                    key: "payloads/o1".into(),
                    size: 10,
                },
            ),
            event(
                2,
                Event::ObjectGet {
                    process: "archive".into(),
                    key: "payloads/o1".into(),
                    found: true,
                },
            ),
            // A missing fallback object is not a claim-check reference.
            event(
                3,
                Event::ObjectGet {
                    process: "recovery".into(),
                    key: "fallback/x".into(),
                    found: false,
                },
            ),
        ];
        assert!(check_no_dangling_reference(&h).is_empty());
    }

    #[test]
    fn dangling_reference_catches_a_reference_followed_before_its_upload() {
        let h = vec![
            event(
                1,
                Event::ObjectGet {
                    process: "archive".into(),
                    key: "payloads/o1".into(),
                    found: false,
                },
            ),
            event(
                2,
                Event::ObjectPut {
                    process: "payments".into(),
                    key: "payloads/o1".into(),
                    size: 10,
                },
            ),
            event(
                3,
                Event::ObjectGet {
                    process: "archive".into(),
                    key: "payloads/o2".into(),
                    found: false,
                },
            ),
        ];
        let v = check_no_dangling_reference(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0
                .contains("payloads/o1, which did not exist yet; it was uploaded at line 2"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![0, 1]);
        assert!(v[1].0.contains("it was never uploaded"), "{}", v[1].0);
    }

    #[test]
    fn partial_assembly_catches_an_incomplete_attachment_made_visible() {
        let h = vec![
            paid(1, "o1", 1_000, "aa"),
            archived(5, "o1", 600, "partial"),
            archived(6, "o9", 10, "zz"),
        ];
        let v = check_no_partial_assembly(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0
                .contains("600 bytes became visible, not the 1000 bytes sent (incomplete)"),
            "{}",
            v[0].0
        );
        assert!(
            v[1].0
                .contains("o9: an attachment became visible for a payment that names none"),
            "{}",
            v[1].0
        );
    }

    #[test]
    fn figures_sum_compression_and_peak_memory() {
        let append = |size: &str, stored: u64| {
            event(
                3,
                Event::Append {
                    topic: INVOICES_TOPIC.into(),
                    partition: 0,
                    offset: 0,
                    key: "o1".into(),
                    headers: vec![
                        (PAYLOAD_CODEC.into(), "lz4".into()),
                        (PAYLOAD_SIZE.into(), size.into()),
                    ],
                    producer: "payments".into(),
                    value: json!({ "bytes": size, "blake3": "x" }),
                    wire_bytes: Some(stored),
                },
            )
        };
        let h = vec![
            paid(1, "o1", 3_000, "aa"),
            append("3000", 1_000),
            append("1000", 500),
            archived(5, "o1", 3_000, "aa"),
        ];
        let f = figures(&h).unwrap();
        assert_eq!(
            (
                f.attachments,
                f.archived,
                f.largest_bytes,
                f.peak_reassembly_bytes
            ),
            (1, 1, 3_000, 3_000)
        );
        assert_eq!((f.uncompressed_bytes, f.compressed_bytes), (4_000, 1_500));
        assert!(figures(&[]).is_none());
    }
}
