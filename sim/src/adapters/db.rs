//! The DB port over turmoil TCP: one connection per transaction, one round
//! trip per statement. A commit whose reply never comes is reported as
//! `CommitOutcomeUnknown`, never as a failure.

use super::REQUEST_TIMEOUT;
use crate::servers::db::{DbRequest, DbResponse, PORT};
use crate::wire::{self, CallError, Conn};
use async_trait::async_trait;
use pitfall_ports::{Blob, Change, ChangeFeed, Database, DbError, Lsn, Row, Transaction};
use serde_json::Value;
use std::time::Duration;

/// A client of one simulated DB host.
pub struct SimDb {
    addr: String,
}

impl SimDb {
    pub fn new(host: &str) -> Self {
        SimDb {
            addr: format!("{host}:{PORT}"),
        }
    }

    /// A one-statement exchange on a fresh connection.
    async fn once(&self, req: DbRequest) -> Result<DbResponse, DbError> {
        self.once_waiting(req, Duration::ZERO).await
    }

    /// [`Self::once`] for a request the server may hold up to `wait`.
    async fn once_waiting(&self, req: DbRequest, wait: Duration) -> Result<DbResponse, DbError> {
        let mut conn = wire::connect(&self.addr, REQUEST_TIMEOUT)
            .await
            .map_err(unavailable)?;
        let resp = wire::call(&mut conn, &req, REQUEST_TIMEOUT + wait)
            .await
            .map_err(unavailable)?;
        match resp {
            DbResponse::Error(e) => Err(e),
            other => Ok(other),
        }
    }
}

fn unavailable(e: CallError) -> DbError {
    DbError::Unavailable(e.to_string())
}

fn unexpected(resp: DbResponse) -> DbError {
    DbError::Other(format!("unexpected reply {resp:?}"))
}

#[async_trait]
impl Database for SimDb {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        let conn = wire::connect(&self.addr, REQUEST_TIMEOUT)
            .await
            .map_err(unavailable)?;
        Ok(Box::new(SimTx { conn }))
    }
}

struct SimTx {
    conn: Conn,
}

impl SimTx {
    async fn statement(&mut self, req: DbRequest) -> Result<DbResponse, DbError> {
        match wire::call(&mut self.conn, &req, REQUEST_TIMEOUT).await {
            Ok(DbResponse::Error(e)) => Err(e),
            Ok(resp) => Ok(resp),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl Transaction for SimTx {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError> {
        match self
            .statement(DbRequest::Get {
                table: table.into(),
                key: key.into(),
            })
            .await?
        {
            DbResponse::Row(row) => Ok(row),
            other => Err(unexpected(other)),
        }
    }

    async fn insert(&mut self, table: &str, key: &str, data: Value) -> Result<(), DbError> {
        match self
            .statement(DbRequest::Insert {
                table: table.into(),
                key: key.into(),
                data,
            })
            .await?
        {
            DbResponse::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The bytes cross as a [`Blob`]: a view of generated content stays a
    /// view, so a stored chunk is neither made nor base64-encoded.
    async fn insert_bytes(
        &mut self,
        table: &str,
        key: &str,
        data: Value,
        bytes: Blob,
    ) -> Result<(), DbError> {
        match self
            .statement(DbRequest::InsertBytes {
                table: table.into(),
                key: key.into(),
                data,
                bytes,
            })
            .await?
        {
            DbResponse::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn get_bytes(&mut self, table: &str, key: &str) -> Result<Option<Option<Blob>>, DbError> {
        match self
            .statement(DbRequest::GetBytes {
                table: table.into(),
                key: key.into(),
            })
            .await?
        {
            DbResponse::Bytes { row, bytes } => Ok(row.then_some(bytes)),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &mut self,
        table: &str,
        key: &str,
        expected: u64,
        data: Value,
    ) -> Result<bool, DbError> {
        match self
            .statement(DbRequest::Update {
                table: table.into(),
                key: key.into(),
                expected,
                data,
            })
            .await?
        {
            DbResponse::Updated(updated) => Ok(updated),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError> {
        match self
            .statement(DbRequest::Delete {
                table: table.into(),
                key: key.into(),
            })
            .await?
        {
            DbResponse::Updated(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        match wire::call(&mut self.conn, &DbRequest::Commit, REQUEST_TIMEOUT).await {
            Ok(DbResponse::Committed(_)) => Ok(()),
            Ok(DbResponse::Error(e)) => Err(e),
            Ok(other) => Err(unexpected(other)),
            Err(CallError::NotSent(m)) => Err(DbError::Unavailable(m)),
            Err(CallError::NoReply(m)) => Err(DbError::CommitOutcomeUnknown(m)),
        }
    }

    async fn rollback(mut self: Box<Self>) {
        // Best effort: closing the connection rolls back just the same.
        let _ = wire::call::<_, DbResponse>(&mut self.conn, &DbRequest::Rollback, REQUEST_TIMEOUT)
            .await;
    }
}

#[async_trait]
impl ChangeFeed for SimDb {
    async fn confirmed(&self, slot: &str) -> Result<Lsn, DbError> {
        match self
            .once(DbRequest::SlotConfirmed { slot: slot.into() })
            .await?
        {
            DbResponse::Position(lsn) => Ok(lsn),
            other => Err(unexpected(other)),
        }
    }

    async fn poll(&self, slot: &str, after: Lsn, max: usize) -> Result<Vec<Change>, DbError> {
        self.poll_wait(slot, after, max, Duration::ZERO).await
    }

    /// The server holds the poll until a commit or the wait runs out.
    async fn poll_wait(
        &self,
        slot: &str,
        after: Lsn,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<Change>, DbError> {
        let req = DbRequest::Poll {
            slot: slot.into(),
            after,
            max,
            max_wait_ms: max_wait.as_millis() as u64,
        };
        match self.once_waiting(req, max_wait).await? {
            DbResponse::Changes(changes) => Ok(changes),
            other => Err(unexpected(other)),
        }
    }

    async fn confirm(&self, slot: &str, lsn: Lsn) -> Result<(), DbError> {
        match self
            .once(DbRequest::Confirm {
                slot: slot.into(),
                lsn,
            })
            .await?
        {
            DbResponse::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
