//! `pitfall check` on arbitrary bytes: the history read straight into the
//! compact form with its shape check, then every checker of the reference
//! system on what passes them. Bad input is an error (exit 2 in the CLI),
//! anything else a verdict; never a panic, never an abort. The reader must
//! also agree with the entries' parser: the same text accepted or refused
//! (with the same error), and the same verdicts from both forms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitfall_harness::checkers::{self, check_all, check_all_compact};
use pitfall_harness::history::compact::{Arena, Compact};
use pitfall_harness::history::parse_history;
use pitfall_harness::scenario::utf8_text;
use pitfall_harness::system::System;
use std::path::Path;
use std::sync::Arc;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = utf8_text(Path::new("fuzz.jsonl"), bytes.to_vec()) else {
        return;
    };
    let arena = Arena::new();
    let read = Compact::parse_history(&text, "fuzz.jsonl", &arena);
    let parsed = parse_history(&text, "fuzz.jsonl");
    let (read, parsed) = match (read, parsed) {
        (Ok(read), Ok(parsed)) => (read, parsed),
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            return;
        }
        (a, b) => panic!(
            "the compact reader says {:?}, the entries' parser {:?}",
            a.map(|c| c.len()),
            b.map(|e| e.len())
        ),
    };
    let system: Arc<dyn System> = Arc::new(pitfall_system::Shop);
    let invariants = checkers::all(&system);
    assert_eq!(read.entries(), &parsed[..]);
    assert_eq!(
        check_all_compact(&invariants, &read),
        check_all(&invariants, &parsed)
    );
});
