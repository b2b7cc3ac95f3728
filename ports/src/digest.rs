//! The digest payloads are identified by: lowercase hex SHA-256. The
//! producer, the archive and the history all use this one.

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Data larger than this (in bytes) is recorded in a history by its size
/// and digest ([`history_summary`]): a record value, or a DB row's JSON.
pub const HISTORY_INLINE_LIMIT: usize = 4096;

/// How a history records data too large to keep:
/// `{"bytes": n, "sha256": …}`, so equal data still compares equal.
pub fn history_summary(bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({ "bytes": bytes.len(), "sha256": sha256_hex(bytes) })
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_lowercase_hex_sha256() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
