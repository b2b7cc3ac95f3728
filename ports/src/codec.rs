//! The compression codecs Kafka producers offer (lz4, snappy, zstd), on the
//! real crates: what a producer applies to each batch (`compression.type`),
//! and what the payload strategies and checkers measure ratios with.
//!
//! Each writes a framed stream, as Kafka's clients do: lz4 the LZ4 frame
//! format in independent 64 KiB blocks (Kafka's `KafkaLZ4BlockOutputStream`
//! and librdkafka's LZ4F), snappy the snappy framing format, zstd a zstd
//! frame. A framed codec takes its input a piece at a time
//! ([`Codec::compress_pieces`]), so a 20 MiB attachment made from a seed is
//! compressed without all of it existing at once.

use crate::Blob;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

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
        self.compress_pieces([bytes])
    }

    /// [`Codec::compress`] of a blob, read [`PIECE_BYTES`] at a time. The
    /// head a digest kept for this read ([`Blob::digest_keeping_head`]) is
    /// let go after it.
    pub fn compress_blob(self, blob: &Blob) -> Vec<u8> {
        let frame = self.compress_pieces(blob.pieces(PIECE_BYTES));
        crate::blob::forget_kept_head();
        frame
    }

    /// [`Codec::compress_blob`], giving up once the frame passes
    /// `max_bytes`: then `Err` with the bytes written so far (more than
    /// `max_bytes`; what the rest would compress to is not known). A
    /// producer rejects such a record whatever its full size, so a large
    /// blob that does not fit costs about `max_bytes` of output to find out,
    /// not its whole length. A frame that ends past `max_bytes` only in its
    /// last piece or trailer is `Ok`: the caller checks the size it gets.
    pub fn compress_blob_within(self, blob: &Blob, max_bytes: usize) -> Result<Vec<u8>, usize> {
        let frame = self.compress_until(blob.pieces(LIMITED_PIECE_BYTES), max_bytes);
        crate::blob::forget_kept_head();
        frame
    }

    /// Compress the concatenation of `pieces` into one frame.
    pub fn compress_pieces<P: AsRef<[u8]>>(self, pieces: impl IntoIterator<Item = P>) -> Vec<u8> {
        self.compress_until(pieces, usize::MAX)
            .expect("no frame in memory passes usize::MAX bytes")
    }

    /// Compress `pieces` into one frame, stopping when the output passes
    /// `max_bytes` after a piece.
    fn compress_until<P: AsRef<[u8]>>(
        self,
        pieces: impl IntoIterator<Item = P>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, usize> {
        /// Write `pieces` into `w`; `Err` with `written(w)` once it passes
        /// `max_bytes`.
        fn feed<W: Write, P: AsRef<[u8]>>(
            w: &mut W,
            pieces: impl IntoIterator<Item = P>,
            written: impl Fn(&W) -> usize,
            max_bytes: usize,
        ) -> Result<(), usize> {
            for piece in pieces {
                w.write_all(piece.as_ref())
                    .expect("compressing into memory cannot fail");
                let bytes = written(w);
                if bytes > max_bytes {
                    return Err(bytes);
                }
            }
            Ok(())
        }
        match self {
            Codec::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB);
                let mut w = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
                feed(&mut w, pieces, |w| w.get_ref().len(), max_bytes)?;
                Ok(w.finish().expect("an LZ4 frame into memory"))
            }
            Codec::Snappy => {
                let mut w = snap::write::FrameEncoder::new(Vec::new());
                feed(&mut w, pieces, |w| w.get_ref().len(), max_bytes)?;
                Ok(w.into_inner().expect("a snappy stream into memory"))
            }
            Codec::Zstd => {
                let mut w = zstd::stream::write::Encoder::new(Vec::new(), 3)
                    .expect("a zstd encoder at level 3");
                feed(&mut w, pieces, |w| w.get_ref().len(), max_bytes)?;
                Ok(w.finish().expect("a zstd frame into memory"))
            }
        }
    }

    pub fn decompress(self, bytes: &[u8]) -> Result<Vec<u8>, DecompressError> {
        let fail = |reason: String| DecompressError {
            codec: self,
            reason,
        };
        let mut out = Vec::new();
        let read = match self {
            Codec::Lz4 => lz4_flex::frame::FrameDecoder::new(bytes).read_to_end(&mut out),
            Codec::Snappy => snap::read::FrameDecoder::new(bytes).read_to_end(&mut out),
            Codec::Zstd => {
                zstd::stream::read::Decoder::new(bytes).and_then(|mut d| d.read_to_end(&mut out))
            }
        };
        match read {
            Ok(_) => Ok(out),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// How much of a blob [`Codec::compress_blob`] reads at a time.
pub const PIECE_BYTES: usize = 1 << 20;

/// How much of a blob [`Codec::compress_blob_within`] reads between looks
/// at its output: an LZ4 block, so it stops at most one block past the
/// limit.
const LIMITED_PIECE_BYTES: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use super::{Codec, PIECE_BYTES};
    use crate::Blob;

    /// Each codec writes its framed format, as Kafka's clients do, and
    /// reads back what it wrote.
    #[test]
    fn codecs_write_kafkas_framed_formats() {
        let text = b"order payment invoice order payment invoice order payment".repeat(50);
        let magic: [(Codec, &[u8]); 3] = [
            (Codec::Lz4, &[0x04, 0x22, 0x4d, 0x18]),
            (Codec::Snappy, b"\xff\x06\x00\x00sNaPpY"),
            (Codec::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
        ];
        for (codec, magic) in magic {
            let packed = codec.compress(&text);
            assert!(packed.starts_with(magic), "{} frame", codec.name());
            assert!(packed.len() < text.len() / 4, "{} compresses", codec.name());
            assert_eq!(codec.decompress(&packed).unwrap(), text);
        }
    }

    /// A blob compressed a piece at a time is the frame of its bytes whole,
    /// whether its bytes are stored or made from a seed.
    #[test]
    fn a_blob_compresses_as_its_bytes_do() {
        let view = Blob::generated(11, 2 * PIECE_BYTES + 12_345);
        let stored = Blob::from(view.to_vec());
        for codec in Codec::ALL {
            let whole = codec.compress(&view.bytes());
            assert_eq!(codec.compress_blob(&view), whole, "{}", codec.name());
            assert_eq!(codec.compress_blob(&stored), whole, "{}", codec.name());
            assert_eq!(codec.decompress(&whole).unwrap(), view.to_vec());
        }
    }

    /// Within its limit a blob compresses to its whole frame; past it, the
    /// codec stops soon after the frame passes the limit, having written no
    /// more than the whole frame would be.
    #[test]
    fn compressing_within_a_limit_stops_soon_after_passing_it() {
        let blob = Blob::generated(5, 4 * PIECE_BYTES);
        for codec in Codec::ALL {
            let whole = codec.compress_blob(&blob);
            assert_eq!(
                codec.compress_blob_within(&blob, whole.len()),
                Ok(whole.clone()),
                "{}",
                codec.name()
            );
            let max = whole.len() / 3;
            let written = codec
                .compress_blob_within(&blob, max)
                .expect_err("a third of the frame is too small");
            assert!(written > max, "{}: {written} > {max}", codec.name());
            assert!(
                written < max + 4 * super::LIMITED_PIECE_BYTES && written <= whole.len(),
                "{}: stopped at {written} of {} bytes, limit {max}",
                codec.name(),
                whole.len()
            );
        }
    }

    /// Bytes that are no frame of the codec, or a frame cut short, fail.
    #[test]
    fn garbage_and_truncated_frames_fail() {
        let packed: Vec<(Codec, Vec<u8>)> = Codec::ALL
            .into_iter()
            .map(|c| (c, c.compress(&Blob::generated(3, 200_000).bytes())))
            .collect();
        for (codec, frame) in packed {
            assert!(
                codec.decompress(&[0xff; 64]).is_err(),
                "{} garbage",
                codec.name()
            );
            let cut = &frame[..frame.len() / 2];
            assert!(codec.decompress(cut).is_err(), "{} truncated", codec.name());
        }
    }
}
