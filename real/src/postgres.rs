//! The DB port on a real Postgres through sqlx, the change feed through
//! logical decoding (a `test_decoding` replication slot read with the SQL
//! functions), and [`PgServer`], the run's databases on one Postgres server.
//!
//! Each logical DB is a Postgres database of its own, each logical table a
//! table `(key text primary key, version bigint, data jsonb)` in it, named by
//! [`RunNames`]; slots are per database, so each decodes only its own DB's
//! WAL. Errors map onto the port:
//! SQLSTATE 23505 is a unique violation, 40001/40P01 a conflict, and a commit
//! whose reply never came is `CommitOutcomeUnknown`.

use crate::dbserver::{CommitClock, DbServer, HISTORY_SLOT};
use crate::names::RunNames;
use async_trait::async_trait;
use pitfall_harness::history::{Event, History};
use pitfall_harness::system::DbSpec;
use pitfall_ports::{Change, ChangeFeed, ChangeOp, Database, DbError, Lsn, Row, Transaction};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long one statement may take before the DB counts as unreachable.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Run a statement with [`OP_TIMEOUT`].
async fn timed<T>(f: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    tokio::time::timeout(OP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(DbError::Unavailable("statement timed out".into())))
}

/// Map a sqlx error onto the port's error kinds.
pub fn db_error(e: sqlx::Error, table: &str, key: &str) -> DbError {
    if let sqlx::Error::Database(d) = &e {
        match d.code().as_deref() {
            Some("23505") => {
                return DbError::UniqueViolation {
                    table: table.to_string(),
                    key: key.to_string(),
                }
            }
            Some("40001") | Some("40P01") => return DbError::Conflict,
            _ => return DbError::Other(d.to_string()),
        }
    }
    DbError::Unavailable(e.to_string())
}

/// A pool for one logical database (`payments-db` or `inventory-db`).
pub async fn pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(1))
        .connect(url)
        .await
}

pub struct PgDb {
    pool: PgPool,
    names: Arc<RunNames>,
    db: String,
}

impl PgDb {
    pub fn new(pool: PgPool, names: Arc<RunNames>, db: String) -> Self {
        PgDb { pool, names, db }
    }
}

#[async_trait]
impl Database for PgDb {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        let tx = timed(async {
            self.pool
                .begin()
                .await
                .map_err(|e| DbError::Unavailable(e.to_string()))
        })
        .await?;
        Ok(Box::new(PgTx {
            tx,
            names: self.names.clone(),
            db: self.db.clone(),
        }))
    }
}

struct PgTx {
    tx: sqlx::Transaction<'static, Postgres>,
    names: Arc<RunNames>,
    db: String,
}

impl PgTx {
    fn table(&self, table: &str) -> String {
        self.names.table(&self.db, table)
    }
}

#[async_trait]
impl Transaction for PgTx {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError> {
        let sql = format!(
            "SELECT version, data FROM {} WHERE key = $1",
            self.table(table)
        );
        let query = sqlx::query_as(AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&mut *self.tx);
        let row: Option<(i64, Value)> =
            timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        Ok(row.map(|(version, data)| Row {
            key: key.to_string(),
            version: version as u64,
            data,
        }))
    }

    async fn insert(&mut self, table: &str, key: &str, data: Value) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO {} (key, version, data) VALUES ($1, 1, $2)",
            self.table(table)
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .bind(data)
            .execute(&mut *self.tx);
        timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        Ok(())
    }

    async fn update(
        &mut self,
        table: &str,
        key: &str,
        expected: u64,
        data: Value,
    ) -> Result<bool, DbError> {
        let sql = format!(
            "UPDATE {} SET version = version + 1, data = $1 WHERE key = $2 AND version = $3",
            self.table(table)
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(data)
            .bind(key)
            .bind(expected as i64)
            .execute(&mut *self.tx);
        let done = timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError> {
        let sql = format!("DELETE FROM {} WHERE key = $1", self.table(table));
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .execute(&mut *self.tx);
        let done = timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        let result = match tokio::time::timeout(OP_TIMEOUT, self.tx.commit()).await {
            Ok(r) => r,
            Err(_) => return Err(DbError::CommitOutcomeUnknown("commit timed out".into())),
        };
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(d))
                if matches!(d.code().as_deref(), Some("40001") | Some("40P01")) =>
            {
                Err(DbError::Conflict)
            }
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => {
                Err(DbError::UniqueViolation {
                    table: "?".into(),
                    key: "?".into(),
                })
            }
            // The COMMIT may have been applied before the connection failed.
            Err(e) => Err(DbError::CommitOutcomeUnknown(e.to_string())),
        }
    }

    async fn rollback(self: Box<Self>) {
        let _ = tokio::time::timeout(OP_TIMEOUT, self.tx.rollback()).await;
    }
}

/// Create the run's tables for one logical database.
pub async fn create_tables(
    pool: &PgPool,
    names: &RunNames,
    db: &str,
    tables: &[impl AsRef<str>],
) -> Result<(), sqlx::Error> {
    for table in tables {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, version bigint NOT NULL, data jsonb NOT NULL)",
            names.table(db, table.as_ref())
        );
        sqlx::query(AssertSqlSafe(sql)).execute(pool).await?;
    }
    Ok(())
}

/// Parse a `pg_lsn` text ("16/B374D848") into a number.
pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

pub fn format_lsn(lsn: Lsn) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// One row change as `test_decoding` prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedChange {
    pub table: String,
    pub op: ChangeOp,
    pub key: String,
    pub version: u64,
    pub data: Value,
}

/// Read a quoted SQL literal ('it''s') at the start of `s`; returns the value
/// and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('\'')?.char_indices().peekable();
    let body = &s[1..];
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|(_, n)| *n) == Some('\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some((out, &body[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// Parse a `test_decoding` change line of a (key, version, data) table:
/// `table public.t: INSERT: key[text]:'o1' version[bigint]:1 data[jsonb]:'{…}'`.
pub fn parse_change(line: &str) -> Option<DecodedChange> {
    let rest = line.strip_prefix("table ")?;
    let (qualified, rest) = rest.split_once(": ")?;
    let table = qualified.rsplit('.').next()?.trim_matches('"').to_string();
    let (op, rest) = rest.split_once(": ")?;
    let op = match op {
        "INSERT" => ChangeOp::Insert,
        "UPDATE" => ChangeOp::Update,
        // Under the default replica identity a delete logs the key alone.
        "DELETE" => {
            let (key, _) = quoted(rest.strip_prefix("key[text]:")?)?;
            return Some(DecodedChange {
                table,
                op: ChangeOp::Delete,
                key,
                version: 0,
                data: Value::Null,
            });
        }
        _ => return None,
    };
    let (key, rest) = quoted(rest.strip_prefix("key[text]:")?)?;
    let rest = rest.strip_prefix(" version[bigint]:")?;
    let (version, rest) = rest.split_once(' ')?;
    let (data, _) = quoted(rest.strip_prefix("data[jsonb]:")?)?;
    Some(DecodedChange {
        table,
        op,
        key,
        version: version.parse().ok()?,
        data: serde_json::from_str(&data).ok()?,
    })
}

/// Group `(lsn, data)` rows of `pg_logical_slot_*_changes` into committed
/// transactions: each transaction's changes with its commit LSN, in order.
pub fn transactions(rows: &[(String, String)]) -> Vec<(Lsn, Vec<DecodedChange>)> {
    let mut out = Vec::new();
    let mut current: Vec<DecodedChange> = Vec::new();
    for (lsn, data) in rows {
        if data.starts_with("BEGIN") {
            current.clear();
        } else if data.starts_with("COMMIT") {
            if let Some(lsn) = parse_lsn(lsn) {
                out.push((lsn, std::mem::take(&mut current)));
            }
        } else if let Some(change) = parse_change(data) {
            current.push(change);
        }
    }
    out
}

/// The change feed of one logical database through a logical replication
/// slot. `poll` peeks from the slot's confirmed position and skips what the
/// reader has already seen; `confirm` advances the slot durably.
pub struct PgFeed {
    pool: PgPool,
    names: Arc<RunNames>,
    db: String,
    /// Where a successful confirm is recorded (`SlotConfirm`), for the
    /// liveness check of `converges`; none for the drain's probes.
    history: Option<History>,
}

impl PgFeed {
    pub fn new(pool: PgPool, names: Arc<RunNames>, db: String) -> Self {
        PgFeed {
            pool,
            names,
            db,
            history: None,
        }
    }

    /// Record every confirmed slot position in `history`.
    pub fn recording(mut self, history: History) -> Self {
        self.history = Some(history);
        self
    }
}

fn unavailable(e: sqlx::Error) -> DbError {
    DbError::Unavailable(e.to_string())
}

fn unavailable_or_timeout<T>(
    r: Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>,
) -> Result<T, DbError> {
    match r {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(DbError::Unavailable("statement timed out".into())),
    }
}

#[async_trait]
impl ChangeFeed for PgFeed {
    async fn confirmed(&self, slot: &str) -> Result<Lsn, DbError> {
        let query = sqlx::query_as(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(self.names.slot(&self.db, slot))
        .fetch_optional(&self.pool);
        let row: Option<(Option<String>,)> =
            unavailable_or_timeout(tokio::time::timeout(OP_TIMEOUT, query).await)?;
        Ok(row
            .and_then(|(l,)| l)
            .and_then(|l| parse_lsn(&l))
            .unwrap_or(0))
    }

    async fn poll(&self, slot: &str, after: Lsn, max: usize) -> Result<Vec<Change>, DbError> {
        let query = sqlx::query_as(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'skip-empty-xacts', '1')",
        )
        .bind(self.names.slot(&self.db, slot))
        .fetch_all(&self.pool);
        let rows: Vec<(String, String)> =
            unavailable_or_timeout(tokio::time::timeout(OP_TIMEOUT, query).await)?;
        // The slot decodes only its own database, but a user's database may
        // hold tables that are not this DB's (or the runner's own): count
        // only this DB's transactions towards `max`, or a run of foreign
        // ones longer than `max` would hide this DB's changes forever.
        let mut changes = Vec::new();
        let mut taken = 0;
        for (lsn, txn) in transactions(&rows)
            .into_iter()
            .filter(|(lsn, _)| *lsn > after)
        {
            let before = changes.len();
            for c in txn {
                let Some((db, table)) = self.names.logical_table(&c.table) else {
                    continue;
                };
                if db != self.db {
                    continue;
                }
                changes.push(Change {
                    lsn,
                    table,
                    key: c.key,
                    op: c.op,
                    version: c.version,
                    data: c.data,
                });
            }
            if changes.len() > before {
                taken += 1;
                if taken == max {
                    break;
                }
            }
        }
        Ok(changes)
    }

    async fn confirm(&self, slot: &str, lsn: Lsn) -> Result<(), DbError> {
        let query = sqlx::query("SELECT pg_replication_slot_advance($1, $2::pg_lsn)")
            .bind(self.names.slot(&self.db, slot))
            .bind(format_lsn(lsn))
            .execute(&self.pool);
        unavailable_or_timeout(tokio::time::timeout(OP_TIMEOUT, query).await)?;
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

/// The run's databases on one Postgres server (`wal_level=logical`).
pub struct PgServer {
    /// A small pool on the URL's own database, for creating and dropping
    /// the run's databases and slots.
    admin: PgPool,
    options: PgConnectOptions,
    version: String,
}

async fn execute(pool: &PgPool, sql: String) -> Result<(), String> {
    sqlx::query(AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| format!("{sql}: {e}"))
}

impl PgServer {
    /// Connect and check that the server can decode its WAL.
    pub async fn connect(url: &str) -> Result<PgServer, String> {
        let options = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
        let admin = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await
            .map_err(|e| e.to_string())?;
        let (wal_level, version): (String, String) = sqlx::query_as(
            "SELECT current_setting('wal_level'), current_setting('server_version')",
        )
        .fetch_one(&admin)
        .await
        .map_err(|e| e.to_string())?;
        if wal_level != "logical" {
            return Err(format!(
                "wal_level is {wal_level}; CDC by logical decoding needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart Postgres)"
            ));
        }
        Ok(PgServer {
            admin,
            options,
            version,
        })
    }

    /// Options for logical DB `db`'s database, through `via` if given.
    fn options(&self, names: &RunNames, db: &str, via: Option<SocketAddr>) -> PgConnectOptions {
        let options = self.options.clone().database(&names.database(db));
        match via {
            Some(addr) => options.host(&addr.ip().to_string()).port(addr.port()),
            None => options,
        }
    }

    fn lazy_pool(&self, names: &RunNames, db: &str, via: Option<SocketAddr>) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(self.options(names, db, via))
    }

    /// A direct connection to `db`'s database for the runner's own use.
    async fn direct(&self, names: &RunNames, db: &str) -> Result<PgPool, String> {
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(self.options(names, db, None))
            .await
            .map_err(|e| format!("connecting to {}: {e}", names.database(db)))
    }

    /// One logical DB's database, tables, slots and seed rows.
    async fn create_one(&self, names: &RunNames, spec: &DbSpec) -> Result<(), String> {
        execute(
            &self.admin,
            format!("CREATE DATABASE {}", names.database(&spec.name)),
        )
        .await?;
        let pool = self.direct(names, &spec.name).await?;
        let created = async {
            create_tables(&pool, names, &spec.name, &spec.tables)
                .await
                .map_err(|e| e.to_string())?;
            // The history's slot first: it sees every commit from here on.
            let slots = std::iter::once(HISTORY_SLOT).chain(spec.slots.iter().map(String::as_str));
            for slot in slots {
                execute(
                    &pool,
                    format!(
                        "SELECT pg_create_logical_replication_slot('{}', 'test_decoding')",
                        names.slot(&spec.name, slot)
                    ),
                )
                .await?;
            }
            seed_rows(&pool, names, spec).await
        }
        .await;
        pool.close().await;
        created
    }

    /// Every transaction `db`'s history slot decoded, one commit event each.
    async fn collect_one(
        &self,
        names: &RunNames,
        db: &str,
        start_epoch_ms: i64,
        history: &History,
    ) -> Result<(), String> {
        let pool = self.direct(names, db).await?;
        let rows: Result<Vec<(String, String, Option<i64>)>, _> = sqlx::query_as(
            r"SELECT lsn::text, data,
                     CASE WHEN data LIKE 'COMMIT%'
                          THEN (extract(epoch from substring(data from '\(at (.+)\)$')::timestamptz) * 1000)::bigint
                     END
              FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-timestamp', '1', 'skip-empty-xacts', '1')",
        )
        .bind(names.slot(db, HISTORY_SLOT))
        .fetch_all(&pool)
        .await;
        pool.close().await;
        let rows = rows.map_err(|e| format!("reading {db}'s history slot: {e}"))?;
        for (t, lsn, changes) in commits_of(names, &rows, start_epoch_ms) {
            let changes: Vec<Change> = changes
                .into_iter()
                .filter(|(d, _)| d == db)
                .map(|(_, c)| c.for_history())
                .collect();
            if !changes.is_empty() {
                history.record_at(
                    t,
                    Event::DbCommit {
                        db: db.to_string(),
                        process: "postgres".into(),
                        lsn,
                        changes,
                    },
                );
            }
        }
        Ok(())
    }
}

/// The rows a logical DB starts with, in one transaction.
async fn seed_rows(pool: &PgPool, names: &RunNames, spec: &DbSpec) -> Result<(), String> {
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for row in &spec.rows {
        let sql = format!(
            "INSERT INTO {} (key, version, data) VALUES ($1, 1, $2)",
            names.table(&spec.name, &row.table)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&row.key)
            .bind(&row.data)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// Group a history slot's `(lsn, data, commit ms)` rows into commits: each
/// with its time since the run's start (never going back), its LSN, and its
/// changes tagged by logical DB.
type Commit = (u64, Lsn, Vec<(String, Change)>);

fn commits_of(
    names: &RunNames,
    rows: &[(String, String, Option<i64>)],
    start_epoch_ms: i64,
) -> Vec<Commit> {
    let mut out = Vec::new();
    let mut changes: Vec<DecodedChange> = Vec::new();
    let mut clock = CommitClock::default();
    for (lsn, data, commit_ms) in rows {
        if data.starts_with("BEGIN") {
            changes.clear();
            continue;
        }
        if !data.starts_with("COMMIT") {
            changes.extend(parse_change(data));
            continue;
        }
        let t = clock.at(*commit_ms, start_epoch_ms);
        let lsn = parse_lsn(lsn).unwrap_or_default();
        let tagged = changes
            .drain(..)
            .filter_map(|c| {
                let (db, table) = names.logical_table(&c.table)?;
                Some((
                    db,
                    Change {
                        lsn,
                        table,
                        key: c.key,
                        op: c.op,
                        version: c.version,
                        data: c.data,
                    },
                ))
            })
            .collect();
        out.push((t, lsn, tagged));
    }
    out
}

#[async_trait]
impl DbServer for PgServer {
    fn describe(&self) -> String {
        format!("Postgres {}", self.version)
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.options.get_host(), self.options.get_port())
    }

    async fn create(&self, names: &RunNames, dbs: &[DbSpec]) -> Result<(), String> {
        for spec in dbs {
            self.create_one(names, spec).await?;
        }
        Ok(())
    }

    async fn collect(
        &self,
        names: &RunNames,
        dbs: &[DbSpec],
        start_epoch_ms: i64,
        history: &History,
    ) -> Result<(), String> {
        for spec in dbs {
            self.collect_one(names, &spec.name, start_epoch_ms, history)
                .await?;
        }
        Ok(())
    }

    async fn drop_all(&self, names: &RunNames, dbs: &[DbSpec]) -> Result<(), String> {
        // Slots first: Postgres refuses to drop a database that has one.
        let slots = execute(
            &self.admin,
            format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE starts_with(slot_name, '{}_')",
                names.prefix()
            ),
        )
        .await;
        let mut first_error = slots.err();
        for spec in dbs {
            let dropped = execute(
                &self.admin,
                format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    names.database(&spec.name)
                ),
            )
            .await;
            if let Err(e) = dropped {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn database(
        &self,
        names: &Arc<RunNames>,
        db: &str,
        via: Option<SocketAddr>,
    ) -> Arc<dyn Database> {
        Arc::new(PgDb::new(
            self.lazy_pool(names, db, via),
            names.clone(),
            db.to_string(),
        ))
    }

    fn feed(
        &self,
        names: &Arc<RunNames>,
        db: &str,
        via: Option<SocketAddr>,
        history: Option<History>,
    ) -> Arc<dyn ChangeFeed> {
        let feed = PgFeed::new(
            self.lazy_pool(names, db, via),
            names.clone(),
            db.to_string(),
        );
        Arc::new(match history {
            Some(h) => feed.recording(h),
            None => feed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
    }

    #[test]
    fn parses_test_decoding_changes_with_quotes() {
        let line = r#"table public.pitfall_x_pay_payments: INSERT: key[text]:'o''1' version[bigint]:1 data[jsonb]:'{"note": "it''s", "qty": 2}'"#;
        let c = parse_change(line).unwrap();
        assert_eq!(c.table, "pitfall_x_pay_payments");
        assert_eq!(c.op, ChangeOp::Insert);
        assert_eq!(c.key, "o'1");
        assert_eq!(c.version, 1);
        assert_eq!(c.data, json!({"note": "it's", "qty": 2}));
        let upd = r#"table public.t: UPDATE: key[text]:'p' version[bigint]:7 data[jsonb]:'{"available": 3}'"#;
        assert_eq!(parse_change(upd).unwrap().op, ChangeOp::Update);
        let del = "table public.pf_x_payments: DELETE: key[text]:'o''1'";
        let d = parse_change(del).unwrap();
        assert_eq!(
            (d.op, d.key.as_str(), d.version),
            (ChangeOp::Delete, "o'1", 0)
        );
        assert_eq!(d.data, Value::Null);
    }

    #[test]
    fn groups_rows_into_committed_transactions() {
        let row = |lsn: &str, data: &str| (lsn.to_string(), data.to_string());
        let rows = vec![
            row("0/10", "BEGIN 700"),
            row(
                "0/11",
                r#"table public.t: INSERT: key[text]:'a' version[bigint]:1 data[jsonb]:'1'"#,
            ),
            row(
                "0/12",
                r#"table public.t: INSERT: key[text]:'b' version[bigint]:1 data[jsonb]:'2'"#,
            ),
            row("0/20", "COMMIT 700"),
            row("0/21", "BEGIN 701"),
            row(
                "0/22",
                r#"table public.t: UPDATE: key[text]:'a' version[bigint]:2 data[jsonb]:'3'"#,
            ),
            row("0/30", "COMMIT 701"),
        ];
        let txns = transactions(&rows);
        assert_eq!(txns.len(), 2);
        assert_eq!(txns[0].0, 0x20);
        assert_eq!(txns[0].1.len(), 2);
        assert_eq!(txns[1].0, 0x30);
        assert_eq!(txns[1].1[0].data, json!(3));
    }
}
