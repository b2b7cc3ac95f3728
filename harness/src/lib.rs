//! The mode-agnostic harness: how a system under test is described (the
//! [`system`] API), scenario files, seeds and fault plans, the one
//! chaos → heal → drain [`driver`], the history and its checkers, the
//! sweep, the report, and the contract cases every adapter must pass.
//!
//! Nothing here knows turmoil or any real client library, and nothing here
//! names a host, topic or table of a particular system: the simulation
//! (`pitfall-sim`) and real mode (`pitfall-real`) supply the worlds, the
//! systems supply everything else.
//!
//! One seed flows: [`scenario`] → [`faults::draw`] → a mode's world →
//! [`driver::drive`] → [`history`] → [`checkers::check_all`] → [`sweep`]
//! aggregates → [`report`].

pub mod checkers;
pub mod client;
pub mod contract;
pub mod coverage;
pub mod crash_points;
pub mod driver;
pub mod faults;
pub mod history;
pub mod lookup;
pub mod plan_file;
pub mod report;
pub mod rpc;
pub mod scenario;
pub mod seed;
pub mod shrink;
pub mod sweep;
pub mod system;
#[doc(hidden)]
pub mod testing;
