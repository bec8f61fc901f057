//! Sources that feed the sealer: Kafka topics in a consumer group ([`Ingest`]) and JSONL files
//! ([`file`]).
//!
//! Kafka: exactly-once comes from the store, not from Kafka. On every partition assignment the
//! position is the offset after the newest manifest of that stream (the beginning of the
//! partition for a new stream), whatever the group has committed. Offsets are committed to
//! Kafka only after a segment's manifest is stored, as a convenience for lag monitoring.
//! Messages that cannot become events go to the dead-letter topic (original bytes, reason and
//! origin in headers, delivery acknowledged) before their offset is recorded as rejected; gaps
//! in the offsets Kafka delivers are recorded as absent. A transient store failure drops the
//! partition's unsealed buffer and rewinds the consumer to the last manifest, with backoff; a
//! permanent one stops ingest with the reason.
//!
//! Invariants: ingest never commits an offset before the sealer's receipt (a written
//! manifest); it never seals an offset twice (positions come from manifests); it only reaches
//! storage through the sealer; a rejected file line is durable before the manifest listing it.
//! Depends on format, store, sealer and kafka; never on query or verify. With `cairn-kafka`,
//! the only crate that touches rdkafka.

pub mod config;
pub mod decode;
pub mod file;
mod kafka;
pub mod metrics;
pub mod registry;

use rdkafka::error::KafkaError;

pub use config::{ConfigError, IngestConfig};
pub use decode::{DecodeError, Decoder};
pub use kafka::Ingest;
pub use metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Schema(#[from] decode::SchemaError),
    #[error("signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("store: {0}")]
    Store(#[from] cairn_store::StoreError),
    /// Sealing failed in a way retrying cannot fix (a conflict, a chain this key does not
    /// extend, a store misconfiguration): ingest stops rather than retrying forever.
    #[error("sealing {stream} failed and retrying cannot help: {source}")]
    Seal {
        stream: String,
        #[source]
        source: cairn_sealer::SealError,
    },
    /// The partition's log ends before offsets the store has already sealed: the topic was
    /// deleted and recreated, the store belongs to another cluster, or the broker lost
    /// acknowledged records (unclean leader election). New records would be taken for sealed
    /// ones and silently skipped, so ingest stops.
    #[error(
        "{stream}: Kafka's log ends at offset {log_end} but the store has sealed up to offset {sealed_last}; was the topic recreated, or is this store from another cluster? Point cairn at a new store (or stream) for the new log; the sealed one stays verifiable"
    )]
    SourceBehindStore {
        stream: String,
        log_end: i64,
        sealed_last: i64,
    },
    /// The schema registry refused cairn (credentials) or is not a Confluent API: retrying
    /// cannot help.
    #[error("schema registry: {0}")]
    Registry(Box<registry::RegistryError>),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("dead-letter producer: {source}")]
    Producer {
        #[source]
        source: Box<cairn_kafka::ProduceError>,
    },
    /// The final seal at shutdown failed. Nothing past the last manifest was committed, so the
    /// buffered messages are read again on the next start.
    #[error(
        "could not seal buffered messages at shutdown ({}); nothing unsealed was committed, the next start reads them again",
        streams.join("; ")
    )]
    UnsealedAtShutdown { streams: Vec<String> },
    #[error("dead letter of message {origin} was not delivered: {source}")]
    DeadLetter {
        origin: String,
        #[source]
        source: Box<cairn_kafka::ProduceError>,
    },
}

/// What a run did, for the exit summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub events: u64,
    pub dead_lettered: u64,
    pub segments: u64,
    /// Offsets Kafka deleted before they were sealed (recorded as lost in the manifests).
    pub lost: u64,
}
