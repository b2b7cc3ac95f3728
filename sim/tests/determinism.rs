//! Same seed, same build, same history — also when other seeds ran before it
//! on the same thread (a sweep worker runs many in a row).

use pitfall_harness::history::{first_divergence, to_jsonl};
use pitfall_harness::scenario::load_file;
use pitfall_harness::sweep::Limits;
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use pitfall_system::Shop;
use std::path::Path;
use std::sync::Arc;

#[test]
fn a_seed_replays_byte_identically_whatever_ran_before_it() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny.toml");
    let registry = Registry::new(vec![Arc::new(Shop)]).unwrap();
    let scenario = load_file(&tiny, &registry).unwrap();
    let first = to_jsonl(&run_seed(&scenario, 7, Limits::default()).history);
    for other in 0..3 {
        run_seed(&scenario, other, Limits::default());
    }
    let again = to_jsonl(&run_seed(&scenario, 7, Limits::default()).history);
    assert!(first.lines().count() > 50, "the run did something");
    assert_eq!(first_divergence(&first, &again), None);
    let other = to_jsonl(&run_seed(&scenario, 8, Limits::default()).history);
    assert!(
        first_divergence(&first, &other).is_some(),
        "different seeds differ"
    );
}
