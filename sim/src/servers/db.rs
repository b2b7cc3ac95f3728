//! The simulated DB: keyed tables with a version column, multi-statement
//! transactions with optimistic serializable validation at commit, primary-key
//! uniqueness, and a change log ordered by commit position that replication
//! slots tail. Commits are durable across crashes; open transactions live in
//! their connection and die with it.

use super::{before_request, peer_name, SharedFaults};
use crate::wire;
use pitfall_harness::coverage;
use pitfall_harness::history::{Event, History};
use pitfall_ports::{history_summary_of_row, Blob, Change, ChangeOp, DbError, Lsn, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use turmoil::net::TcpListener;

pub const PORT: u16 = 5432;
/// A connection idle this long is closed (its open transaction is lost).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DbRequest {
    Get {
        table: String,
        key: String,
    },
    Insert {
        table: String,
        key: String,
        data: Value,
    },
    /// An insert of a row with bytes ([`Transaction::insert_bytes`]): a
    /// view of generated content crosses as its view.
    ///
    /// [`Transaction::insert_bytes`]: pitfall_ports::Transaction::insert_bytes
    InsertBytes {
        table: String,
        key: String,
        data: Value,
        bytes: Blob,
    },
    GetBytes {
        table: String,
        key: String,
    },
    Update {
        table: String,
        key: String,
        expected: u64,
        data: Value,
    },
    Delete {
        table: String,
        key: String,
    },
    Commit,
    Rollback,
    SlotConfirmed {
        slot: String,
    },
    Poll {
        slot: String,
        after: Lsn,
        max: usize,
        /// A long poll: with nothing to return, wait this long for a commit.
        #[serde(default)]
        max_wait_ms: u64,
    },
    Confirm {
        slot: String,
        lsn: Lsn,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbResponse {
    Row(Option<Row>),
    /// A row's bytes: whether there is a row, and its bytes if it has
    /// them (two fields: MessagePack writes `Some(None)` as `None`).
    Bytes {
        row: bool,
        bytes: Option<Blob>,
    },
    Done,
    Updated(bool),
    Committed(Lsn),
    Changes(Vec<Change>),
    Position(Lsn),
    Error(DbError),
}

/// A row as the DB keeps it. Its data is shared with the change log's
/// entry for the write that made it: a large row (a stored payload chunk)
/// is held once, not once per place it is in.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    version: u64,
    data: Arc<Value>,
    /// What [`DbRequest::InsertBytes`] stored besides the data.
    bytes: Option<Blob>,
}

/// One row change in the log.
#[derive(Clone, Debug)]
struct Logged {
    table: String,
    key: String,
    op: ChangeOp,
    version: u64,
    data: Arc<Value>,
    bytes: Option<Blob>,
}

impl Logged {
    fn change(&self, lsn: Lsn, data: Value) -> Change {
        Change {
            lsn,
            table: self.table.clone(),
            key: self.key.clone(),
            op: self.op,
            version: self.version,
            data,
        }
    }

    /// The change as a history records it ([`Change::for_history`]),
    /// without copying a row the history summarizes. A row's bytes are
    /// recorded by size and digest under [`STORED_BYTES`].
    fn for_history(&self, lsn: Lsn) -> Change {
        let mut data = history_summary_of_row(&self.data).unwrap_or_else(|| (*self.data).clone());
        if let (Some(bytes), Value::Object(object)) = (&self.bytes, &mut data) {
            let summary = pitfall_ports::digest::summary(bytes.len(), bytes.digest());
            object.insert(STORED_BYTES.to_string(), summary);
        }
        self.change(lsn, data)
    }
}

#[derive(Clone, Debug)]
struct Commit {
    lsn: Lsn,
    changes: Vec<Logged>,
}

/// The durable state of one DB.
#[derive(Debug, Default)]
pub struct DbState {
    tables: BTreeMap<String, BTreeMap<String, Stored>>,
    /// The change log: every commit some slot has yet to confirm.
    log: Vec<Commit>,
    /// The replication slots the DB serves, when declared
    /// ([`DbState::with_slots`]): the log then keeps only what one of them
    /// has not confirmed (none at all without slots), as a server recycles
    /// its WAL, and another slot's name is refused. `None` keeps the whole
    /// log and serves any slot name.
    declared: Option<Vec<String>>,
    head: Lsn,
    slots: BTreeMap<String, Lsn>,
    /// Per slot, the last change served (for the coverage marks).
    served: BTreeMap<String, Lsn>,
}

/// Where a history records the bytes of a row that has them, by size and
/// digest.
pub const STORED_BYTES: &str = "stored_bytes";

#[derive(Clone, Debug)]
enum Write {
    Insert {
        data: Value,
        bytes: Option<Blob>,
    },
    Update {
        expected: u64,
        data: Value,
    },
    /// The row at version `expected`.
    Delete {
        expected: u64,
    },
}

/// An open transaction: what it read (for validation) and what it wrote, in
/// statement order.
#[derive(Debug, Default)]
pub struct Tx {
    reads: BTreeMap<(String, String), Option<u64>>,
    writes: Vec<((String, String), Write)>,
}

impl Tx {
    /// The row as this transaction's last write of it left it: `None` if
    /// it did not write it, `Some(None)` if it deleted it.
    fn own_write(&self, table: &str, key: &str) -> Option<Option<(u64, &Value)>> {
        self.last_write(table, key).map(|w| match w {
            Write::Insert { data, .. } => Some((1, data)),
            Write::Update { expected, data } => Some((expected + 1, data)),
            Write::Delete { .. } => None,
        })
    }

    /// This transaction's last write of the row, if it wrote it.
    fn last_write(&self, table: &str, key: &str) -> Option<&Write> {
        self.writes
            .iter()
            .rev()
            .find(|((t, k), _)| t == table && k == key)
            .map(|(_, w)| w)
    }
}

impl DbState {
    /// A DB serving exactly these replication slots.
    pub fn with_slots(slots: Vec<String>) -> DbState {
        DbState {
            declared: Some(slots),
            ..DbState::default()
        }
    }

    /// Whether the DB serves `slot`.
    pub fn has_slot(&self, slot: &str) -> bool {
        self.declared
            .as_ref()
            .is_none_or(|slots| slots.iter().any(|s| s == slot))
    }

    /// Drop what every declared slot has confirmed.
    fn recycle_log(&mut self) {
        let Some(slots) = &self.declared else {
            return;
        };
        let confirmed = slots
            .iter()
            .map(|s| self.slot_position(s))
            .min()
            .unwrap_or(self.head);
        let done = self.log.partition_point(|c| c.lsn <= confirmed);
        self.log.drain(..done);
    }

    fn version(&self, table: &str, key: &str) -> Option<u64> {
        self.tables.get(table)?.get(key).map(|s| s.version)
    }

    /// The position of the last commit.
    pub fn head(&self) -> Lsn {
        self.head
    }

    pub fn slot_position(&self, slot: &str) -> Lsn {
        self.slots.get(slot).copied().unwrap_or(0)
    }

    pub fn rows(&self, table: &str) -> Vec<Row> {
        self.tables
            .get(table)
            .map(|t| {
                t.iter()
                    .map(|(k, s)| Row {
                        key: k.clone(),
                        version: s.version,
                        data: (*s.data).clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn get(&self, tx: &mut Tx, table: &str, key: &str) -> Option<Row> {
        if let Some(own) = tx.own_write(table, key) {
            return own.map(|(version, data)| Row {
                key: key.to_string(),
                version,
                data: data.clone(),
            });
        }
        let stored = self.tables.get(table).and_then(|t| t.get(key));
        tx.reads
            .entry((table.to_string(), key.to_string()))
            .or_insert(stored.map(|s| s.version));
        stored.map(|s| Row {
            key: key.to_string(),
            version: s.version,
            data: (*s.data).clone(),
        })
    }

    /// The bytes of the row, as [`Transaction::get_bytes`] gives them:
    /// `None` for no row, `Some(None)` for a row without bytes. A read, as
    /// [`DbState::get`] is.
    ///
    /// [`Transaction::get_bytes`]: pitfall_ports::Transaction::get_bytes
    pub fn get_bytes(&self, tx: &mut Tx, table: &str, key: &str) -> Option<Option<Blob>> {
        if let Some(write) = tx.last_write(table, key) {
            // An update replaces the row's data and leaves it no bytes.
            return match write {
                Write::Insert { bytes, .. } => Some(bytes.clone()),
                Write::Update { .. } => Some(None),
                Write::Delete { .. } => None,
            };
        }
        let stored = self.tables.get(table).and_then(|t| t.get(key));
        tx.reads
            .entry((table.to_string(), key.to_string()))
            .or_insert(stored.map(|s| s.version));
        stored.map(|s| s.bytes.clone())
    }

    /// The row's version as `tx` sees it: its own writes first.
    fn version_in(&self, tx: &Tx, table: &str, key: &str) -> Option<u64> {
        match tx.own_write(table, key) {
            Some(own) => own.map(|(v, _)| v),
            None => self.version(table, key),
        }
    }

    pub fn insert(&self, tx: &mut Tx, table: &str, key: &str, data: Value) -> Result<(), DbError> {
        self.insert_bytes(tx, table, key, data, None)
    }

    /// [`DbState::insert`] of a row that may hold bytes.
    pub fn insert_bytes(
        &self,
        tx: &mut Tx,
        table: &str,
        key: &str,
        data: Value,
        bytes: Option<Blob>,
    ) -> Result<(), DbError> {
        if self.version_in(tx, table, key).is_some() {
            return Err(DbError::UniqueViolation {
                table: table.to_string(),
                key: key.to_string(),
            });
        }
        tx.writes.push((
            (table.to_string(), key.to_string()),
            Write::Insert { data, bytes },
        ));
        Ok(())
    }

    pub fn update(&self, tx: &mut Tx, table: &str, key: &str, expected: u64, data: Value) -> bool {
        if self.version_in(tx, table, key) != Some(expected) {
            return false;
        }
        tx.writes.push((
            (table.to_string(), key.to_string()),
            Write::Update { expected, data },
        ));
        true
    }

    /// Delete the row if `tx` sees one; whether it did. Finding none is a
    /// read: a row committed meanwhile under that key makes `tx` conflict.
    pub fn delete(&self, tx: &mut Tx, table: &str, key: &str) -> bool {
        let Some(expected) = self.version_in(tx, table, key) else {
            if tx.own_write(table, key).is_none() {
                tx.reads
                    .entry((table.to_string(), key.to_string()))
                    .or_insert(None);
            }
            return false;
        };
        tx.writes.push((
            (table.to_string(), key.to_string()),
            Write::Delete { expected },
        ));
        true
    }

    /// Validate and apply atomically. Returns the commit position and its
    /// changes as a history records them ([`Change::for_history`]), or
    /// `None` for a read-only transaction.
    pub fn commit(&mut self, tx: &Tx) -> Result<Option<(Lsn, Vec<Change>)>, DbError> {
        if tx.writes.is_empty() {
            return Ok(None);
        }
        for ((table, key), seen) in &tx.reads {
            if self.version(table, key) != *seen {
                return Err(DbError::Conflict);
            }
        }
        // Check every write against the state as the earlier writes of this
        // transaction would leave it.
        let mut pending: BTreeMap<(&str, &str), Option<u64>> = BTreeMap::new();
        for ((table, key), write) in &tx.writes {
            let current = pending
                .get(&(table.as_str(), key.as_str()))
                .copied()
                .unwrap_or_else(|| self.version(table, key));
            let next = match write {
                Write::Insert { .. } if current.is_some() => {
                    return Err(DbError::UniqueViolation {
                        table: table.clone(),
                        key: key.clone(),
                    })
                }
                Write::Insert { .. } => Some(1),
                Write::Update { expected, .. } | Write::Delete { expected }
                    if current != Some(*expected) =>
                {
                    return Err(DbError::Conflict)
                }
                Write::Update { expected, .. } => Some(expected + 1),
                Write::Delete { .. } => None,
            };
            pending.insert((table, key), next);
        }
        self.head += 1;
        let lsn = self.head;
        let mut changes = Vec::with_capacity(tx.writes.len());
        for ((table, key), write) in &tx.writes {
            let rows = self.tables.entry(table.clone()).or_default();
            let (op, version, data, bytes) = match write {
                Write::Insert { data, bytes } => {
                    (ChangeOp::Insert, 1, Arc::new(data.clone()), bytes.clone())
                }
                Write::Update { expected, data } => {
                    (ChangeOp::Update, expected + 1, Arc::new(data.clone()), None)
                }
                Write::Delete { .. } => (ChangeOp::Delete, 0, Arc::new(Value::Null), None),
            };
            if op == ChangeOp::Delete {
                rows.remove(key);
            } else {
                let stored = Stored {
                    version,
                    data: data.clone(),
                    bytes: bytes.clone(),
                };
                rows.insert(key.clone(), stored);
            }
            changes.push(Logged {
                table: table.clone(),
                key: key.clone(),
                op,
                version,
                data,
                bytes,
            });
        }
        let recorded = changes.iter().map(|c| c.for_history(lsn)).collect();
        self.log.push(Commit { lsn, changes });
        self.recycle_log();
        Ok(Some((lsn, recorded)))
    }

    /// Changes of the first `max` transactions committed after `after`.
    pub fn changes_after(&self, after: Lsn, max: usize) -> Vec<Change> {
        let start = self.log.partition_point(|c| c.lsn <= after);
        self.log[start..]
            .iter()
            .take(max)
            .flat_map(|c| c.changes.iter().map(|l| l.change(c.lsn, (*l.data).clone())))
            .collect()
    }

    /// Note changes served through `slot`; whether any was served before
    /// (and so never confirmed: a reader re-reads only past its confirm).
    fn serve(&mut self, slot: &str, changes: &[Change]) -> bool {
        let Some(last) = changes.last() else {
            return false;
        };
        let served = self.served.entry(slot.to_string()).or_insert(0);
        let again = changes[0].lsn <= *served;
        *served = (*served).max(last.lsn);
        again
    }

    /// Durably advance a slot. Slots never move backwards.
    pub fn confirm(&mut self, slot: &str, lsn: Lsn) {
        let pos = self.slots.entry(slot.to_string()).or_insert(0);
        *pos = (*pos).max(lsn);
        self.recycle_log();
    }
}

/// One DB server: its name (the host name), durable state, fault switch and
/// the history it reports commits to.
#[derive(Clone)]
pub struct DbServer {
    pub name: String,
    pub state: Arc<Mutex<DbState>>,
    pub faults: SharedFaults,
    pub history: History,
    /// Woken on every commit: what a waiting change poll waits on.
    pub committed: Arc<tokio::sync::Notify>,
}

impl DbServer {
    /// Write rows outside any client (initial data), as one recorded commit.
    pub fn seed(&self, rows: Vec<(String, String, Value)>) {
        let mut state = self.state.lock().unwrap();
        let mut tx = Tx::default();
        for (table, key, data) in rows {
            state
                .insert(&mut tx, &table, &key, data)
                .expect("seed rows have distinct keys");
        }
        if let Some((lsn, changes)) = state.commit(&tx).expect("seeding an empty DB commits") {
            self.history.record(Event::DbCommit {
                db: self.name.clone(),
                process: "setup".into(),
                lsn,
                changes,
            });
        }
    }

    /// The host software: accept connections and serve each until it closes.
    pub async fn serve(self) -> turmoil::Result {
        let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
        loop {
            let (stream, peer) = listener.accept().await?;
            if self.faults.lock().unwrap().down {
                drop(stream);
                continue;
            }
            let server = self.clone();
            tokio::task::spawn_local(async move {
                server
                    .connection(wire::framed(stream), peer_name(peer))
                    .await;
            });
        }
    }

    async fn connection(&self, mut conn: wire::Conn, process: String) {
        let mut tx = Tx::default();
        loop {
            let req: DbRequest =
                match tokio::time::timeout(IDLE_TIMEOUT, wire::recv(&mut conn)).await {
                    Ok(Ok(Some(req))) => req,
                    _ => return,
                };
            if !before_request(&self.faults).await {
                return;
            }
            let resp = match req {
                DbRequest::Commit => {
                    let result = self.state.lock().unwrap().commit(&tx);
                    tx = Tx::default();
                    match result {
                        Ok(Some((lsn, changes))) => {
                            self.committed.notify_waiters();
                            self.history.record(Event::DbCommit {
                                db: self.name.clone(),
                                process: process.clone(),
                                lsn,
                                changes,
                            });
                            if self.faults.lock().unwrap().lose_ack() {
                                self.history
                                    .mark(&self.name, coverage::DB_COMMIT_OUTCOME_UNKNOWN);
                                return;
                            }
                            DbResponse::Committed(lsn)
                        }
                        Ok(None) => DbResponse::Committed(self.state.lock().unwrap().head()),
                        Err(e) => DbResponse::Error(e),
                    }
                }
                DbRequest::Poll {
                    slot,
                    after,
                    max,
                    max_wait_ms,
                } => self.long_poll(slot, after, max, max_wait_ms).await,
                other => self.statement(&mut tx, other),
            };
            if wire::send(&mut conn, &resp).await.is_err() {
                return;
            }
        }
    }

    /// Changes after `after`, waiting up to `max_wait_ms` for a commit when
    /// there are none yet.
    async fn long_poll(
        &self,
        slot: String,
        after: Lsn,
        max: usize,
        max_wait_ms: u64,
    ) -> DbResponse {
        if !self.state.lock().unwrap().has_slot(&slot) {
            return no_such_slot(&slot);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms);
        loop {
            // Registered before looking, so a commit made meanwhile wakes it.
            let committed = self.committed.notified();
            let changes = {
                let mut state = self.state.lock().unwrap();
                let changes = state.changes_after(after, max);
                if state.serve(&slot, &changes) {
                    self.history
                        .mark(&self.name, coverage::CDC_REPLAYED_UNCONFIRMED);
                }
                changes
            };
            if !changes.is_empty() || tokio::time::timeout_at(deadline, committed).await.is_err() {
                return DbResponse::Changes(changes);
            }
        }
    }

    fn statement(&self, tx: &mut Tx, req: DbRequest) -> DbResponse {
        let mut state = self.state.lock().unwrap();
        match req {
            DbRequest::Get { table, key } => DbResponse::Row(state.get(tx, &table, &key)),
            DbRequest::Insert { table, key, data } => match state.insert(tx, &table, &key, data) {
                Ok(()) => DbResponse::Done,
                Err(e) => DbResponse::Error(e),
            },
            DbRequest::InsertBytes {
                table,
                key,
                data,
                bytes,
            } => match state.insert_bytes(tx, &table, &key, data, Some(bytes)) {
                Ok(()) => DbResponse::Done,
                Err(e) => DbResponse::Error(e),
            },
            DbRequest::GetBytes { table, key } => {
                let found = state.get_bytes(tx, &table, &key);
                DbResponse::Bytes {
                    row: found.is_some(),
                    bytes: found.flatten(),
                }
            }
            DbRequest::Update {
                table,
                key,
                expected,
                data,
            } => DbResponse::Updated(state.update(tx, &table, &key, expected, data)),
            DbRequest::Delete { table, key } => DbResponse::Updated(state.delete(tx, &table, &key)),
            DbRequest::Rollback => {
                *tx = Tx::default();
                DbResponse::Done
            }
            DbRequest::SlotConfirmed { slot } | DbRequest::Confirm { slot, .. }
                if !state.has_slot(&slot) =>
            {
                no_such_slot(&slot)
            }
            DbRequest::SlotConfirmed { slot } => DbResponse::Position(state.slot_position(&slot)),
            DbRequest::Poll { .. } => unreachable!("a poll is handled by the connection loop"),
            DbRequest::Confirm { slot, lsn } => {
                state.confirm(&slot, lsn);
                let lsn = state.slot_position(&slot);
                self.history.record(Event::SlotConfirm {
                    db: self.name.clone(),
                    slot,
                    lsn,
                });
                DbResponse::Done
            }
            DbRequest::Commit => unreachable!("commit is handled by the connection loop"),
        }
    }
}

/// The error a server gives for a replication slot it does not serve, as
/// Postgres does for one never created.
fn no_such_slot(slot: &str) -> DbResponse {
    DbResponse::Error(DbError::Other(format!(
        "replication slot \"{slot}\" does not exist"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn commit(
        state: &mut DbState,
        f: impl FnOnce(&DbState, &mut Tx),
    ) -> Result<Option<Lsn>, DbError> {
        let mut tx = Tx::default();
        f(state, &mut tx);
        state.commit(&tx).map(|r| r.map(|(lsn, _)| lsn))
    }

    #[test]
    fn a_transaction_sees_its_own_writes_and_commits_atomically() {
        let mut db = DbState::default();
        let mut tx = Tx::default();
        db.insert(&mut tx, "t", "a", json!(1)).unwrap();
        assert_eq!(db.get(&mut tx, "t", "a").unwrap().data, json!(1));
        assert!(db.update(&mut tx, "t", "a", 1, json!(2)));
        db.insert(&mut tx, "t", "b", json!(3)).unwrap();
        assert!(db.rows("t").is_empty(), "nothing visible before commit");
        let (lsn, changes) = db.commit(&tx).unwrap().unwrap();
        assert_eq!(lsn, 1);
        assert_eq!(changes.len(), 3);
        let rows = db.rows("t");
        assert_eq!((rows[0].version, &rows[0].data), (2, &json!(2)));
        assert_eq!((rows[1].version, &rows[1].data), (1, &json!(3)));
    }

    #[test]
    fn duplicate_keys_are_unique_violations_at_statement_and_commit() {
        let mut db = DbState::default();
        commit(&mut db, |db, tx| db.insert(tx, "t", "a", json!(1)).unwrap()).unwrap();
        let mut tx = Tx::default();
        assert!(matches!(
            db.insert(&mut tx, "t", "a", json!(2)),
            Err(DbError::UniqueViolation { .. })
        ));
        // Two transactions insert the same new key; the second to commit loses.
        let mut t1 = Tx::default();
        let mut t2 = Tx::default();
        db.insert(&mut t1, "t", "b", json!(1)).unwrap();
        db.insert(&mut t2, "t", "b", json!(2)).unwrap();
        db.commit(&t1).unwrap();
        assert!(matches!(
            db.commit(&t2),
            Err(DbError::UniqueViolation { .. })
        ));
    }

    #[test]
    fn stale_versions_conflict() {
        let mut db = DbState::default();
        commit(&mut db, |db, tx| {
            db.insert(tx, "stock", "p", json!(5)).unwrap()
        })
        .unwrap();
        let mut t1 = Tx::default();
        let mut t2 = Tx::default();
        let v1 = db.get(&mut t1, "stock", "p").unwrap().version;
        let v2 = db.get(&mut t2, "stock", "p").unwrap().version;
        assert!(db.update(&mut t1, "stock", "p", v1, json!(4)));
        assert!(db.update(&mut t2, "stock", "p", v2, json!(3)));
        db.commit(&t1).unwrap();
        assert_eq!(db.commit(&t2), Err(DbError::Conflict));
        let mut t3 = Tx::default();
        assert!(
            !db.update(&mut t3, "stock", "p", 1, json!(0)),
            "version 1 is gone"
        );
    }

    #[test]
    fn change_log_is_in_commit_order_and_slots_only_advance() {
        let mut db = DbState::default();
        for k in ["a", "b", "c"] {
            commit(&mut db, |db, tx| db.insert(tx, "t", k, json!(k)).unwrap()).unwrap();
        }
        let keys: Vec<_> = db
            .changes_after(0, 10)
            .into_iter()
            .map(|c| (c.lsn, c.key))
            .collect();
        assert_eq!(
            keys,
            vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
        );
        assert_eq!(db.changes_after(1, 1).len(), 1);
        db.confirm("s", 2);
        db.confirm("s", 1);
        assert_eq!(db.slot_position("s"), 2);
        assert_eq!(
            commit(&mut db, |_, _| {}),
            Ok(None),
            "read-only commits take no position"
        );
    }

    #[test]
    fn with_declared_slots_the_log_keeps_only_what_one_has_not_confirmed() {
        let mut db = DbState::with_slots(vec!["a".into(), "b".into()]);
        for k in ["x", "y", "z"] {
            commit(&mut db, |db, tx| db.insert(tx, "t", k, json!(k)).unwrap()).unwrap();
        }
        db.confirm("a", 3);
        assert_eq!(db.changes_after(0, 10).len(), 3, "b has confirmed nothing");
        db.confirm("b", 2);
        let kept: Vec<Lsn> = db.changes_after(0, 10).iter().map(|c| c.lsn).collect();
        assert_eq!(kept, vec![3]);
        assert!(db.has_slot("a") && !db.has_slot("c"));
        assert!(
            matches!(no_such_slot("c"), DbResponse::Error(DbError::Other(m)) if m.contains("\"c\""))
        );

        let mut none = DbState::with_slots(vec![]);
        commit(&mut none, |db, tx| {
            db.insert(tx, "t", "k", json!(1)).unwrap()
        })
        .unwrap();
        assert!(none.changes_after(0, 10).is_empty(), "no slot, no log");
        assert_eq!(none.rows("t").len(), 1);
        assert!(DbState::default().has_slot("any"), "undeclared: any slot");
    }

    /// A row's bytes are its transaction's to read before commit, every
    /// reader's after; the history records them by size and digest (of a
    /// view without making its bytes), and the change log carries the
    /// row's JSON alone.
    #[test]
    fn a_rows_bytes_are_kept_and_recorded_by_digest() {
        let mut state = DbState::default();
        let bytes = Blob::generated(3, 100_000);
        let mut tx = Tx::default();
        state
            .insert_bytes(&mut tx, "t", "k", json!({"n": 1}), Some(bytes.clone()))
            .unwrap();
        state.insert(&mut tx, "t", "plain", json!(2)).unwrap();
        assert_eq!(
            state.get_bytes(&mut tx, "t", "k"),
            Some(Some(bytes.clone()))
        );
        assert_eq!(state.get_bytes(&mut tx, "t", "plain"), Some(None));
        let (lsn, recorded) = state.commit(&tx).unwrap().unwrap();
        assert_eq!(
            recorded[0].data,
            json!({"n": 1, STORED_BYTES: {"bytes": 100_000, "blake3": bytes.digest()}})
        );
        assert_eq!(recorded[1].data, json!(2));
        assert_eq!(state.changes_after(lsn - 1, 1)[0].data, json!({"n": 1}));
        let mut reader = Tx::default();
        assert_eq!(state.get_bytes(&mut reader, "t", "k"), Some(Some(bytes)));
        assert_eq!(state.get_bytes(&mut reader, "t", "none"), None);
        assert!(state.delete(&mut reader, "t", "k"));
        assert_eq!(state.get_bytes(&mut reader, "t", "k"), None);
    }

    #[test]
    fn a_delete_removes_the_row_and_logs_the_key() {
        let mut db = DbState::default();
        commit(&mut db, |db, tx| {
            db.insert(tx, "t", "k", json!({"big": 1})).unwrap()
        })
        .unwrap();
        commit(&mut db, |db, tx| {
            assert!(db.delete(tx, "t", "k"));
            assert_eq!(db.get(tx, "t", "k"), None, "its own delete");
            assert!(!db.delete(tx, "t", "k"));
            db.insert(tx, "t", "k", json!(2)).unwrap();
            assert!(db.delete(tx, "t", "k"), "its own insert");
        })
        .unwrap();
        assert!(db.rows("t").is_empty());
        let ops: Vec<(ChangeOp, u64)> = db
            .changes_after(1, 10)
            .iter()
            .map(|c| (c.op, c.version))
            .collect();
        assert_eq!(
            ops,
            vec![
                (ChangeOp::Delete, 0),
                (ChangeOp::Insert, 1),
                (ChangeOp::Delete, 0)
            ]
        );
        // A delete of a row another transaction changed meanwhile conflicts.
        commit(&mut db, |db, tx| db.insert(tx, "t", "k", json!(3)).unwrap()).unwrap();
        let mut late = Tx::default();
        assert!(db.delete(&mut late, "t", "k"));
        commit(&mut db, |db, tx| {
            assert!(db.update(tx, "t", "k", 1, json!(4)))
        })
        .unwrap();
        assert_eq!(db.commit(&late), Err(DbError::Conflict));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Get(u8),
        Insert(u8),
        Increment(u8),
        Delete(u8),
        Commit,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = (usize, Op)> {
        use proptest::prelude::*;
        let key = 0u8..3;
        (
            0usize..3,
            prop_oneof![
                key.clone().prop_map(Op::Get),
                key.clone().prop_map(Op::Insert),
                key.clone().prop_map(Op::Increment),
                key.prop_map(Op::Delete),
                Just(Op::Commit),
            ],
        )
    }

    proptest::proptest! {
        /// Three interleaved transactions over three keys. Every commit that
        /// succeeds must have read only the latest committed versions (checked
        /// against the test's own model of committed state, not the DB's
        /// validation), versions grow by one per write, and the change log
        /// replays to the final table.
        #[test]
        fn interleaved_transactions_are_serializable(ops in proptest::collection::vec(op(), 1..60)) {
            let mut db = DbState::default();
            let mut txs: Vec<Tx> = (0..3).map(|_| Tx::default()).collect();
            // What each open transaction read from committed state.
            let mut seen: Vec<BTreeMap<String, Option<u64>>> = vec![BTreeMap::new(); 3];
            let mut model: BTreeMap<String, (u64, Value)> = BTreeMap::new();
            for (i, op) in ops {
                match op {
                    Op::Get(k) | Op::Increment(k) | Op::Delete(k) => {
                        let key = format!("k{k}");
                        let own = txs[i].own_write("t", &key).is_some();
                        let row = db.get(&mut txs[i], "t", &key);
                        if !own {
                            seen[i].entry(key.clone()).or_insert(row.as_ref().map(|r| r.version));
                        }
                        match (op, row) {
                            (Op::Increment(_), Some(row)) => {
                                let n = row.data.as_i64().unwrap() + 1;
                                proptest::prop_assert!(db.update(&mut txs[i], "t", &key, row.version, json!(n)));
                            }
                            (Op::Delete(_), row) => {
                                proptest::prop_assert_eq!(db.delete(&mut txs[i], "t", &key), row.is_some());
                            }
                            _ => {}
                        }
                    }
                    Op::Insert(k) => {
                        let _ = db.insert(&mut txs[i], "t", &format!("k{k}"), json!(0));
                    }
                    Op::Commit => {
                        let tx = std::mem::take(&mut txs[i]);
                        let reads = std::mem::take(&mut seen[i]);
                        if let Ok(Some((_, changes))) = db.commit(&tx) {
                            for (key, version) in &reads {
                                proptest::prop_assert_eq!(model.get(key).map(|m| m.0), *version, "stale read of {}", key);
                            }
                            for c in changes {
                                if c.op == ChangeOp::Delete {
                                    proptest::prop_assert!(model.remove(&c.key).is_some(), "deleted a missing {}", c.key);
                                    continue;
                                }
                                let before = model.get(&c.key).map_or(0, |m| m.0);
                                proptest::prop_assert_eq!(c.version, before + 1);
                                model.insert(c.key.clone(), (c.version, c.data.clone()));
                            }
                        }
                    }
                }
            }
            let table: BTreeMap<String, (u64, Value)> =
                db.rows("t").into_iter().map(|r| (r.key, (r.version, r.data))).collect();
            proptest::prop_assert_eq!(&table, &model);
            let mut replayed: BTreeMap<String, (u64, Value)> = BTreeMap::new();
            let mut last = 0;
            for c in db.changes_after(0, usize::MAX) {
                proptest::prop_assert!(c.lsn >= last);
                last = c.lsn;
                if c.op == ChangeOp::Delete {
                    replayed.remove(&c.key);
                } else {
                    replayed.insert(c.key, (c.version, c.data));
                }
            }
            proptest::prop_assert_eq!(&replayed, &model);
        }
    }
}
