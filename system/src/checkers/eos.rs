//! output-exactly-once: under `kafka-eos`, the committed log of inventory's
//! reserved topic holds each consumed record's output once, and every
//! payment event on its input topic got a reserved event by the end of the
//! drain. This is the half that Kafka's transactions deliver: an aborted
//! transaction's output is not in the log a `read_committed` reader sees,
//! and is produced again with the retry, whatever happened to the DB effect
//! beside it (`no-double-effect` judges that half).

use crate::schema::{ReservedEvent, RESERVED_TOPIC};
use crate::variants::Publish;
use pitfall_harness::checkers::queue::aborted_records;
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::{Compact, Ev, Raw};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A committed (not aborted) append: (entry, partition, offset, value).
type Appended<'h> = (usize, u32, u64, Raw<'h>);

/// The committed appends to `wanted`.
fn committed_appends<'h>(history: &Compact<'h>, wanted: &str) -> Vec<Appended<'h>> {
    let aborted = aborted_records(history);
    history
        .lines()
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.event {
            Ev::Append {
                topic,
                partition,
                offset,
                value,
                ..
            } if topic == wanted && !aborted.contains(&((topic, partition), offset)) => {
                Some((i, partition, offset, value))
            }
            _ => None,
        })
        .collect()
}

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    // The consumed record each output answers → (partition, offset, entry),
    // and the payment events answered.
    let mut outputs: BTreeMap<String, Vec<(u32, u64, usize)>> = BTreeMap::new();
    let mut answered: BTreeSet<(String, u64)> = BTreeSet::new();
    for (i, partition, offset, value) in committed_appends(history, RESERVED_TOPIC) {
        if let Some(event) = value.decode::<ReservedEvent>() {
            answered.insert((event.payment_id, event.revision));
            outputs
                .entry(event.source)
                .or_default()
                .push((partition, offset, i));
        }
    }
    let mut found: Vec<Finding> = outputs
        .into_iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(source, copies)| {
            let at: Vec<String> = copies.iter().map(|(p, o, _)| format!("{p}@{o}")).collect();
            (
                format!(
                    "the output for {source} is committed {} times in {RESERVED_TOPIC} ({})",
                    copies.len(),
                    at.join(", ")
                ),
                copies.iter().map(|(_, _, i)| *i).collect(),
            )
        })
        .collect();
    if let Some(input) = drained_eos_input(history) {
        for (i, partition, offset, value) in committed_appends(history, input) {
            let Some(event) = payment_event(value) else {
                continue;
            };
            if !answered.contains(&event) {
                found.push((
                    format!(
                        "payment {}@{} at {input}/{partition}@{offset} got no reserved event in {RESERVED_TOPIC}",
                        event.0, event.1
                    ),
                    vec![i],
                ));
            }
        }
    }
    found
}

/// Under `kafka-eos`, once the drain converged: the topic inventory reads
/// (from the run's `producer` variant).
fn drained_eos_input(history: &Compact<'_>) -> Option<&'static str> {
    let lines = history.lines();
    let variants = lines.iter().find_map(|e| match e.event {
        Ev::Run { variants, .. } => Some(variants),
        _ => None,
    })?;
    let variant = |name: &str| variants.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    if variant("delivery") != Some("kafka-eos") {
        return None;
    }
    let drained = lines.iter().any(|e| {
        matches!(
            e.event,
            Ev::Drain {
                converged: true,
                ..
            }
        )
    });
    let producer = variant("producer")?;
    let publish: Publish = serde_json::from_value(Value::String(producer.to_string())).ok()?;
    drained.then(|| publish.topic())
}

/// The (payment id, revision) a record on the payments topic carries: a
/// payment event, or a CDC change envelope of the payments row.
fn payment_event(value: Raw<'_>) -> Option<(String, u64)> {
    let event = value.get("after").unwrap_or(value);
    let [id, revision] = event.get_many(["payment_id", "revision"]);
    Some((id?.as_str()?.into_owned(), revision?.as_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitfall_harness::history::compact::with_entries;
    use pitfall_harness::history::{Entry, Event};

    fn check(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check)
    }
    use pitfall_ports::TopicPartitionOffset;
    use serde_json::json;

    fn output(offset: u64, source: &str) -> Entry {
        let event = ReservedEvent {
            payment_id: "pay-o1".into(),
            revision: 1,
            source: source.into(),
            request_id: "r1".into(),
            user_id: "u1".into(),
        };
        Entry {
            t: offset,
            event: Event::Append {
                topic: RESERVED_TOPIC.into(),
                partition: 0,
                offset,
                key: "pay-o1".into(),
                headers: vec![],
                producer: "inventory-1".into(),
                value: json!(event),
                wire_bytes: None,
            },
        }
    }

    fn aborted(offset: u64) -> Entry {
        let tpo = |offset| TopicPartitionOffset {
            topic: RESERVED_TOPIC.into(),
            partition: 0,
            offset,
        };
        Entry {
            t: 10 + offset,
            event: Event::TxnEnd {
                transactional_id: "inventory-1".into(),
                process: "inventory-1".into(),
                committed: false,
                records: vec![tpo(offset)],
                markers: vec![tpo(offset + 1)],
            },
        }
    }

    #[test]
    fn holds_when_the_aborted_attempt_is_retried() {
        let h = vec![
            output(0, "payments/0@5"),
            aborted(0),
            output(2, "payments/0@5"),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn catches_one_consumed_record_committed_twice() {
        let h = vec![output(0, "payments/0@5"), output(1, "payments/0@5")];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].0,
            "the output for payments/0@5 is committed 2 times in inventory-reserved (0@0, 0@1)"
        );
        assert_eq!(v[0].1, vec![0, 1]);
    }

    fn run_eos() -> Entry {
        Entry {
            t: 0,
            event: Event::Run {
                scenario: "kafka-eos".into(),
                seed: 1,
                mode: "sim".into(),
                system: "shop".into(),
                variants: [
                    ("producer".to_string(), "cdc".to_string()),
                    ("delivery".to_string(), "kafka-eos".to_string()),
                ]
                .into(),
            },
        }
    }

    fn input(offset: u64) -> Entry {
        Entry {
            t: offset,
            event: Event::Append {
                topic: "payments-db.payments".into(),
                partition: 0,
                offset,
                key: "o1".into(),
                headers: vec![],
                producer: "cdc".into(),
                value: json!({"after": {"payment_id": "pay-o1", "revision": 1}, "version": 1}),
                wire_bytes: None,
            },
        }
    }

    fn drained() -> Entry {
        Entry {
            t: 99,
            event: Event::Drain {
                converged: true,
                pending: vec![],
            },
        }
    }

    #[test]
    fn every_payment_event_gets_its_output() {
        let h = vec![
            run_eos(),
            input(5),
            output(0, "payments-db.payments/0@5"),
            drained(),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn catches_a_payment_event_whose_only_output_was_aborted() {
        let h = vec![
            run_eos(),
            input(5),
            output(0, "payments-db.payments/0@5"),
            aborted(0),
            drained(),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].0,
            "payment pay-o1@1 at payments-db.payments/0@5 got no reserved event in inventory-reserved"
        );
        assert_eq!(v[0].1, vec![1]);
        // Not judged before the drain converged (converges says why).
        assert!(check(&h[..4]).is_empty());
    }
}
