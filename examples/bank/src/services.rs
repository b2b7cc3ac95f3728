//! The bank's services, written only against pitfall's ports and blocks:
//! the transfers service (moves the money and, per the `relay` variant,
//! writes the outbox row in the same transaction or produces the event
//! after the commit) and the ledger (books each transfer as a debit and a
//! credit entry).

use crate::config::Relay;
use crate::model::*;
use async_trait::async_trait;
use pitfall::blocks::cdc::{ChangeEnvelope, CDC_CHANGE};
use pitfall::blocks::consume::{ApplyError, Handler};
use pitfall::blocks::publish::{self, TYPE_HEADER};
use pitfall::ports::context::RequestContext;
use pitfall::ports::{ConsumerRecord, Database, DbError, Env, Producer, Transaction};
use std::sync::Arc;

/// How many times a transfer is retried on a serialization conflict.
const CONFLICT_RETRIES: u32 = 5;

/// What one attempt at committing a transfer came to.
enum Outcome {
    Made,
    /// This transfer id was made before (a retry).
    AlreadyMade,
    Rejected(String),
}

pub struct TransfersService {
    db: Arc<dyn Database>,
    relay: Relay,
    /// The producer of the dual write; none with the outbox.
    producer: Option<Arc<dyn Producer>>,
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("rows serialize")
}

impl TransfersService {
    pub fn new(db: Arc<dyn Database>, relay: Relay, producer: Option<Arc<dyn Producer>>) -> Self {
        TransfersService {
            db,
            relay,
            producer,
        }
    }

    /// One call at the front door, inside its request's context.
    pub async fn call(&self, t: Transfer) -> TransferReply {
        let ctx = RequestContext::new(&t.request_id, &t.user_id);
        ctx.scope(self.transfer(t)).await
    }

    async fn transfer(&self, t: Transfer) -> TransferReply {
        for _ in 0..CONFLICT_RETRIES {
            match self.commit(&t).await {
                Ok(Outcome::Made) => return self.after_commit(&t).await,
                Ok(Outcome::AlreadyMade) | Err(DbError::UniqueViolation { .. }) => return Ok(()),
                Ok(Outcome::Rejected(why)) => return Err(TransferError::Rejected(why)),
                Err(DbError::Conflict) => continue,
                Err(DbError::CommitOutcomeUnknown(e)) => return Err(TransferError::Unknown(e)),
                Err(e) => return Err(TransferError::Unavailable(e.to_string())),
            }
        }
        Err(TransferError::Unavailable("too many conflicts".into()))
    }

    /// Move the money and record the transfer (and, with the outbox, its
    /// event) in one transaction.
    async fn commit(&self, t: &Transfer) -> Result<Outcome, DbError> {
        let mut tx = self.db.begin().await?;
        if tx.get(TRANSFERS_TABLE, &t.transfer_id).await?.is_some() {
            tx.rollback().await;
            return Ok(Outcome::AlreadyMade);
        }
        let (Some(from), Some(to)) = (
            tx.get(ACCOUNTS, &t.from).await?,
            tx.get(ACCOUNTS, &t.to).await?,
        ) else {
            tx.rollback().await;
            return Ok(Outcome::Rejected(format!(
                "unknown account in {}",
                t.transfer_id
            )));
        };
        let balance = |row: &pitfall::ports::Row| row.data["balance"].as_i64().unwrap_or(0);
        if balance(&from) < t.amount || t.from == t.to {
            tx.rollback().await;
            return Ok(Outcome::Rejected(format!(
                "{} cannot pay {} to {}",
                t.from, t.amount, t.to
            )));
        }
        move_money(tx.as_mut(), &from, -t.amount).await?;
        move_money(tx.as_mut(), &to, t.amount).await?;
        tx.insert(TRANSFERS_TABLE, &t.transfer_id, json(t)).await?;
        if self.relay == Relay::OutboxCdc {
            tx.insert(OUTBOX, &t.transfer_id, json(t)).await?;
        }
        tx.commit().await?;
        Ok(Outcome::Made)
    }

    /// The dual write's second write: produce the event after the commit.
    /// If it fails, the transfer stays made and its event is lost — the
    /// pitfall the outbox removes.
    async fn after_commit(&self, t: &Transfer) -> TransferReply {
        let Some(producer) = &self.producer else {
            return Ok(());
        };
        let value = serde_json::to_vec(t).expect("events serialize");
        let record = publish::record(TOPIC, &t.from, TRANSFER_MADE, value);
        producer
            .send(record)
            .await
            .map(drop)
            .map_err(|e| TransferError::Unknown(e.to_string()))
    }
}

async fn move_money(
    tx: &mut dyn Transaction,
    account: &pitfall::ports::Row,
    delta: i64,
) -> Result<(), DbError> {
    let balance = account.data["balance"].as_i64().unwrap_or(0) + delta;
    let data = json(&Account { balance });
    if tx
        .update(ACCOUNTS, &account.key, account.version, data)
        .await?
    {
        Ok(())
    } else {
        Err(DbError::Conflict)
    }
}

/// The ledger: books each transfer as a debit and a credit entry, in the
/// transaction the consumer loop gives it.
pub struct Book {
    env: Arc<dyn Env>,
}

impl Book {
    pub fn new(env: Arc<dyn Env>) -> Self {
        Book { env }
    }
}

/// The transfer a record carries: a change event of the outbox, or the
/// event the dual write produced.
pub fn decode(record: &ConsumerRecord) -> Result<TransferMade, ApplyError> {
    let poison = |e: serde_json::Error| {
        ApplyError::Poison(format!(
            "{}/{}@{}: {e}",
            record.topic, record.partition, record.offset
        ))
    };
    match record.header(TYPE_HEADER) {
        Some(CDC_CHANGE) => {
            let change: ChangeEnvelope =
                serde_json::from_slice(&record.value.bytes()).map_err(poison)?;
            serde_json::from_value(change.after).map_err(poison)
        }
        Some(TRANSFER_MADE) => serde_json::from_slice(&record.value.bytes()).map_err(poison),
        other => Err(ApplyError::Poison(format!("unknown record type {other:?}"))),
    }
}

#[async_trait]
impl Handler for Book {
    fn event_id(&self, record: &ConsumerRecord) -> Result<String, ApplyError> {
        Ok(decode(record)?.transfer_id)
    }

    async fn apply(
        &self,
        tx: &mut dyn Transaction,
        record: &ConsumerRecord,
    ) -> Result<(), ApplyError> {
        let t = decode(record)?;
        for (account, delta) in [(&t.from, -t.amount), (&t.to, t.amount)] {
            let entry = Entry {
                transfer_id: t.transfer_id.clone(),
                account: account.clone(),
                delta,
            };
            let id = format!("e{:016x}", self.env.random_u64());
            tx.insert(ENTRIES, &id, json(&entry)).await?;
        }
        Ok(())
    }
}
