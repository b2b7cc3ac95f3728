//! The producer side: the steps each strategy performs to send an attachment,
//! planned as data first ([`encode`]) and then carried out ([`send_payload`]).

use super::{
    Attachment, ClaimReference, Codec, PayloadError, Strategy, CHUNK_COUNT, CHUNK_INDEX,
    CLAIM_PREFIX, PAYLOAD_CODEC, PAYLOAD_DIGEST, PAYLOAD_ID, PAYLOAD_SIZE,
};
use pitfall_ports::{Blob, Delivery, ObjectStore, ProduceError, Producer, ProducerRecord};

/// One step of sending a payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    Record(ProducerRecord),
    Upload { object_key: String, bytes: Blob },
}

/// What [`send_payload`] did: where each record landed, in plan order, and
/// the objects it uploaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SentPayload {
    pub deliveries: Vec<Delivery>,
    pub uploaded: Vec<String>,
}

/// A record's size as the broker counts it against its maximum message size:
/// key, value and headers. A real Kafka broker adds some batch overhead, so
/// leave headroom there.
pub fn record_size(record: &ProducerRecord) -> usize {
    pitfall_ports::message_size(&record.key, record.value.len(), &record.headers)
}

/// Whether the broker will take `record` under a `max`-byte message limit.
pub fn fits(record: &ProducerRecord, max: usize) -> bool {
    record_size(record) <= max
}

/// The steps `strategy` performs to send `attachment`, in order.
///
/// Inline and compressed records are not checked against
/// `max_message_bytes`: the broker rejects them, visibly (a compressed one
/// when its batch, compressed by the producer, is still too large). Chunks
/// (`chunk_size` bytes of the raw attachment each; an empty attachment is one
/// empty chunk) and claim-check references must fit, or this is
/// [`PayloadError::TooLarge`]. `codec` is used by [`Strategy::Compressed`]
/// only. All chunks carry the same `key`, so they land on one partition.
pub fn encode(
    strategy: Strategy,
    codec: Codec,
    attachment: &Attachment,
    topic: &str,
    key: &str,
    chunk_size: usize,
    max_message_bytes: usize,
) -> Result<Vec<Planned>, PayloadError> {
    let digest = attachment.digest();
    let size = attachment.size();
    let record = |value: Blob, extra: Vec<(&str, String)>| {
        let mut headers = vec![
            (PAYLOAD_ID.to_string(), attachment.id.clone()),
            (PAYLOAD_DIGEST.to_string(), digest.clone()),
            (PAYLOAD_SIZE.to_string(), size.to_string()),
        ];
        headers.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        ProducerRecord {
            topic: topic.to_string(),
            key: key.to_string(),
            value,
            headers,
        }
    };
    let checked = |record: ProducerRecord| {
        if fits(&record, max_message_bytes) {
            Ok(Planned::Record(record))
        } else {
            Err(PayloadError::TooLarge {
                payload_id: attachment.id.clone(),
                size: record_size(&record),
                max: max_message_bytes,
                at_least: false,
            })
        }
    };
    match strategy {
        Strategy::Inline => Ok(vec![Planned::Record(record(
            attachment.content().clone(),
            vec![],
        ))]),
        // The bytes go as they are: the producer compresses the batch
        // (`compression.type = codec`), and the header says so.
        Strategy::Compressed => Ok(vec![Planned::Record(record(
            attachment.content().clone(),
            vec![(PAYLOAD_CODEC, codec.name().to_string())],
        ))]),
        Strategy::ChunkedStore | Strategy::ChunkedSeek => {
            if chunk_size == 0 {
                return Err(PayloadError::InvalidChunkSize);
            }
            // Slices of the content: chunks of generated content are
            // views of it, made only where read.
            let chunks: Vec<Blob> = if size == 0 {
                vec![Blob::default()]
            } else {
                (0..size)
                    .step_by(chunk_size)
                    .map(|start| {
                        attachment
                            .content()
                            .slice(start..(start + chunk_size).min(size))
                    })
                    .collect()
            };
            let count = chunks.len();
            chunks
                .into_iter()
                .enumerate()
                .map(|(index, chunk)| {
                    checked(record(
                        chunk,
                        vec![
                            (CHUNK_INDEX, index.to_string()),
                            (CHUNK_COUNT, count.to_string()),
                        ],
                    ))
                })
                .collect()
        }
        Strategy::ClaimCheck | Strategy::ClaimCheckNaive => {
            let object_key = format!("{CLAIM_PREFIX}{}", attachment.id);
            let reference = ClaimReference {
                object_key: object_key.clone(),
                digest: digest.clone(),
                size,
            };
            let value = serde_json::to_vec(&reference).expect("a reference serializes");
            let reference = checked(record(Blob::from(value), vec![]))?;
            let upload = Planned::Upload {
                object_key,
                bytes: attachment.content().clone(),
            };
            Ok(match strategy {
                Strategy::ClaimCheck => vec![upload, reference],
                _ => vec![reference, upload],
            })
        }
    }
}

/// Carry out `planned` in order, stopping at the first failure. The steps
/// before it were performed: for the naive claim check, a store failure
/// after the reference went out leaves the reference dangling.
pub async fn send_payload(
    producer: &dyn Producer,
    store: &dyn ObjectStore,
    planned: Vec<Planned>,
) -> Result<SentPayload, PayloadError> {
    let mut sent = SentPayload::default();
    for step in planned {
        match step {
            Planned::Record(record) => {
                let payload_id = record
                    .headers
                    .iter()
                    .find(|(k, _)| k == PAYLOAD_ID)
                    .map_or_else(String::new, |(_, v)| v.clone());
                match producer.send(record).await {
                    Ok(delivery) => sent.deliveries.push(delivery),
                    Err(ProduceError::MessageTooLarge {
                        size,
                        max,
                        at_least,
                    }) => {
                        return Err(PayloadError::TooLarge {
                            payload_id,
                            size,
                            max,
                            at_least,
                        })
                    }
                    Err(source) => return Err(PayloadError::Broker { payload_id, source }),
                }
            }
            Planned::Upload { object_key, bytes } => {
                if let Err(source) = store.put(&object_key, bytes).await {
                    return Err(PayloadError::Store { object_key, source });
                }
                sent.uploaded.push(object_key);
            }
        }
    }
    Ok(sent)
}
