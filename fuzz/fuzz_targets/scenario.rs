//! The scenario parser on arbitrary bytes: an error (exit 2 in the CLI) or
//! a scenario whose seeds can be drawn; never a panic, never an abort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitfall_harness::scenario::{parse, utf8_text};
use pitfall_harness::system::Registry;
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::new(vec![Arc::new(pitfall_system::Shop)]).unwrap())
}

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.toml");
    let Ok(text) = utf8_text(path, bytes.to_vec()) else {
        return;
    };
    if let Ok(scenario) = parse(path, &text, registry()) {
        // What a run does first with a scenario: draw seeds' fault plans.
        for seed in [0, 1, u64::MAX] {
            let _ = scenario.plan(seed);
        }
        let _ = scenario.topology.clone();
    }
});
