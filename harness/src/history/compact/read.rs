//! Reading JSON Lines straight into the compact form, borrowing from the
//! text: strings that need no unescaping and every JSON value (a record's
//! value, a row's data, a request) stay slices of the text, so a line costs
//! one pass of `serde_json` and no `Value` tree. Each line's `t` and `type`
//! are read first, then the line is read as that event's fields.
//!
//! It accepts what [`crate::history::parse_jsonl`] accepts; where it cannot
//! read a line, the caller asks `parse_jsonl` for the error, so the message
//! is the same.

use super::{ChangeRef, Ev, Line, Raw, Tpo};
use crate::history::FaultAction;
use bumpalo::Bump;
use pitfall_ports::ChangeOp;
use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A string of the text: borrowed when it has no escapes, else unescaped
/// (and then copied into the arena by [`Conv`]). Ordered as `String`s are.
#[derive(Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct S<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for S<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = S<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<S<'a>, E> {
                Ok(S(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<S<'a>, E> {
                Ok(S(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<S<'a>, E> {
                Ok(S(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A name: a topic, process, group, producer, db, op or slot, which
/// repeat on many lines. Read as an [`S`]; the fast path interns it
/// ([`super::fast::Names`]).
pub(super) struct Name<'a>(pub(super) S<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        S::deserialize(d).map(Name)
    }
}

/// A line's time and event kind, read before its fields.
#[derive(Deserialize)]
struct Head<'a> {
    t: u64,
    #[serde(rename = "type", borrow)]
    kind: S<'a>,
}

/// `t` and `type` of a line that starts as the recorder writes it
/// (`{"t":12,"type":"append",`), without a first pass of the parser.
fn head_as_recorded(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix("{\"t\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let t = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(",\"type\":\"")?;
    let kind = &rest[..rest.find('"')?];
    kind.bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then_some((t, kind))
}

/// One line in compact form, or `None` when it cannot be read this way:
/// on the [`super::fast`] path when it is written as the recorder writes,
/// else through `serde_json`.
pub(super) fn line<'a>(
    text: &'a str,
    arena: &'a Bump,
    names: &mut super::fast::Names<'a>,
) -> Option<Line<'a>> {
    super::fast::line(text, arena, names).or_else(|| line_by_serde(text, arena))
}

/// One line read through `serde_json`.
pub(super) fn line_by_serde<'a>(text: &'a str, arena: &'a Bump) -> Option<Line<'a>> {
    let (t, kind) = match head_as_recorded(text) {
        Some((t, kind)) => (t, Cow::Borrowed(kind)),
        None => {
            let head: Head = serde_json::from_str(text).ok()?;
            (head.t, head.kind.0)
        }
    };
    let event = event(&kind, text, arena)?;
    Some(Line { t, event })
}

/// A field as it was read, turned into its compact form.
pub(super) trait Conv<'a> {
    type Out;
    fn conv(self, arena: &'a Bump) -> Self::Out;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl<'a> Conv<'a> for $t {
            type Out = $t;
            fn conv(self, _: &'a Bump) -> $t {
                self
            }
        }
    )*};
}
same!(u64, u32, usize, bool, Option<u64>, FaultAction);

impl<'a> Conv<'a> for S<'a> {
    type Out = &'a str;
    fn conv(self, arena: &'a Bump) -> &'a str {
        match self.0 {
            Cow::Borrowed(s) => s,
            Cow::Owned(s) => arena.alloc_str(&s),
        }
    }
}

impl<'a> Conv<'a> for Name<'a> {
    type Out = &'a str;
    fn conv(self, arena: &'a Bump) -> &'a str {
        self.0.conv(arena)
    }
}

/// A JSON value of a line, kept as its text: one a `serde_json::Value`
/// reads, as the entries' parser reads it. A `RawValue` alone also takes
/// numbers a `Value` refuses (a float out of range, `23e33333`), so a text
/// that is not canonical (canonical texts hold integers only) is read as a
/// `Value` too.
pub(super) struct Json<'a>(&'a RawValue);

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'a RawValue>::deserialize(d)?;
        if !is_canonical(raw.get()) {
            serde_json::from_str::<serde_json::Value>(raw.get())
                .map_err(serde::de::Error::custom)?;
        }
        Ok(Json(raw))
    }
}

impl<'a> Conv<'a> for Json<'a> {
    type Out = Raw<'a>;
    fn conv(self, _: &'a Bump) -> Raw<'a> {
        Raw::of_text(self.0)
    }
}

impl<'a> Conv<'a> for Option<Json<'a>> {
    type Out = Option<Raw<'a>>;
    fn conv(self, _: &'a Bump) -> Option<Raw<'a>> {
        self.map(|json| Raw::of_text(json.0))
    }
}

impl<'a> Conv<'a> for Vec<S<'a>> {
    type Out = &'a [&'a str];
    fn conv(self, arena: &'a Bump) -> &'a [&'a str] {
        arena.alloc_slice_fill_iter(self.into_iter().map(|s| s.conv(arena)))
    }
}

impl<'a> Conv<'a> for Vec<u64> {
    type Out = &'a [u64];
    fn conv(self, arena: &'a Bump) -> &'a [u64] {
        arena.alloc_slice_copy(&self)
    }
}

impl<'a> Conv<'a> for Vec<(S<'a>, S<'a>)> {
    type Out = &'a [(&'a str, &'a str)];
    fn conv(self, arena: &'a Bump) -> &'a [(&'a str, &'a str)] {
        arena.alloc_slice_fill_iter(
            self.into_iter()
                .map(|(k, v)| (k.conv(arena), v.conv(arena))),
        )
    }
}

/// A JSON object keyed by strings, as a map holds it: sorted by key (as
/// `String` keys sort), the last of equal keys kept.
impl<'a, V: Conv<'a, Out: 'a>> Conv<'a> for BTreeMap<S<'a>, V> {
    type Out = &'a [(&'a str, V::Out)];
    fn conv(self, arena: &'a Bump) -> Self::Out {
        arena.alloc_slice_fill_iter(
            self.into_iter()
                .map(|(k, v)| (k.conv(arena), v.conv(arena))),
        )
    }
}

/// [`pitfall_ports::Change`], borrowed.
#[derive(Deserialize)]
pub(super) struct ChangeDe<'a> {
    lsn: u64,
    #[serde(borrow)]
    table: S<'a>,
    #[serde(borrow)]
    key: S<'a>,
    op: ChangeOp,
    version: u64,
    #[serde(borrow)]
    data: Json<'a>,
}

impl<'a> Conv<'a> for Vec<ChangeDe<'a>> {
    type Out = &'a [ChangeRef<'a>];
    fn conv(self, arena: &'a Bump) -> &'a [ChangeRef<'a>] {
        arena.alloc_slice_fill_iter(self.into_iter().map(|c| ChangeRef {
            lsn: c.lsn,
            table: c.table.conv(arena),
            key: c.key.conv(arena),
            op: c.op,
            version: c.version,
            data: Raw::of_text(c.data.0),
        }))
    }
}

/// [`pitfall_ports::TopicPartitionOffset`], borrowed.
#[derive(Deserialize)]
pub(super) struct TpoDe<'a> {
    #[serde(borrow)]
    topic: S<'a>,
    partition: u32,
    offset: u64,
}

impl<'a> Conv<'a> for Vec<TpoDe<'a>> {
    type Out = &'a [Tpo<'a>];
    fn conv(self, arena: &'a Bump) -> &'a [Tpo<'a>] {
        arena.alloc_slice_fill_iter(self.into_iter().map(|o| Tpo {
            topic: o.topic.conv(arena),
            partition: o.partition,
            offset: o.offset,
        }))
    }
}

/// Per event kind (its `type`), a struct of its fields as
/// [`crate::history::Event`] declares them, read from the line, and the
/// [`Ev`] made of them.
macro_rules! events {
    ($($kind:literal => $name:ident { $($(#[$attr:meta])* $field:ident: $ty:ty,)* })*) => {
        #[allow(non_snake_case)]
        mod fields {
            use super::*;
            $(
                #[derive(Deserialize)]
                pub(super) struct $name<'a> {
                    // Read here too, so that a line naming either twice is
                    // refused, as the entries' parser refuses it.
                    #[serde(rename = "t")]
                    pub(super) _t: serde::de::IgnoredAny,
                    #[serde(rename = "type")]
                    pub(super) _type: serde::de::IgnoredAny,
                    $($(#[$attr])* pub(super) $field: $ty,)*
                }
            )*
        }

        fn event<'a>(kind: &str, text: &'a str, arena: &'a Bump) -> Option<Ev<'a>> {
            match kind {
                $($kind => {
                    let f: fields::$name<'a> = serde_json::from_str(text).ok()?;
                    Some(Ev::$name { $($field: f.$field.conv(arena),)* })
                })*
                _ => None,
            }
        }

        /// The event of kind `kind` on the fast path: its fields in the
        /// order declared here, which is the order the recorder writes.
        pub(super) fn fast_event<'a>(
            kind: &str,
            cur: &mut super::fast::Cursor<'a, '_>,
            arena: &'a Bump,
        ) -> Option<Ev<'a>> {
            match kind {
                $($kind => Some(Ev::$name {
                    $($field: cur.field::<$ty>(stringify!($field), arena)?,)*
                }),)*
                _ => None,
            }
        }
    };
}

events! {
    "run" => Run {
        #[serde(borrow)] scenario: S<'a>,
        seed: u64,
        #[serde(borrow)] mode: S<'a>,
        #[serde(default, borrow)] system: S<'a>,
        #[serde(default, borrow)] variants: BTreeMap<S<'a>, S<'a>>,
    }
    "phase" => Phase { #[serde(borrow)] phase: S<'a>, }
    "fault" => Fault {
        action: FaultAction,
        #[serde(borrow)] kind: S<'a>,
        #[serde(borrow)] target: S<'a>,
    }
    "invoke" => Invoke {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] op: Name<'a>,
        #[serde(borrow)] request_id: S<'a>,
        attempt: u32,
        #[serde(borrow)] value: Json<'a>,
    }
    "ok" => Ok {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] op: Name<'a>,
        #[serde(borrow)] request_id: S<'a>,
        attempt: u32,
        #[serde(default, borrow)] value: Option<Json<'a>>,
    }
    "fail" => Fail {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] op: Name<'a>,
        #[serde(borrow)] request_id: S<'a>,
        attempt: u32,
        #[serde(borrow)] error: S<'a>,
    }
    "info" => Info {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] op: Name<'a>,
        #[serde(borrow)] request_id: S<'a>,
        attempt: u32,
        #[serde(borrow)] error: S<'a>,
    }
    "db_commit" => DbCommit {
        #[serde(borrow)] db: Name<'a>,
        #[serde(borrow)] process: Name<'a>,
        lsn: u64,
        #[serde(borrow)] changes: Vec<ChangeDe<'a>>,
    }
    "append" => Append {
        #[serde(borrow)] topic: Name<'a>,
        partition: u32,
        offset: u64,
        #[serde(borrow)] key: S<'a>,
        #[serde(borrow)] headers: Vec<(S<'a>, S<'a>)>,
        #[serde(borrow)] producer: Name<'a>,
        #[serde(borrow)] value: Json<'a>,
        #[serde(default)] wire_bytes: Option<u64>,
    }
    "consume" => Consume {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] group: Name<'a>,
        #[serde(borrow)] topic: Name<'a>,
        partition: u32,
        offset: u64,
        #[serde(borrow)] key: S<'a>,
    }
    "offset_commit" => OffsetCommit {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] group: Name<'a>,
        #[serde(borrow)] topic: Name<'a>,
        partition: u32,
        offset: u64,
    }
    "assigned" => Assigned {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] group: Name<'a>,
        generation: u64,
        #[serde(borrow)] partitions: Vec<S<'a>>,
    }
    "rewind" => Rewind {
        #[serde(borrow)] group: Name<'a>,
        #[serde(borrow)] topic: Name<'a>,
        partition: u32,
        from: u64,
        to: u64,
    }
    "rebalance" => Rebalance {
        #[serde(borrow)] group: Name<'a>,
        generation: u64,
        #[serde(borrow)] assignment: BTreeMap<S<'a>, Vec<S<'a>>>,
    }
    "object_put" => ObjectPut {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] key: S<'a>,
        size: usize,
    }
    "object_delete" => ObjectDelete {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] key: S<'a>,
    }
    "object_get" => ObjectGet {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] key: S<'a>,
        found: bool,
    }
    "txn_end" => TxnEnd {
        #[serde(borrow)] transactional_id: S<'a>,
        #[serde(borrow)] process: Name<'a>,
        committed: bool,
        #[serde(borrow)] records: Vec<TpoDe<'a>>,
        #[serde(borrow)] markers: Vec<TpoDe<'a>>,
    }
    "gaps" => Gaps {
        #[serde(borrow)] topic: Name<'a>,
        partition: u32,
        offsets: Vec<u64>,
    }
    "slot_confirm" => SlotConfirm {
        #[serde(borrow)] db: Name<'a>,
        #[serde(borrow)] slot: Name<'a>,
        lsn: u64,
    }
    "coverage" => Coverage {
        #[serde(borrow)] process: Name<'a>,
        #[serde(borrow)] name: S<'a>,
    }
    "drain" => Drain {
        converged: bool,
        #[serde(borrow)] pending: Vec<S<'a>>,
    }
}

/// Whether `text` (valid JSON) is what `serde_json` writes for its value:
/// objects' keys sorted and unique, no whitespace, no escapes, integers
/// only. Then the text itself is the value's canonical text. Anything
/// else, or a doubt, says no, and the caller writes the value out.
///
/// One pass over the bytes, which the text being valid JSON makes enough
/// (the queue checker asks this of every record's value; a parse through
/// `serde_json` cost three times as much). [`is_canonical_by_serde`] is the
/// same rule as a `serde_json` visitor, which the tests hold it to.
pub(super) fn is_canonical(text: &str) -> bool {
    /// Nesting deeper than this is a doubt.
    const DEPTH: usize = 32;
    // Per open container: whether it is an object, and its last key.
    let mut open: [(bool, Option<&[u8]>); DEPTH] = [(false, None); DEPTH];
    let mut depth = 0;
    let mut key_next = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' if depth == DEPTH => return false,
            b'{' | b'[' => {
                open[depth] = (bytes[i] == b'{', None);
                depth += 1;
                key_next = bytes[i] == b'{';
                i += 1;
            }
            b'}' | b']' => {
                depth -= 1;
                key_next = false;
                i += 1;
            }
            b',' => {
                key_next = open[depth - 1].0;
                i += 1;
            }
            b':' => i += 1,
            b'"' => {
                let body = &bytes[i + 1..];
                let Some(end) = memchr::memchr2(b'"', b'\\', body) else {
                    return false;
                };
                if body[end] == b'\\' {
                    return false;
                }
                if key_next {
                    let key = &body[..end];
                    let last = &mut open[depth - 1].1;
                    if last.is_some_and(|last| !key_after(last, key)) {
                        return false;
                    }
                    *last = Some(key);
                    key_next = false;
                }
                i += end + 2;
            }
            b't' | b'n' => i += 4,
            b'f' => i += 5,
            b'-' | b'0'..=b'9' => {
                let negative = bytes[i] == b'-';
                let start = i + usize::from(negative);
                let end = start
                    + bytes[start..]
                        .iter()
                        .position(|c| !c.is_ascii_digit())
                        .unwrap_or(bytes.len() - start);
                if matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
                    return false;
                }
                let Ok(n) = text[start..end].parse::<u64>() else {
                    return false;
                };
                // serde_json reads `-0` and integers below i64::MIN as floats.
                if negative && (n == 0 || n > 1 << 63) {
                    return false;
                }
                i = end;
            }
            _ => return false,
        }
    }
    true
}

/// Whether `key` sorts after `last`, as `String`s sort: byte by byte, then
/// by length. A loop of its own because keys are short and mostly differ
/// in their first byte, where a call to `memcmp` (what slices compare
/// with) cost more than the comparison.
pub(super) fn key_after(last: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> bool {
    let (last, key) = (last.as_ref(), key.as_ref());
    match last.iter().zip(key).find(|(a, b)| a != b) {
        Some((a, b)) => b > a,
        None => key.len() > last.len(),
    }
}

/// [`is_canonical`] as a `serde_json` visitor: the rule in its plainest
/// form, which the tests compare the scanner with.
#[cfg(test)]
pub(super) fn is_canonical_by_serde(text: &str) -> bool {
    matches!(serde_json::from_str::<Canon>(text), Ok(Canon(Some(n))) if n == text.len())
}

/// The length of the canonical text of a value, if what was read is
/// written back as it was read.
#[cfg(test)]
struct Canon(Option<usize>);

#[cfg(test)]
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[cfg(test)]
impl<'de> Deserialize<'de> for Canon {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CanonVisitor)
    }
}

#[cfg(test)]
struct CanonVisitor;

#[cfg(test)]
impl<'de> Visitor<'de> for CanonVisitor {
    type Value = Canon;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Canon, E> {
        Ok(Canon(Some(if b { 4 } else { 5 })))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Canon, E> {
        Ok(Canon(Some(digits(n))))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Canon, E> {
        Ok(Canon(Some(usize::from(n < 0) + digits(n.unsigned_abs()))))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Canon, E> {
        Ok(Canon(None))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Canon, E> {
        Ok(Canon(Some(s.len() + 2)))
    }
    fn visit_str<E>(self, _: &str) -> Result<Canon, E> {
        Ok(Canon(None))
    }
    fn visit_unit<E>(self) -> Result<Canon, E> {
        Ok(Canon(Some(4)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Canon, A::Error> {
        let mut len = 2;
        let mut first = true;
        while let Some(Canon(item)) = seq.next_element()? {
            let Some(item) = item else {
                return Ok(Canon(None));
            };
            len += item + usize::from(!first);
            first = false;
        }
        Ok(Canon(Some(len)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Canon, A::Error> {
        let mut len = 2;
        let mut last: Option<&'de str> = None;
        while let Some(S(key)) = map.next_key::<S<'de>>()? {
            let Cow::Borrowed(key) = key else {
                return Ok(Canon(None));
            };
            if last.is_some_and(|last| last >= key) {
                return Ok(Canon(None));
            }
            let Canon(Some(value)) = map.next_value()? else {
                return Ok(Canon(None));
            };
            len += usize::from(last.is_some()) + key.len() + 3 + value;
            last = Some(key);
        }
        Ok(Canon(Some(len)))
    }
}

/// The members `keys` of the JSON object `text` (the last of equal keys,
/// as a `Value` keeps it); none where `text` is not an object. `text` is
/// valid JSON (a [`RawValue`]'s), which lets one pass over its bytes find
/// where each member's value starts and ends without reading it: the
/// checkers ask this of every record's value. A key written with an
/// escape is read through `serde_json` ([`members_by_serde`]).
pub(super) fn members<'a, const N: usize>(text: &'a str, keys: [&str; N]) -> [Option<&'a str>; N] {
    let mut found = [None; N];
    let bytes = text.as_bytes();
    let mut i = skip_space(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return found;
    }
    i = skip_space(bytes, i + 1);
    while bytes.get(i) == Some(&b'"') {
        let key_end = string_end(bytes, i);
        let key = &text[i + 1..key_end - 1];
        if key.contains('\\') {
            return members_by_serde(text, keys);
        }
        // Past the `:`.
        let value_start = skip_space(bytes, skip_space(bytes, key_end) + 1);
        let value_end = value_end(bytes, value_start);
        if let Some(at) = keys.iter().position(|k| *k == key) {
            found[at] = Some(&text[value_start..value_end]);
        }
        // At a `,` and the next key, or at the `}`.
        i = skip_space(bytes, value_end);
        if bytes.get(i) == Some(&b',') {
            i = skip_space(bytes, i + 1);
        }
    }
    found
}

/// The first byte at or after `i` that is not JSON whitespace.
fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Just past the closing quote of the string whose opening quote is at `i`.
fn string_end(bytes: &[u8], i: usize) -> usize {
    let mut at = i + 1;
    while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[at..]) {
        if bytes[at + found] == b'"' {
            return at + found + 1;
        }
        // An escape: the byte after the backslash is never the end.
        at += found + 2;
    }
    bytes.len()
}

/// Just past the value that starts at `i`.
fn value_end(bytes: &[u8], i: usize) -> usize {
    match bytes.get(i) {
        Some(b'"') => string_end(bytes, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut at = i;
            while at < bytes.len() {
                match bytes[at] {
                    b'"' => {
                        at = string_end(bytes, at);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return at + 1;
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
            bytes.len()
        }
        // A number, `true`, `false` or `null`.
        _ => {
            let rest = &bytes[i..];
            i + rest
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(rest.len())
        }
    }
}

/// [`members`] through `serde_json`: the rule in its plainest form, which
/// the tests compare the scanner with, and what reads a key with an escape.
pub(super) fn members_by_serde<'a, const N: usize>(
    text: &'a str,
    keys: [&str; N],
) -> [Option<&'a str>; N] {
    struct Members<'k, 'a, const N: usize>(&'k [&'k str; N], std::marker::PhantomData<&'a ()>);
    impl<'de: 'a, 'a, const N: usize> Visitor<'de> for Members<'_, 'a, N> {
        type Value = [Option<&'a str>; N];
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut found = [None; N];
            while let Some(S(key)) = map.next_key::<S<'a>>()? {
                match self.0.iter().position(|k| *k == key) {
                    Some(at) => found[at] = Some(map.next_value::<&'a RawValue>()?.get()),
                    None => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Members(&keys, std::marker::PhantomData))
        .unwrap_or([None; N])
}
