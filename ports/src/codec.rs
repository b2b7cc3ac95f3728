//! The compression codecs Kafka producers offer (lz4, snappy, zstd), on the
//! real crates: what a producer applies to each batch (`compression.type`),
//! and what the payload strategies and checkers measure ratios with.

use serde::{Deserialize, Serialize};

/// Bytes that do not decompress with the codec named.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{codec:?} decompression failed: {reason}")]
pub struct DecompressError {
    pub codec: Codec,
    pub reason: String,
}

/// A compression codec, as Kafka producers offer them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    Lz4,
    Snappy,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::Lz4, Codec::Snappy, Codec::Zstd];

    pub fn name(self) -> &'static str {
        match self {
            Codec::Lz4 => "lz4",
            Codec::Snappy => "snappy",
            Codec::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn compress(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Codec::Lz4 => lz4_flex::block::compress_prepend_size(bytes),
            Codec::Snappy => snap::raw::Encoder::new()
                .compress_vec(bytes)
                .expect("snappy compresses any input below 4 GiB"),
            Codec::Zstd => zstd::bulk::compress(bytes, 3).expect("in-memory zstd compression"),
        }
    }

    pub fn decompress(self, bytes: &[u8]) -> Result<Vec<u8>, DecompressError> {
        let fail = |reason: String| DecompressError {
            codec: self,
            reason,
        };
        match self {
            Codec::Lz4 => {
                // The size prefix is trusted for the allocation: refuse one
                // that no LZ4 block (at most ~255:1) could expand to.
                let claimed = bytes
                    .get(..4)
                    .map(|p| u32::from_le_bytes(p.try_into().expect("4 bytes")) as usize);
                match claimed {
                    Some(n) if n <= bytes.len().saturating_mul(255) => {
                        lz4_flex::block::decompress_size_prepended(bytes)
                            .map_err(|e| fail(e.to_string()))
                    }
                    _ => Err(fail("implausible size prefix".to_string())),
                }
            }
            Codec::Snappy => snap::raw::Decoder::new()
                .decompress_vec(bytes)
                .map_err(|e| fail(e.to_string())),
            Codec::Zstd => zstd::stream::decode_all(bytes).map_err(|e| fail(e.to_string())),
        }
    }
}
