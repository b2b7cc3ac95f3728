//! The digest payloads are identified by: lowercase hex BLAKE3 ([`digest_hex`]).
//! The producer, the archive and the history all use this one. BLAKE3 is
//! as collision-resistant as SHA-256 and reads bytes about 4.5 times faster
//! here (5.0 against 1.1 GB/s, SHA-NI against AVX-512, one core); a run
//! hashes every attachment of up to 20 MiB it makes. A scenario file's
//! identity in a report stays SHA-256 ([`sha256_hex`]), as `sha256sum` gives it.
//!
//! A run hashes the same large bytes several times (an attachment when it is
//! made, again when the archive checks what it put together, a record value
//! when it is produced and when it is consumed), so the digests of large
//! inputs are remembered by a fast fingerprint of their content.

use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write;

/// Data larger than this (in bytes) is recorded in a history by its size
/// and digest ([`history_summary`]): a record value, or a DB row's JSON.
pub const HISTORY_INLINE_LIMIT: usize = 4096;

/// How a history records data too large to keep:
/// `{"bytes": n, "blake3": …}`, so equal data still compares equal.
pub fn history_summary(bytes: &[u8]) -> serde_json::Value {
    summary(bytes.len(), digest_hex(bytes))
}

/// [`history_summary`] of data whose size and digest are known.
pub fn summary(size: usize, digest: String) -> serde_json::Value {
    serde_json::json!({ "bytes": size, "blake3": digest })
}

/// Inputs at least this large have their digest remembered ([`digest_hex`]).
const REMEMBERED_MIN_BYTES: usize = 16 << 10;

/// How many digests of large inputs each thread remembers: 100 bytes each,
/// enough for every chunk and attachment a seed hashes more than once.
const REMEMBERED_MAX: usize = 1024;

/// A large input's identity: its length and XXH3-128 of its bytes.
type Fingerprint = (usize, u128);

thread_local! {
    /// The digests of large inputs last hashed on this thread, newest last.
    /// A digest is a function of the bytes alone, so which thread hashed
    /// them, and when, changes no answer.
    static REMEMBERED: RefCell<VecDeque<(Fingerprint, String)>> =
        const { RefCell::new(VecDeque::new()) };
}

/// Lowercase hex BLAKE3 of `bytes`: the digest of payloads and of large
/// history data.
///
/// For inputs of [`REMEMBERED_MIN_BYTES`] or more, the digest is looked up
/// first by the input's length and XXH3-128, which reads bytes about three
/// times faster than BLAKE3 does: equal bytes hashed again (the same
/// attachment, chunk or record value seen at another hop) cost a
/// fingerprint, not a digest. Different inputs of equal length collide in a
/// 128-bit non-cryptographic hash with negligible probability; nothing here
/// is adversarial, and a collision would show as a wrong digest, never as
/// a nondeterministic one.
pub fn digest_hex(bytes: &[u8]) -> String {
    if bytes.len() < REMEMBERED_MIN_BYTES {
        return hex(blake3::hash(bytes).as_bytes());
    }
    let fingerprint = (bytes.len(), twox_hash::XxHash3_128::oneshot(bytes));
    let known = REMEMBERED.with_borrow(|remembered| {
        remembered
            .iter()
            .rev()
            .find(|(f, _)| *f == fingerprint)
            .map(|(_, digest)| digest.clone())
    });
    known.unwrap_or_else(|| {
        let digest = hex(blake3::hash(bytes).as_bytes());
        remember(fingerprint.0, fingerprint.1, &digest);
        digest
    })
}

/// Remember `digest` as that of the `len` bytes whose XXH3-128 is
/// `xxh3_128`, for [`digest_hex`] to find: for a digest computed of bytes
/// that were never whole in one place (made and hashed a piece at a time).
/// Inputs shorter than [`REMEMBERED_MIN_BYTES`] are not looked up, so not
/// kept either.
pub fn remember(len: usize, xxh3_128: u128, digest: &str) {
    if len < REMEMBERED_MIN_BYTES {
        return;
    }
    REMEMBERED.with_borrow_mut(|remembered| {
        if remembered.len() == REMEMBERED_MAX {
            remembered.pop_front();
        }
        remembered.push_back(((len, xxh3_128), digest.to_string()));
    });
}

/// Whether the digest of `bytes` is remembered (for tests).
#[cfg(test)]
pub(crate) fn is_remembered(bytes: &[u8]) -> bool {
    let fingerprint = (bytes.len(), twox_hash::XxHash3_128::oneshot(bytes));
    REMEMBERED.with_borrow(|remembered| remembered.iter().any(|(f, _)| *f == fingerprint))
}

/// Lowercase hex SHA-256 of `bytes`, not remembered: a file's identity.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of a digest's bytes.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest
        .iter()
        .fold(String::with_capacity(2 * digest.len()), |mut hex, b| {
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

    /// The test vector of the empty input in the BLAKE3 specification.
    #[test]
    fn is_lowercase_hex_blake3() {
        assert_eq!(
            super::digest_hex(b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    /// Large inputs, hashed for the first time and again, answer the same
    /// digest as BLAKE3 itself; inputs differing in one byte, or in length
    /// only, answer their own.
    #[test]
    fn remembered_digests_are_those_of_the_bytes() {
        let plain = |bytes: &[u8]| blake3::hash(bytes).to_hex().to_string();
        let large: Vec<u8> = (0..super::REMEMBERED_MIN_BYTES * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut changed = large.clone();
        changed[1000] ^= 1;
        let shorter = &large[..large.len() - 1];
        for _ in 0..2 {
            for bytes in [&large[..], &changed[..], shorter] {
                assert_eq!(super::digest_hex(bytes), plain(bytes));
            }
        }
        assert_ne!(super::digest_hex(&large), super::digest_hex(&changed));
    }

    /// Past the limit, the oldest digests are forgotten: a forgotten input is
    /// hashed again, with the same answer.
    #[test]
    fn the_remembered_digests_are_bounded() {
        let input = |n: usize| {
            let mut bytes = vec![0u8; super::REMEMBERED_MIN_BYTES];
            bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
            bytes
        };
        let first = super::digest_hex(&input(0));
        for n in 1..=super::REMEMBERED_MAX {
            super::digest_hex(&input(n));
        }
        let remembered = super::REMEMBERED.with_borrow(|r| r.len());
        assert_eq!(remembered, super::REMEMBERED_MAX);
        assert_eq!(super::digest_hex(&input(0)), first);
    }
}
