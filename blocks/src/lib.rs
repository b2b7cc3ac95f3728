//! Reusable event-driven building blocks. Each owns one concern so the
//! services stay short:
//!
//! - [`publish`]: records that carry the request context, and the resilient
//!   producer that parks events in the object store when the broker fails;
//! - [`recovery`]: re-produces parked events;
//! - [`cdc`]: tails a DB change feed into the broker;
//! - [`relay`]: the outbox relay, which makes the calls an outbox table
//!   describes, from the DB's change feed;
//! - [`pipeline`]: several sends in flight without breaking per-key order;
//! - [`consume`]: the consumer loop with its idempotency strategy;
//! - [`eos`]: the consume-transform-produce loop in Kafka transactions;
//! - [`payload`]: large payloads — inline, compressed, chunked or claim-checked
//!   on the way out, reassembled with bounded memory on the way in;
//! - [`backoff`]: retry pacing that draws its jitter from the seeded [`Env`].
//!
//! [`Env`]: pitfall_ports::Env

pub mod backoff;
pub mod cdc;
pub mod consume;
pub mod eos;
pub mod payload;
pub mod pipeline;
pub mod publish;
pub mod recovery;
pub mod relay;
