//! Kafka ingest: consumes topics in a consumer group and seals every partition as a stream.
//!
//! Exactly-once comes from the store, not from Kafka: on every partition assignment the
//! position is the offset after the newest manifest of that stream (the beginning of the
//! partition for a new stream), whatever the group has committed. Offsets are committed to
//! Kafka only after a segment's manifest is stored, as a convenience for lag monitoring.
//! Messages that cannot become events go to the dead-letter topic (original bytes, reason and
//! origin in headers, delivery acknowledged) before their offset is recorded as rejected; gaps
//! in the offsets Kafka delivers are recorded as absent. A store failure drops the partition's
//! unsealed buffer and rewinds the consumer to the last manifest, with backoff.
//!
//! Invariants: ingest never commits an offset before the sealer's receipt (a written
//! manifest); it never seals an offset twice (positions come from manifests); it only reaches
//! storage through the sealer. Depends on format, store and sealer; never on query or verify.

pub mod config;
pub mod decode;
pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_format::OffsetRange;
use cairn_format::SigningKey;
use cairn_format::event::StreamId;
use cairn_format::segment::PreparedEvent;
use cairn_sealer::{SealError, SealedSegment, SegmentLimits, StreamSealer};
use cairn_store::{StoreWriter, WriterOptions};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

pub use config::{ConfigError, IngestConfig};
pub use decode::{DecodeError, Decoder};
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
        source: SealError,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The final seal at shutdown failed. Nothing past the last manifest was committed, so the
    /// buffered messages are read again on the next start.
    #[error(
        "could not seal buffered messages at shutdown ({streams}); nothing unsealed was committed, the next start reads them again"
    )]
    UnsealedAtShutdown { streams: String },
    #[error(
        "dead-letter topic {topic:?}: could not deliver message {origin} after {attempts} attempts: {message}"
    )]
    DeadLetter {
        topic: String,
        origin: String,
        attempts: u32,
        message: String,
    },
}

struct Partition {
    topic: String,
    partition: i32,
    stream: Arc<StreamId>,
    sealer: StreamSealer,
    /// Set after the consumer was positioned at the resume offset, until that offset (or proof
    /// that it does not exist) has been seen.
    probe: Option<Probe>,
    /// Next offset after the last message consumed (for the lag metric).
    consumed_next: Option<i64>,
}

/// Confirms a positioning before any skipped offset is believed.
///
/// Some brokers (tansu 0.6) answer a fetch at offset `o` with the first record batch whose
/// *base* offset is `>= o`, skipping the rest of the batch that contains `o` (or returning
/// nothing at all when that batch is the last). So the consumer is positioned [`REREAD`]
/// records early, and a jump past the target before any earlier record was read is not proof
/// that offsets are absent: the consumer is moved further back (already-sealed offsets are
/// skipped) until it has read a record before the target, after which a jump is real.
#[derive(Clone, Debug)]
struct Probe {
    target: i64,
    /// How far before `target` the next re-positioning goes.
    back: i64,
    /// A record before `target` was read since the last positioning.
    saw_before: bool,
    /// The last re-positioning went to the beginning of the partition.
    at_beginning: bool,
    /// When the partition was last positioned.
    since: Instant,
}

/// Records re-read before the resume offset on every positioning (see [`Probe`]).
const REREAD: i64 = 512;

/// Where to position a partition whose next unsealed offset is `resume`: a little before it,
/// so that a broker that serves whole record batches from a batch start still returns the
/// batch holding `resume`. Already-sealed records are skipped.
fn start_position(resume: Option<i64>) -> Offset {
    match resume {
        Some(o) if o > REREAD => Offset::Offset(o - REREAD),
        _ => Offset::Beginning,
    }
}

impl Probe {
    fn new(target: i64) -> Self {
        Probe {
            target,
            back: REREAD * 8,
            saw_before: false,
            at_beginning: false,
            since: Instant::now(),
        }
    }

    /// The next, earlier position to try; `None` once the beginning was tried.
    fn step_back(&mut self) -> Option<Offset> {
        if self.at_beginning {
            return None;
        }
        let position = if self.target - self.back <= 0 {
            self.at_beginning = true;
            Offset::Beginning
        } else {
            Offset::Offset(self.target - self.back)
        };
        self.back = self.back.saturating_mul(8);
        self.saw_before = false;
        self.since = Instant::now();
        Some(position)
    }
}

/// What the rebalance callbacks decided, for the poll loop to apply in the same order (a
/// partition may be assigned and revoked again before the loop runs).
enum Handover {
    Adopted(Box<Partition>),
    Revoked(String, i32),
}

struct Ctx {
    rt: tokio::runtime::Handle,
    store: Arc<StoreWriter>,
    key: SigningKey,
    limits: SegmentLimits,
    handover: Mutex<Vec<Handover>>,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl ClientContext for Ctx {
    /// librdkafka's periodic statistics (`statistics.interval.ms`): the high watermarks
    /// behind the lag metric, without extra broker requests.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.metrics
            .high_watermarks(statistics.topics.into_iter().flat_map(|(topic, t)| {
                t.partitions
                    .into_values()
                    .filter(|p| p.partition >= 0)
                    .map(move |p| (topic.clone(), p.partition, p.hi_offset))
            }));
    }
}

impl Ctx {
    /// Opens a partition's sealer, retrying while the store is unavailable.
    fn open_partition(&self, topic: &str, partition: i32) -> Option<Partition> {
        let stream = Arc::new(StreamId::new(topic, partition).ok()?);
        let mut backoff = Duration::from_millis(200);
        loop {
            let opened = self.rt.block_on(StreamSealer::open(
                self.store.clone(),
                self.key.clone(),
                (*stream).clone(),
                self.limits.clone(),
            ));
            match opened {
                Ok(sealer) => {
                    let probe = sealer.resume_offset().map(Probe::new);
                    self.metrics
                        .partition_opened(topic, partition, sealer.resume_offset());
                    return Some(Partition {
                        topic: topic.to_string(),
                        partition,
                        stream,
                        sealer,
                        probe,
                        consumed_next: None,
                    });
                }
                Err(e) => {
                    eprintln!(
                        "cairn ingest: cannot open stream {stream}: {e}; retrying in {backoff:?}"
                    );
                    if self.shutdown.load(Ordering::Relaxed) {
                        return None;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let mut adopted = Vec::new();
                for (topic, partition) in parts {
                    let Some(p) = self.open_partition(&topic, partition) else {
                        continue;
                    };
                    // The position comes from the store, never from the group's offsets.
                    let offset = start_position(p.sealer.resume_offset());
                    eprintln!(
                        "cairn ingest: assigned {topic}/{partition}, resuming at {:?} (reading from {offset:?})",
                        p.sealer.resume_offset()
                    );
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                        eprintln!("cairn ingest: cannot position {topic}/{partition}: {e}");
                    }
                    adopted.push(p);
                }
                // Eager protocols hand over the whole assignment, cooperative ones only the
                // partitions that move.
                let assigned = if cooperative(consumer) {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                match assigned {
                    Ok(()) => self
                        .handover
                        .lock()
                        .expect("handover lock")
                        .extend(adopted.into_iter().map(|p| Handover::Adopted(Box::new(p)))),
                    // Not ours after all: nothing is consumed for them, nothing adopted.
                    Err(e) => {
                        eprintln!("cairn ingest: assign failed: {e}");
                        for p in &adopted {
                            self.metrics.partition_revoked(&p.topic, p.partition);
                        }
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                eprintln!("cairn ingest: revoked {revoked:?}; dropping their unsealed buffers");
                for (topic, partition) in &revoked {
                    self.metrics.partition_revoked(topic, *partition);
                }
                self.handover
                    .lock()
                    .expect("handover lock")
                    .extend(revoked.into_iter().map(|(t, p)| Handover::Revoked(t, p)));
                let unassigned = if cooperative(consumer) {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    eprintln!("cairn ingest: unassign failed: {e}");
                }
            }
            other => eprintln!("cairn ingest: rebalance error {other:?}"),
        }
    }
}

/// Applies rebalance decisions in the order they were made.
fn apply_handover(parts: &mut Vec<Partition>, changes: Vec<Handover>) {
    for change in changes {
        match change {
            Handover::Revoked(topic, partition) => {
                parts.retain(|p| !(p.topic == topic && p.partition == partition))
            }
            Handover::Adopted(p) => {
                parts.retain(|q| !(q.topic == p.topic && q.partition == p.partition));
                parts.push(*p);
            }
        }
    }
}

fn cooperative(consumer: &BaseConsumer<Ctx>) -> bool {
    matches!(
        consumer.rebalance_protocol(),
        rdkafka::consumer::RebalanceProtocol::Cooperative
    )
}

/// Why handling a message stopped: a sealer error (recoverable by rewinding the partition) or
/// a fatal one.
enum Step {
    Seal(SealError),
    Fatal(IngestError),
    /// Blocked so long since the last poll that the group may have moved the partitions.
    Stale,
}

impl From<SealError> for Step {
    fn from(e: SealError) -> Self {
        Step::Seal(e)
    }
}

/// What a run did, for the exit summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub events: u64,
    pub dead_lettered: u64,
    pub segments: u64,
}

pub struct Ingest {
    cfg: IngestConfig,
    rt: tokio::runtime::Handle,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// librdkafka's `max.poll.interval.ms`.
    max_poll: Duration,
    /// When the poll loop last called `poll`.
    polled_at: std::cell::Cell<Instant>,
}

impl Ingest {
    pub fn new(
        cfg: IngestConfig,
        rt: tokio::runtime::Handle,
        shutdown: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, IngestError> {
        cfg.validate()?;
        let max_poll = match cfg.kafka.get("max.poll.interval.ms") {
            Some(v) => v.parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "kafka.\"max.poll.interval.ms\" = {v:?} is not a number of milliseconds"
                ))
            })?,
            None => 300_000,
        };
        Ok(Ingest {
            cfg,
            rt,
            shutdown,
            metrics,
            max_poll: Duration::from_millis(max_poll),
            polled_at: std::cell::Cell::new(Instant::now()),
        })
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.cfg.brokers);
        for (k, v) in &self.cfg.kafka {
            c.set(k, v);
        }
        c
    }

    /// Runs on the calling (non-async) thread until `shutdown` is set, then seals what it holds,
    /// commits and returns.
    pub fn run(self) -> Result<Summary, IngestError> {
        let decoder = Decoder::new(
            &self.cfg.schema_dir,
            &self.cfg.schema_ids,
            self.cfg.max_message_bytes,
        )?;
        let key_path = self.cfg.key.display().to_string();
        let key = std::fs::read_to_string(&self.cfg.key)
            .map_err(|e| e.to_string())
            .and_then(|text| SigningKey::parse(&text, &key_path).map_err(|e| e.to_string()))
            .map_err(|message| IngestError::Key {
                path: key_path.clone(),
                message,
            })?;
        let store = Arc::new(self.rt.block_on(StoreWriter::open(
            &self.cfg.store,
            &WriterOptions {
                retention_days: self.cfg.retention_days,
            },
        ))?);
        let limits = SegmentLimits {
            max_events: self.cfg.segment.max_events,
            max_bytes: self.cfg.segment.max_bytes,
            max_age: Some(self.cfg.segment.max_age()),
        };
        let ctx = Ctx {
            rt: self.rt.clone(),
            store,
            key,
            limits,
            handover: Mutex::new(Vec::new()),
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
        };
        let mut consumer_config = self.client_config();
        for (k, v) in [
            ("statistics.interval.ms", "5000"),
            ("partition.assignment.strategy", "range"),
        ] {
            if !self.cfg.kafka.contains_key(k) {
                consumer_config.set(k, v);
            }
        }
        let consumer: BaseConsumer<Ctx> = consumer_config
            .set("group.id", &self.cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create_with_context(ctx)?;
        let producer: FutureProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()?;
        match &self.cfg.topic_regex {
            Some(re) => {
                let pattern = if re.starts_with('^') {
                    re.clone()
                } else {
                    format!("^{re}")
                };
                consumer.subscribe(&[&pattern])?
            }
            None => {
                let topics: Vec<&str> = self.cfg.topics.iter().map(String::as_str).collect();
                consumer.subscribe(&topics)?
            }
        }
        self.metrics.ready.store(true, Ordering::Relaxed);

        let mut parts: Vec<Partition> = Vec::new();
        let mut summary = Summary::default();
        let mut leaf_buf = Vec::with_capacity(1024);
        let mut last_tick = Instant::now();
        while !self.shutdown.load(Ordering::Relaxed) {
            self.polled_at.set(Instant::now());
            let polled = consumer.poll(Duration::from_millis(100));
            self.apply_handover(&consumer, &mut parts);
            self.drop_lost_assignment(&consumer, &mut parts);
            match polled {
                None => {}
                Some(Err(e)) => {
                    eprintln!("cairn ingest: consumer error: {e}");
                    self.metrics.kafka_error(matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
                    ));
                }
                Some(Ok(m)) => {
                    self.metrics.message_received();
                    let idx = parts
                        .iter()
                        .position(|p| p.partition == m.partition() && p.topic == m.topic());
                    if let Some(i) = idx {
                        let result = match self.handle(
                            &consumer,
                            &decoder,
                            &producer,
                            &mut parts[i],
                            &m,
                            &mut leaf_buf,
                        ) {
                            Ok(written) => Ok(written),
                            Err(Step::Seal(e)) => Err(e),
                            Err(Step::Fatal(e)) => return Err(e),
                            Err(Step::Stale) => Ok(None),
                        };
                        self.after_seal(&consumer, &mut parts, i, result, &mut summary)?;
                    }
                }
            }
            if last_tick.elapsed() >= Duration::from_millis(500) {
                last_tick = Instant::now();
                self.drop_lost_assignment(&consumer, &mut parts);
                if self.rewind_if_stale(&consumer, &mut parts)? {
                    continue;
                }
                self.metrics.consumed(
                    parts
                        .iter()
                        .filter_map(|p| Some((p.topic.clone(), p.partition, p.consumed_next?))),
                );
                self.nudge_stalled_probes(&consumer, &mut parts)?;
                for i in 0..parts.len() {
                    let r = self.rt.block_on(parts[i].sealer.tick());
                    self.after_seal(&consumer, &mut parts, i, r.map(Some), &mut summary)?;
                }
            }
        }
        eprintln!("cairn ingest: shutting down; sealing what is buffered");
        self.metrics.ready.store(false, Ordering::Relaxed);
        self.drop_lost_assignment(&consumer, &mut parts);
        let mut unsealed = Vec::new();
        for i in 0..parts.len() {
            match self.rt.block_on(parts[i].sealer.flush()) {
                Ok(written) => {
                    self.after_seal(&consumer, &mut parts, i, Ok(Some(written)), &mut summary)?
                }
                Err(e) => {
                    self.metrics.store_error(&parts[i].topic);
                    unsealed.push(format!("{}/{}: {e}", parts[i].topic, parts[i].partition));
                }
            }
        }
        if !unsealed.is_empty() {
            return Err(IngestError::UnsealedAtShutdown {
                streams: unsealed.join("; "),
            });
        }
        Ok(summary)
    }

    /// A positioned partition that has received nothing for a while: a broker that serves
    /// batches from their start may be holding the target in a batch that begins before the
    /// position, serving none of it. (tansu 0.6 also misreports the high watermark, so it cannot
    /// be asked.) Step further back; already-sealed records are skipped.
    fn nudge_stalled_probes(
        &self,
        consumer: &BaseConsumer<Ctx>,
        parts: &mut [Partition],
    ) -> Result<(), IngestError> {
        for part in parts.iter_mut() {
            let Some(probe) = &mut part.probe else {
                continue;
            };
            if probe.saw_before || probe.since.elapsed() < Duration::from_secs(2) {
                continue;
            }
            match probe.step_back() {
                Some(position) => {
                    eprintln!(
                        "cairn ingest: {}/{}: nothing received while resuming at offset {}; re-reading from {position:?}",
                        part.topic, part.partition, probe.target
                    );
                    consumer.seek(
                        &part.topic,
                        part.partition,
                        position,
                        Duration::from_secs(10),
                    )?;
                }
                None => part.probe = None, // read from the beginning: a quiet partition
            }
        }
        Ok(())
    }

    /// librdkafka left the group on its own (`max.poll.interval.ms` exceeded while this
    /// thread was blocked, e.g. on an unavailable dead-letter topic): other members may already
    /// be sealing these partitions from the manifests, so nothing buffered here may be written.
    fn drop_lost_assignment(&self, consumer: &BaseConsumer<Ctx>, parts: &mut Vec<Partition>) {
        if parts.is_empty() || !consumer.assignment_lost() {
            return;
        }
        eprintln!(
            "cairn ingest: the group assignment was lost (blocked longer than max.poll.interval.ms?); dropping the unsealed buffers of {} partitions, their next owner re-reads them",
            parts.len()
        );
        for p in parts.drain(..) {
            self.metrics.partition_revoked(&p.topic, p.partition);
        }
    }

    fn apply_handover(&self, consumer: &BaseConsumer<Ctx>, parts: &mut Vec<Partition>) {
        let changes =
            std::mem::take(&mut *consumer.context().handover.lock().expect("handover lock"));
        apply_handover(parts, changes);
    }

    /// Decodes one message and feeds it to its partition's sealer.
    fn handle(
        &self,
        consumer: &BaseConsumer<Ctx>,
        decoder: &Decoder,
        producer: &FutureProducer,
        part: &mut Partition,
        m: &rdkafka::message::BorrowedMessage<'_>,
        leaf_buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<SealedSegment>>, Step> {
        let offset = m.offset();
        part.consumed_next = Some(part.consumed_next.unwrap_or(0).max(offset + 1));
        if let Some(probe) = &mut part.probe {
            if offset < probe.target {
                probe.saw_before = true;
            } else if offset == probe.target || probe.saw_before {
                part.probe = None; // positioned for sure: from here on a jump is real
            } else if let Some(position) = probe.step_back() {
                eprintln!(
                    "cairn ingest: {}/{}: resuming at offset {} but the broker started at {offset}; re-reading from {position:?} to confirm",
                    part.topic, part.partition, probe.target
                );
                consumer
                    .seek(
                        &part.topic,
                        part.partition,
                        position,
                        Duration::from_secs(10),
                    )
                    .map_err(|e| Step::Fatal(e.into()))?;
                return Ok(None);
            } else {
                part.probe = None; // read from the beginning: the offsets are really gone
            }
        }
        let mut written = Vec::new();
        match part.sealer.resume_offset() {
            Some(next) if offset < next => return Ok(None), // already sealed
            Some(next) if offset > next => {
                // Kafka skipped offsets (transaction markers, compaction, aborted records).
                eprintln!(
                    "cairn ingest: {}/{}: offsets {next}..={} were not delivered; recording them as absent",
                    part.topic,
                    part.partition,
                    offset - 1
                );
                self.metrics.absent(&part.topic, (offset - next) as u64);
                written.extend(
                    self.rt
                        .block_on(part.sealer.push_absent(next, offset - 1))?,
                );
            }
            _ => {}
        }
        let payload = m.payload().unwrap_or(&[]);
        let decoded = decoder.decode(payload).and_then(|e| {
            PreparedEvent::new(&part.stream, offset, e, leaf_buf)
                .map_err(|e| DecodeError::Invalid(e.to_string()))
        });
        match decoded {
            Ok(event) => {
                written.extend(
                    self.rt
                        .block_on(part.sealer.push_prepared(&event, payload.len()))?,
                );
            }
            Err(reason) => {
                // On failure nothing is sealed or committed: the message is read again after
                // a restart.
                self.dead_letter(producer, m, &reason.to_string())
                    .map_err(Step::Fatal)?;
                if self.away_too_long() {
                    // Blocked too long: the partition may have a new owner already. Seal
                    // nothing more here; the loop rewinds it before anything is written.
                    return Err(Step::Stale);
                }
                self.metrics.dead_lettered(&part.topic);
                written.extend(
                    self.rt
                        .block_on(part.sealer.push_rejected(offset, payload.len()))?,
                );
            }
        }
        Ok(Some(written))
    }

    /// Produces the original message to the dead-letter topic and waits for the broker's ack.
    fn dead_letter(
        &self,
        producer: &FutureProducer,
        m: &rdkafka::message::BorrowedMessage<'_>,
        reason: &str,
    ) -> Result<(), IngestError> {
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        let timestamp = m
            .timestamp()
            .to_millis()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let origin = format!("{}/{}@{}", m.topic(), partition, offset);
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for h in h.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        for (k, v) in [
            ("cairn.reason", reason),
            ("cairn.original.topic", m.topic()),
            ("cairn.original.partition", &partition),
            ("cairn.original.offset", &offset),
            ("cairn.original.timestamp", &timestamp),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut attempts = 0;
        let mut backoff = Duration::from_millis(200);
        loop {
            attempts += 1;
            let mut record = FutureRecord::to(&self.cfg.dlq_topic)
                .payload(m.payload().unwrap_or(&[]))
                .headers(headers.clone());
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            match self
                .rt
                .block_on(producer.send(record, Timeout::After(Duration::from_secs(30))))
            {
                Ok(_) => return Ok(()),
                Err((e, _)) if attempts < 10 => {
                    eprintln!("cairn ingest: dead-letter {origin}: {e}; retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err((e, _)) => {
                    return Err(IngestError::DeadLetter {
                        topic: self.cfg.dlq_topic.clone(),
                        origin,
                        attempts,
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// Commits what was sealed; on a sealer error rewinds the partition to its last manifest.
    fn after_seal(
        &self,
        consumer: &BaseConsumer<Ctx>,
        parts: &mut [Partition],
        i: usize,
        result: Result<Option<Vec<SealedSegment>>, SealError>,
        summary: &mut Summary,
    ) -> Result<(), IngestError> {
        match result {
            Ok(None) => Ok(()),
            Ok(Some(written)) => {
                let p = &parts[i];
                for s in &written {
                    let m = &s.manifest.manifest;
                    summary.segments += 1;
                    summary.events += m.event_count;
                    summary.dead_lettered += OffsetRange::total(&m.rejected);
                    self.metrics.segment_sealed(
                        &p.topic,
                        p.partition,
                        m.event_count,
                        m.parquet.size,
                        s.latency,
                        m.last_offset + 1,
                    );
                }
                if let Some(last) = written.last() {
                    let mut tpl = TopicPartitionList::new();
                    let next = last.manifest.manifest.last_offset + 1;
                    tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(next))?;
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                        // Only an optimisation: positions come from manifests.
                        eprintln!(
                            "cairn ingest: commit {}/{} failed: {e}",
                            p.topic, p.partition
                        );
                    }
                }
                Ok(())
            }
            Err(e) => {
                let (topic, partition) = (parts[i].topic.clone(), parts[i].partition);
                self.metrics.store_error(&topic);
                eprintln!(
                    "cairn ingest: sealing {topic}/{partition} failed: {e}; rewinding to its last manifest"
                );
                if !e.is_transient() {
                    return Err(IngestError::Seal {
                        stream: format!("{topic}/{partition}"),
                        source: e,
                    });
                }
                std::thread::sleep(Duration::from_millis(500));
                self.rewind(consumer, parts, i)
            }
        }
    }

    /// Reopens partition `i` from the store (dropping what it buffered) and positions the
    /// consumer at its resume point.
    fn rewind(
        &self,
        consumer: &BaseConsumer<Ctx>,
        parts: &mut [Partition],
        i: usize,
    ) -> Result<(), IngestError> {
        let (topic, partition) = (parts[i].topic.clone(), parts[i].partition);
        let Some(fresh) = consumer.context().open_partition(&topic, partition) else {
            return Ok(());
        };
        let offset = start_position(fresh.sealer.resume_offset());
        consumer.seek(&topic, partition, offset, Duration::from_secs(10))?;
        parts[i] = fresh;
        Ok(())
    }

    fn away_too_long(&self) -> bool {
        self.polled_at.get().elapsed() >= self.max_poll / 2
    }

    /// Has this thread been away from `poll` so long (half of `max.poll.interval.ms`) that
    /// librdkafka may have left the group and another member may own the partitions? Then
    /// nothing held may be written: every partition is rewound to its manifests, and the next
    /// poll either revokes them or carries on from there. (librdkafka's `assignment_lost` does
    /// not say so while a rebalance it could not take part in is still pending.)
    fn rewind_if_stale(
        &self,
        consumer: &BaseConsumer<Ctx>,
        parts: &mut [Partition],
    ) -> Result<bool, IngestError> {
        if !self.away_too_long() || parts.is_empty() {
            return Ok(false);
        }
        let away = self.polled_at.get().elapsed();
        eprintln!(
            "cairn ingest: {away:.1?} since the last poll (max.poll.interval.ms is {:?}): the group may have moved these partitions; rewinding them to their manifests before sealing anything more",
            self.max_poll
        );
        for i in 0..parts.len() {
            self.rewind(consumer, parts, i)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn partition(store: &Arc<StoreWriter>, n: i32) -> Partition {
        let stream = StreamId::new("audit", n).unwrap();
        let sealer = StreamSealer::open(
            store.clone(),
            SigningKey::from_seed([7; 32]),
            stream.clone(),
            SegmentLimits::default(),
        )
        .await
        .unwrap();
        Partition {
            topic: "audit".into(),
            partition: n,
            stream: Arc::new(stream),
            sealer,
            probe: None,
            consumed_next: None,
        }
    }

    /// Regression: revocations used to be applied before adoptions, so a partition assigned
    /// and then revoked before the poll loop ran stayed in the loop's hands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn rebalance_decisions_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            StoreWriter::open(dir.path().to_str().unwrap(), &WriterOptions::default())
                .await
                .unwrap(),
        );
        let mut parts = vec![partition(&store, 0).await];
        apply_handover(
            &mut parts,
            vec![
                Handover::Adopted(Box::new(partition(&store, 1).await)),
                Handover::Revoked("audit".into(), 1),
                Handover::Revoked("audit".into(), 0),
                Handover::Adopted(Box::new(partition(&store, 0).await)),
                Handover::Adopted(Box::new(partition(&store, 2).await)),
            ],
        );
        let mut held: Vec<i32> = parts.iter().map(|p| p.partition).collect();
        held.sort();
        assert_eq!(held, [0, 2]);
    }
}
