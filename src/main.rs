//! The `pitfall` binary: the command line with the reference e-commerce
//! system registered.

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pitfall::cli::main(vec![Arc::new(pitfall_system::Shop)])
}

#[global_allocator]
static ALLOCATOR: pitfall::allocator::Allocator = pitfall::allocator::Allocator;
