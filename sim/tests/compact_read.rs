//! `pitfall check` reads a history's text straight into the compact form,
//! borrowing strings and JSON values from the text. Over recorded
//! histories of several scenarios and seeds (clean and violating ones),
//! that form must be the one made from the entries `parse_jsonl` reads
//! from the same text, line for line, and every checker must give the same
//! verdicts on both, and those of the run itself.

use pitfall_harness::checkers::check_all_compact;
use pitfall_harness::history::compact::{with_entries, Arena, Compact};
use pitfall_harness::history::{parse_jsonl, to_jsonl};
use pitfall_harness::scenario::load_file;
use pitfall_harness::sweep::Limits;
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use pitfall_system::Shop;
use std::path::Path;
use std::sync::Arc;

/// Clean remedies, naive variants that violate, payloads (summarized
/// values), transactions (markers, gaps) and rebalances.
const SCENARIOS: [&str; 6] = [
    "0-all-remedies",
    "1-dual-write",
    "5-order-naive",
    "5-kafka-eos",
    "4-chunked-store",
    "2-event-sourced",
];

#[test]
fn read_from_text_the_compact_form_and_verdicts_are_those_of_the_entries() {
    let registry = Registry::new(vec![Arc::new(Shop)]).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut violating = 0;
    for name in SCENARIOS {
        let scenario = load_file(&dir.join(format!("{name}.toml")), &registry).unwrap();
        let invariants = scenario.invariants();
        for seed in [1, 4] {
            let run = run_seed(&scenario, seed, Limits::default());
            let text = to_jsonl(&run.history);
            let arena = Arena::new();
            let read = Compact::parse_history(&text, "h.jsonl", &arena).unwrap();
            let from_text = check_all_compact(&invariants, &read);
            let parsed = parse_jsonl(&text, "h.jsonl").unwrap();
            with_entries(&parsed, |kept| {
                assert_eq!(read.len(), kept.len(), "{name} seed {seed}");
                for (i, (a, b)) in read.lines().iter().zip(kept.lines()).enumerate() {
                    assert_eq!(a, b, "{name} seed {seed}, line {}", i + 1);
                }
                assert_eq!(
                    from_text,
                    check_all_compact(&invariants, kept),
                    "{name} seed {seed}"
                );
            });
            assert_eq!(from_text, run.violations, "{name} seed {seed}");
            assert_eq!(read.entries(), &parsed[..], "{name} seed {seed}");
            violating += usize::from(!from_text.is_empty());
        }
    }
    assert!(violating >= 3, "only {violating} violating histories");
}
