//! `pitfall check` on arbitrary bytes: the history's parser and shape check,
//! then every checker of the reference system on what passes them. Bad input
//! is an error (exit 2 in the CLI), anything else a verdict; never a panic,
//! never an abort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitfall_harness::checkers::{self, check_all};
use pitfall_harness::history::parse_history;
use pitfall_harness::scenario::utf8_text;
use pitfall_harness::system::System;
use std::path::Path;
use std::sync::Arc;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = utf8_text(Path::new("fuzz.jsonl"), bytes.to_vec()) else {
        return;
    };
    let Ok(history) = parse_history(&text, "fuzz.jsonl") else {
        return;
    };
    let system: Arc<dyn System> = Arc::new(pitfall_system::Shop);
    let _ = check_all(&checkers::all(&system), &history);
});
