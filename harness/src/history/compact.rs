//! The history read once into a compact form that every checker shares:
//! one [`Line`] per entry, its strings and JSON values (a record's value, a
//! row's data, a request) borrowed from the parsed [`Entry`]s, its lists in
//! an [`Arena`]. `serde_json` reads the text; the compact form is what the
//! checkers walk, so each one matches on a small borrowed event instead of
//! cloning and decoding.
//!
//! [`Compact::shared`] keeps what checkers derive from the history (a
//! system's decoded rows, say), so the second checker that needs it does
//! not derive it again.

mod fast;
mod read;

use super::{Entry, Event, FaultAction, ParseError};
use bumpalo::Bump;
use pitfall_ports::ChangeOp;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Where a [`Compact`] keeps the entries it was read into and the lists of
/// each line. One arena per history.
#[derive(Default)]
pub struct Arena(bumpalo::Bump, OnceCell<Vec<Entry>>);

impl Arena {
    pub fn new() -> Self {
        Self::default()
    }
}

/// A JSON value of the history, borrowed: from an [`Entry`] recorded in
/// memory, or as a slice of the history's text ([`Compact::parse`]).
/// [`Raw::text`] is its canonical text (what `serde_json` writes for it:
/// keys sorted, no whitespace), so two values are equal exactly when their
/// texts are.
#[derive(Clone, Copy, Debug)]
pub struct Raw<'a>(RawRepr<'a>);

/// Values are equal when they are equal as `serde_json` values, however
/// they are held or were written.
impl PartialEq for Raw<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

#[derive(Clone, Copy, Debug)]
enum RawRepr<'a> {
    Value(&'a Value),
    /// Valid JSON: a [`RawValue`]'s text, or a member of one.
    Text(&'a str),
    /// Valid JSON known to be canonical (read so on the fast path), or a
    /// member of such a text.
    Canonical(&'a str),
}

impl<'a> Raw<'a> {
    fn of(value: &'a Value) -> Self {
        Raw(RawRepr::Value(value))
    }

    fn of_text(text: &'a RawValue) -> Self {
        Raw(RawRepr::Text(text.get()))
    }

    /// A text the caller checked to be valid, canonical JSON.
    fn of_canonical(text: &'a str) -> Self {
        Raw(RawRepr::Canonical(text))
    }

    /// The canonical text: equal values, equal texts. Borrowed from the
    /// history when it was written canonically, as the recorder writes.
    pub fn text(&self) -> Cow<'a, str> {
        match self.0 {
            RawRepr::Canonical(raw) => Cow::Borrowed(raw),
            RawRepr::Text(raw) if read::is_canonical(raw) => Cow::Borrowed(raw),
            _ => Cow::Owned(self.value().to_string()),
        }
    }

    /// The value.
    pub fn value(&self) -> Cow<'a, Value> {
        match self.0 {
            RawRepr::Value(value) => Cow::Borrowed(value),
            RawRepr::Text(raw) | RawRepr::Canonical(raw) => {
                Cow::Owned(serde_json::from_str(raw).expect("a raw value is JSON"))
            }
        }
    }

    /// The value as a `T`, as `serde_json::from_value` would make it. Read
    /// from the text, unless the text has what a `Value` reads otherwise
    /// (a repeated key, which a `Value` keeps the last of and a struct
    /// refuses): then from the `Value`.
    pub fn decode<T: DeserializeOwned>(&self) -> Option<T> {
        match self.0 {
            RawRepr::Value(value) => T::deserialize(value).ok(),
            // A canonical text repeats no key, so it reads as its `Value` does.
            RawRepr::Canonical(raw) => serde_json::from_str(raw).ok(),
            RawRepr::Text(raw) => serde_json::from_str(raw)
                .ok()
                .or_else(|| T::deserialize(&*self.value()).ok()),
        }
    }

    /// `value.get(key)`: the member `key` of an object; none for anything
    /// else.
    pub fn get(&self, key: &str) -> Option<Raw<'a>> {
        let [member] = self.get_many([key]);
        member
    }

    /// `[value.get(k) for k in keys]`, in one pass over the value.
    pub fn get_many<const N: usize>(&self, keys: [&str; N]) -> [Option<Raw<'a>>; N] {
        match self.0 {
            RawRepr::Value(value) => keys.map(|k| value.get(k).map(Raw::of)),
            RawRepr::Text(raw) => {
                read::members(raw, keys).map(|m| m.map(|text| Raw(RawRepr::Text(text))))
            }
            RawRepr::Canonical(raw) => fast::members(raw, keys).map(|m| m.map(Raw::of_canonical)),
        }
    }

    /// `value.as_str()`.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self.0 {
            RawRepr::Value(value) => value.as_str().map(Cow::Borrowed),
            RawRepr::Text(raw) => serde_json::from_str::<read::S>(raw).ok().map(|s| s.0),
            // A canonical string has no escapes: its text between the quotes.
            RawRepr::Canonical(raw) => raw
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .map(Cow::Borrowed),
        }
    }

    /// `value.as_u64()`.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            RawRepr::Value(value) => value.as_u64(),
            RawRepr::Text(raw) | RawRepr::Canonical(raw) => serde_json::from_str(raw).ok(),
        }
    }

    /// `value.is_null()`.
    pub fn is_null(&self) -> bool {
        match self.0 {
            RawRepr::Value(value) => value.is_null(),
            RawRepr::Text(raw) | RawRepr::Canonical(raw) => raw == "null",
        }
    }
}

/// One row change of a commit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChangeRef<'a> {
    pub lsn: u64,
    pub table: &'a str,
    pub key: &'a str,
    pub op: ChangeOp,
    pub version: u64,
    pub data: Raw<'a>,
}

/// A topic, partition and offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tpo<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
}

/// One entry: simulated time in milliseconds and the event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line<'a> {
    pub t: u64,
    pub event: Ev<'a>,
}

/// An [`super::Event`], borrowed: the same kinds and fields, maps as
/// sorted slices, JSON values as [`Raw`] text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ev<'a> {
    Run {
        scenario: &'a str,
        seed: u64,
        mode: &'a str,
        system: &'a str,
        variants: &'a [(&'a str, &'a str)],
    },
    Phase {
        phase: &'a str,
    },
    Fault {
        action: FaultAction,
        kind: &'a str,
        target: &'a str,
    },
    Invoke {
        process: &'a str,
        op: &'a str,
        request_id: &'a str,
        attempt: u32,
        value: Raw<'a>,
    },
    Ok {
        process: &'a str,
        op: &'a str,
        request_id: &'a str,
        attempt: u32,
        value: Option<Raw<'a>>,
    },
    Fail {
        process: &'a str,
        op: &'a str,
        request_id: &'a str,
        attempt: u32,
        error: &'a str,
    },
    Info {
        process: &'a str,
        op: &'a str,
        request_id: &'a str,
        attempt: u32,
        error: &'a str,
    },
    DbCommit {
        db: &'a str,
        process: &'a str,
        lsn: u64,
        changes: &'a [ChangeRef<'a>],
    },
    Append {
        topic: &'a str,
        partition: u32,
        offset: u64,
        key: &'a str,
        headers: &'a [(&'a str, &'a str)],
        producer: &'a str,
        value: Raw<'a>,
        wire_bytes: Option<u64>,
    },
    Consume {
        process: &'a str,
        group: &'a str,
        topic: &'a str,
        partition: u32,
        offset: u64,
        key: &'a str,
    },
    OffsetCommit {
        process: &'a str,
        group: &'a str,
        topic: &'a str,
        partition: u32,
        offset: u64,
    },
    Assigned {
        process: &'a str,
        group: &'a str,
        generation: u64,
        partitions: &'a [&'a str],
    },
    Rewind {
        group: &'a str,
        topic: &'a str,
        partition: u32,
        from: u64,
        to: u64,
    },
    Rebalance {
        group: &'a str,
        generation: u64,
        assignment: &'a [(&'a str, &'a [&'a str])],
    },
    ObjectPut {
        process: &'a str,
        key: &'a str,
        size: usize,
    },
    ObjectDelete {
        process: &'a str,
        key: &'a str,
    },
    ObjectGet {
        process: &'a str,
        key: &'a str,
        found: bool,
    },
    TxnEnd {
        transactional_id: &'a str,
        process: &'a str,
        committed: bool,
        records: &'a [Tpo<'a>],
        markers: &'a [Tpo<'a>],
    },
    Gaps {
        topic: &'a str,
        partition: u32,
        offsets: &'a [u64],
    },
    SlotConfirm {
        db: &'a str,
        slot: &'a str,
        lsn: u64,
    },
    Coverage {
        process: &'a str,
        name: &'a str,
    },
    Drain {
        converged: bool,
        pending: &'a [&'a str],
    },
}

/// A whole history in compact form, with the text of each entry.
pub struct Compact<'a> {
    lines: Vec<Line<'a>>,
    /// The entries, as recorded in memory or as read from the text when
    /// first asked for.
    entries: Entries<'a>,
    /// What checkers derived and share, by type and name.
    shared: RefCell<BTreeMap<(TypeId, String), Rc<dyn Any>>>,
}

enum Entries<'a> {
    Kept(&'a [Entry]),
    Text {
        text: &'a str,
        source_name: String,
        made: &'a OnceCell<Vec<Entry>>,
    },
}

impl<'a> Compact<'a> {
    /// Read JSON Lines into compact form, borrowing from `text`, without
    /// checking the shape. Accepts what [`super::parse_jsonl`] accepts,
    /// with the same errors; [`Compact::entries`] are read from the text
    /// only if asked for.
    pub fn parse(text: &'a str, source_name: &str, arena: &'a Arena) -> Result<Self, ParseError> {
        Self::read(text, source_name, arena).map(|(compact, _)| compact)
    }

    /// Parse and check the shape as [`super::parse_history`] does: what
    /// `pitfall check` accepts.
    pub fn parse_history(
        text: &'a str,
        source_name: &str,
        arena: &'a Arena,
    ) -> Result<Self, ParseError> {
        let (compact, numbers) = Self::read(text, source_name, arena)?;
        let shapes: Vec<_> = compact.lines.iter().map(Line::shape).collect();
        super::check_shape_of(&shapes, &numbers).map_err(|(line, message)| ParseError {
            source_name: source_name.to_string(),
            line,
            message,
        })?;
        Ok(compact)
    }

    /// The compact form and each line's number in the text. A text this
    /// reader cannot take goes to [`super::parse_jsonl`], for its error.
    fn read(
        text: &'a str,
        source_name: &str,
        arena: &'a Arena,
    ) -> Result<(Self, Vec<usize>), ParseError> {
        if let Some((lines, numbers)) = read_lines(text, &arena.0) {
            let entries = Entries::Text {
                text,
                source_name: source_name.to_string(),
                made: &arena.1,
            };
            return Ok((Self::new(lines, entries), numbers));
        }
        let entries = super::parse_jsonl(text, source_name)?;
        let numbers = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, _)| i + 1)
            .collect();
        Ok((Self::keep(entries, arena), numbers))
    }

    fn new(lines: Vec<Line<'a>>, entries: Entries<'a>) -> Self {
        Compact {
            lines,
            entries,
            shared: RefCell::default(),
        }
    }

    fn keep(entries: Vec<Entry>, arena: &'a Arena) -> Self {
        assert!(arena.1.set(entries).is_ok(), "one history per arena");
        let entries = arena.1.get().expect("just set");
        Self::from_entries(entries, arena)
    }

    pub fn lines(&self) -> &[Line<'a>] {
        &self.lines
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Entry `i` as an [`Entry`].
    pub fn entry(&self, i: usize) -> Entry {
        self.entries()[i].clone()
    }

    /// Every entry as an [`Entry`] (read from the text on the first call,
    /// for a history read with [`Compact::parse`]).
    pub fn entries(&self) -> &'a [Entry] {
        match &self.entries {
            Entries::Kept(entries) => entries,
            Entries::Text {
                text,
                source_name,
                made,
            } => made.get_or_init(|| {
                super::parse_jsonl(text, source_name).expect("the compact reader took the text")
            }),
        }
    }

    /// The run header's variants.
    pub fn variants(&self) -> &'a [(&'a str, &'a str)] {
        self.lines
            .iter()
            .find_map(|l| match l.event {
                Ev::Run { variants, .. } => Some(variants),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// The run header's variant of `component`.
    pub fn variant(&self, component: &str) -> Option<&'a str> {
        let variants = self.variants();
        let at = variants
            .binary_search_by(|(k, _)| (*k).cmp(component))
            .ok()?;
        Some(variants[at].1)
    }

    /// What `make` derives from this history, made on the first call for
    /// its type and `name` and shared by every later one. `make` must be a
    /// pure function of the history, like the checkers that call it, and
    /// `name` must say which one it is.
    pub fn shared<T: Any>(&self, name: &str, make: impl FnOnce(&Self) -> T) -> Rc<T> {
        let id = (TypeId::of::<T>(), name.to_string());
        if let Some(kept) = self.shared.borrow().get(&id) {
            return kept.clone().downcast().expect("kept under its own type");
        }
        let made = Rc::new(make(self));
        self.shared.borrow_mut().insert(id, made.clone());
        made
    }
}

/// Run `f` over `entries` in compact form: the checkers' way of looking at
/// a history recorded in memory. Nothing is serialized: strings and values
/// are borrowed from the entries.
pub fn with_entries<R>(entries: &[Entry], f: impl FnOnce(&Compact<'_>) -> R) -> R {
    let arena = Arena::new();
    f(&Compact::from_entries(entries, &arena))
}

impl<'a> Compact<'a> {
    /// The compact form of entries recorded in memory (see [`with_entries`]).
    pub fn from_entries(entries: &'a [Entry], arena: &'a Arena) -> Self {
        let lines = entries
            .iter()
            .map(|e| Line {
                t: e.t,
                event: event_of(&e.event, &arena.0),
            })
            .collect();
        Compact::new(lines, Entries::Kept(entries))
    }
}

/// Every non-blank line of `text` in compact form, and its line number;
/// `None` if one cannot be read so, or the last line has no newline.
fn read_lines<'a>(text: &'a str, arena: &'a Bump) -> Option<(Vec<Line<'a>>, Vec<usize>)> {
    if !text.is_empty() && !text.ends_with('\n') {
        return None;
    }
    let mut lines = Vec::new();
    let mut numbers = Vec::new();
    let mut names = fast::Names::new(arena);
    let mut start = 0;
    // Split as `str::lines` does (at `\n`, a `\r` before it dropped), with
    // `memchr`'s vectorized search.
    for (i, end) in memchr::memchr_iter(b'\n', text.as_bytes()).enumerate() {
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        lines.push(read::line(line, arena, &mut names)?);
        numbers.push(i + 1);
    }
    Some((lines, numbers))
}

impl<'a> Line<'a> {
    /// What the shape check looks at.
    fn shape(&self) -> (u64, super::Shape<'a>) {
        use super::Shape;
        let shape = match self.event {
            Ev::Run { .. } => Shape::Run,
            Ev::Append {
                topic,
                partition,
                offset,
                ..
            } => Shape::Append(topic, partition, offset),
            Ev::DbCommit { db, lsn, .. } => Shape::Commit(db, lsn),
            _ => Shape::Other,
        };
        (self.t, shape)
    }
}

fn strs<'a>(arena: &'a Bump, list: &'a [String]) -> &'a [&'a str] {
    arena.alloc_slice_fill_iter(list.iter().map(String::as_str))
}

fn tpos<'a>(arena: &'a Bump, list: &'a [pitfall_ports::TopicPartitionOffset]) -> &'a [Tpo<'a>] {
    arena.alloc_slice_fill_iter(list.iter().map(|o| Tpo {
        topic: &o.topic,
        partition: o.partition,
        offset: o.offset,
    }))
}

fn changes<'a>(arena: &'a Bump, list: &'a [pitfall_ports::Change]) -> &'a [ChangeRef<'a>] {
    arena.alloc_slice_fill_iter(list.iter().map(|c| ChangeRef {
        lsn: c.lsn,
        table: &c.table,
        key: &c.key,
        op: c.op,
        version: c.version,
        data: Raw::of(&c.data),
    }))
}

/// An [`Event`] recorded in memory, borrowed.
fn event_of<'a>(event: &'a Event, arena: &'a Bump) -> Ev<'a> {
    match event {
        Event::Run {
            scenario,
            seed,
            mode,
            system,
            variants,
        } => Ev::Run {
            scenario,
            seed: *seed,
            mode,
            system,
            variants: arena
                .alloc_slice_fill_iter(variants.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        },
        Event::Phase { phase } => Ev::Phase { phase },
        Event::Fault {
            action,
            kind,
            target,
        } => Ev::Fault {
            action: *action,
            kind,
            target,
        },
        Event::Invoke {
            process,
            op,
            request_id,
            attempt,
            value,
        } => Ev::Invoke {
            process,
            op,
            request_id,
            attempt: *attempt,
            value: Raw::of(value),
        },
        Event::Ok {
            process,
            op,
            request_id,
            attempt,
            value,
        } => Ev::Ok {
            process,
            op,
            request_id,
            attempt: *attempt,
            value: value.as_ref().map(Raw::of),
        },
        Event::Fail {
            process,
            op,
            request_id,
            attempt,
            error,
        } => Ev::Fail {
            process,
            op,
            request_id,
            attempt: *attempt,
            error,
        },
        Event::Info {
            process,
            op,
            request_id,
            attempt,
            error,
        } => Ev::Info {
            process,
            op,
            request_id,
            attempt: *attempt,
            error,
        },
        Event::DbCommit {
            db,
            process,
            lsn,
            changes: list,
        } => Ev::DbCommit {
            db,
            process,
            lsn: *lsn,
            changes: changes(arena, list),
        },
        Event::Append {
            topic,
            partition,
            offset,
            key,
            headers,
            producer,
            value,
            wire_bytes,
        } => Ev::Append {
            topic,
            partition: *partition,
            offset: *offset,
            key,
            headers: arena
                .alloc_slice_fill_iter(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            producer,
            value: Raw::of(value),
            wire_bytes: *wire_bytes,
        },
        _ => broker_event_of(event, arena),
    }
}

/// [`event_of`] for the broker's, object store's and driver's events.
fn broker_event_of<'a>(event: &'a Event, arena: &'a Bump) -> Ev<'a> {
    match event {
        Event::Consume {
            process,
            group,
            topic,
            partition,
            offset,
            key,
        } => Ev::Consume {
            process,
            group,
            topic,
            partition: *partition,
            offset: *offset,
            key,
        },
        Event::OffsetCommit {
            process,
            group,
            topic,
            partition,
            offset,
        } => Ev::OffsetCommit {
            process,
            group,
            topic,
            partition: *partition,
            offset: *offset,
        },
        Event::Assigned {
            process,
            group,
            generation,
            partitions,
        } => Ev::Assigned {
            process,
            group,
            generation: *generation,
            partitions: strs(arena, partitions),
        },
        Event::Rewind {
            group,
            topic,
            partition,
            from,
            to,
        } => Ev::Rewind {
            group,
            topic,
            partition: *partition,
            from: *from,
            to: *to,
        },
        Event::Rebalance {
            group,
            generation,
            assignment,
        } => Ev::Rebalance {
            group,
            generation: *generation,
            assignment: arena.alloc_slice_fill_iter(
                assignment.iter().map(|(k, v)| (k.as_str(), strs(arena, v))),
            ),
        },
        Event::ObjectPut { process, key, size } => Ev::ObjectPut {
            process,
            key,
            size: *size,
        },
        Event::ObjectDelete { process, key } => Ev::ObjectDelete { process, key },
        Event::ObjectGet {
            process,
            key,
            found,
        } => Ev::ObjectGet {
            process,
            key,
            found: *found,
        },
        Event::TxnEnd {
            transactional_id,
            process,
            committed,
            records,
            markers,
        } => Ev::TxnEnd {
            transactional_id,
            process,
            committed: *committed,
            records: tpos(arena, records),
            markers: tpos(arena, markers),
        },
        Event::Gaps {
            topic,
            partition,
            offsets,
        } => Ev::Gaps {
            topic,
            partition: *partition,
            offsets,
        },
        Event::SlotConfirm { db, slot, lsn } => Ev::SlotConfirm {
            db,
            slot,
            lsn: *lsn,
        },
        Event::Coverage { process, name } => Ev::Coverage { process, name },
        Event::Drain { converged, pending } => Ev::Drain {
            converged: *converged,
            pending: strs(arena, pending),
        },
        _ => unreachable!("event_of reads the others"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::parse_jsonl;
    use serde_json::json;

    const HEADER: &str =
        r#"{"t":0,"type":"run","scenario":"s","seed":1,"mode":"sim","variants":{"b":"2","a":"1"}}"#;

    #[test]
    fn lines_borrow_what_the_parsed_entries_say() {
        let lines = [
            HEADER,
            r#"{"t":2,"type":"db_commit","db":"db","process":"p","lsn":1,"changes":[{"lsn":1,"table":"t","key":"k","op":"insert","version":1,"data":{"b":1,"a":[1.5,"\u00e9"]}}]}"#,
            r#"{"t":5,"type":"append","topic":"t","partition":0,"offset":0,"key":"k","headers":[["a","b"]],"producer":"p","value":{"z":1,"a":"q\"uote"}}"#,
        ];
        let text = format!("{}\n", lines.join("\n"));
        let entries = parse_jsonl(&text, "h.jsonl").unwrap();
        let arena = Arena::new();
        let compact = Compact::parse(&text, "h.jsonl", &arena).unwrap();
        assert_eq!(compact.len(), 3);
        assert_eq!(compact.entries(), &entries[..]);
        assert_eq!(compact.entry(1), entries[1]);
        assert_eq!(compact.variant("a"), Some("1"));
        assert_eq!(compact.variant("b"), Some("2"));
        assert_eq!(compact.variant("c"), None);
        let Ev::DbCommit { db, changes, .. } = compact.lines()[1].event else {
            panic!("a commit: {:?}", compact.lines()[1]);
        };
        assert_eq!((db, changes.len(), changes[0].key), ("db", 1, "k"));
        assert_eq!(changes[0].data.text(), r#"{"a":[1.5,"é"],"b":1}"#);
        let Ev::Append { value, headers, .. } = compact.lines()[2].event else {
            panic!("an append: {:?}", compact.lines()[2]);
        };
        assert_eq!(
            value.get("a").and_then(|a| a.as_str()).as_deref(),
            Some("q\"uote")
        );
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn a_bad_line_is_the_error_parse_jsonl_gives() {
        let text = format!("{HEADER}\n{{\"t\":1,\"type\":\"nope\"}}\n");
        let arena = Arena::new();
        let compact = Compact::parse(&text, "h.jsonl", &arena).map(|c| c.len());
        let entries = parse_jsonl(&text, "h.jsonl").map(|e| e.len());
        assert_eq!(
            compact.map_err(|e| e.to_string()),
            entries.map_err(|e| e.to_string())
        );
        assert!(Compact::parse_history("", "h.jsonl", &Arena::new()).is_err());
    }

    /// A value with a number a `Value` cannot hold is refused, as the
    /// entries' parser refuses it, though `RawValue` takes it (found by the
    /// history fuzz target).
    #[test]
    fn a_number_out_of_range_in_a_value_is_refused_as_parse_jsonl_refuses_it() {
        for value in ["23e33333", r#"{"a":[-1e999]}"#] {
            let line = format!(
                r#"{{"t":1,"type":"invoke","process":"p","op":"o","request_id":"r","attempt":1,"value":{value}}}"#
            );
            let text = format!("{HEADER}\n{line}\n");
            let arena = Arena::new();
            let read = Compact::parse(&text, "h.jsonl", &arena).map(|c| c.len());
            let parsed = parse_jsonl(&text, "h.jsonl").map(|e| e.len());
            assert!(parsed.is_err(), "{line}");
            assert_eq!(
                read.map_err(|e| e.to_string()),
                parsed.map_err(|e| e.to_string())
            );
        }
    }

    /// A line that names `t` or `type` twice is refused, as the entries'
    /// parser refuses it, though the first ones look as the recorder
    /// writes them.
    #[test]
    fn a_repeated_time_or_type_is_refused_as_parse_jsonl_refuses_it() {
        for line in [
            r#"{"t":1,"type":"phase","phase":"chaos","type":"phase"}"#,
            r#"{"t":1,"type":"phase","phase":"chaos","t":2}"#,
        ] {
            let text = format!("{HEADER}\n{line}\n");
            let arena = Arena::new();
            let read = Compact::parse(&text, "h.jsonl", &arena).map(|c| c.len());
            let parsed = parse_jsonl(&text, "h.jsonl").map(|e| e.len());
            assert!(parsed.is_err(), "{line}");
            assert_eq!(
                read.map_err(|e| e.to_string()),
                parsed.map_err(|e| e.to_string()),
                "{line}"
            );
        }
    }

    #[test]
    fn raw_values_answer_as_serde_json_values_do() {
        let values = [
            json!({"revision": 3, "version": 9, "after": {"request_id": "r\"1", "user_id": "u"}}),
            json!({"version": 2, "z": [1, 2.5, -3]}),
            json!("plain"),
            json!(-4),
            json!(null),
        ];
        for value in &values {
            let raw = Raw::of(value);
            assert_eq!(raw.text(), serde_json::to_string(value).unwrap());
            assert_eq!(*raw.value(), *value);
            let [r, v] = raw.get_many(["revision", "version"]);
            assert_eq!(
                r.and_then(|r| r.as_u64()),
                value.get("revision").and_then(Value::as_u64)
            );
            assert_eq!(
                v.and_then(|v| v.as_u64()),
                value.get("version").and_then(Value::as_u64)
            );
            assert_eq!(raw.as_str().as_deref(), value.as_str());
            assert_eq!(raw.as_u64(), value.as_u64());
            assert_eq!(raw.is_null(), value.is_null());
            assert_eq!(raw.decode::<Value>().as_ref(), Some(value));
        }
    }

    /// Values read from text answer as the `Value` parsed from that text
    /// does, whether the text is canonical (then its own canonical text,
    /// borrowed) or not (unsorted or repeated keys, whitespace, escapes,
    /// floats, integers past u64).
    #[test]
    fn raw_values_read_from_text_answer_as_their_parsed_values_do() {
        let canonical = [
            r#"{"after":{"request_id":"r1","user_id":"u"},"revision":3,"version":9}"#,
            r#"{"version":2,"z":[1,-3,true,null,"x"]}"#,
            r#""plain""#,
            "\"\u{7f} \u{e9} \u{2028} \u{1f600} /\"",
            "-4",
            "null",
            "[]",
            "{}",
        ];
        let other = [
            r#"{"version":9,"revision":3}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"[1, 2]"#,
            r#"{"a":"\u00e9","q":"q\"uote"}"#,
            r#"{"\u0061":1}"#,
            r#"{"revision":1.0,"version":2.5}"#,
            "-0",
            "1e2",
            "18446744073709551616",
            "{\"a\":[1,\n2]}",
        ];
        for text in canonical.iter().chain(&other) {
            let value: Value = serde_json::from_str(text).unwrap();
            let raw = Raw::of_text(serde_json::from_str(text).unwrap());
            let is_canonical = canonical.contains(text);
            assert_eq!(raw.text(), serde_json::to_string(&value).unwrap(), "{text}");
            assert_eq!(
                matches!(raw.text(), Cow::Borrowed(_)),
                is_canonical,
                "{text}"
            );
            assert_eq!(*raw.value(), value, "{text}");
            assert_eq!(raw, Raw::of(&value), "{text}");
            let [r, v, a] = raw.get_many(["revision", "version", "a"]);
            for (got, key) in [(r, "revision"), (v, "version"), (a, "a")] {
                assert_eq!(
                    got.map(|g| g.value().into_owned()),
                    value.get(key).cloned(),
                    "{text} {key}"
                );
            }
            assert_eq!(
                raw.get("version").and_then(|v| v.as_u64()),
                value.get("version").and_then(Value::as_u64),
                "{text}"
            );
            assert_eq!(raw.as_str().as_deref(), value.as_str(), "{text}");
            assert_eq!(raw.as_u64(), value.as_u64(), "{text}");
            assert_eq!(raw.is_null(), value.is_null(), "{text}");
            assert_eq!(raw.decode::<Value>().as_ref(), Some(&value), "{text}");
        }
    }

    /// A struct decoded from text with a repeated key gets the last, as
    /// from a `Value` (found by the history fuzz target: a reservation row
    /// with two `qty`s).
    #[test]
    fn decoding_text_with_a_repeated_key_takes_the_last_as_a_value_does() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Row {
            qty: u64,
            order_id: String,
        }
        let text = r#"{"qty":2,"order_id":"o4","qty":1}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let raw = Raw::of_text(serde_json::from_str(text).unwrap());
        let expected = Row {
            qty: 1,
            order_id: "o4".into(),
        };
        assert_eq!(Raw::of(&value).decode::<Row>(), Some(expected));
        assert_eq!(raw.decode::<Row>(), Raw::of(&value).decode::<Row>());
        assert_eq!(raw.decode::<Row>().map(|r| r.qty), Some(1));
    }

    #[test]
    fn shared_facts_are_made_once_per_name() {
        let entries = parse_jsonl(&format!("{HEADER}\n"), "h.jsonl").unwrap();
        with_entries(&entries, |c| {
            let made = std::cell::Cell::new(0);
            let count = |_: &Compact<'_>| {
                made.set(made.get() + 1);
                made.get()
            };
            assert_eq!(*c.shared("a", count), 1);
            assert_eq!(*c.shared("a", count), 1);
            assert_eq!(*c.shared("b", count), 2);
            assert_eq!(made.get(), 2);
        });
    }

    /// The scanner says what the `serde_json` visitor says, on the texts
    /// `serde_json` writes (canonical but for escapes and floats) and on
    /// other spellings of the same values.
    mod canonical {
        use super::read::{is_canonical, is_canonical_by_serde, members, members_by_serde};
        use proptest::prelude::*;
        use serde_json::Value;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (-1e6..1e6f64).prop_map(Value::from),
                "[a-c\\\\\"\u{e9}\u{1}]{0,4}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-d]{0,2}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// An object's members written in reverse order (keys unsorted).
        fn reversed(value: &Value) -> String {
            match value {
                Value::Object(m) => {
                    let members: Vec<String> = m
                        .iter()
                        .rev()
                        .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), reversed(v)))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }
                Value::Array(items) => {
                    let items: Vec<String> = items.iter().map(reversed).collect();
                    format!("[{}]", items.join(","))
                }
                other => other.to_string(),
            }
        }

        proptest! {
            #[test]
            fn the_scanner_agrees_with_serde(value in json()) {
                let texts = [
                    value.to_string(),
                    serde_json::to_string_pretty(&value).unwrap(),
                    reversed(&value),
                ];
                for text in texts {
                    prop_assert_eq!(is_canonical(&text), is_canonical_by_serde(&text), "{}", text);
                    prop_assert_eq!(super::fast::is_canonical_json(&text), is_canonical_by_serde(&text), "{}", text);
                    prop_assert_eq!(members(&text, KEYS), members_by_serde(&text, KEYS), "{}", text);
                    if super::fast::is_canonical_json(&text) {
                        prop_assert_eq!(super::fast::members(&text, KEYS), members_by_serde(&text, KEYS), "{}", text);
                    }
                }
            }
        }

        /// Keys the member scanner is asked for: short ones, which the
        /// strategy's objects have, and the empty key.
        const KEYS: [&str; 4] = ["a", "", "bc", "d"];

        #[test]
        fn members_agree_on_spellings_serde_reads_alike() {
            for text in [
                r#"{"a":1,"a":{"x":[1,"}"]}}"#,
                r#"{"\u0061":1,"d":2}"#,
                r#"{"a\"":1,"a":"\"]"}"#,
                "{ \"a\" :\t[ 1 , 2 ] ,\n\"d\" : null }",
                r#"{"bc":"x\\","a":-1.5e3}"#,
                r#"{}"#,
                r#"[{"a":1}]"#,
                r#""a""#,
                "7",
            ] {
                assert_eq!(members(text, KEYS), members_by_serde(text, KEYS), "{text}");
            }
            assert_eq!(
                members(r#"{"a":1,"d":{"a":2},"a":[3]}"#, KEYS),
                [Some("[3]"), None, None, Some(r#"{"a":2}"#)]
            );
        }

        #[test]
        fn edge_cases_agree() {
            let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
            for text in [
                "0",
                "-0",
                "-1",
                "1.5",
                "1e3",
                "1E3",
                "-1.0",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775808",
                "-9223372036854775809",
                r#"{"a":1,"a":2}"#,
                r#"{"b":1,"a":2}"#,
                r#"{"a":1,"b":{"a":1}}"#,
                r#"{"":1,"a":[{},[]]}"#,
                r#"["\"","é"]"#,
                r#"{"a\"":1}"#,
                " 1",
                "[1, 2]",
                "true",
                "false",
                "null",
                "[true,false,null]",
                deep.as_str(),
            ] {
                assert_eq!(is_canonical(text), is_canonical_by_serde(text), "{text}");
                assert_eq!(
                    super::fast::is_canonical_json(text),
                    is_canonical_by_serde(text),
                    "{text}"
                );
            }
            let too_deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
            assert!(is_canonical_by_serde(&too_deep));
            assert!(
                !is_canonical(&too_deep),
                "deeper than the scanner keeps: a doubt"
            );
        }
    }
}
