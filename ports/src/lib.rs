//! Ports: the only way service code touches the outside world.
//!
//! Each port is a small object-safe async trait. The simulation implements
//! them over turmoil's network against simulated servers; real mode implements
//! them with sqlx, rdkafka and object_store. Service code never learns which.
//!
//! Besides the traits: [`context`], the end-user request context
//! (`requestId`, `userId`) that every hop carries, and [`codec`], the batch
//! compression codecs a producer may use; [`coverage`], the names of the
//! "sometimes" events a service or block marks through [`Env::mark`].

pub mod blob;
pub mod codec;
pub mod context;
pub mod coverage;
pub mod digest;

mod broker;
mod db;
mod env;
mod store;

pub use blob::Blob;
pub use broker::{
    message_size, value_to_send, Broker, ConsumeError, Consumer, ConsumerConfig, ConsumerRecord,
    Delivery, GroupMetadata, LogReader, ProduceError, Producer, ProducerConfig, ProducerRecord,
    TopicPartitionOffset, TxnError, TxnProducer, MAX_MESSAGE_BYTES,
};
pub use db::{
    history_summary_of_row, Change, ChangeFeed, ChangeOp, Database, DbError, Lsn, Row, Transaction,
};
pub use env::Env;
pub use store::{ObjectStore, StoreError};
