//! The names of the coverage ("sometimes") events the building blocks and
//! the simulated servers mark through [`crate::Env::mark`], and what each
//! means. The harness records them and checks a scenario's `sometimes`
//! list against what its seeds hit.

/// A consumer group was served a record at an offset it had been served
/// before: a redelivery, a restart from the committed offset, a rebalance.
pub const DUPLICATE_DELIVERED: &str = "duplicate-delivered";
/// A producer sent again an append whose ack was lost.
pub const PRODUCE_RETRIED_AFTER_LOST_ACK: &str = "produce-retried-after-lost-ack";
/// A DB commit applied, and its reply was lost: the client cannot know.
pub const DB_COMMIT_OUTCOME_UNKNOWN: &str = "db-commit-outcome-unknown";
/// The resilient producer parked an event in the object store.
pub const EVENT_PARKED: &str = "event-parked";
/// Recovery re-produced a parked event.
pub const EVENT_RECOVERED: &str = "event-recovered";
/// A change feed served changes again that it had served before and that
/// were never confirmed: a CDC connector restarted with unconfirmed changes.
pub const CDC_REPLAYED_UNCONFIRMED: &str = "cdc-replayed-unconfirmed";
/// A consumer group rebalanced while records it had been served were not
/// committed.
pub const REBALANCE_WITH_UNCOMMITTED: &str = "rebalance-with-uncommitted";
/// A consumer discarded an update older than the one it had applied.
pub const STALE_REVISION_DISCARDED: &str = "stale-revision-discarded";
/// A chunked payload was completed by a consumer that had not stored every
/// chunk itself: its predecessor (before a crash or a rebalance) had.
pub const CHUNKS_REASSEMBLED_ACROSS_RESTART: &str = "chunks-reassembled-across-restart";
/// A claim-check reference was resolved before its object existed.
pub const CLAIM_CHECK_READ_BEFORE_EXISTS: &str = "claim-check-read-before-exists";

/// A front door handled a call, and its reply was lost: the caller timed
/// out after the callee acted.
pub const CALL_REPLY_LOST: &str = "call-reply-lost";
/// A service that honours idempotency keys answered a call again from the
/// key's first result instead of acting twice.
pub const IDEMPOTENT_CALL_REPLAYED: &str = "idempotent-call-replayed";

/// A Kafka transaction was aborted (by its producer, by a newer producer
/// with its id, or by the broker on timeout).
pub const TXN_ABORTED: &str = "txn-aborted";
/// The broker refused a transactional producer whose epoch is over: a
/// zombie was fenced.
pub const PRODUCER_FENCED: &str = "producer-fenced";

/// The named events and what each means.
pub const EVENTS: [(&str, &str); 14] = [
    (
        DUPLICATE_DELIVERED,
        "a consumer group was served a record at an offset it had been served before",
    ),
    (
        PRODUCE_RETRIED_AFTER_LOST_ACK,
        "a producer sent again an append whose ack was lost",
    ),
    (
        DB_COMMIT_OUTCOME_UNKNOWN,
        "a DB commit applied and its reply was lost",
    ),
    (
        EVENT_PARKED,
        "the resilient producer parked an event in the object store",
    ),
    (EVENT_RECOVERED, "recovery re-produced a parked event"),
    (
        CDC_REPLAYED_UNCONFIRMED,
        "a CDC connector read again changes it had read and never confirmed",
    ),
    (
        REBALANCE_WITH_UNCOMMITTED,
        "a consumer group rebalanced while served records were uncommitted",
    ),
    (
        STALE_REVISION_DISCARDED,
        "a consumer discarded an update older than the one it had applied",
    ),
    (
        CHUNKS_REASSEMBLED_ACROSS_RESTART,
        "a chunked payload was completed from chunks a predecessor had stored",
    ),
    (
        CLAIM_CHECK_READ_BEFORE_EXISTS,
        "a claim-check reference was resolved before its object existed",
    ),
    (
        CALL_REPLY_LOST,
        "a front door handled a call and its reply was lost",
    ),
    (
        IDEMPOTENT_CALL_REPLAYED,
        "a call repeated with an idempotency key was answered from its first result",
    ),
    (TXN_ABORTED, "a Kafka transaction was aborted"),
    (
        PRODUCER_FENCED,
        "the broker refused a transactional producer whose epoch is over (a zombie)",
    ),
];
