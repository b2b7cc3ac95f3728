//! Event payloads: the payments domain event and the CDC change envelope, and
//! how a consumer turns either into a [`PaymentCompleted`].

use pitfall_ports::ConsumerRecord;
#[cfg(test)]
use pitfall_ports::{Change, ChangeOp};
use serde::{Deserialize, Serialize};

pub use pitfall_blocks::cdc::{ChangeEnvelope, CDC_CHANGE};
pub use pitfall_blocks::publish::TYPE_HEADER;
pub const PAYMENT_COMPLETED: &str = "payment-completed";

/// Where a payment stands. A refund moves it from `completed` (revision 1)
/// to `refunded` (revision 2); consumers that care about order compare
/// revisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    #[default]
    Completed,
    Refunded,
}

/// "Payment for order O completed" (or, at a later revision, "was
/// refunded"). Also the payments table's row data, so a CDC change of that
/// row carries the same fields. `request_id`/`user_id` name the request that
/// last changed the payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCompleted {
    pub payment_id: String,
    pub order_id: String,
    pub product: String,
    pub qty: i64,
    pub user_id: String,
    pub request_id: String,
    /// The payment row's version when this event was made.
    pub revision: u64,
    #[serde(default)]
    pub status: PaymentStatus,
    /// The order's attachment (invoice), when it has one: what the archive
    /// must end up holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentRef>,
}

/// What a payment says about its order's attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub size: u64,
    /// Lowercase hex BLAKE3 ([`pitfall_ports::digest`]).
    pub digest: String,
}

impl PaymentCompleted {
    /// The event's own identity: what `dedupe-event-id` dedupes on.
    pub fn event_id(&self) -> String {
        format!("{}@{}", self.payment_id, self.revision)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record {topic}/{partition}@{offset}: unknown payload type {kind:?}")]
    UnknownType {
        topic: String,
        partition: u32,
        offset: u64,
        kind: Option<String>,
    },
    #[error("record {topic}/{partition}@{offset}: {source}")]
    Json {
        topic: String,
        partition: u32,
        offset: u64,
        source: serde_json::Error,
    },
}

/// Decode a payment event from a domain-event record or a CDC change record.
pub fn decode_payment(record: &ConsumerRecord) -> Result<PaymentCompleted, DecodeError> {
    let json_err = |source| DecodeError::Json {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        source,
    };
    match record.header(TYPE_HEADER) {
        Some(PAYMENT_COMPLETED) => serde_json::from_slice(&record.value.bytes()).map_err(json_err),
        Some(CDC_CHANGE) => {
            let env: ChangeEnvelope =
                serde_json::from_slice(&record.value.bytes()).map_err(json_err)?;
            let mut payment: PaymentCompleted =
                serde_json::from_value(env.after).map_err(json_err)?;
            payment.revision = env.version;
            Ok(payment)
        }
        other => Err(DecodeError::UnknownType {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            kind: other.map(str::to_string),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> PaymentCompleted {
        PaymentCompleted {
            payment_id: "p-o1".into(),
            order_id: "o1".into(),
            product: "apple".into(),
            qty: 2,
            user_id: "u1".into(),
            request_id: "r1".into(),
            revision: 1,
            status: PaymentStatus::Completed,
            attachment: None,
        }
    }

    fn record(kind: &str, value: Vec<u8>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            key: "o1".into(),
            value: value.into(),
            headers: vec![(TYPE_HEADER.into(), kind.into())],
        }
    }

    #[test]
    fn decodes_domain_event_and_cdc_change_alike() {
        let p = payment();
        let direct = record(PAYMENT_COMPLETED, serde_json::to_vec(&p).unwrap());
        assert_eq!(decode_payment(&direct).unwrap(), p);

        let change = Change {
            lsn: 42,
            table: "payments".into(),
            key: "o1".into(),
            op: ChangeOp::Insert,
            version: 1,
            data: serde_json::to_value(&p).unwrap(),
        };
        let env = ChangeEnvelope::from(&change);
        let cdc = record(CDC_CHANGE, serde_json::to_vec(&env).unwrap());
        assert_eq!(decode_payment(&cdc).unwrap(), p);
        assert_eq!(p.event_id(), "p-o1@1");
    }

    #[test]
    fn unknown_type_is_an_error_naming_the_record() {
        let err = decode_payment(&record("mystery", vec![])).unwrap_err();
        assert!(err.to_string().contains("t/0@7"), "{err}");
    }
}
