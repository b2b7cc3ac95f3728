//! The fast path of the compact reader: a line exactly as the recorder
//! writes it (`t` and `type` first, then the event's fields in declared
//! order; no whitespace; strings without escapes or control characters;
//! integers only; every JSON value canonical, objects' keys sorted) is read
//! in one pass over its bytes, without `serde_json`. Its values are then
//! known to be canonical, so [`super::Raw::text`] borrows them without
//! another scan.
//!
//! It reads a strict subset of what the `serde_json` path reads, into the
//! same [`Line`]: anything else, or a doubt (a float, a key out of order, a
//! field it does not expect), and the line goes to that path, which reads
//! it or gives its error.

use super::read::{ChangeDe, Json, Name, TpoDe, S};
use super::{ChangeRef, Line, Raw, Tpo};
use crate::history::FaultAction;
use crate::lookup::LookupSet;
use bumpalo::Bump;
use pitfall_ports::ChangeOp;
use serde::de::value::BorrowedStrDeserializer;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Containers nested deeper than this in a value are left to `serde_json`.
const DEPTH: usize = 32;

/// The names (topics, processes, groups, ops, header keys...) read so far,
/// each copied once into the arena. A line's names then point into this
/// small set, which stays in the cache, instead of into the history's
/// text: the checkers compare and hash names on every line, long after the
/// text they were read from has left the cache.
pub(super) struct Names<'a> {
    arena: &'a Bump,
    known: LookupSet<&'a str>,
}

impl<'a> Names<'a> {
    pub(super) fn new(arena: &'a Bump) -> Self {
        Names {
            arena,
            known: LookupSet::default(),
        }
    }

    fn intern(&mut self, name: &str) -> &'a str {
        if let Some(known) = self.known.get(name) {
            return known;
        }
        let copy = self.arena.alloc_str(name);
        self.known.insert(copy);
        copy
    }
}

/// A position in one line's text, and the names read so far.
pub(super) struct Cursor<'a, 'n> {
    text: &'a str,
    at: usize,
    names: &'n mut Names<'a>,
}

impl<'a> Cursor<'a, '_> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.at..]
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    /// Past `lit` if the text goes on with it. Compared byte by byte: the
    /// literals are a few bytes long, where a call to `memcmp` (what
    /// `starts_with` makes of it) cost more than the comparison.
    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        let rest = self.rest().get(..lit.len())?;
        for k in 0..lit.len() {
            if rest[k] != lit[k] {
                return None;
            }
        }
        self.at += lit.len();
        Some(())
    }

    /// A string with no escape or control character, without its quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b"\"")?;
        let rest = self.rest();
        let end = string_stop(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        let s = &self.text[self.at..self.at + end];
        self.at += end + 1;
        Some(s)
    }

    /// An unsigned integer as JSON writes one: no sign, no leading zero,
    /// within `u64`.
    fn u64(&mut self) -> Option<u64> {
        let rest = self.rest();
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for &d in &rest[..digits] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += digits;
        Some(n)
    }

    /// A JSON value as `serde_json` writes it (canonical), checked as JSON
    /// on the way: its text.
    fn canonical(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.value(DEPTH)?;
        Some(&self.text[start..self.at])
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth.checked_sub(1)?),
            b'[' => self.array(depth.checked_sub(1)?),
            b't' => self.eat(b"true"),
            b'f' => self.eat(b"false"),
            b'n' => self.eat(b"null"),
            b'-' => {
                self.at += 1;
                // serde_json reads `-0` and integers below i64::MIN as floats.
                let n = self.u64()?;
                (n != 0 && n <= 1 << 63).then_some(())
            }
            _ => self.u64().map(drop),
        }
        .filter(|_| !matches!(self.peek(), Some(b'.' | b'e' | b'E')))
    }

    /// An object whose keys are sorted and unique, as a map writes them.
    fn object(&mut self, depth: usize) -> Option<()> {
        self.eat(b"{")?;
        if self.eat(b"}").is_some() {
            return Some(());
        }
        let mut last: Option<&str> = None;
        loop {
            let key = self.string()?;
            if last.is_some_and(|last| !super::read::key_after(last, key)) {
                return None;
            }
            last = Some(key);
            self.eat(b":")?;
            self.value(depth)?;
            if self.eat(b"}").is_some() {
                return Some(());
            }
            self.eat(b",")?;
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.list(|c| c.value(depth)).map(drop)
    }

    /// A string, interned as a name.
    fn name(&mut self) -> Option<&'a str> {
        let name = self.string()?;
        Some(self.names.intern(name))
    }

    /// `[item,item,...]`, each read by `item`.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b"[")?;
        let mut items = Vec::new();
        if self.eat(b"]").is_some() {
            return Some(items);
        }
        loop {
            items.push(item(self)?);
            if self.eat(b"]").is_some() {
                return Some(items);
            }
            self.eat(b",")?;
        }
    }

    /// The next field, `,"name":` and its value, or what a missing field
    /// reads as (if it may be missing).
    pub(super) fn field<T: Fast<'a>>(&mut self, name: &str, arena: &'a Bump) -> Option<T::Out> {
        let start = self.at;
        if self.eat(b",\"").is_some()
            && self.eat(name.as_bytes()).is_some()
            && self.eat(b"\":").is_some()
        {
            return T::fast(self, arena);
        }
        self.at = start;
        T::missing()
    }

    /// `"name":` and the member's value: a field of an object inside the
    /// line, `first` or after a comma.
    fn member<T>(
        &mut self,
        name: &str,
        first: bool,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        if !first {
            self.eat(b",")?;
        }
        self.eat(b"\"")?;
        self.eat(name.as_bytes())?;
        self.eat(b"\":")?;
        read(self)
    }

    /// A unit variant of an enum, written as its name.
    fn variant<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let name = self.string()?;
        T::deserialize(BorrowedStrDeserializer::<serde::de::value::Error>::new(
            name,
        ))
        .ok()
    }
}

/// Where a string's body stops: the first `"`, `\\` or control character
/// in `bytes`. Eight bytes at a time (the bit tricks of "Bit Twiddling
/// Hacks", "determine if a word has a byte less than n"): the strings of a
/// history are most of its bytes, and a `memchr` call per string, or a
/// loop over bytes, cost several times as much.
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // A byte's high bit is set where it is below `n` (for `n` <= 0x80);
    // a set bit above a byte that is below `n` may be a false one, so only
    // the lowest set bit counts.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = below(w ^ (ONES * u64::from(b'"')), 1);
        let backslash = below(w ^ (ONES * u64::from(b'\\')), 1);
        let stops = (quote | backslash | below(w, 0x20)) & HIGHS;
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + tail)
}

/// A line read on the fast path, or `None` for the `serde_json` path.
pub(super) fn line<'a>(text: &'a str, arena: &'a Bump, names: &mut Names<'a>) -> Option<Line<'a>> {
    let mut cur = Cursor { text, at: 0, names };
    cur.eat(b"{\"t\":")?;
    let t = cur.u64()?;
    cur.eat(b",\"type\":")?;
    let kind = cur.string()?;
    let event = super::read::fast_event(kind, &mut cur, arena)?;
    cur.eat(b"}")?;
    (cur.at == text.len()).then_some(Line { t, event })
}

/// A field type the fast path reads: into the same compact form as its
/// [`super::read::Conv`] makes of what `serde_json` read.
pub(super) trait Fast<'a>: super::read::Conv<'a> {
    fn fast(cur: &mut Cursor<'a, '_>, arena: &'a Bump) -> Option<Self::Out>;

    /// What the field reads as when the line leaves it out: only an
    /// `Option` may be left out (as `serde` derives it); any other field
    /// missing goes to the `serde_json` path, for its default or its error.
    fn missing() -> Option<Self::Out> {
        None
    }
}

impl<'a> Fast<'a> for S<'a> {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<&'a str> {
        cur.string()
    }
}

impl<'a> Fast<'a> for Name<'a> {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<&'a str> {
        cur.name()
    }
}

impl<'a> Fast<'a> for u64 {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<u64> {
        cur.u64()
    }
}

impl<'a> Fast<'a> for u32 {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<u32> {
        cur.u64()?.try_into().ok()
    }
}

impl<'a> Fast<'a> for usize {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<usize> {
        cur.u64()?.try_into().ok()
    }
}

impl<'a> Fast<'a> for bool {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<bool> {
        match cur.peek()? {
            b't' => cur.eat(b"true").map(|_| true),
            _ => cur.eat(b"false").map(|_| false),
        }
    }
}

impl<'a> Fast<'a> for Option<u64> {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<Option<u64>> {
        match cur.eat(b"null") {
            Some(()) => Some(None),
            None => cur.u64().map(Some),
        }
    }

    fn missing() -> Option<Option<u64>> {
        Some(None)
    }
}

impl<'a> Fast<'a> for FaultAction {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<FaultAction> {
        cur.variant()
    }
}

impl<'a> Fast<'a> for Json<'a> {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<Raw<'a>> {
        cur.canonical().map(Raw::of_canonical)
    }
}

impl<'a> Fast<'a> for Option<Json<'a>> {
    fn fast(cur: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<Option<Raw<'a>>> {
        match cur.eat(b"null") {
            Some(()) => Some(None),
            None => cur.canonical().map(|v| Some(Raw::of_canonical(v))),
        }
    }

    fn missing() -> Option<Option<Raw<'a>>> {
        Some(None)
    }
}

impl<'a> Fast<'a> for Vec<S<'a>> {
    fn fast(cur: &mut Cursor<'a, '_>, arena: &'a Bump) -> Option<&'a [&'a str]> {
        Some(arena.alloc_slice_copy(&cur.list(Cursor::string)?))
    }
}

impl<'a> Fast<'a> for Vec<u64> {
    fn fast(cur: &mut Cursor<'a, '_>, arena: &'a Bump) -> Option<&'a [u64]> {
        Some(arena.alloc_slice_copy(&cur.list(Cursor::u64)?))
    }
}

impl<'a> Fast<'a> for Vec<(S<'a>, S<'a>)> {
    fn fast(cur: &mut Cursor<'a, '_>, arena: &'a Bump) -> Option<&'a [(&'a str, &'a str)]> {
        let pairs = cur.list(|c| {
            c.eat(b"[")?;
            let k = c.name()?;
            c.eat(b",")?;
            let v = c.string()?;
            c.eat(b"]")?;
            Some((k, v))
        })?;
        Some(arena.alloc_slice_copy(&pairs))
    }
}

/// A map is sorted and deduplicated by the `serde_json` path; the run
/// header and rebalances that hold one are few, so they take that path.
impl<'a, V: super::read::Conv<'a, Out: 'a>> Fast<'a> for BTreeMap<S<'a>, V> {
    fn fast(_: &mut Cursor<'a, '_>, _: &'a Bump) -> Option<Self::Out> {
        None
    }
}

impl<'a> Fast<'a> for Vec<ChangeDe<'a>> {
    fn fast(cur: &mut Cursor<'a, '_>, arena: &'a Bump) -> Option<&'a [ChangeRef<'a>]> {
        let changes = cur.list(|c| {
            c.eat(b"{")?;
            let change = ChangeRef {
                lsn: c.member("lsn", true, Cursor::u64)?,
                table: c.member("table", false, Cursor::name)?,
                key: c.member("key", false, Cursor::string)?,
                op: c.member("op", false, Cursor::variant::<ChangeOp>)?,
                version: c.member("version", false, Cursor::u64)?,
                data: c
                    .member("data", false, Cursor::canonical)
                    .map(Raw::of_canonical)?,
            };
            c.eat(b"}")?;
            Some(change)
        })?;
        Some(arena.alloc_slice_copy(&changes))
    }
}

impl<'a> Fast<'a> for Vec<TpoDe<'a>> {
    fn fast(cur: &mut Cursor<'a, '_>, arena: &'a Bump) -> Option<&'a [Tpo<'a>]> {
        let tpos = cur.list(|c| {
            c.eat(b"{")?;
            let tpo = Tpo {
                topic: c.member("topic", true, Cursor::name)?,
                partition: c.member("partition", false, Cursor::u64)?.try_into().ok()?,
                offset: c.member("offset", false, Cursor::u64)?,
            };
            c.eat(b"}")?;
            Some(tpo)
        })?;
        Some(arena.alloc_slice_copy(&tpos))
    }
}

/// The members `keys` of `text`, a canonical JSON value (see
/// [`super::read::members`]): none where it is not an object. A canonical
/// text has no whitespace, no escapes and no repeated key, so a member's
/// value ends at the first `,` or `}` after it outside strings and nested
/// containers, and one tight loop over the bytes finds it.
pub(super) fn members<'a, const N: usize>(text: &'a str, keys: [&str; N]) -> [Option<&'a str>; N] {
    let mut found = [None; N];
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') {
        return found;
    }
    let mut i = 1;
    while bytes.get(i) == Some(&b'"') {
        let key_len = bytes[i + 1..].iter().position(|&b| b == b'"').unwrap_or(0);
        let key = &text[i + 1..i + 1 + key_len];
        // Past the key's closing quote and the `:`.
        let start = i + key_len + 3;
        let end = start + canonical_value_len(&bytes[start..]);
        if let Some(at) = keys.iter().position(|k| *k == key) {
            found[at] = Some(&text[start..end]);
        }
        // Past the `,`; at a `}` the loop ends.
        i = end + 1;
    }
    found
}

/// The length of the canonical JSON value at the start of `bytes`.
fn canonical_value_len(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    for (k, &b) in bytes.iter().enumerate() {
        if in_string {
            in_string = b != b'"';
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth <= 1 => return k + usize::from(depth == 1),
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return k,
            _ => {}
        }
    }
    bytes.len()
}

/// Whether the whole of `text` reads as a canonical JSON value here.
#[cfg(test)]
pub(super) fn is_canonical_json(text: &str) -> bool {
    let arena = Bump::new();
    let mut names = Names::new(&arena);
    let mut cur = Cursor {
        text,
        at: 0,
        names: &mut names,
    };
    cur.canonical().is_some() && cur.at == text.len()
}

#[cfg(test)]
mod tests {
    use super::super::read::{is_canonical_by_serde, line_by_serde};
    use super::*;
    use crate::history::{Entry, Event};
    use pitfall_ports::{Change, TopicPartitionOffset};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn tpo(topic: &str, partition: u32, offset: u64) -> TopicPartitionOffset {
        TopicPartitionOffset {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    /// One event of every kind, with the values the recorder writes.
    fn events() -> Vec<Event> {
        let s = |s: &str| s.to_string();
        let value = json!({"order_id": "o1", "qty": 2, "state": {"items": [1, -3, true, null], "ok": false}});
        vec![
            Event::Run {
                scenario: s("cdc"),
                seed: 7,
                mode: s("sim"),
                system: s("shop"),
                variants: [(s("producer"), s("cdc"))].into(),
            },
            Event::Phase { phase: s("chaos") },
            Event::Fault {
                action: FaultAction::Start,
                kind: s("crash"),
                target: s("orders 2"),
            },
            Event::Invoke {
                process: s("shopper-1"),
                op: s("place"),
                request_id: s("r1"),
                attempt: 1,
                value: value.clone(),
            },
            Event::Ok {
                process: s("shopper-1"),
                op: s("place"),
                request_id: s("r1"),
                attempt: 2,
                value: None,
            },
            Event::Ok {
                process: s("shopper-1"),
                op: s("read"),
                request_id: s("r2"),
                attempt: 1,
                value: Some(value.clone()),
            },
            Event::Fail {
                process: s("p"),
                op: s("pay"),
                request_id: s("r3"),
                attempt: 1,
                error: s("connect payments:8080: 192.168.0.7:8080"),
            },
            Event::Info {
                process: s("p"),
                op: s("pay"),
                request_id: s("r4"),
                attempt: 3,
                error: s("timeout"),
            },
            Event::DbCommit {
                db: s("orders-db"),
                process: s("orders"),
                lsn: 4,
                changes: vec![
                    Change {
                        lsn: 4,
                        table: s("orders"),
                        key: s("o1"),
                        op: ChangeOp::Update,
                        version: 2,
                        data: value.clone(),
                    },
                    Change {
                        lsn: 4,
                        table: s("orders"),
                        key: s("o2"),
                        op: ChangeOp::Delete,
                        version: 0,
                        data: Value::Null,
                    },
                ],
            },
            Event::Append {
                topic: s("orders-db.orders"),
                partition: 2,
                offset: 9,
                key: s("o1"),
                headers: vec![(s("requestId"), s("r1")), (s("userId"), s("u1"))],
                producer: s("cdc"),
                value: value.clone(),
                wire_bytes: Some(120),
            },
            Event::Append {
                topic: s("t"),
                partition: 0,
                offset: 0,
                key: s(""),
                headers: vec![],
                producer: s("p"),
                value: json!("plain"),
                wire_bytes: None,
            },
            Event::Consume {
                process: s("c"),
                group: s("g"),
                topic: s("t"),
                partition: 1,
                offset: 3,
                key: s("k"),
            },
            Event::OffsetCommit {
                process: s("c"),
                group: s("g"),
                topic: s("t"),
                partition: 1,
                offset: 4,
            },
            Event::Assigned {
                process: s("c"),
                group: s("g"),
                generation: 2,
                partitions: vec![s("t/0"), s("t/1")],
            },
            Event::Rewind {
                group: s("g"),
                topic: s("t"),
                partition: 0,
                from: 9,
                to: 6,
            },
            Event::Rebalance {
                group: s("g"),
                generation: 2,
                assignment: [(s("c"), vec![s("t/0")])].into(),
            },
            Event::ObjectPut {
                process: s("p"),
                key: s("payloads/o1"),
                size: 17306,
            },
            Event::ObjectDelete {
                process: s("p"),
                key: s("payloads/o1"),
            },
            Event::ObjectGet {
                process: s("p"),
                key: s("payloads/o1"),
                found: true,
            },
            Event::TxnEnd {
                transactional_id: s("inventory-1"),
                process: s("inventory-1"),
                committed: false,
                records: vec![tpo("t", 2, 0), tpo("t", 2, 1)],
                markers: vec![tpo("t", 2, 2)],
            },
            Event::Gaps {
                topic: s("t"),
                partition: 0,
                offsets: vec![3, 5],
            },
            Event::SlotConfirm {
                db: s("payments-db"),
                slot: s("payments_cdc"),
                lsn: 8,
            },
            Event::Coverage {
                process: s("p"),
                name: s("retried"),
            },
            Event::Drain {
                converged: true,
                pending: vec![s("orders")],
            },
        ]
    }

    fn lines() -> Vec<String> {
        events()
            .into_iter()
            .enumerate()
            .map(|(t, event)| serde_json::to_string(&Entry { t: t as u64, event }).unwrap())
            .collect()
    }

    /// Every kind the recorder writes, but for the two with a map, is read
    /// on the fast path, into what the `serde_json` path reads, its values
    /// known canonical.
    #[test]
    fn recorded_lines_take_the_fast_path_to_the_same_line() {
        let arena = Bump::new();
        for text in lines() {
            let slow = line_by_serde(&text, &arena).expect("the serde path reads it");
            let with_map = matches!(
                slow.event,
                super::super::Ev::Run { .. } | super::super::Ev::Rebalance { .. }
            );
            match line(&text, &arena, &mut Names::new(&arena)) {
                Some(fast) => {
                    assert!(!with_map, "{text}");
                    assert_eq!(fast, slow, "{text}");
                    assert_eq!(
                        format!("{fast:?}").replace("Canonical", "Text"),
                        format!("{slow:?}"),
                        "{text}"
                    );
                }
                None => assert!(with_map, "left to serde: {text}"),
            }
        }
    }

    /// A name read twice is one copy in the arena; keys and values are
    /// slices of their own line.
    #[test]
    fn names_are_interned_and_keys_are_not() {
        let arena = Bump::new();
        let mut names = Names::new(&arena);
        let texts = [
            r#"{"t":1,"type":"consume","process":"c","group":"g","topic":"t","partition":1,"offset":3,"key":"k"}"#,
            r#"{"t":2,"type":"consume","process":"c","group":"g","topic":"t","partition":1,"offset":4,"key":"k"}"#,
        ];
        let read: Vec<_> = texts
            .iter()
            .map(|t| line(t, &arena, &mut names).expect("fast").event)
            .collect();
        let [super::super::Ev::Consume {
            topic: t1,
            process: p1,
            key: k1,
            ..
        }, super::super::Ev::Consume {
            topic: t2,
            process: p2,
            key: k2,
            ..
        }] = read[..]
        else {
            panic!("two consumes: {read:?}");
        };
        assert!(std::ptr::eq(t1, t2) && std::ptr::eq(p1, p2));
        assert!(!std::ptr::eq(k1, k2));
        assert_eq!((t1, p1, k1, k2), ("t", "c", "k", "k"));
    }

    /// What the fast path cannot vouch for goes to the `serde_json` path:
    /// floats, escapes, unsorted or repeated keys, whitespace, a field out
    /// of order or unknown, a number out of range.
    #[test]
    fn anything_but_the_recorders_spelling_is_left_to_serde() {
        let arena = Bump::new();
        for text in [
            r#"{"t":1,"type":"consume","process":"c","group":"g","topic":"t","partition":1,"offset":3,"key":"k\"q"}"#,
            r#"{"t":1,"type":"consume","process":"c","group":"g","topic":"t","partition":1,"offset":3,"key":"k","extra":1}"#,
            r#"{"t":1,"type":"consume","group":"g","process":"c","topic":"t","partition":1,"offset":3,"key":"k"}"#,
            r#"{"t":1,"type":"consume","process":"c","group":"g","topic":"t","partition":4294967296,"offset":3,"key":"k"}"#,
            r#"{"t":01,"type":"phase","phase":"chaos"}"#,
            r#"{"t":1, "type":"phase","phase":"chaos"}"#,
            r#"{"t":1,"type":"phase","phase":"chaos"} "#,
            r#"{"t":1,"type":"phase","phase":"chaos","t":2}"#,
            r#"{"t":1,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[],"producer":"p","value":{"b":1,"a":2}}"#,
            r#"{"t":1,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[],"producer":"p","value":{"a":1,"a":2}}"#,
            r#"{"t":1,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[],"producer":"p","value":{"a":1.5}}"#,
            r#"{"t":1,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[],"producer":"p","value":-0}"#,
            r#"{"t":1,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[],"producer":"p","value":[1, 2]}"#,
            r#"{"t":1,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[],"producer":"p","value":"\u00e9"}"#,
            "{\"t\":1,\"type\":\"phase\",\"phase\":\"a\u{1}b\"}",
        ] {
            assert!(
                line(text, &arena, &mut Names::new(&arena)).is_none(),
                "{text}"
            );
        }
    }

    /// The word-at-a-time search stops where a byte loop stops, at every
    /// position in the word and past it.
    #[test]
    fn a_string_stops_where_a_byte_loop_stops() {
        let stop = |b: &[u8]| b.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        for len in 0..20 {
            for at in 0..=len {
                for byte in [
                    b'"', b'\\', 0x00, 0x1f, b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']',
                ] {
                    let mut bytes = vec![b'a'; len];
                    if at < len {
                        bytes[at] = byte;
                    }
                    // Bytes after the stop that the word tricks could
                    // mistake: a borrow out of a matched byte.
                    bytes.extend_from_slice(&[0x21, 0x23, 0x5b, 0x5d, 0x01]);
                    assert_eq!(string_stop(&bytes), stop(&bytes), "{bytes:?}");
                }
            }
        }
    }

    /// The member scan for canonical texts finds what `serde_json` finds,
    /// past nested containers, strings holding `,` `}` `]` and empty ones.
    #[test]
    fn canonical_members_are_the_members_serde_finds() {
        use super::super::read::members_by_serde;
        const KEYS: [&str; 4] = ["a", "", "revision", "version"];
        for text in [
            r#"{"a":1,"revision":3,"version":9}"#,
            r#"{"":"},]","a":{"x":[1,{"y":"}"}],"z":""},"b":[[],{}],"version":-2}"#,
            r#"{"after":{"revision":1},"revision":null,"state":{"a":"q"},"version":true}"#,
            r#"{"a":"","b":false}"#,
            r#"{}"#,
            r#"[{"a":1}]"#,
            r#""a""#,
            "7",
        ] {
            assert!(is_canonical_json(text), "{text}");
            assert_eq!(members(text, KEYS), members_by_serde(text, KEYS), "{text}");
        }
    }

    /// A few bytes changed here and there in a recorded line: whatever the
    /// fast path still reads, the `serde_json` path reads the same.
    fn mutated() -> impl Strategy<Value = String> {
        let edits = prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3u8,
                prop::sample::select(br#"{}[]",:0-19.e \tanul"#.to_vec()),
            ),
            1..4,
        );
        (prop::sample::select(lines()), edits).prop_map(|(line, edits)| {
            let mut bytes = line.into_bytes();
            for (at, how, byte) in edits {
                let i = at.index(bytes.len());
                match how {
                    0 => {
                        bytes.remove(i);
                    }
                    1 => bytes.insert(i, byte),
                    _ => bytes[i] = byte,
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    proptest! {
        #[test]
        fn a_string_stops_where_a_byte_loop_stops_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let stop = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_stop(&bytes), stop);
        }

        #[test]
        fn a_mutated_line_the_fast_path_reads_reads_the_same_through_serde(text in mutated()) {
            let arena = Bump::new();
            if let Some(fast) = line(&text, &arena, &mut Names::new(&arena)) {
                prop_assert_eq!(Some(fast), line_by_serde(&text, &arena), "{}", text);
            }
        }

        #[test]
        fn a_value_is_canonical_json_here_exactly_when_serde_says_so(text in mutated()) {
            let value = text
                .find("\"value\":")
                .and_then(|at| text.get(at + 8..text.len().saturating_sub(1)));
            for text in [text.as_str()].into_iter().chain(value) {
                let parses = serde_json::from_str::<Value>(text).is_ok();
                prop_assert_eq!(is_canonical_json(text), parses && is_canonical_by_serde(text), "{}", text);
            }
        }
    }
}
