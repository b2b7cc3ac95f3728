//! CDC from the MariaDB/MySQL binlog: positions, the reading of a binlog
//! stream (mysql_async's replication client, row-based format with full row
//! images) into committed transactions, and the change feed port over it.
//!
//! A position is the binlog file's sequence number and the byte offset in it
//! packed into one [`Lsn`] (`file << 32 | offset`), so positions order as the
//! log does. A transaction's position is the end of its commit (XID) event,
//! which is where the next transaction starts: a stream requested from a
//! transaction's position resumes right after it. A slot is a row in the
//! logical DB's own `pitfall_slots` table, advanced only by `confirm`, after
//! the broker acknowledged what was produced; this is where Debezium would
//! keep its offsets.

use crate::names::RunNames;
use async_trait::async_trait;
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::{BinlogStreamRequest, Conn, Opts, Value as MyValue};
use pitfall_harness::history::{Event, History};
use pitfall_ports::{Change, ChangeFeed, ChangeOp, DbError, Lsn};
use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row as _};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The table of slot positions in each logical DB's database.
pub const SLOTS_TABLE: &str = "pitfall_slots";

/// How long one slot query or one binlog read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Pack a binlog file name (`pitfall-bin.000012`) and offset into an [`Lsn`].
pub fn lsn_of(file: &str, offset: u64) -> Option<Lsn> {
    let seq: u64 = file.rsplit_once('.')?.1.parse().ok()?;
    Some((seq << 32) | (offset & 0xffff_ffff))
}

/// The binlog file name and offset of a position, given the log's base
/// name (`pitfall-bin`).
pub fn file_of(base: &str, lsn: Lsn) -> (String, u64) {
    (format!("{base}.{:06}", lsn >> 32), lsn & 0xffff_ffff)
}

/// One committed transaction read from the binlog: its position, its commit
/// time (the latest row timestamp, in ms since the epoch) and its changes,
/// each tagged with the logical DB it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct BinlogTxn {
    pub lsn: Lsn,
    pub commit_ms: Option<i64>,
    pub changes: Vec<(String, Change)>,
}

/// One row image as the binlog carries it for a pitfall table: `key`,
/// `version`, `data` (JSON text) and `at` (the row's last write time).
#[derive(Clone, Debug, PartialEq)]
pub struct RowImage {
    pub key: String,
    pub version: u64,
    pub data: serde_json::Value,
    pub at_ms: Option<i64>,
}

/// Turns a binlog's events, in order, into committed transactions.
pub struct Assembler<'n> {
    names: &'n RunNames,
    /// The current binlog file's sequence number (from the rotate events).
    file: Option<String>,
    open: Option<Vec<(String, Change, Option<i64>)>>,
    pub done: Vec<BinlogTxn>,
}

impl<'n> Assembler<'n> {
    pub fn new(names: &'n RunNames) -> Self {
        Assembler {
            names,
            file: None,
            open: None,
            done: Vec::new(),
        }
    }

    /// The log moved on to `file`; only a file name's own characters count
    /// (a rotate event read before the format description still carries its
    /// checksum bytes).
    pub fn rotate(&mut self, file: &str) {
        let end = file
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
            .unwrap_or(file.len());
        self.file = Some(file[..end].to_string());
    }

    pub fn begin(&mut self) {
        self.open = Some(Vec::new());
    }

    /// A row change in `schema.table`; kept only when the table is one of
    /// the run's logical DBs' tables, in that DB's database. A delete's
    /// image is the row before it; the change keeps its key alone, as the
    /// port says, and its time does not count as the commit's.
    pub fn row(&mut self, schema: &str, table: &str, op: ChangeOp, mut image: RowImage) {
        if op == ChangeOp::Delete {
            (image.version, image.data, image.at_ms) = (0, serde_json::Value::Null, None);
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let Some((db, logical)) = self.names.logical_table(table) else {
            return;
        };
        if self.names.logical_database(schema) != Some(db.as_str()) {
            return;
        }
        let change = Change {
            lsn: 0,
            table: logical,
            key: image.key,
            op,
            version: image.version,
            data: image.data,
        };
        open.push((db, change, image.at_ms));
    }

    /// How many finished transactions carry changes of `only` (of any of
    /// the run's DBs when `None`).
    pub fn with_changes_of(&self, only: Option<&str>) -> usize {
        self.done
            .iter()
            .filter(|t| t.changes.iter().any(|(db, _)| only.is_none_or(|o| o == db)))
            .count()
    }

    /// The open transaction committed; its commit event ends at `end`.
    pub fn commit(&mut self, end: u64) {
        let Some(open) = self.open.take() else {
            return;
        };
        let Some(lsn) = self.file.as_deref().and_then(|f| lsn_of(f, end)) else {
            return;
        };
        let commit_ms = open.iter().filter_map(|(_, _, at)| *at).max();
        let changes = open
            .into_iter()
            .map(|(db, mut c, _)| {
                c.lsn = lsn;
                (db, c)
            })
            .collect();
        self.done.push(BinlogTxn {
            lsn,
            commit_ms,
            changes,
        });
    }
}

/// A server id for one replication connection: unique among this
/// process's and other processes' readers (the server drops an older
/// connection that registers the same id).
fn replica_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0x3ff;
    ((std::process::id() & 0x3f_ffff) << 10 | n).max(2)
}

fn text(v: Option<&BinlogValue<'_>>) -> Option<String> {
    match v? {
        BinlogValue::Value(MyValue::Bytes(b)) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

fn int(v: Option<&BinlogValue<'_>>) -> Option<i64> {
    match v? {
        BinlogValue::Value(MyValue::Int(i)) => Some(*i),
        BinlogValue::Value(MyValue::UInt(u)) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// A `TIMESTAMP(6)` as the binlog carries it ("1764788000.123456") in ms.
fn epoch_ms(text: &str) -> Option<i64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    Some(secs.parse::<i64>().ok()? * 1000 + millis)
}

/// The image of a pitfall table's row: columns key, version, data, at.
pub fn image_of(row: &BinlogRow) -> Option<RowImage> {
    Some(RowImage {
        key: text(row.as_ref(0))?,
        version: u64::try_from(int(row.as_ref(1))?).ok()?,
        data: serde_json::from_str(&text(row.as_ref(2))?).ok()?,
        at_ms: text(row.as_ref(3)).as_deref().and_then(epoch_ms),
    })
}

/// Read the binlog from `(file, offset)` until the server has nothing more
/// (a non-blocking dump), `end` is reached, or `max` transactions that
/// carry changes of `only` (of any run DB when `None`) were read. The
/// binlog is the server's: counting other DBs' transactions towards `max`
/// would let a run of them hide this DB's changes forever.
pub async fn read(
    opts: Opts,
    names: &RunNames,
    file: &str,
    offset: u64,
    end: Lsn,
    (only, max): (Option<&str>, usize),
) -> Result<Vec<BinlogTxn>, mysql_async::Error> {
    let conn = Conn::new(opts).await?;
    let request = BinlogStreamRequest::new(replica_id())
        .with_filename(file.as_bytes())
        .with_pos(offset)
        .with_non_blocking();
    let mut stream = conn.get_binlog_stream(request).await?;
    let mut asm = Assembler::new(names);
    asm.rotate(file);
    while let Some(event) = stream.next().await {
        let event = event?;
        let end_of_event = u64::from(event.header().log_pos());
        match event.read_data()? {
            // The server's fake rotate at the start of a dump (its event
            // ends at 0) names the file we asked for, with the checksum
            // bytes still attached: only real rotates move the file.
            Some(EventData::RotateEvent(r)) if end_of_event != 0 => asm.rotate(&r.name()),
            Some(EventData::QueryEvent(q)) => match q.query().as_ref() {
                "BEGIN" => asm.begin(),
                "COMMIT" => asm.commit(end_of_event),
                _ => {}
            },
            Some(EventData::XidEvent(_)) => asm.commit(end_of_event),
            Some(EventData::RowsEvent(rows)) => {
                let Some(tme) = stream.get_tme(rows.table_id()) else {
                    continue;
                };
                let op = match rows {
                    RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                        ChangeOp::Insert
                    }
                    RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => {
                        ChangeOp::Update
                    }
                    RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                        ChangeOp::Delete
                    }
                    _ => continue,
                };
                let (schema, table) = (tme.database_name(), tme.table_name());
                for row in rows.rows(tme) {
                    // A delete has the row before it, and no row after.
                    let (before, after) = row?;
                    let image = if op == ChangeOp::Delete {
                        before
                    } else {
                        after
                    };
                    if let Some(image) = image.as_ref().and_then(image_of) {
                        asm.row(&schema, &table, op, image);
                    }
                }
            }
            _ => {}
        }
        let at_end = asm.done.last().is_some_and(|t| t.lsn >= end);
        if asm.with_changes_of(only) >= max || at_end {
            break;
        }
    }
    let _ = stream.close().await;
    Ok(asm.done)
}

/// The log's current base name and end position.
pub async fn log_end(pool: &MySqlPool) -> Result<(String, Lsn), String> {
    let row = match sqlx::raw_sql("SHOW MASTER STATUS")
        .fetch_optional(pool)
        .await
    {
        Ok(row) => row,
        // MySQL 8.4 renamed it.
        Err(_) => sqlx::raw_sql("SHOW BINARY LOG STATUS")
            .fetch_optional(pool)
            .await
            .map_err(|e| e.to_string())?,
    };
    let row = row.ok_or("the binlog is off (log_bin=OFF)")?;
    let file: String = row.try_get(0).map_err(|e| e.to_string())?;
    let offset: u64 = row.try_get(1).map_err(|e| e.to_string())?;
    let base = file
        .rsplit_once('.')
        .map(|(b, _)| b.to_string())
        .ok_or_else(|| format!("unexpected binlog file name {file}"))?;
    let lsn = lsn_of(&file, offset).ok_or_else(|| format!("unexpected binlog file name {file}"))?;
    Ok((base, lsn))
}

/// The change feed of one logical DB from the binlog: only the row events
/// of its own database, whole transactions, from the slot's position.
pub struct BinlogFeed {
    /// Slot positions and the log's end, through the host's link.
    pool: MySqlPool,
    /// The replication connection's options, through the same link.
    opts: Opts,
    names: Arc<RunNames>,
    db: String,
    history: Option<History>,
}

impl BinlogFeed {
    pub fn new(
        pool: MySqlPool,
        opts: Opts,
        names: Arc<RunNames>,
        db: String,
        history: Option<History>,
    ) -> Self {
        BinlogFeed {
            pool,
            opts,
            names,
            db,
            history,
        }
    }

    fn slots_table(&self) -> String {
        format!("`{}`.{SLOTS_TABLE}", self.names.database(&self.db))
    }
}

fn unavailable(e: impl std::fmt::Display) -> DbError {
    DbError::Unavailable(e.to_string())
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    tokio::time::timeout(READ_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(DbError::Unavailable("binlog read timed out".into())))
}

#[async_trait]
impl ChangeFeed for BinlogFeed {
    async fn confirmed(&self, slot: &str) -> Result<Lsn, DbError> {
        let sql = format!("SELECT pos FROM {} WHERE slot = ?", self.slots_table());
        let query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(slot)
            .fetch_optional(&self.pool);
        let pos: Option<u64> = timed(async { query.await.map_err(unavailable) }).await?;
        Ok(pos.unwrap_or(0))
    }

    async fn poll(&self, slot: &str, after: Lsn, max: usize) -> Result<Vec<Change>, DbError> {
        self.poll_changes(slot, after, max).await
    }

    async fn confirm(&self, slot: &str, lsn: Lsn) -> Result<(), DbError> {
        let sql = format!(
            "UPDATE {} SET pos = GREATEST(pos, ?) WHERE slot = ?",
            self.slots_table()
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(lsn)
            .bind(slot)
            .execute(&self.pool);
        timed(async { query.await.map_err(unavailable) }).await?;
        if let Some(history) = &self.history {
            history.record(Event::SlotConfirm {
                db: self.db.clone(),
                slot: slot.to_string(),
                lsn,
            });
        }
        Ok(())
    }
}

impl BinlogFeed {
    /// Whole transactions of this DB after `after` (or the slot's
    /// position, whichever is later), up to `max`.
    async fn poll_changes(
        &self,
        slot: &str,
        after: Lsn,
        max: usize,
    ) -> Result<Vec<Change>, DbError> {
        let from = after.max(self.confirmed(slot).await?);
        let (base, end) = timed(async { log_end(&self.pool).await.map_err(unavailable) }).await?;
        if end <= from || max == 0 {
            return Ok(Vec::new());
        }
        let (file, offset) = file_of(&base, from);
        let txns = timed(async {
            read(
                self.opts.clone(),
                &self.names,
                &file,
                offset,
                end,
                (Some(&self.db), max),
            )
            .await
            .map_err(unavailable)
        })
        .await?;
        Ok(txns
            .into_iter()
            .flat_map(|t| t.changes)
            .filter(|(db, _)| *db == self.db)
            .map(|(_, c)| c)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(key: &str, version: u64, at_ms: i64) -> RowImage {
        RowImage {
            key: key.into(),
            version,
            data: json!({"k": key}),
            at_ms: Some(at_ms),
        }
    }

    #[test]
    fn positions_pack_file_and_offset_in_log_order() {
        let a = lsn_of("pitfall-bin.000009", 4_000_000_000).unwrap();
        let b = lsn_of("pitfall-bin.000010", 4).unwrap();
        assert!(a < b);
        assert_eq!(
            file_of("pitfall-bin", b),
            ("pitfall-bin.000010".to_string(), 4)
        );
        assert_eq!(lsn_of("no-sequence", 4), None);
    }

    #[test]
    fn a_delete_keeps_the_key_alone_and_not_the_rows_time() {
        let dbs = ["archive-db".to_string()];
        let names = RunNames::new("s1_ab", &dbs);
        let db = names.database("archive-db");
        let table = names.table("archive-db", "payload_chunks");
        let mut asm = Assembler::new(&names);
        asm.rotate("pitfall-bin.000001");
        asm.begin();
        asm.row(&db, &table, ChangeOp::Delete, image("p1/0", 1, 10));
        asm.commit(100);
        let txn = &asm.done[0];
        assert_eq!(txn.commit_ms, None, "the row's time is not the delete's");
        let (_, change) = &txn.changes[0];
        assert_eq!((change.op, change.key.as_str()), (ChangeOp::Delete, "p1/0"));
        assert_eq!(
            (change.version, &change.data),
            (0, &serde_json::Value::Null)
        );
    }

    #[test]
    fn row_timestamps_read_as_milliseconds() {
        assert_eq!(epoch_ms("1764788000.123456"), Some(1_764_788_000_123));
        assert_eq!(epoch_ms("1764788000"), Some(1_764_788_000_000));
        assert_eq!(epoch_ms("1764788000.5"), Some(1_764_788_000_500));
        assert_eq!(epoch_ms("x"), None);
    }

    #[test]
    fn transactions_keep_their_own_dbs_rows_and_commit_position() {
        let dbs = ["payments-db".to_string(), "inventory-db".to_string()];
        let names = RunNames::new("s1_ab", &dbs);
        let pay = names.database("payments-db");
        let inv = names.database("inventory-db");
        let mut asm = Assembler::new(&names);
        asm.rotate("pitfall-bin.000003'R\u{fffd}");
        // A row outside a transaction, a foreign table, and a table of
        // another DB put in this DB's database are all left out.
        asm.row(
            &pay,
            &names.table("payments-db", "payments"),
            ChangeOp::Insert,
            image("x", 1, 1),
        );
        asm.begin();
        asm.row(
            &pay,
            &names.table("payments-db", "payments"),
            ChangeOp::Insert,
            image("o1", 1, 10),
        );
        asm.row(&pay, "pitfall_slots", ChangeOp::Update, image("cdc", 1, 11));
        asm.row(
            &pay,
            &names.table("inventory-db", "stock"),
            ChangeOp::Update,
            image("p", 2, 12),
        );
        asm.row(
            &inv,
            &names.table("inventory-db", "stock"),
            ChangeOp::Update,
            image("p", 2, 15),
        );
        asm.commit(700);
        asm.rotate("pitfall-bin.000004");
        asm.begin();
        asm.commit(300); // empty: kept, with no changes
        asm.commit(400); // no transaction open: ignored
        assert_eq!(asm.done.len(), 2);
        let first = &asm.done[0];
        assert_eq!(first.lsn, (3 << 32) | 700);
        assert_eq!(first.commit_ms, Some(15));
        let kept: Vec<(&str, &str, u64)> = first
            .changes
            .iter()
            .map(|(db, c)| (db.as_str(), c.key.as_str(), c.lsn))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("payments-db", "o1", first.lsn),
                ("inventory-db", "p", first.lsn)
            ]
        );
        assert_eq!(first.changes[0].1.table, "payments");
        assert_eq!(asm.done[1].lsn, (4 << 32) | 300);
        assert!(asm.done[1].changes.is_empty());
        assert!(asm.done[0].lsn < asm.done[1].lsn);
        // A transaction counts towards a reader's batch only when it has
        // that reader's DB's changes.
        asm.begin();
        asm.row(
            &inv,
            &names.table("inventory-db", "stock"),
            ChangeOp::Update,
            image("p", 3, 20),
        );
        asm.commit(500);
        assert_eq!(asm.with_changes_of(None), 2);
        assert_eq!(asm.with_changes_of(Some("payments-db")), 1);
        assert_eq!(asm.with_changes_of(Some("inventory-db")), 2);
        assert_eq!(asm.with_changes_of(Some("orders-db")), 0);
    }
}
