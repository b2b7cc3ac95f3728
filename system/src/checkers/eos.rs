//! output-exactly-once: under `kafka-eos`, the committed log of inventory's
//! reserved topic holds each consumed record's output once. This is the half
//! that Kafka's transactions deliver: an aborted transaction's output is not
//! in the log a `read_committed` reader sees, whatever happened to the DB
//! effect beside it (`no-double-effect` judges that half).

use crate::schema::{ReservedEvent, RESERVED_TOPIC};
use pitfall_harness::checkers::queue::aborted_records;
use pitfall_harness::history::{Entry, Event};
use std::collections::BTreeMap;

pub fn check(history: &[Entry]) -> Vec<(String, Vec<usize>)> {
    let aborted = aborted_records(history);
    // The consumed record each output answers → (partition, offset, entry).
    let mut outputs: BTreeMap<String, Vec<(u32, u64, usize)>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        let Event::Append {
            topic,
            partition,
            offset,
            value,
            ..
        } = &e.event
        else {
            continue;
        };
        if topic != RESERVED_TOPIC || aborted.contains(&((topic.clone(), *partition), *offset)) {
            continue;
        }
        if let Ok(event) = serde_json::from_value::<ReservedEvent>(value.clone()) {
            outputs
                .entry(event.source)
                .or_default()
                .push((*partition, *offset, i));
        }
    }
    outputs
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
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
