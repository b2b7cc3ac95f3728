//! Large payloads (pitfall 4): getting an attachment bigger than the broker's
//! maximum message size from a producer to a consumer.
//!
//! This module owns the payload itself ([`Attachment`], its SHA-256
//! [`digest`]), the [`Codec`]s and the [`Strategy`] variants. The producer side
//! ([`encode`], [`send_payload`]) turns an attachment into the steps a strategy
//! performs; the consumer side ([`Reassembler`]) turns records back into the
//! attachment and says whether its digest matches.
//!
//! Every record of a payload carries [`PAYLOAD_ID`], [`PAYLOAD_DIGEST`] and
//! [`PAYLOAD_SIZE`] headers; chunks add [`CHUNK_INDEX`] and [`CHUNK_COUNT`],
//! compressed records [`PAYLOAD_CODEC`].

mod encode;
mod reassemble;
#[cfg(test)]
mod tests;

pub use encode::{encode, fits, record_size, send_payload, Planned, SentPayload};
pub use reassemble::{Assembled, ChunkSource, Reassembler, CHUNKS};

pub use pitfall_ports::codec::Codec;
use pitfall_ports::{DbError, ProduceError, StoreError};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

pub const PAYLOAD_ID: &str = "payload-id";
pub const PAYLOAD_DIGEST: &str = "payload-digest";
pub const PAYLOAD_SIZE: &str = "payload-size";
pub const PAYLOAD_CODEC: &str = "payload-codec";
pub const CHUNK_INDEX: &str = "chunk-index";
pub const CHUNK_COUNT: &str = "chunk-count";
/// Where claim-check strategies upload attachments: `payloads/{id}`.
pub const CLAIM_PREFIX: &str = "payloads/";

/// Lowercase hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    pitfall_ports::digest::sha256_hex(bytes)
}

/// An attachment to carry from producer to consumer. Its bytes do not
/// change once made, so its digest is computed at most once, and clones
/// share both. A generated attachment makes its bytes only when they are
/// first needed (a codec, a record, a digest not known yet): a payment that
/// fails before its attachment is sent never makes them.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub id: String,
    content: Arc<Content>,
}

#[derive(Debug)]
struct Content {
    size: usize,
    /// The generator's seed, for content made by [`Attachment::generate`].
    seed: Option<u64>,
    bytes: OnceLock<Vec<u8>>,
    digest: OnceLock<String>,
}

/// How many generated contents [`Attachment::generate`] keeps, by (seed,
/// size), on each thread: a payment retried for the same order makes the
/// same attachment again, and gets its bytes, if they were made, without
/// generating up to 20 MiB again. Few, so that the memory they hold stays
/// small.
const GENERATED_KEPT: usize = 2;

/// How many digests of generated contents are kept, by (seed, size), on
/// each thread: 64 bytes each, so a retried payment finds its digest
/// without making and hashing the bytes even when its content is gone.
const DIGESTS_KEPT: usize = 256;

type Kept<T> = std::collections::VecDeque<((u64, usize), T)>;

thread_local! {
    /// The contents generated last on this thread, newest first. Content is
    /// a function of (seed, size) only, so which thread made it, and when,
    /// changes nothing.
    static GENERATED: RefCell<Kept<Arc<Content>>> = const { RefCell::new(Kept::new()) };
    /// The digests of generated contents last computed on this thread.
    static DIGESTS: RefCell<Kept<String>> = const { RefCell::new(Kept::new()) };
}

/// Keep `value` for `key` in front of `kept`, and at most `max` entries.
fn keep<T>(kept: &mut Kept<T>, key: (u64, usize), value: T, max: usize) {
    kept.push_front((key, value));
    kept.truncate(max);
}

fn kept<T: Clone>(kept: &Kept<T>, key: (u64, usize)) -> Option<T> {
    kept.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
}

impl PartialEq for Attachment {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.bytes() == other.bytes()
    }
}

impl Eq for Attachment {}

/// Words the generator draws from: enough variety to be non-trivial, few
/// enough that real codecs find repeats, like the text of documents or logs.
#[rustfmt::skip]
const WORDS: [&str; 32] = [
    "order", "payment", "invoice", "customer", "shipment", "warehouse", "amount", "currency",
    "status", "pending", "settled", "refund", "address", "street", "city", "postcode", "item",
    "quantity", "price", "discount", "tax", "total", "note", "gift", "express", "standard",
    "created", "updated", "reference", "account", "ledger", "batch",
];

/// One step of splitmix64: content generation only, not a source of run
/// randomness (that comes from the seeded [`pitfall_ports::Env`]).
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Attachment {
    pub fn new(id: impl Into<String>, bytes: Vec<u8>) -> Self {
        Attachment {
            id: id.into(),
            content: Arc::new(Content {
                size: bytes.len(),
                seed: None,
                bytes: OnceLock::from(bytes),
                digest: OnceLock::new(),
            }),
        }
    }

    /// `size` bytes of text-like content (words, numbers, line breaks), the
    /// same for the same seed, made when first needed. One PRNG draw per
    /// word, so 20 MiB is cheap; the last few contents and digests made on
    /// this thread are kept ([`GENERATED_KEPT`], [`DIGESTS_KEPT`]).
    pub fn generate(id: impl Into<String>, size: usize, seed: u64) -> Self {
        let key = (seed, size);
        let content = GENERATED.with_borrow_mut(|generated| {
            kept(generated, key).unwrap_or_else(|| {
                let digest = DIGESTS.with_borrow(|digests| kept(digests, key));
                let content = Arc::new(Content {
                    size,
                    seed: Some(seed),
                    bytes: OnceLock::new(),
                    digest: digest.map_or_else(OnceLock::new, OnceLock::from),
                });
                keep(generated, key, content.clone(), GENERATED_KEPT);
                content
            })
        });
        Attachment {
            id: id.into(),
            content,
        }
    }

    /// The attachment's size in bytes, without making its bytes.
    pub fn size(&self) -> usize {
        self.content.size
    }

    pub fn bytes(&self) -> &[u8] {
        let content = &self.content;
        content.bytes.get_or_init(|| {
            let seed = content.seed.expect("content without bytes is generated");
            generate_bytes(content.size, seed)
        })
    }

    /// Lowercase hex SHA-256 of the bytes, computed on the first call (or
    /// known from an earlier attachment of the same seed and size).
    pub fn digest(&self) -> String {
        let content = &self.content;
        content
            .digest
            .get_or_init(|| {
                let digest = digest(self.bytes());
                if let Some(seed) = content.seed {
                    DIGESTS.with_borrow_mut(|digests| {
                        keep(digests, (seed, content.size), digest.clone(), DIGESTS_KEPT)
                    });
                }
                digest
            })
            .clone()
    }
}

/// The longest word in [`WORDS`] is shorter than this: every word is copied
/// as one fixed-size block, and the length written moves on by the word's.
const WORD_BLOCK: usize = 16;

/// [`WORDS`] padded to [`WORD_BLOCK`] bytes, with their lengths.
const PADDED_WORDS: [([u8; WORD_BLOCK], usize); 32] = {
    let mut padded = [([0u8; WORD_BLOCK], 0); 32];
    let mut w = 0;
    while w < WORDS.len() {
        let word = WORDS[w].as_bytes();
        assert!(word.len() < WORD_BLOCK);
        let mut i = 0;
        while i < word.len() {
            padded[w].0[i] = word[i];
            i += 1;
        }
        padded[w].1 = word.len();
        w += 1;
    }
    padded
};

/// The bytes of [`Attachment::generate`]: per PRNG draw a word, then a
/// space, a line break or `=` and a number. Words are written as fixed
/// 16-byte blocks into a buffer with room to spare, rather than appended
/// one short slice at a time: per-word copies of a few bytes were most of
/// the time of a 20 MiB attachment. The bytes are the same (pinned by the
/// digests in the tests).
fn generate_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    // A draw writes at most a word block, then `=`, five digits and a space.
    let mut bytes = vec![0u8; size + WORD_BLOCK + 8];
    let mut at = 0;
    let mut number = itoa::Buffer::new();
    while at < size {
        let r = splitmix64(&mut state);
        let (word, len) = &PADDED_WORDS[(r % 32) as usize];
        bytes[at..at + WORD_BLOCK].copy_from_slice(word);
        at += len;
        match (r >> 5) % 8 {
            0 => {
                let digits = number.format((r >> 16) % 100_000).as_bytes();
                bytes[at] = b'=';
                bytes[at + 1..at + 1 + digits.len()].copy_from_slice(digits);
                at += 1 + digits.len();
                bytes[at] = b' ';
                at += 1;
            }
            1 => {
                bytes[at] = b'\n';
                at += 1;
            }
            _ => {
                bytes[at] = b' ';
                at += 1;
            }
        }
    }
    bytes.truncate(size);
    bytes
}

/// Pitfall 4: how a payload larger than the maximum message size travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The whole attachment in one record.
    Inline,
    /// The whole attachment in one record, compressed with a [`Codec`].
    Compressed,
    /// Chunks in order; the consumer keeps them in its DB until all arrived.
    ChunkedStore,
    /// Chunks in order; the consumer remembers where the first one was and,
    /// once the last arrived, reads them back from the log.
    ChunkedSeek,
    /// Upload to the object store, then produce a reference to it.
    ClaimCheck,
    /// Produce the reference, then upload: the reference can dangle.
    ClaimCheckNaive,
}

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::Inline,
        Strategy::Compressed,
        Strategy::ChunkedStore,
        Strategy::ChunkedSeek,
        Strategy::ClaimCheck,
        Strategy::ClaimCheckNaive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Inline => "inline",
            Strategy::Compressed => "compressed",
            Strategy::ChunkedStore => "chunked-store",
            Strategy::ChunkedSeek => "chunked-seek",
            Strategy::ClaimCheck => "claim-check",
            Strategy::ClaimCheckNaive => "claim-check-naive",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Strategy::Inline => "naive: the whole attachment in one record; the broker rejects it",
            Strategy::Compressed => {
                "partial: one record, batch-compressed by the producer; fits only while the ratio is good enough"
            }
            Strategy::ChunkedStore => {
                "remedy: chunks, kept in the consumer's DB until all have arrived"
            }
            Strategy::ChunkedSeek => {
                "remedy: chunks, read back from the log once the last has arrived"
            }
            Strategy::ClaimCheck => "remedy: upload to the object store, then produce a reference",
            Strategy::ClaimCheckNaive => {
                "naive: produce the reference, then upload; the reference can dangle"
            }
        }
    }
}

/// What a claim-check record carries instead of the attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimReference {
    pub object_key: String,
    pub digest: String,
    pub size: usize,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("chunk size must be positive")]
    InvalidChunkSize,
    /// A record of this payload is over the maximum message size: found by
    /// [`encode`] for chunks and references, by the broker for the rest.
    #[error("payload {payload_id}: a {size}-byte record exceeds the maximum of {max} bytes")]
    TooLarge {
        payload_id: String,
        size: usize,
        max: usize,
    },
    #[error("payload {payload_id}: produce failed: {source}")]
    Broker {
        payload_id: String,
        source: ProduceError,
    },
    #[error("object store, {object_key}: {source}")]
    Store {
        object_key: String,
        source: StoreError,
    },
    /// A claim check whose object is not in the store.
    #[error("dangling reference: object {object_key} does not exist")]
    DanglingReference { object_key: String },
    /// A record that is not a well-formed part of a payload.
    #[error("record {topic}/{partition}@{offset}: {problem}")]
    BadRecord {
        topic: String,
        partition: u32,
        offset: u64,
        problem: String,
    },
    #[error(transparent)]
    Decompress(#[from] pitfall_ports::codec::DecompressError),
    /// The payload's parts are there but cannot be put together.
    #[error("payload {payload_id}: {reason}")]
    Corrupt { payload_id: String, reason: String },
    #[error("payload {payload_id}: database: {source}")]
    Db { payload_id: String, source: DbError },
    /// A [`ChunkSource`] could not read the log back.
    #[error("reading {topic}/{partition} back: {reason}")]
    ChunkRead {
        topic: String,
        partition: u32,
        reason: String,
    },
}
