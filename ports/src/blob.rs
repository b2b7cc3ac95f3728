//! Record values and stored objects: [`Blob`], shared bytes or a view of
//! generated content.
//!
//! A simulated attachment of up to 20 MiB is made from a seed. As a view of
//! that content it crosses the simulated network, sits in the broker's log
//! and in the object store, and is sliced into chunks and put back
//! together, all without its bytes existing anywhere. The bytes are made
//! only where something reads them (a codec, a real client, a decoder), and
//! only the part read: the generator keeps checkpoints every
//! [`CHECKPOINT_BYTES`] so that any range is made from the nearest one
//! before it. Digests of views are computed once per thread and remembered.

use crate::digest::{digest_hex, hex};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Range;

/// Bytes: either shared ([`Bytes`]) or a [`View`] of generated content.
/// Clones are cheap either way. Two blobs are equal when their bytes are.
#[derive(Clone, Default)]
pub struct Blob(Repr);

#[derive(Clone)]
enum Repr {
    Bytes(Bytes),
    Generated(View),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Bytes(Bytes::new())
    }
}

/// `len` bytes from `start` of the `size` bytes that [`Blob::generated`]
/// makes from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct View {
    pub seed: u64,
    pub size: usize,
    pub start: usize,
    pub len: usize,
}

impl View {
    fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

impl Blob {
    /// `size` bytes of text-like content (words, numbers, line breaks), the
    /// same for the same seed; a longer size extends a shorter one. Nothing
    /// is made until read.
    pub fn generated(seed: u64, size: usize) -> Blob {
        Blob(Repr::Generated(View {
            seed,
            size,
            start: 0,
            len: size,
        }))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Bytes(b) => b.len(),
            Repr::Generated(v) => v.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The view of generated content this blob is, if it is one.
    pub fn view(&self) -> Option<View> {
        match &self.0 {
            Repr::Bytes(_) => None,
            Repr::Generated(v) => Some(*v),
        }
    }

    /// The bytes: shared for stored bytes, made now for a view.
    pub fn bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Bytes(b) => b.clone(),
            Repr::Generated(v) => generate_range(v.seed, v.range()),
        }
    }

    /// The bytes `piece_bytes` at a time (the last piece shorter): for a
    /// view, each piece is made when it is reached, so no more than one
    /// piece of it exists at once (a codec reads an attachment this way).
    ///
    /// # Panics
    /// If `piece_bytes` is 0.
    pub fn pieces(&self, piece_bytes: usize) -> impl Iterator<Item = Bytes> + '_ {
        assert!(piece_bytes > 0, "pieces of 0 bytes");
        (0..self.len()).step_by(piece_bytes).map(move |start| {
            let end = (start + piece_bytes).min(self.len());
            match &self.0 {
                Repr::Bytes(b) => b.slice(start..end),
                Repr::Generated(v) => generate_range(v.seed, v.start + start..v.start + end),
            }
        })
    }

    pub fn to_vec(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Bytes(b) => b.to_vec(),
            Repr::Generated(v) => generate_range(v.seed, v.range()).to_vec(),
        }
    }

    /// The bytes in `range` of this blob, without making them.
    ///
    /// # Panics
    /// If `range` is not within the blob, as slicing does.
    pub fn slice(&self, range: Range<usize>) -> Blob {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "range {range:?} out of a blob of {} bytes",
            self.len()
        );
        match &self.0 {
            Repr::Bytes(b) => Blob(Repr::Bytes(b.slice(range))),
            Repr::Generated(v) => Blob(Repr::Generated(View {
                start: v.start + range.start,
                len: range.len(),
                ..*v
            })),
        }
    }

    /// The blobs one after the other. Adjacent views of the same content
    /// stay a view (chunks put back together are the attachment again);
    /// anything else is copied into new bytes.
    pub fn concat(parts: impl IntoIterator<Item = Blob>) -> Blob {
        let parts: Vec<Blob> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        if let Some(view) = joined_view(&parts) {
            return Blob(Repr::Generated(view));
        }
        match parts.as_slice() {
            [] => Blob::default(),
            [one] => one.clone(),
            _ => {
                let mut bytes = BytesMut::with_capacity(parts.iter().map(Blob::len).sum());
                for part in &parts {
                    bytes.extend_from_slice(&part.bytes());
                }
                Blob(Repr::Bytes(bytes.freeze()))
            }
        }
    }

    /// Lowercase hex BLAKE3 of the bytes. A view's is computed once per
    /// thread, a piece at a time, and remembered.
    pub fn digest(&self) -> String {
        match &self.0 {
            Repr::Bytes(b) => digest_hex(b),
            Repr::Generated(v) => known_digest(*v).unwrap_or_else(|| view_digest(*v, None, false)),
        }
    }

    /// [`Blob::digest`], for a view that a codec reads from its start next
    /// (a record about to be compressed): the first [`KEPT_HEAD_BYTES`] the
    /// digest makes are kept, per thread, until a codec has read a blob
    /// ([`crate::codec::Codec::compress_blob`]) or the next such digest,
    /// and reads within them are slices of them, not made again. Keeping
    /// costs memory and fresh pages for every digest, so only a caller that
    /// will read the head asks for it.
    pub fn digest_keeping_head(&self) -> String {
        match &self.0 {
            Repr::Generated(v) => known_digest(*v).unwrap_or_else(|| view_digest(*v, None, true)),
            Repr::Bytes(_) => self.digest(),
        }
    }

    /// [`Blob::digest`], for a view computed together with the digests of
    /// its consecutive parts of `part_bytes` (the last may be shorter),
    /// which are remembered too: a view whose parts are summarized one by
    /// one later (the chunks of a chunked payload) is then made once, not
    /// twice. For stored bytes, or a digest already known, the same as
    /// [`Blob::digest`].
    pub fn digest_with_parts(&self, part_bytes: usize) -> String {
        match &self.0 {
            Repr::Generated(v) if part_bytes > 0 => {
                known_digest(*v).unwrap_or_else(|| view_digest(*v, Some(part_bytes), false))
            }
            _ => self.digest(),
        }
    }
}

/// The single view `parts` (none empty) make when each starts where the one
/// before it ends, in the same content.
fn joined_view(parts: &[Blob]) -> Option<View> {
    let first = parts.first()?.view()?;
    let mut joined = first;
    for part in &parts[1..] {
        let next = part.view()?;
        if (next.seed, next.size) != (first.seed, first.size)
            || next.start != joined.start + joined.len
        {
            return None;
        }
        joined.len += next.len;
    }
    Some(joined)
}

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        match (&self.0, &other.0) {
            (Repr::Bytes(a), Repr::Bytes(b)) => a == b,
            (Repr::Generated(a), Repr::Generated(b)) if (a.seed, a.start) == (b.seed, b.start) => {
                true
            }
            _ => self.bytes() == other.bytes(),
        }
    }
}

impl Eq for Blob {}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Bytes(b) => write!(f, "Blob({b:?})"),
            Repr::Generated(v) => write!(
                f,
                "Blob(generated seed {} size {}, {}..{})",
                v.seed,
                v.size,
                v.start,
                v.start + v.len
            ),
        }
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Blob(Repr::Bytes(Bytes::from(bytes)))
    }
}

impl From<Bytes> for Blob {
    fn from(bytes: Bytes) -> Self {
        Blob(Repr::Bytes(bytes))
    }
}

impl From<&[u8]> for Blob {
    fn from(bytes: &[u8]) -> Self {
        Blob(Repr::Bytes(Bytes::copy_from_slice(bytes)))
    }
}

impl From<&str> for Blob {
    fn from(text: &str) -> Self {
        Blob::from(text.as_bytes())
    }
}

impl From<String> for Blob {
    fn from(text: String) -> Self {
        Blob::from(text.into_bytes())
    }
}

/// A blob on the wire: its bytes, or the view it is (a few numbers).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum WireRef<'a> {
    Bytes(&'a serde_bytes::Bytes),
    Generated(View),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Wire {
    Bytes(serde_bytes::ByteBuf),
    Generated(View),
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Bytes(b) => WireRef::Bytes(serde_bytes::Bytes::new(b)).serialize(serializer),
            Repr::Generated(v) => WireRef::Generated(*v).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Wire::deserialize(deserializer)? {
            Wire::Bytes(b) => Ok(Blob::from(b.into_vec())),
            Wire::Generated(v) if v.start.checked_add(v.len).is_some_and(|end| end <= v.size) => {
                Ok(Blob(Repr::Generated(v)))
            }
            Wire::Generated(v) => Err(serde::de::Error::custom(format!(
                "a view of {}..{} is outside its content of {} bytes",
                v.start,
                v.start.saturating_add(v.len),
                v.size
            ))),
        }
    }
}

/// A blob as a plain sequence of byte values, as serde writes a `Vec<u8>`
/// (made for a view): for records kept as JSON, such as a parked record,
/// whose form must not depend on where their bytes came from. Use with
/// `#[serde(with = "pitfall_ports::blob::as_byte_seq")]`.
pub mod as_byte_seq {
    use super::Blob;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(blob: &Blob, serializer: S) -> Result<S::Ok, S::Error> {
        blob.bytes().as_ref().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(Blob::from)
    }
}

/// Words the generator draws from: enough variety to be non-trivial, few
/// enough that real codecs find repeats, like the text of documents or logs.
#[rustfmt::skip]
const WORDS: [&str; 32] = [
    "order", "payment", "invoice", "customer", "shipment", "warehouse", "amount", "currency",
    "status", "pending", "settled", "refund", "address", "street", "city", "postcode", "item",
    "quantity", "price", "discount", "tax", "total", "note", "gift", "express", "standard",
    "created", "updated", "reference", "account", "ledger", "batch",
];

/// splitmix64's increment: after `n` draws from `seed` the state is
/// `seed + n * GAMMA`, which is what lets a checkpoint restart it.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One step of splitmix64: content generation only, not a source of run
/// randomness (that comes from the seeded [`crate::Env`]).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The longest word in [`WORDS`] and its separator are shorter than this:
/// every draw's text is copied as one fixed-size block, and the length
/// written moves on by the text's.
const WORD_BLOCK: usize = 16;

/// The text of a draw `r` by its low byte: the word `WORDS[r % 32]` and the
/// separator `(r >> 5) % 8` picks (`=`, before a number; a line break; or a
/// space), padded to [`WORD_BLOCK`] bytes, with its length. One table
/// lookup, so the generator does not branch on the separator.
const DRAW_TEXT: [([u8; WORD_BLOCK], usize); 256] = {
    let mut texts = [([0u8; WORD_BLOCK], 0); 256];
    let mut low = 0;
    while low < 256 {
        let word = WORDS[low % 32].as_bytes();
        assert!(word.len() + 1 < WORD_BLOCK);
        let mut i = 0;
        while i < word.len() {
            texts[low].0[i] = word[i];
            i += 1;
        }
        texts[low].0[i] = match low >> 5 {
            0 => b'=',
            1 => b'\n',
            _ => b' ',
        };
        texts[low].1 = word.len() + 1;
        low += 1;
    }
    texts
};

/// The two digits of each number below 100.
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut n = 0;
    while n < 100 {
        pairs[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    pairs
};

/// Write `n` (below 100,000) in decimal and a space into `out`, which has
/// room for six bytes; the number of bytes written.
fn write_number(n: u64, out: &mut [u8]) -> usize {
    debug_assert!(n < 100_000);
    if n >= 10_000 {
        // Five digits, the common case (nine draws in ten).
        let (high, low) = ((n / 100) as usize, (n % 100) as usize);
        out[0] = b'0' + (high / 100) as u8;
        out[1..3].copy_from_slice(&DIGIT_PAIRS[high % 100]);
        out[3..5].copy_from_slice(&DIGIT_PAIRS[low]);
        out[5] = b' ';
        return 6;
    }
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out[..digits.len()].copy_from_slice(digits);
    out[digits.len()] = b' ';
    digits.len() + 1
}

/// How far apart the generator's checkpoints are, in bytes of content.
pub const CHECKPOINT_BYTES: usize = 64 << 10;

/// Where the generator is at the first draw at or past a multiple of
/// [`CHECKPOINT_BYTES`]: how many draws it made and where it writes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checkpoint {
    draws: u64,
    at: usize,
}

/// How many seeds' checkpoints a thread keeps (a 20 MiB content has 320,
/// 16 bytes each).
const CHECKPOINTED_SEEDS: usize = 64;

/// How many digests of views a thread keeps (about 100 bytes each).
const VIEW_DIGESTS: usize = 8192;

thread_local! {
    /// Checkpoints by seed, newest last: `checkpoints[k]` is where the
    /// generator is at `k * CHECKPOINT_BYTES`. A function of the seed
    /// alone, so which thread found them, and when, changes nothing.
    static CHECKPOINTS: RefCell<VecDeque<(u64, Vec<Checkpoint>)>> =
        const { RefCell::new(VecDeque::new()) };
    /// The first pieces, up to [`KEPT_HEAD_BYTES`], of the view the last
    /// [`Blob::digest_keeping_head`] made, as `(seed, start, bytes)`.
    static KEPT_HEAD: RefCell<Vec<(u64, usize, Bytes)>> = const { RefCell::new(Vec::new()) };
    /// Digests of views, and the order they were computed in.
    static DIGESTS: RefCell<(BTreeMap<View, String>, VecDeque<View>)> =
        const { RefCell::new((BTreeMap::new(), VecDeque::new())) };
}

/// The generated bytes of `seed` in `range`: per PRNG draw a word, then a
/// space, a line break or `=` and a number. Generation starts at the last
/// known checkpoint at or before `range.start`, and records the checkpoints
/// it passes that were not known yet. The bytes are a slice of what was
/// generated (or of the head the last digest kept), not a copy.
fn generate_range(seed: u64, range: Range<usize>) -> Bytes {
    if let Some(kept) = kept_range(seed, &range) {
        return kept;
    }
    let known = CHECKPOINTS.with_borrow(|all| {
        all.iter()
            .rev()
            .find(|(s, _)| *s == seed)
            .map(|(_, c)| c.clone())
    });
    let mut checkpoints = known.unwrap_or_else(|| vec![Checkpoint { draws: 0, at: 0 }]);
    let known_before = checkpoints.len();
    // The first checkpoint is at 0, so one is at or before any start.
    let from = checkpoints[checkpoints.partition_point(|c| c.at <= range.start) - 1];
    let written = generate_from(seed, from, range.end, &mut checkpoints);
    if checkpoints.len() > known_before {
        CHECKPOINTS.with_borrow_mut(|all| {
            all.retain(|(s, _)| *s != seed);
            if all.len() == CHECKPOINTED_SEEDS {
                all.pop_front();
            }
            all.push_back((seed, checkpoints));
        });
    }
    Bytes::from(written).slice(range.start - from.at..range.end - from.at)
}

/// Generate from `from` until the write position reaches `end`; the bytes
/// from `from.at` on (a few past `end`). Checkpoints past the last one in
/// `checkpoints` are appended as they are passed.
fn generate_from(
    seed: u64,
    from: Checkpoint,
    end: usize,
    checkpoints: &mut Vec<Checkpoint>,
) -> Vec<u8> {
    let mut state = seed.wrapping_add(from.draws.wrapping_mul(GAMMA));
    let mut draws = from.draws;
    let length = end.saturating_sub(from.at);
    // A draw writes one text block past `at`; its number, if any, ends
    // within that block (the longest text is ten bytes, a number six).
    let mut bytes = vec![0u8; length + WORD_BLOCK + 8];
    let mut at = 0;
    let mut next_checkpoint = checkpoints.len() * CHECKPOINT_BYTES;
    while at < length {
        if from.at + at >= next_checkpoint {
            checkpoints.push(Checkpoint {
                draws,
                at: from.at + at,
            });
            next_checkpoint += CHECKPOINT_BYTES;
        }
        let r = splitmix64(&mut state);
        draws += 1;
        let (text, len) = &DRAW_TEXT[(r & 0xff) as usize];
        bytes[at..at + WORD_BLOCK].copy_from_slice(text);
        at += len;
        if (r >> 5) & 0b111 == 0 {
            at += write_number((r >> 16) % 100_000, &mut bytes[at..at + 6]);
        }
    }
    bytes
}

/// How much of a view [`view_digest`] makes at a time.
const DIGEST_PIECE_BYTES: usize = 1 << 20;

fn known_digest(view: View) -> Option<String> {
    DIGESTS.with_borrow(|(digests, _)| digests.get(&view).cloned())
}

fn remember_view_digest(view: View, digest: &str) {
    DIGESTS.with_borrow_mut(|(digests, order)| {
        if order.len() == VIEW_DIGESTS {
            if let Some(oldest) = order.pop_front() {
                digests.remove(&oldest);
            }
        }
        if digests.insert(view, digest.to_string()).is_none() {
            order.push_back(view);
        }
    });
}

/// Compute and remember the digest of a view, made [`DIGEST_PIECE_BYTES`]
/// at a time, or `parts` bytes at a time with each part's digest
/// remembered too. Large views are also fingerprinted as they are hashed,
/// and their digest remembered by fingerprint ([`crate::digest::remember`]):
/// the same bytes made or copied elsewhere (a payload put back together
/// from chunks a DB kept) find it there.
fn view_digest(view: View, parts: Option<usize>, keep_head: bool) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut fingerprint = twox_hash::xxhash3_128::Hasher::new();
    let piece_bytes = parts.unwrap_or(DIGEST_PIECE_BYTES);
    // The last head kept goes first, so that this digest's pieces can take
    // its memory instead of new memory.
    if keep_head {
        KEPT_HEAD.take();
    }
    let mut head = Vec::new();
    let mut head_bytes = 0;
    let mut start = view.start;
    let end = view.start + view.len;
    while start < end {
        let piece_end = (start + piece_bytes).min(end);
        let piece = generate_range(view.seed, start..piece_end);
        hasher.update(&piece);
        fingerprint.write(&piece);
        if parts.is_some() {
            let part = View {
                start,
                len: piece_end - start,
                ..view
            };
            remember_view_digest(part, &hex(blake3::hash(&piece).as_bytes()));
        }
        // The beginning of the view, kept for what reads it next.
        let in_head = head_bytes == start - view.start;
        if keep_head && in_head && head_bytes + piece.len() <= KEPT_HEAD_BYTES {
            head_bytes += piece.len();
            head.push((view.seed, start, piece));
        }
        start = piece_end;
    }
    if !head.is_empty() {
        KEPT_HEAD.set(head);
    }
    let digest = hex(hasher.finalize().as_bytes());
    crate::digest::remember(view.len, fingerprint.finish_128(), &digest);
    remember_view_digest(view, &digest);
    digest
}

/// How much of the beginning of a view [`Blob::digest_keeping_head`]
/// keeps: a codec compressing an attachment just digested reads it without
/// making it again (a compressed record stops at the broker's 1 MiB limit,
/// which is about 3.5 MiB of the generated text).
const KEPT_HEAD_BYTES: usize = 4 << 20;

/// Let go of the head the last [`Blob::digest_keeping_head`] on this thread
/// kept: a codec calls it once it has read its blob, as the head is kept for
/// that one read (4 MiB per thread otherwise held until the next such
/// digest, or for good after the last one). Reads of the view still work,
/// by making its bytes again.
pub(crate) fn forget_kept_head() {
    KEPT_HEAD.take();
}

/// The bytes of `seed` in `range`, if one piece the last
/// [`Blob::digest_keeping_head`] kept holds them all.
fn kept_range(seed: u64, range: &Range<usize>) -> Option<Bytes> {
    KEPT_HEAD.with_borrow(|pieces| {
        pieces.iter().find_map(|(s, start, bytes)| {
            let within = *s == seed && *start <= range.start && range.end <= start + bytes.len();
            within.then(|| bytes.slice(range.start - start..range.end - start))
        })
    })
}

#[cfg(test)]
mod tests;
