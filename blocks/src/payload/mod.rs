//! Large payloads (pitfall 4): getting an attachment bigger than the broker's
//! maximum message size from a producer to a consumer.
//!
//! This module owns the payload itself ([`Attachment`], its BLAKE3
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
pub use reassemble::{prune_chunks, Assembled, ChunkSource, Reassembler, CHUNKS};

pub use pitfall_ports::codec::Codec;
use pitfall_ports::{Blob, DbError, ProduceError, StoreError};
use serde::{Deserialize, Serialize};

pub const PAYLOAD_ID: &str = "payload-id";
pub const PAYLOAD_DIGEST: &str = "payload-digest";
pub const PAYLOAD_SIZE: &str = "payload-size";
pub const PAYLOAD_CODEC: &str = "payload-codec";
pub const CHUNK_INDEX: &str = "chunk-index";
pub const CHUNK_COUNT: &str = "chunk-count";
/// Where claim-check strategies upload attachments: `payloads/{id}`.
pub const CLAIM_PREFIX: &str = "payloads/";

/// Lowercase hex BLAKE3 of `bytes` ([`pitfall_ports::digest`]).
pub fn digest(bytes: &[u8]) -> String {
    pitfall_ports::digest::digest_hex(bytes)
}

/// An attachment to carry from producer to consumer: an id and its
/// content, a [`Blob`]. A generated attachment is a view of content made
/// from (seed, size): records, chunks and uploads of it are views too, and
/// its bytes are made only where something reads them (a codec, a real
/// client, a decoder). Clones share the content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    content: Blob,
    /// The size of the chunks it will be sent in, if it will be chunked.
    chunk_bytes: Option<usize>,
    /// Whether a codec will compress it whole.
    compressed: bool,
}

impl Attachment {
    pub fn new(id: impl Into<String>, bytes: Vec<u8>) -> Self {
        Attachment {
            id: id.into(),
            content: Blob::from(bytes),
            chunk_bytes: None,
            compressed: false,
        }
    }

    /// `size` bytes of text-like content (words, numbers, line breaks), the
    /// same for the same seed ([`Blob::generated`]), made when read.
    pub fn generate(id: impl Into<String>, size: usize, seed: u64) -> Self {
        Attachment {
            id: id.into(),
            content: Blob::generated(seed, size),
            chunk_bytes: None,
            compressed: false,
        }
    }

    /// Say that it will be sent in chunks of `chunk_bytes`: its digest is
    /// then computed with the chunks' ([`Blob::digest_with_parts`]), so the
    /// content of a generated attachment is made once for both, not again
    /// when each chunk is summarized.
    pub fn chunked(mut self, chunk_bytes: usize) -> Self {
        self.chunk_bytes = Some(chunk_bytes);
        self
    }

    /// Say that it will be sent whole through a codec: its digest keeps the
    /// head of a generated attachment for the codec, which reads it next
    /// ([`Blob::digest_keeping_head`]).
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    /// The attachment's size in bytes, without making its bytes.
    pub fn size(&self) -> usize {
        self.content.len()
    }

    /// The content, as records and uploads carry it.
    pub fn content(&self) -> &Blob {
        &self.content
    }

    /// The bytes, made now for generated content.
    pub fn bytes(&self) -> bytes::Bytes {
        self.content.bytes()
    }

    /// Lowercase hex BLAKE3 of the bytes (remembered for generated content
    /// and for large bytes, see [`pitfall_ports::digest`]).
    pub fn digest(&self) -> String {
        match self.chunk_bytes {
            Some(chunk_bytes) => self.content.digest_with_parts(chunk_bytes),
            None if self.compressed => self.content.digest_keeping_head(),
            None => self.content.digest(),
        }
    }
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
    /// `at_least` as in [`ProduceError::MessageTooLarge`].
    #[error(
        "payload {payload_id}: a {} exceeds the maximum of {max} bytes",
        if *at_least {
            format!("record compressed to at least {size} bytes")
        } else {
            format!("{size}-byte record")
        }
    )]
    TooLarge {
        payload_id: String,
        size: usize,
        max: usize,
        at_least: bool,
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
