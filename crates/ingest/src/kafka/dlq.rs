//! The dead-letter topic: a message that cannot become an event goes there unchanged, with the
//! reason and its origin in headers, and is acknowledged before its offset is recorded as
//! rejected.

use cairn_kafka::{AckedProducer, Record};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::IngestError;

/// Produces `m` to `topic` with `cairn.reason` and `cairn.original.*` headers (after the
/// message's own headers) and waits for the broker's acknowledgement.
pub(crate) fn dead_letter(
    rt: &tokio::runtime::Handle,
    producer: &AckedProducer,
    topic: &str,
    m: &BorrowedMessage<'_>,
    reason: &str,
) -> Result<(), IngestError> {
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    let timestamp = m
        .timestamp()
        .to_millis()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    if let Some(h) = m.headers() {
        headers.extend(h.iter().map(|h| (h.key, h.value)));
    }
    for (k, v) in [
        ("cairn.reason", reason),
        ("cairn.original.topic", m.topic()),
        ("cairn.original.partition", &partition),
        ("cairn.original.offset", &offset),
        ("cairn.original.timestamp", &timestamp),
    ] {
        headers.push((k, Some(v.as_bytes())));
    }
    let record = Record {
        topic,
        key: m.key(),
        payload: m.payload().unwrap_or(&[]),
        headers,
    };
    rt.block_on(producer.send(&record))
        .map(|_| ())
        .map_err(|source| IngestError::DeadLetter {
            origin: format!("{}/{partition}@{offset}", m.topic()),
            source: Box::new(source),
        })
}
