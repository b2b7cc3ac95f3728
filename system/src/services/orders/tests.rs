//! The orders service, its snapshotter, the translator and the view against
//! an in-memory DB: what each model stores, and what reads see.

use super::translator::translate;
use super::view::Project;
use super::*;
use crate::events::{ChangeEnvelope, CDC_CHANGE, TYPE_HEADER};
use crate::schema::{EffectStatus, ORDERS, ORDER_EVENTS, ORDER_SNAPSHOTS};
use crate::variants::OrdersModel;
use async_trait::async_trait;
use pitfall_blocks::consume::{ApplyError, Handler};
use pitfall_ports::{Change, ChangeOp, ConsumerRecord, Database, DbError, Env, Row, Transaction};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Tables = BTreeMap<(String, String), (u64, Value)>;

/// Rows by (table, key); a transaction applies its writes at commit.
#[derive(Default)]
struct MemDb {
    rows: Arc<Mutex<Tables>>,
}

struct MemTx {
    rows: Arc<Mutex<Tables>>,
    writes: Tables,
    /// Rows this transaction deleted (and did not insert again).
    deleted: std::collections::BTreeSet<(String, String)>,
}

#[async_trait]
impl Database for MemDb {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        Ok(Box::new(MemTx {
            rows: self.rows.clone(),
            writes: Tables::new(),
            deleted: Default::default(),
        }))
    }
}

impl MemTx {
    fn current(&self, table: &str, key: &str) -> Option<(u64, Value)> {
        let k = (table.to_string(), key.to_string());
        if self.deleted.contains(&k) {
            return None;
        }
        self.writes
            .get(&k)
            .cloned()
            .or_else(|| self.rows.lock().unwrap().get(&k).cloned())
    }
}

#[async_trait]
impl Transaction for MemTx {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError> {
        Ok(self.current(table, key).map(|(version, data)| Row {
            key: key.to_string(),
            version,
            data,
        }))
    }
    async fn insert(&mut self, table: &str, key: &str, data: Value) -> Result<(), DbError> {
        if self.current(table, key).is_some() {
            return Err(DbError::UniqueViolation {
                table: table.into(),
                key: key.into(),
            });
        }
        self.deleted.remove(&(table.into(), key.into()));
        self.writes.insert((table.into(), key.into()), (1, data));
        Ok(())
    }
    async fn update(
        &mut self,
        table: &str,
        key: &str,
        expected: u64,
        data: Value,
    ) -> Result<bool, DbError> {
        match self.current(table, key) {
            Some((v, _)) if v == expected => {
                self.writes
                    .insert((table.into(), key.into()), (expected + 1, data));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError> {
        let found = self.current(table, key).is_some();
        if found {
            let k = (table.to_string(), key.to_string());
            self.writes.remove(&k);
            self.deleted.insert(k);
        }
        Ok(found)
    }
    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        let mut rows = self.rows.lock().unwrap();
        for k in &self.deleted {
            rows.remove(k);
        }
        rows.extend(self.writes);
        Ok(())
    }
    async fn rollback(self: Box<Self>) {}
}

struct NoEnv;

#[async_trait]
impl Env for NoEnv {
    fn now_ms(&self) -> u64 {
        0
    }
    async fn sleep(&self, _: Duration) {}
    fn random_u64(&self) -> u64 {
        4
    }
}

fn place(order: &str) -> OrdersCall {
    OrdersCall::Place(PlaceOrder {
        order_id: order.into(),
        product: "apple".into(),
        qty: 2,
        user_id: "u1".into(),
        request_id: format!("r-{order}"),
    })
}

fn get(order: &str) -> OrdersCall {
    OrdersCall::Get(GetOrder {
        order_id: order.into(),
        user_id: "u1".into(),
        request_id: "r-read".into(),
    })
}

/// A CDC change record of `table`/`key` at `version`.
fn change(topic: &str, table: &str, key: &str, version: u64, after: Value) -> ConsumerRecord {
    let envelope = ChangeEnvelope::from(&Change {
        lsn: version,
        table: table.into(),
        key: key.into(),
        op: ChangeOp::Insert,
        version,
        data: after,
    });
    ConsumerRecord {
        topic: topic.into(),
        partition: 0,
        offset: version,
        key: key.into(),
        value: serde_json::to_vec(&envelope).unwrap().into(),
        headers: vec![(TYPE_HEADER.into(), CDC_CHANGE.into())],
    }
}

fn effect(order: &str, version: u64, status: &str) -> ConsumerRecord {
    let row = json!({
        "revision": 1, "status": status, "product": "apple", "held": 2,
        "order_id": order, "request_id": "r-pay", "user_id": "u1",
    });
    change(
        "inventory-db.payment_effects",
        "payment_effects",
        &format!("pay-{order}"),
        version,
        row,
    )
}

async fn apply(
    db: &MemDb,
    handler: &dyn Handler,
    record: &ConsumerRecord,
) -> Result<(), ApplyError> {
    let mut tx = db.begin().await?;
    handler.apply(tx.as_mut(), record).await?;
    tx.commit().await?;
    Ok(())
}

fn row<T: serde::de::DeserializeOwned>(db: &MemDb, table: &str, key: &str) -> Option<(u64, T)> {
    let rows = db.rows.lock().unwrap();
    let (version, data) = rows.get(&(table.to_string(), key.to_string()))?;
    Some((*version, serde_json::from_value(data.clone()).unwrap()))
}

#[tokio::test]
async fn crud_reads_its_own_write_and_ignores_stale_facts() {
    let db = Arc::new(MemDb::default());
    let (service, snapshotter) =
        OrdersService::new(OrdersModel::CrudCdc, db.clone(), Arc::new(NoEnv), 3);
    assert!(snapshotter.is_none());
    service.call(place("o1")).await.unwrap();
    service.call(place("o1")).await.unwrap(); // a retry is one placement
    let read = service.call(get("o1")).await.unwrap().unwrap();
    assert!(read.placed && read.qty == 2);

    apply(&db, &service, &effect("o1", 2, "released"))
        .await
        .unwrap();
    apply(&db, &service, &effect("o1", 1, "reserved"))
        .await
        .unwrap(); // older: ignored
    let (version, order) = row::<OrderRow>(&db, ORDERS, "o1").unwrap();
    assert_eq!(version, 2);
    assert_eq!(order.state.stock, Some(EffectStatus::Released));
    assert_eq!(
        order.last,
        OrderFact::Stock {
            status: EffectStatus::Released,
            version: 2
        }
    );
    assert_eq!(order.request_id, "r-pay");
    assert!(service
        .event_id(&effect("o1", 2, "released"))
        .unwrap()
        .ends_with("pay-o1@2"));

    // The translator names the change and carries the whole state.
    let raw = change(
        "orders-db.orders",
        ORDERS,
        "o1",
        version,
        serde_json::to_value(&order).unwrap(),
    );
    let official = translate(&raw).unwrap();
    assert_eq!((official.revision, official.state), (2, order.state));
}

#[tokio::test]
async fn event_sourced_appends_replays_snapshots_and_reads_the_projection() {
    let db = Arc::new(MemDb::default());
    let (service, snapshotter) =
        OrdersService::new(OrdersModel::EventSourced, db.clone(), Arc::new(NoEnv), 2);
    service.call(place("o1")).await.unwrap();
    apply(&db, &service, &effect("o1", 1, "reserved"))
        .await
        .unwrap();
    apply(&db, &service, &effect("o1", 1, "reserved"))
        .await
        .unwrap(); // not news
    apply(&db, &service, &effect("o1", 2, "released"))
        .await
        .unwrap();
    let events: Vec<OrderEventRow> = (1..=4)
        .filter_map(|seq| row(&db, ORDER_EVENTS, &event_key("o1", seq)).map(|(_, e)| e))
        .collect();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // The read side is the projection: nothing until the events reach it.
    assert_eq!(service.call(get("o1")).await.unwrap(), None);

    // The snapshotter, told of the order, stores the replayed state.
    let task = tokio::spawn(snapshotter.unwrap().run());
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(service); // closes the queue; the snapshotter finishes what is due
    task.await.unwrap();
    let (_, snapshot) = row::<SnapshotRow>(&db, ORDER_SNAPSHOTS, "o1").unwrap();
    assert_eq!(snapshot.upto, 3);
    assert_eq!(
        snapshot.state,
        OrderState::fold("o1", events.iter().map(|e| &e.fact))
    );

    // The projection folds the published events in sequence.
    let published = |e: &OrderEventRow| {
        change(
            "orders-db.order_events",
            ORDER_EVENTS,
            &e.order_id,
            1,
            serde_json::to_value(e).unwrap(),
        )
    };
    apply(&db, &Project, &published(&events[0])).await.unwrap();
    let gap = apply(&db, &Project, &published(&events[2])).await;
    assert!(
        matches!(gap, Err(ApplyError::Poison(ref m)) if m.contains("cannot skip")),
        "{gap:?}"
    );
    for e in &events[1..] {
        apply(&db, &Project, &published(e)).await.unwrap();
    }
    apply(&db, &Project, &published(&events[1])).await.unwrap(); // a replay changes nothing
    let (_, view) = row::<ViewRow>(&db, crate::schema::ORDER_VIEW, "o1").unwrap();
    assert_eq!((view.revision, view.state), (3, snapshot.state));
}
