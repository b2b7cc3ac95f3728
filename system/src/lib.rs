//! The system under test: event-driven building blocks and the reference
//! e-commerce services (payments → inventory), written only against the
//! [`ports`]. Nothing here knows whether it runs inside the turmoil simulation
//! or against a real Postgres and Kafka; the adapters decide that.
//!
//! - [`ports`]: the small async traits for the DB, its change feed, the broker,
//!   the object store and time/randomness.
//! - [`context`]: the end-user request context (requestId, userId) that the
//!   building blocks carry across hops.
//! - [`blocks`]: reusable pieces — the resilient producer, its recovery
//!   service, the CDC connector and the idempotent consumer loop.
//! - [`services`]: the reference payments and inventory services.
//! - [`variants`]: the switchable naive/remedy variants of each pitfall.

pub mod blocks;
pub mod codec;
pub mod context;
pub mod events;
pub mod ports;
pub mod schema;
pub mod services;
pub mod variants;
