//! The bank's command line: pitfall's whole command line (run, repro,
//! trace, check, list) with the bank registered as its system.

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pitfall::cli::main(vec![Arc::new(pitfall_example_bank::Bank)])
}
