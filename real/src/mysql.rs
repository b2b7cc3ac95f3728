//! The DB port on MariaDB/MySQL through sqlx, and [`MyServer`], the run's
//! databases on one server with the binlog on (ROW format, FULL row images);
//! the change feed is [`crate::binlog`].
//!
//! Each logical DB is a database (schema) of its own; each logical table is
//! an InnoDB table `(key varchar primary key, version bigint, data longtext,
//! at timestamp(6))` with a binary collation, so keys compare as Postgres
//! compares them. `at` is set by the server on every write, which gives the
//! history a commit time finer than the binlog's seconds. Errors map onto
//! the port: a duplicate key is a unique violation, a deadlock or a lock
//! wait timeout a conflict, a commit whose reply never came
//! `CommitOutcomeUnknown`.

use crate::binlog::{self, BinlogFeed, SLOTS_TABLE};
use crate::dbserver::{CommitClock, DbServer, HISTORY_SLOT};
use crate::names::RunNames;
use async_trait::async_trait;
use pitfall_harness::history::{Event, History};
use pitfall_harness::system::DbSpec;
use pitfall_ports::{Change, ChangeFeed, Database, DbError, Row, Transaction};
use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, MySql};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long one statement may take before the DB counts as unreachable.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

async fn timed<T>(f: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    tokio::time::timeout(OP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(DbError::Unavailable("statement timed out".into())))
}

/// Map a sqlx MySQL error onto the port's error kinds.
pub fn db_error(e: sqlx::Error, table: &str, key: &str) -> DbError {
    let sqlx::Error::Database(d) = &e else {
        return DbError::Unavailable(e.to_string());
    };
    match d
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(|m| m.number())
    {
        // ER_DUP_ENTRY
        Some(1062) => DbError::UniqueViolation {
            table: table.to_string(),
            key: key.to_string(),
        },
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
        Some(1213) | Some(1205) => DbError::Conflict,
        _ => DbError::Other(d.to_string()),
    }
}

pub struct MyDb {
    pool: MySqlPool,
    names: Arc<RunNames>,
    db: String,
}

impl MyDb {
    pub fn new(pool: MySqlPool, names: Arc<RunNames>, db: String) -> Self {
        MyDb { pool, names, db }
    }
}

#[async_trait]
impl Database for MyDb {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        let tx = timed(async {
            self.pool
                .begin()
                .await
                .map_err(|e| DbError::Unavailable(e.to_string()))
        })
        .await?;
        Ok(Box::new(MyTx {
            tx,
            table_prefix: format!("`{}`.", self.names.database(&self.db)),
            names: self.names.clone(),
            db: self.db.clone(),
        }))
    }
}

struct MyTx {
    tx: sqlx::Transaction<'static, MySql>,
    table_prefix: String,
    names: Arc<RunNames>,
    db: String,
}

impl MyTx {
    fn table(&self, table: &str) -> String {
        format!(
            "{}`{}`",
            self.table_prefix,
            self.names.table(&self.db, table)
        )
    }
}

#[async_trait]
impl Transaction for MyTx {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError> {
        let sql = format!(
            "SELECT version, data FROM {} WHERE `key` = ?",
            self.table(table)
        );
        let query = sqlx::query_as(AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&mut *self.tx);
        let row: Option<(i64, String)> =
            timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        row.map(|(version, data)| {
            let data = serde_json::from_str(&data)
                .map_err(|e| DbError::Other(format!("{table}/{key} holds no JSON: {e}")))?;
            Ok(Row {
                key: key.to_string(),
                version: version as u64,
                data,
            })
        })
        .transpose()
    }

    async fn insert(&mut self, table: &str, key: &str, data: Value) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO {} (`key`, version, data) VALUES (?, 1, ?)",
            self.table(table)
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .bind(data.to_string())
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
            "UPDATE {} SET version = version + 1, data = ? WHERE `key` = ? AND version = ?",
            self.table(table)
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(data.to_string())
            .bind(key)
            .bind(expected as i64)
            .execute(&mut *self.tx);
        let done = timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError> {
        let sql = format!("DELETE FROM {} WHERE `key` = ?", self.table(table));
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .execute(&mut *self.tx);
        let done = timed(async { query.await.map_err(|e| db_error(e, table, key)) }).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        match tokio::time::timeout(OP_TIMEOUT, self.tx.commit()).await {
            Err(_) => Err(DbError::CommitOutcomeUnknown("commit timed out".into())),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ sqlx::Error::Database(_))) => match db_error(e, "?", "?") {
                DbError::Other(msg) => Err(DbError::CommitOutcomeUnknown(msg)),
                known => Err(known),
            },
            // The COMMIT may have been applied before the connection failed.
            Ok(Err(e)) => Err(DbError::CommitOutcomeUnknown(e.to_string())),
        }
    }

    async fn rollback(self: Box<Self>) {
        let _ = tokio::time::timeout(OP_TIMEOUT, self.tx.rollback()).await;
    }
}

/// The run's databases on one MariaDB/MySQL server.
pub struct MyServer {
    /// A small pool on the URL's own database, for DDL, seed rows, slots.
    admin: MySqlPool,
    options: MySqlConnectOptions,
    /// The replication client's options (the same server and user).
    replication: mysql_async::Opts,
    version: String,
}

async fn execute(pool: &MySqlPool, sql: String) -> Result<(), String> {
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| format!("{sql}: {e}"))
}

impl MyServer {
    /// Connect and check that the binlog carries full row images.
    pub async fn connect(url: &str) -> Result<MyServer, String> {
        let url = url.replacen("mariadb://", "mysql://", 1);
        let options = MySqlConnectOptions::from_str(&url).map_err(|e| e.to_string())?;
        let replication = mysql_async::Opts::from_url(&url).map_err(|e| e.to_string())?;
        let admin = MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await
            .map_err(|e| e.to_string())?;
        let (log_bin, format, image, version): (i64, String, String, String) =
            sqlx::query_as("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, VERSION()")
                .fetch_one(&admin)
                .await
                .map_err(|e| e.to_string())?;
        if log_bin != 1 || format != "ROW" || image != "FULL" {
            return Err(format!(
                "CDC from the binlog needs log_bin=ON, binlog_format=ROW and binlog_row_image=FULL; this server has log_bin={}, binlog_format={format}, binlog_row_image={image}",
                if log_bin == 1 { "ON" } else { "OFF" }
            ));
        }
        Ok(MyServer {
            admin,
            options,
            replication,
            version,
        })
    }

    fn lazy_pool(&self, via: Option<SocketAddr>) -> MySqlPool {
        let options = match via {
            Some(addr) => self
                .options
                .clone()
                .host(&addr.ip().to_string())
                .port(addr.port()),
            None => self.options.clone(),
        };
        MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options)
    }

    fn replication_opts(&self, via: Option<SocketAddr>) -> mysql_async::Opts {
        let builder = mysql_async::OptsBuilder::from_opts(self.replication.clone())
            // A local server would otherwise be reached over its Unix
            // socket, around the link's fault proxy.
            .prefer_socket(false);
        match via {
            Some(addr) => builder
                .ip_or_hostname(addr.ip().to_string())
                .tcp_port(addr.port())
                .into(),
            None => builder.into(),
        }
    }

    async fn create_one(&self, names: &RunNames, spec: &DbSpec) -> Result<(), String> {
        let database = names.database(&spec.name);
        execute(
            &self.admin,
            format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        )
        .await?;
        for table in &spec.tables {
            execute(
                &self.admin,
                format!(
                    "CREATE TABLE `{database}`.`{}` (`key` VARCHAR(191) NOT NULL PRIMARY KEY, \
                     version BIGINT NOT NULL, data LONGTEXT NOT NULL, \
                     at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) \
                     ENGINE=InnoDB",
                    names.table(&spec.name, table)
                ),
            )
            .await?;
        }
        execute(
            &self.admin,
            format!(
                "CREATE TABLE `{database}`.{SLOTS_TABLE} (slot VARCHAR(64) NOT NULL PRIMARY KEY, pos BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"
            ),
        )
        .await?;
        // Every slot starts at the log's end: the history's sees every
        // commit from here on, the seed rows included.
        let (_, start) = binlog::log_end(&self.admin).await?;
        let slots = std::iter::once(HISTORY_SLOT).chain(spec.slots.iter().map(String::as_str));
        for slot in slots {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO `{database}`.{SLOTS_TABLE} (slot, pos) VALUES (?, ?)"
            )))
            .bind(slot)
            .bind(start)
            .execute(&self.admin)
            .await
            .map_err(|e| e.to_string())?;
        }
        self.seed_rows(names, spec).await
    }

    async fn seed_rows(&self, names: &RunNames, spec: &DbSpec) -> Result<(), String> {
        let mut tx = self.admin.begin().await.map_err(|e| e.to_string())?;
        for row in &spec.rows {
            let sql = format!(
                "INSERT INTO `{}`.`{}` (`key`, version, data) VALUES (?, 1, ?)",
                names.database(&spec.name),
                names.table(&spec.name, &row.table)
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(&row.key)
                .bind(row.data.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())
    }

    /// The earliest history slot position of the run's DBs.
    async fn history_start(&self, names: &RunNames, dbs: &[DbSpec]) -> Result<u64, String> {
        let mut start = u64::MAX;
        for spec in dbs {
            let sql = format!(
                "SELECT pos FROM `{}`.{SLOTS_TABLE} WHERE slot = ?",
                names.database(&spec.name)
            );
            let pos: u64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(HISTORY_SLOT)
                .fetch_one(&self.admin)
                .await
                .map_err(|e| format!("reading {}'s history position: {e}", spec.name))?;
            start = start.min(pos);
        }
        Ok(start)
    }
}

#[async_trait]
impl DbServer for MyServer {
    fn describe(&self) -> String {
        format!("MariaDB/MySQL {}", self.version)
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
        let start = self.history_start(names, dbs).await?;
        let (base, end) = binlog::log_end(&self.admin).await?;
        let (file, offset) = binlog::file_of(&base, start);
        let txns = binlog::read(
            self.replication_opts(None),
            names,
            &file,
            offset,
            end,
            (None, usize::MAX),
        )
        .await
        .map_err(|e| format!("reading the binlog: {e}"))?;
        let mut clock = CommitClock::default();
        for txn in txns {
            let t = clock.at(txn.commit_ms, start_epoch_ms);
            let mut by_db: BTreeMap<String, Vec<Change>> = BTreeMap::new();
            for (db, change) in txn.changes {
                by_db.entry(db).or_default().push(change.for_history());
            }
            for (db, changes) in by_db {
                history.record_at(
                    t,
                    Event::DbCommit {
                        db,
                        process: "mysql".into(),
                        lsn: txn.lsn,
                        changes,
                    },
                );
            }
        }
        Ok(())
    }

    async fn drop_all(&self, names: &RunNames, dbs: &[DbSpec]) -> Result<(), String> {
        let mut first_error = None;
        for spec in dbs {
            let dropped = execute(
                &self.admin,
                format!("DROP DATABASE IF EXISTS `{}`", names.database(&spec.name)),
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
        Arc::new(MyDb::new(
            self.lazy_pool(via),
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
        Arc::new(BinlogFeed::new(
            self.lazy_pool(via),
            self.replication_opts(via),
            names.clone(),
            db.to_string(),
            history,
        ))
    }
}
