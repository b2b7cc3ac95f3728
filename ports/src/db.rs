//! The database port: multi-statement transactions over keyed tables with a
//! version column, and the change feed (a logical replication slot).
//!
//! Tables are `key → (version, data)`. The key is the primary key, so an
//! insert of an existing key is a [`DbError::UniqueViolation`]. A conditional
//! update succeeds only when the stored version equals the expected one, like
//! `UPDATE … SET version = version + 1 WHERE key = $1 AND version = $2`. A
//! delete removes a row whatever its version.

use crate::digest::{summary, HISTORY_INLINE_LIMIT};
use crate::Blob;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A position in the change log, ordered by commit (like a Postgres LSN or a
/// MySQL binlog position).
pub type Lsn = u64;

/// One row of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub version: u64,
    pub data: Value,
}

impl Change {
    /// The change as a history records it. Data over
    /// [`HISTORY_INLINE_LIMIT`] bytes of JSON (a stored payload chunk) is
    /// recorded as the [`history_summary`](crate::digest::history_summary) of that JSON: equal rows still
    /// compare equal, and a chunked payload no longer puts megabytes into
    /// every commit it records.
    pub fn for_history(mut self) -> Change {
        if let Some(summary) = history_summary_of_row(&self.data) {
            self.data = summary;
        }
        self
    }
}

/// The [`history_summary`](crate::digest::history_summary) of a row's JSON when it is over
/// [`HISTORY_INLINE_LIMIT`] bytes (what [`Change::for_history`] records in
/// place of the row), or `None` for a row a history keeps as it is.
///
/// A large row's JSON is hashed as it is written, a buffer at a time, never
/// whole in memory (a stored payload chunk's is some 340 KB).
pub fn history_summary_of_row(data: &Value) -> Option<Value> {
    let mut json = SummaryWriter::default();
    write_json(&mut json, data).expect("a JSON value serializes");
    json.summary()
}

/// Write `value` exactly as `serde_json::to_writer` does, but pass a string
/// that needs no escape straight through: `serde_json` looks at each byte
/// of a string on its own, and a stored chunk's is 340 KB of base64.
fn write_json(w: &mut impl std::io::Write, value: &Value) -> std::io::Result<()> {
    match value {
        Value::String(s) => write_json_str(w, s),
        Value::Array(items) => {
            w.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_json(w, item)?;
            }
            w.write_all(b"]")
        }
        Value::Object(members) => {
            w.write_all(b"{")?;
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_json_str(w, key)?;
                w.write_all(b":")?;
                write_json(w, item)?;
            }
            w.write_all(b"}")
        }
        scalar => serde_json::to_writer(w, scalar).map_err(std::io::Error::other),
    }
}

/// A JSON string: as it is between quotes when nothing in it needs an
/// escape (a control character, `"` or `\`), else as `serde_json` writes it.
fn write_json_str(w: &mut impl std::io::Write, s: &str) -> std::io::Result<()> {
    // Whole blocks with no early exit, so the compiler checks many bytes
    // at once.
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let plain = s
        .as_bytes()
        .chunks(64)
        .all(|block| !block.iter().fold(false, |any, &b| any | escaped(b)));
    if !plain {
        return serde_json::to_writer(w, s).map_err(std::io::Error::other);
    }
    w.write_all(b"\"")?;
    w.write_all(s.as_bytes())?;
    w.write_all(b"\"")
}

/// Where [`history_summary_of_row`] writes a row's JSON: kept while it is
/// short, hashed from the first byte over [`HISTORY_INLINE_LIMIT`] on.
#[derive(Default)]
struct SummaryWriter {
    kept: Vec<u8>,
    hashed: Option<(blake3::Hasher, usize)>,
}

impl SummaryWriter {
    fn summary(self) -> Option<Value> {
        let (hasher, size) = self.hashed?;
        Some(summary(
            size,
            crate::digest::hex(hasher.finalize().as_bytes()),
        ))
    }
}

impl std::io::Write for SummaryWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match &mut self.hashed {
            Some((hasher, size)) => {
                hasher.update(bytes);
                *size += bytes.len();
            }
            None if self.kept.len() + bytes.len() <= HISTORY_INLINE_LIMIT => {
                self.kept.extend_from_slice(bytes);
            }
            None => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(&self.kept);
                hasher.update(bytes);
                self.hashed = Some((hasher, self.kept.len() + bytes.len()));
                self.kept = Vec::new();
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Errors a database call can return. The distinction between them is what
/// services need to be correct: a unique violation is an answer, a conflict
/// means "retry the transaction", and an unknown commit outcome means the
/// effects may or may not be there.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum DbError {
    /// The DB refused or did not answer. Nothing was committed by this call.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row with this key already exists.
    #[error("unique violation on {table}/{key}")]
    UniqueViolation { table: String, key: String },
    /// A concurrent transaction changed what this one read (a serialization
    /// failure). Retry the whole transaction.
    #[error("serialization conflict; retry the transaction")]
    Conflict,
    /// The commit was sent but its reply was lost: it may have applied.
    #[error("commit outcome unknown: {0}")]
    CommitOutcomeUnknown(String),
    /// The statement itself is wrong; retrying will not help.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// Whether retrying the whole transaction may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable(_) | DbError::Conflict | DbError::CommitOutcomeUnknown(_)
        )
    }
}

/// Where the default [`Transaction::insert_bytes`] keeps a row's bytes in
/// its JSON: standard, padded base64 (by `base64-simd`, the SIMD codec the
/// AWS SDK for Rust uses).
pub const BYTES_FIELD: &str = "bytes_base64";

const BASE64: base64_simd::Base64 = base64_simd::STANDARD;

/// `data` (an object, or nothing) with `bytes` as base64 under
/// [`BYTES_FIELD`].
fn with_bytes_field(data: Value, bytes: &Blob) -> Value {
    let mut object = match data {
        Value::Object(object) => object,
        _ => serde_json::Map::new(),
    };
    // Built by hand: `json!` would serialize the encoded bytes into a copy.
    let encoded = Value::String(BASE64.encode_to_string(bytes.bytes()));
    object.insert(BYTES_FIELD.to_string(), encoded);
    Value::Object(object)
}

/// The bytes [`with_bytes_field`] put in `data`, if they are there and
/// base64.
fn bytes_field(data: &Value) -> Option<Blob> {
    let encoded = data.get(BYTES_FIELD)?.as_str()?;
    BASE64.decode_to_vec(encoded).ok().map(Blob::from)
}

/// A connection pool or client: hands out transactions.
#[async_trait]
pub trait Database: Send + Sync {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError>;
}

/// One open transaction. Dropping it without commit rolls it back.
#[async_trait]
pub trait Transaction: Send {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError>;
    /// Insert a new row with version 1.
    async fn insert(&mut self, table: &str, key: &str, data: Value) -> Result<(), DbError>;
    /// Replace the row's data if its version is `expected`; the new version is
    /// `expected + 1`. Returns whether a row was updated.
    async fn update(
        &mut self,
        table: &str,
        key: &str,
        expected: u64,
        data: Value,
    ) -> Result<bool, DbError>;
    /// Insert a new row with version 1 that holds `bytes` besides its
    /// `data`, as a `bytea` or `BLOB` column would: a stored payload chunk.
    /// Read them back with [`Transaction::get_bytes`]. The default keeps
    /// them in the JSON, base64 under [`BYTES_FIELD`]; an adapter with a
    /// column for bytes overrides both methods. An [`Transaction::update`]
    /// replaces the data and leaves the row no bytes, in either form.
    async fn insert_bytes(
        &mut self,
        table: &str,
        key: &str,
        data: Value,
        bytes: Blob,
    ) -> Result<(), DbError> {
        self.insert(table, key, with_bytes_field(data, &bytes))
            .await
    }
    /// The bytes of a row [`Transaction::insert_bytes`] wrote: `None` when
    /// there is no row, `Some(None)` when the row holds no readable bytes.
    async fn get_bytes(&mut self, table: &str, key: &str) -> Result<Option<Option<Blob>>, DbError> {
        Ok(self
            .get(table, key)
            .await?
            .map(|row| bytes_field(&row.data)))
    }
    /// Delete the row, if there is one; returns whether there was, like
    /// `DELETE … WHERE key = $1` and its row count. The change log records
    /// the delete by key alone ([`ChangeOp::Delete`]).
    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError>;
    /// Commit atomically.
    async fn commit(self: Box<Self>) -> Result<(), DbError>;
    async fn rollback(self: Box<Self>);
}

/// The kind of row change in the change log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Insert,
    Update,
    /// A deleted row: the change carries its key only, with version 0 and
    /// null data (what Postgres's log holds of a delete under the default
    /// replica identity).
    Delete,
}

/// One row change read from the change log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The commit position of the transaction that made this change.
    pub lsn: Lsn,
    pub table: String,
    pub key: String,
    pub op: ChangeOp,
    pub version: u64,
    pub data: Value,
}

/// The DB's change log seen through a named replication slot. The slot's
/// confirmed position is durable: after a crash a reader resumes from it, so
/// changes after it are delivered again (at least once).
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The slot's durable confirmed position (0 when nothing was confirmed).
    async fn confirmed(&self, slot: &str) -> Result<Lsn, DbError>;
    /// Changes of transactions committed after `after`, in commit order; at
    /// most `max` transactions' worth, and whole transactions only.
    async fn poll(&self, slot: &str, after: Lsn, max: usize) -> Result<Vec<Change>, DbError>;
    /// [`ChangeFeed::poll`] as a long poll: when nothing was committed after
    /// `after` yet, wait up to `max_wait` for a commit. The default looks
    /// once and, finding nothing, sleeps out the wait; a feed that can be
    /// woken by a commit (the simulated DB) answers as soon as one lands.
    async fn poll_wait(
        &self,
        slot: &str,
        after: Lsn,
        max: usize,
        max_wait: std::time::Duration,
    ) -> Result<Vec<Change>, DbError> {
        let changes = self.poll(slot, after, max).await?;
        if changes.is_empty() {
            tokio::time::sleep(max_wait).await;
        }
        Ok(changes)
    }
    /// Durably advance the slot to `lsn`.
    async fn confirm(&self, slot: &str, lsn: Lsn) -> Result<(), DbError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(data: Value) -> Change {
        Change {
            lsn: 7,
            table: "payload_chunks".into(),
            key: "p1/0".into(),
            op: ChangeOp::Insert,
            version: 1,
            data,
        }
    }

    #[test]
    fn a_history_keeps_small_rows_and_the_size_and_digest_of_large_ones() {
        let small = change(json!({ "available": 25 }));
        assert_eq!(small.clone().for_history(), small);

        let chunk = "x".repeat(HISTORY_INLINE_LIMIT);
        let large = change(json!({ "chunk": chunk })).for_history();
        let json_len = HISTORY_INLINE_LIMIT + r#"{"chunk":""}"#.len();
        assert_eq!(large.data["bytes"], json!(json_len));
        let whole = serde_json::to_vec(&json!({ "chunk": chunk })).unwrap();
        assert_eq!(large.data, crate::digest::history_summary(&whole));
        assert_eq!((large.lsn, large.key.as_str()), (7, "p1/0"));
        // At the limit exactly, the row is kept; one byte more, summarized.
        let fits = "x".repeat(HISTORY_INLINE_LIMIT - r#"{"chunk":""}"#.len());
        let at_limit = change(json!({ "chunk": fits }));
        assert_eq!(at_limit.clone().for_history(), at_limit);
        let over = change(json!({ "chunk": format!("{fits}x") })).for_history();
        assert_eq!(over.data["bytes"], json!(HISTORY_INLINE_LIMIT + 1));

        let same = change(json!({ "chunk": "x".repeat(HISTORY_INLINE_LIMIT) })).for_history();
        let other = change(json!({ "chunk": "y".repeat(HISTORY_INLINE_LIMIT) })).for_history();
        assert_eq!(same.data, large.data);
        assert_ne!(other.data, large.data);
    }

    /// A row's JSON is written byte for byte as `serde_json` writes it:
    /// strings that need escapes, and ones that do not, in objects and
    /// arrays, beside every kind of scalar.
    #[test]
    fn rows_are_written_as_serde_json_writes_them() {
        let values = [
            json!({ "chunk": "QUJD".repeat(100), "n": 3, "f": -0.5, "ok": true, "none": null }),
            json!({ "quote\"key": "tab\there", "nl": "a\nb", "back\\slash": "\\", "bell": "\u{7}" }),
            json!(["plain", "é ünïcode ✓", 1e300, -12, [], {}, [{ "deep": ["x\"y"] }]]),
            json!("x".repeat(200) + "\u{1f}" + &"y".repeat(200)),
            json!(u64::MAX),
        ];
        for value in values {
            let mut ours = Vec::new();
            write_json(&mut ours, &value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&value).unwrap()
            );
        }
    }

    proptest::proptest! {
        /// Any string, as a value and as a key.
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in "\\PC*|[\\x00-\\x7f]*") {
            let value = json!({ s.clone(): [s] });
            let mut ours = Vec::new();
            write_json(&mut ours, &value).unwrap();
            proptest::prop_assert_eq!(ours, serde_json::to_vec(&value).unwrap());
        }
    }
}
