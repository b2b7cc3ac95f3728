//! The contract suite: the same cases run against the simulated adapters
//! (`sim/tests/contract.rs`) and the real ones (`real/tests/contract.rs`).
//! Each case uses only the ports and a [`Fixture`], so the simulator cannot
//! drift from what real Kafka clients, Postgres and MariaDB do without a
//! test failing. [`db_cases`] run once per DB backend, [`broker_cases`] once
//! per broker.

use async_trait::async_trait;
use pitfall_ports::{
    Broker, ChangeFeed, ChangeOp, Consumer, ConsumerConfig, Database, DbError, Producer,
    ProducerConfig, ProducerRecord, TopicPartitionOffset, TxnError, TxnProducer,
};

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The table the DB cases write.
pub const TABLE: &str = "contract_rows";
/// The database the fixture's DB and feed serve.
pub const DB: &str = "contract-db";
/// The slot the change-log case reads through.
pub const SLOT: &str = "contract";
/// Single-partition topics the broker cases use, one per case.
pub const TOPICS: [&str; 9] = [
    "contract-dup",
    "contract-idem",
    "contract-resume",
    "contract-txn",
    "contract-zombie",
    "contract-txn-in",
    "contract-txn-pending",
    "contract-churn",
    "contract-reassigned",
];

/// What a mode provides to the cases.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A database with the [`TABLE`] table, fresh for this run.
    fn db(&self) -> Arc<dyn Database>;
    /// The change feed of that database; slot [`SLOT`] exists.
    fn feed(&self) -> Arc<dyn ChangeFeed>;
    /// A broker client; the [`TOPICS`] exist with one partition each.
    fn broker(&self) -> Arc<dyn Broker>;
    /// Lose the broker's next reply to a produce that it applied.
    async fn lose_next_reply(&self);
    /// Delay every request to the broker (and its reply, where the fault
    /// sits on the wire) by `delay_ms`, or stop delaying with `None`.
    async fn slow_broker(&self, delay_ms: Option<u64>);
    /// Refuse every connection to the broker and cut the open ones
    /// (`true`), or accept them again (`false`).
    async fn broker_down(&self, down: bool);
}

pub type CaseResult = Result<(), String>;

fn check(ok: bool, what: impl FnOnce() -> String) -> CaseResult {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// Read every record of a single-partition topic through a fresh group;
/// returns (offset, key) pairs.
async fn read_topic(
    f: &dyn Fixture,
    topic: &str,
    group: &str,
    expect_at_least: usize,
) -> Result<Vec<(u64, String)>, String> {
    read_topic_as(f, topic, group, expect_at_least, false).await
}

/// [`read_topic`] at an isolation level.
async fn read_topic_as(
    f: &dyn Fixture,
    topic: &str,
    group: &str,
    expect_at_least: usize,
    read_committed: bool,
) -> Result<Vec<(u64, String)>, String> {
    let mut consumer = f.broker().consumer(&ConsumerConfig {
        group: group.into(),
        topics: vec![topic.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 100,
        read_committed,
    });
    let mut seen = Vec::new();
    for _ in 0..60 {
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => seen.extend(records.into_iter().map(|r| (r.offset, r.key))),
            Err(e) => tracing::debug!(error = %e, "contract: poll failed"),
        }
        if seen.len() >= expect_at_least {
            // Give stragglers one more poll.
            if let Ok(records) = consumer.poll(Duration::from_millis(300)).await {
                seen.extend(records.into_iter().map(|r| (r.offset, r.key)));
            }
            break;
        }
    }
    Ok(seen)
}

fn record(topic: &str, key: &str) -> ProducerRecord {
    ProducerRecord {
        topic: topic.into(),
        key: key.into(),
        value: json!({ "key": key }).to_string().into(),
        headers: vec![],
    }
}

/// Send `key` with its first acknowledgement lost; return how many copies of
/// it the log holds.
async fn copies_after_lost_replies(
    f: &dyn Fixture,
    topic: &str,
    idempotent: bool,
) -> Result<usize, String> {
    let producer = f.broker().producer(&ProducerConfig {
        idempotent,
        max_in_flight: 1,
        retries: 10,
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 20_000,
        compression: None,
    });
    // Warm up: metadata and connections, acknowledged normally.
    producer
        .send(record(topic, "warm-up"))
        .await
        .map_err(|e| format!("warm-up send: {e}"))?;
    f.lose_next_reply().await;
    producer
        .send(record(topic, "k"))
        .await
        .map_err(|e| format!("the retried send should succeed: {e}"))?;
    let log = read_topic(f, topic, &format!("{topic}-reader"), 2).await?;
    Ok(log.iter().filter(|(_, k)| k == "k").count())
}

/// Without idempotence, a retry after a lost ack appends a duplicate.
pub async fn lost_ack_duplicates_without_idempotence(f: &dyn Fixture) -> CaseResult {
    let copies = copies_after_lost_replies(f, TOPICS[0], false).await?;
    check(copies >= 2, || {
        format!("expected a duplicate after lost acks, found {copies} copy")
    })
}

/// A broker slower than the producer's request timeout fails the send by
/// its delivery timeout: the client gives up on each request after the
/// request timeout and retries, as Java's `request.timeout.ms` does. A
/// client that waited the whole delivery timeout on one request would get
/// the slow answer and succeed.
pub async fn a_broker_slower_than_the_request_timeout_fails_the_send(
    f: &dyn Fixture,
) -> CaseResult {
    let topic = TOPICS[0];
    let producer = f.broker().producer(&ProducerConfig {
        request_timeout_ms: 500,
        delivery_timeout_ms: 4_000,
        ..ProducerConfig::default()
    });
    // Connected and with metadata before the broker slows down.
    producer
        .send(record(topic, "before-slow"))
        .await
        .map_err(|e| format!("send before the slowdown: {e}"))?;
    f.slow_broker(Some(800)).await;
    let slow = producer.send(record(topic, "while-slow")).await;
    f.slow_broker(None).await;
    check(slow.is_err(), || {
        format!(
            "a send whose every request outlasted the 500 ms request timeout succeeded: {slow:?}"
        )
    })
}

/// While the broker refuses connections, a send fails by its delivery
/// timeout, as Java's `delivery.timeout.ms` makes it: a caller that parks
/// the record elsewhere (the resilient producer) does so during the outage,
/// not when the broker is back. librdkafka only expires a queued message
/// when its broker thread wakes, which while the broker is down is at each
/// reconnect attempt: with its default reconnect backoff (up to 10 s) a send
/// made two seconds into an outage failed seconds after the outage ended.
pub async fn a_send_during_an_outage_fails_by_its_delivery_timeout(f: &dyn Fixture) -> CaseResult {
    const DELIVERY_TIMEOUT_MS: u64 = 500;
    /// What a send may take beyond its delivery timeout.
    const SLACK_MS: u64 = 1_000;
    let topic = TOPICS[0];
    let producer = f.broker().producer(&ProducerConfig {
        request_timeout_ms: 300,
        delivery_timeout_ms: DELIVERY_TIMEOUT_MS,
        ..ProducerConfig::default()
    });
    producer
        .send(record(topic, "before-outage"))
        .await
        .map_err(|e| format!("send before the outage: {e}"))?;
    f.broker_down(true).await;
    // Long enough into the outage for the client to back off reconnecting.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let started = tokio::time::Instant::now();
    let sent = producer.send(record(topic, "during-outage")).await;
    let took_ms = started.elapsed().as_millis() as u64;
    f.broker_down(false).await;
    check(sent.is_err(), || {
        format!("a send while the broker refused every connection succeeded: {sent:?}")
    })?;
    check(took_ms <= DELIVERY_TIMEOUT_MS + SLACK_MS, || {
        format!(
            "a send during the outage failed only after {took_ms} ms (delivery timeout {DELIVERY_TIMEOUT_MS} ms)"
        )
    })
}

/// With idempotence, the same retries leave exactly one copy.
pub async fn lost_ack_does_not_duplicate_with_idempotence(f: &dyn Fixture) -> CaseResult {
    let copies = copies_after_lost_replies(f, TOPICS[1], true).await?;
    check(copies == 1, || {
        format!("expected exactly one copy with idempotence, found {copies}")
    })
}

/// A group member that commits, then goes away: the next member of the group
/// starts at the committed offset.
pub async fn committed_offsets_resume(f: &dyn Fixture) -> CaseResult {
    let topic = TOPICS[2];
    let producer = f.broker().producer(&ProducerConfig::default());
    send_numbered(producer.as_ref(), topic, 4).await?;
    let config = ConsumerConfig {
        group: "contract-resume".into(),
        topics: vec![topic.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 2,
        read_committed: false,
    };
    let mut first = f.broker().consumer(&config);
    let mut got = Vec::new();
    for _ in 0..60 {
        got.extend(
            first
                .poll(Duration::from_millis(500))
                .await
                .unwrap_or_default(),
        );
        if got.len() >= 2 {
            break;
        }
    }
    check(got.len() >= 2, || {
        format!("the first member saw {} records", got.len())
    })?;
    let next = got[1].offset + 1;
    first
        .commit(&[TopicPartitionOffset {
            topic: topic.into(),
            partition: 0,
            offset: next,
        }])
        .await
        .map_err(|e| format!("commit: {e}"))?;
    drop(first);
    let mut second = f.broker().consumer(&config);
    for _ in 0..60 {
        let records = second
            .poll(Duration::from_millis(500))
            .await
            .unwrap_or_default();
        if let Some(r) = records.first() {
            return check(r.offset == next, || {
                format!(
                    "the next member started at offset {}, not the committed {next}",
                    r.offset
                )
            });
        }
    }
    Err("the next member of the group received nothing".into())
}

/// Inserting an existing key is a unique violation, also when two
/// transactions race for a new key.
pub async fn unique_key_conflicts_are_reported(f: &dyn Fixture) -> CaseResult {
    let db = f.db();
    let mut t1 = db.begin().await.map_err(|e| e.to_string())?;
    t1.insert(TABLE, "u1", json!(1))
        .await
        .map_err(|e| e.to_string())?;
    t1.commit().await.map_err(|e| e.to_string())?;
    let mut t2 = db.begin().await.map_err(|e| e.to_string())?;
    let again = t2.insert(TABLE, "u1", json!(2)).await;
    check(
        matches!(again, Err(DbError::UniqueViolation { .. })),
        || format!("inserting an existing key gave {again:?}"),
    )?;
    t2.rollback().await;

    // A race for a new key: exactly one transaction wins, and the other is
    // told it lost with a unique violation, at its insert or its commit.
    // (Which one wins differs: Postgres makes the second inserter wait for
    // the first; an optimistic DB lets the first committer win.)
    let race = |value: &'static str| {
        let db = db.clone();
        async move {
            let mut tx = db.begin().await?;
            tx.insert(TABLE, "u2", json!(value)).await?;
            if value == "a" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            tx.commit().await
        }
    };
    let a = tokio::spawn(race("a"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = tokio::spawn(race("b"));
    let results = [
        a.await.map_err(|e| e.to_string())?,
        b.await.map_err(|e| e.to_string())?,
    ];
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Err(DbError::UniqueViolation { .. })))
        .count();
    check(won == 1 && lost == 1, || {
        format!("racing inserts gave {results:?}")
    })
}

/// A row's bytes ([`Transaction::insert_bytes`]) come back as they were
/// written: to the transaction that wrote them, and once committed to
/// another; a row written without bytes has none, a missing or deleted row
/// is none at all. Generated content and stored bytes alike.
///
/// [`Transaction::insert_bytes`]: pitfall_ports::Transaction::insert_bytes
pub async fn rows_keep_their_bytes(f: &dyn Fixture) -> CaseResult {
    let db = f.db();
    let generated = pitfall_ports::Blob::generated(5, 300_000);
    let stored = pitfall_ports::Blob::from(vec![0u8, 1, 2, 255, b'"', b'\\']);
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    for (key, bytes) in [("bytes-1", &generated), ("bytes-2", &stored)] {
        tx.insert_bytes(TABLE, key, json!({ "n": 1 }), bytes.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.insert(TABLE, "bytes-3", json!({ "n": 3 }))
        .await
        .map_err(|e| e.to_string())?;
    let own = tx.get_bytes(TABLE, "bytes-1").await;
    check(matches!(&own, Ok(Some(Some(b))) if *b == generated), || {
        format!("the writer read its own row's bytes as {own:?}")
    })?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    for (key, expected) in [
        ("bytes-1", Some(Some(&generated))),
        ("bytes-2", Some(Some(&stored))),
        ("bytes-3", Some(None)),
        ("bytes-none", None),
    ] {
        let got = tx.get_bytes(TABLE, key).await.map_err(|e| e.to_string())?;
        check(got.as_ref().map(Option::as_ref) == expected, || {
            format!("{key}: read {got:?}, wrote {expected:?}")
        })?;
    }
    tx.delete(TABLE, "bytes-1")
        .await
        .map_err(|e| e.to_string())?;
    let deleted = tx.get_bytes(TABLE, "bytes-1").await;
    check(matches!(deleted, Ok(None)), || {
        format!("a deleted row's bytes read as {deleted:?}")
    })?;
    tx.rollback().await;
    Ok(())
}

/// The change log is ordered by commit, not by when transactions began.
pub async fn change_log_is_ordered_by_commit(f: &dyn Fixture) -> CaseResult {
    let db = f.db();
    let mut early = db.begin().await.map_err(|e| e.to_string())?;
    early
        .insert(TABLE, "c-early", json!(1))
        .await
        .map_err(|e| e.to_string())?;
    let mut late = db.begin().await.map_err(|e| e.to_string())?;
    late.insert(TABLE, "c-late", json!(2))
        .await
        .map_err(|e| e.to_string())?;
    late.commit().await.map_err(|e| e.to_string())?;
    early.commit().await.map_err(|e| e.to_string())?;
    let feed = f.feed();
    let from = feed.confirmed(SLOT).await.map_err(|e| e.to_string())?;
    let changes = feed
        .poll(SLOT, from, 100)
        .await
        .map_err(|e| e.to_string())?;
    let order: Vec<&str> = changes
        .iter()
        .filter(|c| c.key.starts_with("c-"))
        .map(|c| c.key.as_str())
        .collect();
    check(order == ["c-late", "c-early"], || {
        format!("change log order {order:?}")
    })?;
    let positions: BTreeMap<&str, u64> = changes.iter().map(|c| (c.key.as_str(), c.lsn)).collect();
    check(positions["c-late"] < positions["c-early"], || {
        format!("positions {positions:?}")
    })?;
    // Confirming moves the slot: the confirmed changes are not read again.
    feed.confirm(SLOT, positions["c-early"])
        .await
        .map_err(|e| e.to_string())?;
    let from = feed.confirmed(SLOT).await.map_err(|e| e.to_string())?;
    let again = feed
        .poll(SLOT, from, 100)
        .await
        .map_err(|e| e.to_string())?;
    check(!again.iter().any(|c| c.key.starts_with("c-")), || {
        format!("confirmed changes read again: {again:?}")
    })
}

/// A restarted reader resumes at the slot's confirmed position: what it had
/// read but not confirmed comes again (at least once), in whole
/// transactions, and a rolled-back transaction never shows. This is what a
/// connector restart replays, on a replication slot and on the binlog alike.
pub async fn unconfirmed_changes_are_read_again_in_whole_transactions(
    f: &dyn Fixture,
) -> CaseResult {
    let err = |e: DbError| e.to_string();
    // Start from a clean slot: confirm whatever earlier cases left.
    let feed = f.feed();
    let from = feed.confirmed(SLOT).await.map_err(err)?;
    let earlier = feed.poll(SLOT, from, usize::MAX).await.map_err(err)?;
    if let Some(last) = earlier.iter().map(|c| c.lsn).max() {
        feed.confirm(SLOT, last).await.map_err(err)?;
    }
    let db = f.db();
    let mut pair = db.begin().await.map_err(err)?;
    pair.insert(TABLE, "r-a1", json!(1)).await.map_err(err)?;
    pair.insert(TABLE, "r-a2", json!(2)).await.map_err(err)?;
    pair.commit().await.map_err(err)?;
    let mut undone = db.begin().await.map_err(err)?;
    undone.insert(TABLE, "r-x", json!(0)).await.map_err(err)?;
    undone.rollback().await;
    let mut single = db.begin().await.map_err(err)?;
    single.insert(TABLE, "r-b", json!(3)).await.map_err(err)?;
    single.commit().await.map_err(err)?;

    let keys_of = |changes: &[pitfall_ports::Change]| -> Vec<String> {
        changes.iter().map(|c| c.key.clone()).collect()
    };
    let read = |after| {
        let feed = f.feed();
        async move { feed.poll(SLOT, after, 1).await }
    };
    let from = f.feed().confirmed(SLOT).await.map_err(err)?;
    let first = read(from).await.map_err(err)?;
    check(keys_of(&first) == ["r-a1", "r-a2"], || {
        format!("one transaction's worth from the slot gave {first:?}")
    })?;
    check(first[0].lsn == first[1].lsn, || {
        format!("one transaction's changes at two positions: {first:?}")
    })?;
    let next = read(first[0].lsn).await.map_err(err)?;
    check(keys_of(&next) == ["r-b"], || {
        format!("after the first transaction came {next:?}")
    })?;
    // A reader restarted without confirming reads the pair again.
    let from = f.feed().confirmed(SLOT).await.map_err(err)?;
    let replay = read(from).await.map_err(err)?;
    check(keys_of(&replay) == ["r-a1", "r-a2"], || {
        format!("a restarted reader replayed {replay:?}")
    })?;
    check(replay[0].lsn == first[0].lsn, || {
        format!("the replay moved: {} then {}", first[0].lsn, replay[0].lsn)
    })?;
    // Once confirmed, a restarted reader starts after the pair.
    f.feed().confirm(SLOT, first[0].lsn).await.map_err(err)?;
    let from = f.feed().confirmed(SLOT).await.map_err(err)?;
    check(from == first[0].lsn, || {
        format!("confirmed {} but the slot says {from}", first[0].lsn)
    })?;
    let rest = f.feed().poll(SLOT, from, usize::MAX).await.map_err(err)?;
    check(keys_of(&rest) == ["r-b"], || {
        format!("after the confirm a restarted reader read {rest:?}")
    })
}

/// A delete removes the row (a second finds nothing), the key can be
/// inserted again, and the change log carries the delete by key alone,
/// between the inserts, with version 0 and null data.
pub async fn deletes_remove_rows_and_log_their_keys(f: &dyn Fixture) -> CaseResult {
    let err = |e: DbError| e.to_string();
    let db = f.db();
    let mut tx = db.begin().await.map_err(err)?;
    tx.insert(TABLE, "d-1", json!({"n": 1}))
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;

    let mut tx = db.begin().await.map_err(err)?;
    let first = tx.delete(TABLE, "d-1").await.map_err(err)?;
    let seen = tx.get(TABLE, "d-1").await.map_err(err)?;
    let second = tx.delete(TABLE, "d-1").await.map_err(err)?;
    let missing = tx.delete(TABLE, "d-none").await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    check(first && seen.is_none() && !second && !missing, || {
        format!("delete gave {first}, then get {seen:?}, delete {second}, delete of a missing key {missing}")
    })?;

    let mut tx = db.begin().await.map_err(err)?;
    let gone = tx.get(TABLE, "d-1").await.map_err(err)?;
    tx.insert(TABLE, "d-1", json!({"n": 2}))
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    check(gone.is_none(), || {
        format!("a deleted row read back as {gone:?}")
    })?;
    let mut tx = db.begin().await.map_err(err)?;
    let again = tx.get(TABLE, "d-1").await.map_err(err)?;
    tx.rollback().await;
    check(
        again.as_ref().map(|r| (r.version, &r.data)) == Some((1, &json!({"n": 2}))),
        || format!("the key inserted again reads {again:?}"),
    )?;

    let feed = f.feed();
    let from = feed.confirmed(SLOT).await.map_err(err)?;
    let changes = feed.poll(SLOT, from, usize::MAX).await.map_err(err)?;
    let ours: Vec<(ChangeOp, u64, &Value)> = changes
        .iter()
        .filter(|c| c.key == "d-1")
        .map(|c| (c.op, c.version, &c.data))
        .collect();
    let (one, two) = (json!({"n": 1}), json!({"n": 2}));
    let expected = [
        (ChangeOp::Insert, 1, &one),
        (ChangeOp::Delete, 0, &Value::Null),
        (ChangeOp::Insert, 1, &two),
    ];
    check(ours == expected, || {
        format!("the change log holds {ours:?}")
    })
}

/// The keys a reader sees, in offset order.
fn keys(log: &[(u64, String)]) -> Vec<&str> {
    let mut log: Vec<&(u64, String)> = log.iter().collect();
    log.sort();
    log.dedup();
    log.iter().map(|(_, k)| k.as_str()).collect()
}

fn txn_producer(f: &dyn Fixture, id: &str) -> Box<dyn TxnProducer> {
    f.broker()
        .txn_producer(id, &ProducerConfig::default(), 60_000)
}

/// Begin, send `keys`, and commit or abort.
async fn transaction(
    p: &mut dyn TxnProducer,
    topic: &str,
    keys: &[&str],
    commit: bool,
) -> Result<(), TxnError> {
    p.begin().await?;
    for k in keys {
        p.send(record(topic, k)).await?;
    }
    if commit {
        p.commit().await
    } else {
        p.abort().await
    }
}

/// A committed transaction's records are read under `read_committed`, an
/// aborted one's are not (and are, under `read_uncommitted`).
pub async fn committed_transactions_are_visible_aborted_ones_are_not(
    f: &dyn Fixture,
) -> CaseResult {
    let topic = TOPICS[3];
    let mut p = txn_producer(f, "contract-txn");
    let err = |e: TxnError| format!("transaction: {e}");
    transaction(p.as_mut(), topic, &["c1"], true)
        .await
        .map_err(err)?;
    transaction(p.as_mut(), topic, &["a1", "a2"], false)
        .await
        .map_err(err)?;
    transaction(p.as_mut(), topic, &["c2"], true)
        .await
        .map_err(err)?;
    let committed = read_topic_as(f, topic, "contract-txn-rc", 2, true).await?;
    check(keys(&committed) == ["c1", "c2"], || {
        format!("read_committed saw {:?}, expected c1, c2", keys(&committed))
    })?;
    let all = read_topic_as(f, topic, "contract-txn-ru", 4, false).await?;
    check(keys(&all) == ["c1", "a1", "a2", "c2"], || {
        format!(
            "read_uncommitted saw {:?}, expected c1, a1, a2, c2",
            keys(&all)
        )
    })
}

/// A second producer with the same `transactional.id` fences the first: the
/// zombie's open transaction is aborted and its next call refused.
pub async fn a_zombie_producer_is_fenced(f: &dyn Fixture) -> CaseResult {
    let topic = TOPICS[4];
    let mut zombie = txn_producer(f, "contract-zombie");
    zombie
        .begin()
        .await
        .map_err(|e| format!("zombie begin: {e}"))?;
    zombie
        .send(record(topic, "z1"))
        .await
        .map_err(|e| format!("zombie send: {e}"))?;
    let mut next = txn_producer(f, "contract-zombie");
    transaction(next.as_mut(), topic, &["n1"], true)
        .await
        .map_err(|e| format!("the new producer's transaction: {e}"))?;
    let refused = match zombie.send(record(topic, "z2")).await {
        Err(TxnError::Fenced(_)) => true,
        Ok(_) => matches!(zombie.commit().await, Err(TxnError::Fenced(_))),
        Err(_) => false,
    };
    check(refused, || "the zombie was not fenced".to_string())?;
    let committed = read_topic_as(f, topic, "contract-zombie-rc", 1, true).await?;
    check(keys(&committed) == ["n1"], || {
        format!(
            "read_committed saw {:?}, expected only n1",
            keys(&committed)
        )
    })
}

/// Send records `r0`, `r1`, … (`n` of them) to `topic`, in order.
async fn send_numbered(producer: &dyn Producer, topic: &str, n: usize) -> CaseResult {
    for i in 0..n {
        producer
            .send(record(topic, &format!("r{i}")))
            .await
            .map_err(|e| format!("send r{i}: {e}"))?;
    }
    Ok(())
}

/// Poll until `consumer` has `n` records.
async fn poll_n(consumer: &mut dyn Consumer, n: usize) -> Vec<pitfall_ports::ConsumerRecord> {
    let mut got = Vec::new();
    for _ in 0..60 {
        got.extend(
            consumer
                .poll(Duration::from_millis(500))
                .await
                .unwrap_or_default(),
        );
        if got.len() >= n {
            break;
        }
    }
    got
}

/// Offsets sent to a transaction are committed with it: not after an
/// abort, and after a commit.
pub async fn offsets_commit_only_with_the_transaction(f: &dyn Fixture) -> CaseResult {
    let topic = TOPICS[5];
    let plain = f.broker().producer(&ProducerConfig::default());
    send_numbered(plain.as_ref(), topic, 3).await?;
    let config = ConsumerConfig {
        group: "contract-txn-group".into(),
        topics: vec![topic.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 10,
        read_committed: true,
    };
    let to = [TopicPartitionOffset {
        topic: topic.into(),
        partition: 0,
        offset: 3,
    }];
    let mut p = txn_producer(f, "contract-offsets");
    for commit in [false, true] {
        let mut consumer = f.broker().consumer(&config);
        let got = poll_n(consumer.as_mut(), 1).await;
        let first = got.first().map(|r| r.offset);
        check(first == Some(0), || {
            format!("after an aborted offset commit the member started at {first:?}, not 0")
        })?;
        let group = consumer
            .group_metadata()
            .ok_or("the member has no group metadata")?;
        p.begin().await.map_err(|e| format!("begin: {e}"))?;
        p.send_offsets(&group, &to)
            .await
            .map_err(|e| format!("send_offsets: {e}"))?;
        let end = if commit {
            p.commit().await
        } else {
            p.abort().await
        };
        end.map_err(|e| format!("end: {e}"))?;
        drop(consumer);
        if commit {
            plain
                .send(record(topic, "r3"))
                .await
                .map_err(|e| format!("send r3: {e}"))?;
            let mut after = f.broker().consumer(&config);
            let got = poll_n(after.as_mut(), 1).await;
            let first = got.first().map(|r| r.offset);
            return check(first == Some(3), || {
                format!("after the committed transaction the member started at {first:?}, not 3")
            });
        }
    }
    Ok(())
}

/// A member that joins while a transaction holds newer offsets pending
/// starts at the committed offset, even when the group rebalances while it
/// waits for that transaction to end (KIP-447: the committed offset is
/// "unstable" until then, and the member waits; it never falls back to
/// `auto.offset.reset`). librdkafka 2.12–2.16 does fall back when a
/// rebalance lands during the wait: docs/findings/librdkafka-unstable-offset-reset.
pub async fn a_member_waits_out_a_pending_offset_commit_across_rebalances(
    f: &dyn Fixture,
) -> CaseResult {
    const COMMITTED: u64 = 5;
    let (topic, churn_topic) = (TOPICS[6], TOPICS[7]);
    let plain = f.broker().producer(&ProducerConfig::default());
    send_numbered(plain.as_ref(), topic, 10).await?;
    let config = |topics: &str| ConsumerConfig {
        group: "contract-pending-group".into(),
        topics: vec![topics.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 10,
        read_committed: true,
    };
    let at = |offset| {
        [TopicPartitionOffset {
            topic: topic.into(),
            partition: 0,
            offset,
        }]
    };
    // Commit 5 through a transaction, then leave 8 pending in another,
    // which the broker aborts when it times out (after 3 s, and its sweep).
    let mut p = f
        .broker()
        .txn_producer("contract-pending", &ProducerConfig::default(), 3_000);
    let mut first_member = f.broker().consumer(&config(churn_topic));
    let _ = first_member.poll(Duration::from_millis(500)).await;
    let group = first_member
        .group_metadata()
        .ok_or("the member has no group metadata")?;
    for (offset, commit) in [(COMMITTED, true), (8, false)] {
        p.begin().await.map_err(|e| format!("begin: {e}"))?;
        p.send_offsets(&group, &at(offset))
            .await
            .map_err(|e| format!("send_offsets {offset}: {e}"))?;
        if commit {
            p.commit().await.map_err(|e| format!("commit: {e}"))?;
        }
    }
    drop(first_member);
    // The member under test polls while a second one joins and leaves the
    // group (on another topic) every 1.5 s.
    let mut member = f.broker().consumer(&config(topic));
    let mut seen = Vec::new();
    for round in 0..4 {
        let mut other = f.broker().consumer(&config(churn_topic));
        for _ in 0..3 {
            let _ = other.poll(Duration::from_millis(250)).await;
            if let Ok(records) = member.poll(Duration::from_millis(250)).await {
                seen.extend(records.into_iter().map(|r| r.offset));
            }
        }
        drop(other);
        tracing::debug!(round, seen = seen.len(), "contract: churned the group");
    }
    // Ends the transaction if the broker has not yet (its error, if it
    // has, is no concern here).
    let _ = p.abort().await;
    if seen.is_empty() {
        seen.extend(
            poll_n(member.as_mut(), 1)
                .await
                .into_iter()
                .map(|r| r.offset),
        );
    }
    let first = seen.first().copied();
    check(first == Some(COMMITTED), || {
        format!("the member started at {first:?}, not at the committed offset {COMMITTED}")
    })
}

/// Offsets of records a member polled before its group rebalanced are
/// reported reassigned, so an exactly-once consumer aborts instead of
/// sending them with the new generation's metadata; offsets of records it
/// polled in the current generation are not.
pub async fn offsets_polled_before_a_rebalance_are_reassigned(f: &dyn Fixture) -> CaseResult {
    let topic = TOPICS[8];
    let plain = f.broker().producer(&ProducerConfig::default());
    send_numbered(plain.as_ref(), topic, 3).await?;
    let config = ConsumerConfig {
        group: "contract-reassigned-group".into(),
        topics: vec![topic.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 10,
        read_committed: false,
    };
    let mut member = f.broker().consumer(&config);
    let got = poll_n(member.as_mut(), 3).await;
    let next = got
        .last()
        .map(|r| r.offset + 1)
        .ok_or("the member got no records")?;
    let offsets = [TopicPartitionOffset {
        topic: topic.into(),
        partition: 0,
        offset: next,
    }];
    check(member.reassigned_since_polled(&offsets).is_none(), || {
        "offsets of records polled in the current generation were reported reassigned".into()
    })?;
    // Committed, so the member has nothing to poll again after the
    // rebalance whichever member the partition goes to.
    member
        .commit(&offsets)
        .await
        .map_err(|e| format!("commit: {e}"))?;
    let mut other = f.broker().consumer(&config);
    for _ in 0..40 {
        let _ = other.poll(Duration::from_millis(250)).await;
        let _ = member.poll(Duration::from_millis(250)).await;
        if member.reassigned_since_polled(&offsets).is_some() {
            return Ok(());
        }
    }
    Err(
        "offsets polled before a second member joined the group were never reported reassigned"
            .into(),
    )
}

/// A contract case: runs against a fixture, says what broke.
pub type Case = for<'a> fn(&'a dyn Fixture) -> futures_util::future::BoxFuture<'a, CaseResult>;

/// Every case, by name.
/// Every case.
pub fn cases() -> Vec<(&'static str, Case)> {
    let mut all = db_cases();
    all.extend(broker_cases());
    all
}

/// The cases of the DB port and the change feed.
pub fn db_cases() -> Vec<(&'static str, Case)> {
    vec![
        ("unique_key_conflicts_are_reported", |f| {
            Box::pin(unique_key_conflicts_are_reported(f))
        }),
        ("change_log_is_ordered_by_commit", |f| {
            Box::pin(change_log_is_ordered_by_commit(f))
        }),
        (
            "unconfirmed_changes_are_read_again_in_whole_transactions",
            |f| Box::pin(unconfirmed_changes_are_read_again_in_whole_transactions(f)),
        ),
        ("deletes_remove_rows_and_log_their_keys", |f| {
            Box::pin(deletes_remove_rows_and_log_their_keys(f))
        }),
        ("rows_keep_their_bytes", |f| {
            Box::pin(rows_keep_their_bytes(f))
        }),
    ]
}

/// The cases of the broker port.
pub fn broker_cases() -> Vec<(&'static str, Case)> {
    vec![
        ("lost_ack_duplicates_without_idempotence", |f| {
            Box::pin(lost_ack_duplicates_without_idempotence(f))
        }),
        ("lost_ack_does_not_duplicate_with_idempotence", |f| {
            Box::pin(lost_ack_does_not_duplicate_with_idempotence(f))
        }),
        ("committed_offsets_resume", |f| {
            Box::pin(committed_offsets_resume(f))
        }),
        (
            "a_broker_slower_than_the_request_timeout_fails_the_send",
            |f| Box::pin(a_broker_slower_than_the_request_timeout_fails_the_send(f)),
        ),
        (
            "a_send_during_an_outage_fails_by_its_delivery_timeout",
            |f| Box::pin(a_send_during_an_outage_fails_by_its_delivery_timeout(f)),
        ),
        (
            "committed_transactions_are_visible_aborted_ones_are_not",
            |f| Box::pin(committed_transactions_are_visible_aborted_ones_are_not(f)),
        ),
        ("a_zombie_producer_is_fenced", |f| {
            Box::pin(a_zombie_producer_is_fenced(f))
        }),
        ("offsets_commit_only_with_the_transaction", |f| {
            Box::pin(offsets_commit_only_with_the_transaction(f))
        }),
        (
            "a_member_waits_out_a_pending_offset_commit_across_rebalances",
            |f| Box::pin(a_member_waits_out_a_pending_offset_commit_across_rebalances(f)),
        ),
        ("offsets_polled_before_a_rebalance_are_reassigned", |f| {
            Box::pin(offsets_polled_before_a_rebalance_are_reassigned(f))
        }),
    ]
}
