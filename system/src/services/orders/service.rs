//! The orders service itself: "place order" and "read order" for shoppers,
//! and, as a consumer [`Handler`], the facts from the payments, inventory
//! reservations and refunds topics. Both go through one path — load the
//! order's state, apply the fact if it is news, store it — whose storage is
//! the model's: a CRUD row, or an appended event (state rebuilt by replay
//! from the latest snapshot). Also the event-sourced model's background
//! [`Snapshotter`].

use super::{
    event_key, GetOrder, OrderEventRow, OrderFact, OrderRow, OrderState, OrdersCall, OrdersError,
    PlaceOrder, SnapshotRow, ViewRow,
};
use crate::events::{decode_payment, ChangeEnvelope, CDC_CHANGE, TYPE_HEADER};
use crate::schema::{
    EffectRow, RefundRow, EFFECTS, ORDERS, ORDER_EVENTS, ORDER_SNAPSHOTS, ORDER_VIEW, REFUNDS,
};
use crate::variants::OrdersModel;
use async_trait::async_trait;
use pitfall_blocks::backoff::Backoff;
use pitfall_blocks::consume::{ApplyError, Handler};
use pitfall_ports::context::RequestContext;
use pitfall_ports::{ConsumerRecord, Database, DbError, Env, Row, Transaction};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A fact about an order and the request it came from.
struct Sourced {
    order_id: String,
    fact: OrderFact,
    request_id: String,
    user_id: String,
}

/// An order's state as loaded inside a transaction, with what storing the
/// next change needs.
struct Loaded {
    state: OrderState,
    /// crud-cdc: the row's version (None: no row yet). event-sourced: the
    /// last event's sequence number (0: no events).
    position: Option<u64>,
}

pub struct OrdersService {
    db: Arc<dyn Database>,
    env: Arc<dyn Env>,
    model: OrdersModel,
    /// event-sourced: tells the snapshotter which orders got new events.
    snapshots: Option<mpsc::UnboundedSender<String>>,
}

impl OrdersService {
    /// The service, and for the event-sourced model the snapshotter that
    /// must run beside it (taking a snapshot every `snapshot_every` events).
    pub fn new(
        model: OrdersModel,
        db: Arc<dyn Database>,
        env: Arc<dyn Env>,
        snapshot_every: u64,
    ) -> (Self, Option<Snapshotter>) {
        let (snapshots, snapshotter) = match model {
            OrdersModel::EventSourced => {
                let (tx, rx) = mpsc::unbounded_channel();
                let snapshotter = Snapshotter {
                    db: db.clone(),
                    env: env.clone(),
                    every: snapshot_every.max(1),
                    due: rx,
                };
                (Some(tx), Some(snapshotter))
            }
            OrdersModel::CrudCdc => (None, None),
        };
        let service = OrdersService {
            db,
            env,
            model,
            snapshots,
        };
        (service, snapshotter)
    }

    pub fn model(&self) -> OrdersModel {
        self.model
    }

    /// Handle one RPC call with its request context as the current one.
    pub async fn call(&self, call: OrdersCall) -> super::OrdersReply {
        match call {
            OrdersCall::Place(req) => {
                let ctx = RequestContext::new(&req.request_id, &req.user_id);
                ctx.scope(self.place(req)).await.map(|()| None)
            }
            OrdersCall::Get(req) => {
                let ctx = RequestContext::new(&req.request_id, &req.user_id);
                ctx.scope(self.get(req)).await
            }
        }
    }

    /// Record the placement (idempotent: placing twice is one placement).
    async fn place(&self, req: PlaceOrder) -> Result<(), OrdersError> {
        let sourced = Sourced {
            order_id: req.order_id.clone(),
            fact: OrderFact::Placed {
                user_id: req.user_id.clone(),
                product: req.product,
                qty: req.qty,
            },
            request_id: req.request_id,
            user_id: req.user_id,
        };
        let mut backoff = Backoff::new(20, 200);
        for _ in 0..5 {
            let result = async {
                let mut tx = self.db.begin().await?;
                match self.record(tx.as_mut(), &sourced).await {
                    Ok(_) => tx.commit().await,
                    Err(e) => {
                        tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(order = sourced.order_id, "orders: order placed");
                    self.snapshot_due(&sourced.order_id);
                    return Ok(());
                }
                Err(DbError::Conflict) => backoff.wait(self.env.as_ref()).await,
                Err(DbError::CommitOutcomeUnknown(m)) => return Err(OrdersError::Unknown(m)),
                Err(e) => return Err(OrdersError::Unavailable(e.to_string())),
            }
        }
        Err(OrdersError::Unavailable("too many conflicts".into()))
    }

    /// The read endpoint: the CRUD row, or the event-sourced query side (the
    /// projection the published events feed).
    async fn get(&self, req: GetOrder) -> super::OrdersReply {
        let unavailable = |e: DbError| OrdersError::Unavailable(e.to_string());
        let mut tx = self.db.begin().await.map_err(unavailable)?;
        let state = match self.model {
            OrdersModel::CrudCdc => read::<OrderRow>(tx.as_mut(), ORDERS, &req.order_id)
                .await
                .map(|r| r.map(|(_, row)| row.state)),
            OrdersModel::EventSourced => read::<ViewRow>(tx.as_mut(), ORDER_VIEW, &req.order_id)
                .await
                .map(|r| r.map(|(_, row)| row.state)),
        };
        tx.rollback().await;
        let state = state.map_err(unavailable)?;
        tracing::info!(
            order = req.order_id,
            found = state.is_some(),
            "orders: order read"
        );
        Ok(state)
    }

    /// Apply a fact inside `tx` if it is news; whether it was.
    async fn record(&self, tx: &mut dyn Transaction, s: &Sourced) -> Result<bool, DbError> {
        let mut loaded = self.load(tx, &s.order_id).await?;
        if !loaded.state.apply(&s.fact) {
            return Ok(false);
        }
        match self.model {
            OrdersModel::CrudCdc => {
                let row = OrderRow {
                    order_id: s.order_id.clone(),
                    state: loaded.state,
                    last: s.fact.clone(),
                    request_id: s.request_id.clone(),
                    user_id: s.user_id.clone(),
                };
                let data = json(&row);
                match loaded.position {
                    None => insert(tx, ORDERS, &s.order_id, data).await?,
                    Some(version) => {
                        if !tx.update(ORDERS, &s.order_id, version, data).await? {
                            return Err(DbError::Conflict);
                        }
                    }
                }
            }
            OrdersModel::EventSourced => {
                let seq = loaded.position.take().unwrap_or(0) + 1;
                let event = OrderEventRow {
                    order_id: s.order_id.clone(),
                    seq,
                    fact: s.fact.clone(),
                    request_id: s.request_id.clone(),
                    user_id: s.user_id.clone(),
                };
                insert(tx, ORDER_EVENTS, &event_key(&s.order_id, seq), json(&event)).await?;
            }
        }
        Ok(true)
    }

    async fn load(&self, tx: &mut dyn Transaction, order_id: &str) -> Result<Loaded, DbError> {
        match self.model {
            OrdersModel::CrudCdc => Ok(match read::<OrderRow>(tx, ORDERS, order_id).await? {
                Some((version, row)) => Loaded {
                    state: row.state,
                    position: Some(version),
                },
                None => Loaded {
                    state: OrderState::new(order_id),
                    position: None,
                },
            }),
            OrdersModel::EventSourced => {
                let (state, last) = replay(tx, order_id).await?;
                Ok(Loaded {
                    state,
                    position: Some(last),
                })
            }
        }
    }

    fn snapshot_due(&self, order_id: &str) {
        if let Some(snapshots) = &self.snapshots {
            let _ = snapshots.send(order_id.to_string());
        }
    }
}

#[async_trait]
impl Handler for OrdersService {
    fn event_id(&self, record: &ConsumerRecord) -> Result<String, ApplyError> {
        let version = match record.header(TYPE_HEADER) {
            Some(CDC_CHANGE) => change_of(record)?.version,
            _ => decode(record)?.1,
        };
        Ok(format!("{}:{}@{version}", record.topic, record.key))
    }

    async fn apply(
        &self,
        tx: &mut dyn Transaction,
        record: &ConsumerRecord,
    ) -> Result<(), ApplyError> {
        let (sourced, _) = decode(record)?;
        if self.record(tx, &sourced).await? {
            tracing::info!(order = sourced.order_id, fact = ?sourced.fact, "orders: fact recorded");
            // Before the commit: the snapshotter reads only committed events,
            // so at worst it finds nothing new and waits for the next one.
            self.snapshot_due(&sourced.order_id);
        }
        Ok(())
    }
}

/// The fact a consumed record tells, and its revision: a payment (domain
/// event or change), an inventory effect change, or a refund change.
fn decode(record: &ConsumerRecord) -> Result<(Sourced, u64), ApplyError> {
    let poison = |e: String| ApplyError::Poison(e);
    if record.header(TYPE_HEADER) == Some(CDC_CHANGE) {
        let change = change_of(record)?;
        if change.table == EFFECTS {
            let effect: EffectRow = serde_json::from_value(change.after.clone())
                .map_err(|e| poison(format!("bad effect row: {e}")))?;
            let fact = OrderFact::Stock {
                status: effect.status,
                version: change.version,
            };
            return Ok((
                Sourced {
                    order_id: effect.order_id,
                    fact,
                    request_id: effect.request_id,
                    user_id: effect.user_id,
                },
                change.version,
            ));
        }
        if change.table == REFUNDS {
            let refund: RefundRow = serde_json::from_value(change.after.clone())
                .map_err(|e| poison(format!("bad refund row: {e}")))?;
            return Ok((
                Sourced {
                    order_id: refund.order_id,
                    fact: OrderFact::Refunded {
                        refund_id: refund.refund_id,
                    },
                    request_id: refund.request_id,
                    user_id: refund.user_id,
                },
                change.version,
            ));
        }
    }
    let payment = decode_payment(record).map_err(|e| poison(e.to_string()))?;
    let revision = payment.revision;
    Ok((
        Sourced {
            order_id: payment.order_id,
            fact: OrderFact::Payment {
                status: payment.status,
                revision,
            },
            request_id: payment.request_id,
            user_id: payment.user_id,
        },
        revision,
    ))
}

fn change_of(record: &ConsumerRecord) -> Result<ChangeEnvelope, ApplyError> {
    serde_json::from_slice(&record.value.bytes())
        .map_err(|e| ApplyError::Poison(format!("bad change envelope: {e}")))
}

/// Rebuild an order's state by replay: the latest snapshot, then every
/// event after it. Returns the state and the last event's sequence number.
async fn replay(tx: &mut dyn Transaction, order_id: &str) -> Result<(OrderState, u64), DbError> {
    let (mut state, mut last) = match read::<SnapshotRow>(tx, ORDER_SNAPSHOTS, order_id).await? {
        Some((_, snapshot)) => (snapshot.state, snapshot.upto),
        None => (OrderState::new(order_id), 0),
    };
    while let Some((_, event)) =
        read::<OrderEventRow>(tx, ORDER_EVENTS, &event_key(order_id, last + 1)).await?
    {
        state.apply(&event.fact);
        last += 1;
    }
    Ok((state, last))
}

/// The event-sourced model's background process: after new events, it
/// rebuilds the order by replay and stores a snapshot once `every` events
/// have accumulated since the last one. Its queue lives in memory, so a
/// crash forgets what was due (the snapshot stays stale until the order's
/// next event) — the "background process with its own issues".
pub struct Snapshotter {
    db: Arc<dyn Database>,
    env: Arc<dyn Env>,
    every: u64,
    due: mpsc::UnboundedReceiver<String>,
}

impl Snapshotter {
    pub async fn run(mut self) {
        while let Some(first) = self.due.recv().await {
            // Let the events' transactions commit, then take what piled up.
            self.env.sleep(std::time::Duration::from_millis(100)).await;
            let mut orders = BTreeSet::from([first]);
            while let Ok(more) = self.due.try_recv() {
                orders.insert(more);
            }
            for order in orders {
                let mut backoff = Backoff::new(50, 1_000);
                for _ in 0..5 {
                    match self.snapshot(&order).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, order, "snapshotter: snapshot failed");
                            backoff.wait(self.env.as_ref()).await;
                        }
                    }
                }
            }
        }
    }

    async fn snapshot(&self, order_id: &str) -> Result<(), DbError> {
        let mut tx = self.db.begin().await?;
        let existing = read::<SnapshotRow>(tx.as_mut(), ORDER_SNAPSHOTS, order_id).await?;
        let upto = existing.as_ref().map_or(0, |(_, s)| s.upto);
        let (state, last) = replay(tx.as_mut(), order_id).await?;
        if last < upto + self.every {
            tx.rollback().await;
            return Ok(());
        }
        let data = json(&SnapshotRow {
            order_id: order_id.to_string(),
            upto: last,
            state,
        });
        match existing {
            None => insert(tx.as_mut(), ORDER_SNAPSHOTS, order_id, data).await?,
            Some((version, _)) => {
                if !tx.update(ORDER_SNAPSHOTS, order_id, version, data).await? {
                    return Err(DbError::Conflict);
                }
            }
        }
        tx.commit().await?;
        tracing::info!(order = order_id, upto = last, "snapshotter: snapshot taken");
        Ok(())
    }
}

/// A row and its version, parsed.
pub(super) async fn read<T: DeserializeOwned>(
    tx: &mut dyn Transaction,
    table: &str,
    key: &str,
) -> Result<Option<(u64, T)>, DbError> {
    let Some(Row { version, data, .. }) = tx.get(table, key).await? else {
        return Ok(None);
    };
    serde_json::from_value(data)
        .map(|v| Some((version, v)))
        .map_err(|e| DbError::Other(format!("bad {table} row {key}: {e}")))
}

/// Insert; a row that appeared concurrently is a conflict to retry, not an
/// answer (the retry reloads and sees it).
pub(super) async fn insert(
    tx: &mut dyn Transaction,
    table: &str,
    key: &str,
    data: serde_json::Value,
) -> Result<(), DbError> {
    match tx.insert(table, key, data).await {
        Err(DbError::UniqueViolation { .. }) => Err(DbError::Conflict),
        other => other,
    }
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("row serializes")
}
