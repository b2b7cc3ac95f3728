//! The database server behind a real run's logical DBs, chosen by the
//! `--database` URL's scheme: Postgres (`postgres://`, CDC by logical
//! decoding) or MariaDB/MySQL (`mysql://` or `mariadb://`, CDC from the
//! binlog). Each logical DB of a run gets a database of its own on the
//! server, with its own tables and its own slots (Postgres) or binlog
//! filter and position table (MySQL), as separately deployed services
//! would have. Everything else in real mode sees only this trait.

use crate::names::RunNames;
use async_trait::async_trait;
use pitfall_harness::history::History;
use pitfall_harness::system::DbSpec;
use pitfall_ports::{ChangeFeed, Database};
use std::net::SocketAddr;
use std::sync::Arc;

/// The slot every logical DB has for the history: it sees every commit of
/// the run, setup included.
pub const HISTORY_SLOT: &str = "history";

#[async_trait]
pub trait DbServer: Send + Sync {
    /// The server's product and version, for messages and reports.
    fn describe(&self) -> String;
    /// Where the server listens; link proxies forward here.
    fn addr(&self) -> String;
    /// Create a database per logical DB with its tables, the history's
    /// slot first and then the system's, and the seed rows.
    async fn create(&self, names: &RunNames, dbs: &[DbSpec]) -> Result<(), String>;
    /// Every transaction committed since [`Self::create`], as one
    /// `DbCommit` per logical DB, timed relative to `start_epoch_ms`.
    async fn collect(
        &self,
        names: &RunNames,
        dbs: &[DbSpec],
        start_epoch_ms: i64,
        history: &History,
    ) -> Result<(), String>;
    /// Remove the run's databases and slots.
    async fn drop_all(&self, names: &RunNames, dbs: &[DbSpec]) -> Result<(), String>;
    /// The DB port on logical DB `db`, connecting through `via` (a link's
    /// fault proxy) or straight to the server.
    fn database(
        &self,
        names: &Arc<RunNames>,
        db: &str,
        via: Option<SocketAddr>,
    ) -> Arc<dyn Database>;
    /// `db`'s change feed; records each confirmed position in `history`.
    fn feed(
        &self,
        names: &Arc<RunNames>,
        db: &str,
        via: Option<SocketAddr>,
        history: Option<History>,
    ) -> Arc<dyn ChangeFeed>;
}

/// Commit times in ms since the run started, as the history records them:
/// never going back, and a commit of unknown time takes the last one.
#[derive(Default)]
pub struct CommitClock {
    last_ms: u64,
}

impl CommitClock {
    pub fn at(&mut self, commit_epoch_ms: Option<i64>, start_epoch_ms: i64) -> u64 {
        let t = commit_epoch_ms
            .map_or(self.last_ms, |ms| (ms - start_epoch_ms).max(0) as u64)
            .max(self.last_ms);
        self.last_ms = t;
        t
    }
}

/// The server kind a `--database` URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
}

impl Kind {
    /// The kind from the URL's scheme.
    pub fn of_url(url: &str) -> Result<Kind, String> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("postgres" | "postgresql") => Ok(Kind::Postgres),
            Some("mysql" | "mariadb") => Ok(Kind::MySql),
            _ => Err(format!(
                "`{url}` is not a database URL pitfall knows: use postgres://user@host:port/db or mysql://user@host:port/db"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "Postgres",
            Kind::MySql => "MariaDB/MySQL",
        }
    }
}

/// Connect to the server a URL names and check it can do CDC. An error
/// names the service (the server kind, or "database" for an unknown URL).
pub async fn connect(url: &str) -> Result<Arc<dyn DbServer>, (&'static str, String)> {
    let kind = Kind::of_url(url).map_err(|e| ("database", e))?;
    match kind {
        Kind::Postgres => crate::postgres::PgServer::connect(url)
            .await
            .map(|s| Arc::new(s) as Arc<dyn DbServer>),
        Kind::MySql => crate::mysql::MyServer::connect(url)
            .await
            .map(|s| Arc::new(s) as Arc<dyn DbServer>),
    }
    .map_err(|e| (kind.name(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_never_go_back() {
        let mut clock = CommitClock::default();
        assert_eq!(clock.at(Some(1_500), 1_000), 500);
        assert_eq!(clock.at(None, 1_000), 500);
        assert_eq!(clock.at(Some(1_200), 1_000), 500);
        assert_eq!(clock.at(Some(900), 1_000), 500);
        assert_eq!(clock.at(Some(2_000), 1_000), 1_000);
    }

    #[test]
    fn the_scheme_picks_the_server() {
        assert_eq!(
            Kind::of_url("postgres://postgres@127.0.0.1:5432/postgres"),
            Ok(Kind::Postgres)
        );
        assert_eq!(
            Kind::of_url("mysql://root@127.0.0.1:3306/mysql"),
            Ok(Kind::MySql)
        );
        assert_eq!(Kind::of_url("mariadb://root@h/x"), Ok(Kind::MySql));
        assert!(Kind::of_url("sqlite://x").is_err());
        assert!(Kind::of_url("127.0.0.1:5432").is_err());
    }
}
