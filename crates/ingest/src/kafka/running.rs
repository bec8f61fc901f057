//! The poll loop's state: one message at a time into its partition's sealer, periodic ticks,
//! and the final seal at shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_format::OffsetRange;
use cairn_format::segment::PreparedEvent;
use cairn_kafka::AckedProducer;
use cairn_sealer::{SealError, SealedSegment};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::dlq::dead_letter;
use super::partition::{Partition, describe, start_position};
use super::rebalance::{Ctx, apply_handover};
use crate::registry::SchemaRegistry;
use crate::{DecodeError, Decoder, IngestError, Metrics, Summary};
use cairn_format::AuditEvent;

/// How often [`Running::tick`] runs (age-based cuts, background writes, metrics, probes).
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// Why handling a message stopped short.
pub(super) enum Step {
    /// Sealing failed: rewind the partition (transient) or stop (permanent).
    Seal(SealError),
    Fatal(IngestError),
    /// Blocked so long since the last poll that the group may have moved the partitions.
    Stale,
    /// Something needed to handle the message is unavailable for now (the broker could not say
    /// where the partition's log starts, so a gap cannot be told lost from absent; the schema
    /// registry is down): rewind and read it again after a pause. Nothing is dead-lettered.
    Retry {
        what: &'static str,
        error: String,
    },
}

impl From<SealError> for Step {
    fn from(e: SealError) -> Self {
        Step::Seal(e)
    }
}

/// The loop: the consumer, and everything else (kept apart because a polled message borrows
/// the consumer while the rest changes).
pub(crate) struct Running {
    pub consumer: BaseConsumer<Ctx>,
    pub state: State,
}

pub(crate) struct State {
    pub rt: tokio::runtime::Handle,
    pub producer: AckedProducer,
    pub decoder: Decoder,
    pub registry: Option<Arc<SchemaRegistry>>,
    pub dlq_topic: String,
    pub metrics: Arc<Metrics>,
    /// librdkafka's `max.poll.interval.ms`.
    pub max_poll: Duration,
    pub parts: Vec<Partition>,
    pub summary: Summary,
    pub leaf_buf: Vec<u8>,
    /// When the loop last called `poll`.
    pub polled_at: Instant,
    pub ticked_at: Instant,
    pub consumer_errors: super::repeats::Repeats,
}

impl Running {
    /// Polls once (up to 100 ms) and handles what arrived.
    pub fn poll_once(&mut self) -> Result<(), IngestError> {
        let c = &self.consumer;
        let st = &mut self.state;
        st.polled_at = Instant::now();
        let polled = c.poll(Duration::from_millis(100));
        if let Some(e) = c.context().fatal.lock().expect("fatal lock").take() {
            return Err(e);
        }
        st.apply_handover(c);
        st.drop_lost_assignment(c);
        match polled {
            None => Ok(()),
            Some(Err(e)) => {
                let text = e.to_string();
                if let Some(repeated) = st.consumer_errors.note(&text, Instant::now()) {
                    tracing::warn!(error = %text, repeated, "consumer error");
                }
                st.metrics.kafka_error(matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
                ));
                Ok(())
            }
            Some(Ok(m)) => {
                st.metrics.message_received();
                let Some(i) = st.parts.iter().position(|p| p.is(m.topic(), m.partition())) else {
                    return Ok(());
                };
                let result = st.handle(c, i, &m);
                st.settle(c, i, result)
            }
        }
    }

    pub fn tick_due(&self) -> bool {
        self.state.ticked_at.elapsed() >= TICK
    }

    /// Periodic work: a stale member rewinds, metrics, stalled probes, age-based cuts and
    /// background writes.
    pub fn tick(&mut self) -> Result<(), IngestError> {
        let (c, st) = (&self.consumer, &mut self.state);
        st.ticked_at = Instant::now();
        st.drop_lost_assignment(c);
        if st.rewind_if_stale(c)? {
            return Ok(());
        }
        st.metrics.consumed(
            st.parts
                .iter()
                .filter_map(|p| Some((p.topic.clone(), p.partition, p.consumed_next?))),
        );
        st.nudge_stalled_probes(c)?;
        for i in 0..st.parts.len() {
            let r = st.check_log(c, i);
            st.settle(c, i, r)?;
        }
        st.skip_to_positions(c)?;
        for i in 0..st.parts.len() {
            let r = st.rt.block_on(st.parts[i].sealer.tick());
            st.after_seal(c, i, r)?;
        }
        Ok(())
    }

    /// Leaves the consumer group, waiting at most `timeout` (see `CLOSE_TIMEOUT`).
    pub fn close(self, timeout: Duration) {
        let (done, closed) = std::sync::mpsc::channel();
        let consumer = self.consumer;
        let spawned = std::thread::Builder::new()
            .name("cairn-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = done.send(());
            });
        if spawned.is_ok() && closed.recv_timeout(timeout).is_err() {
            tracing::warn!(
                timeout_s = timeout.as_secs(),
                "could not leave the consumer group in time (brokers unreachable?); exiting anyway, the group reassigns the partitions after session.timeout.ms"
            );
        }
    }

    /// Seals what every partition holds and commits it. Nothing unsealed is committed.
    pub fn shutdown(&mut self) -> Result<Summary, IngestError> {
        tracing::info!("shutting down; sealing what is buffered");
        let (c, st) = (&self.consumer, &mut self.state);
        st.metrics
            .ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
        st.drop_lost_assignment(c);
        let mut unsealed = Vec::new();
        for i in 0..st.parts.len() {
            match st.rt.block_on(st.parts[i].sealer.flush()) {
                Ok(written) => st.after_seal(c, i, Ok(written))?,
                Err(e) => {
                    let p = &st.parts[i];
                    st.metrics.store_error(&p.topic);
                    unsealed.push(format!("{}/{}: {e}", p.topic, p.partition));
                }
            }
        }
        if !unsealed.is_empty() {
            return Err(IngestError::UnsealedAtShutdown { streams: unsealed });
        }
        // The commits after each seal are asynchronous; the last ones must not be lost with
        // the process (they are what lag monitors read).
        let mut tpl = TopicPartitionList::new();
        for p in &st.parts {
            if let Some(next) = p.sealer.resume_offset() {
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(next))?;
            }
        }
        if tpl.count() > 0
            && let Err(e) = c.commit(&tpl, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "final commit failed (positions come from the store)");
        }
        Ok(std::mem::take(&mut st.summary))
    }
}

impl State {
    fn apply_handover(&mut self, consumer: &BaseConsumer<Ctx>) {
        let changes =
            std::mem::take(&mut *consumer.context().handover.lock().expect("handover lock"));
        apply_handover(&mut self.parts, changes);
    }

    /// librdkafka left the group on its own (`max.poll.interval.ms` exceeded while this
    /// thread was blocked, e.g. on an unavailable dead-letter topic): other members may already
    /// be sealing these partitions from the manifests, so nothing buffered here may be written.
    fn drop_lost_assignment(&mut self, consumer: &BaseConsumer<Ctx>) {
        if self.parts.is_empty() || !consumer.assignment_lost() {
            return;
        }
        tracing::warn!(
            partitions = self.parts.len(),
            "the group assignment was lost (blocked longer than max.poll.interval.ms?); dropping unsealed buffers, the next owner re-reads them"
        );
        for p in self.parts.drain(..) {
            self.metrics.partition_revoked(&p.topic, p.partition);
        }
    }

    /// Decodes one message and feeds it to partition `i`'s sealer.
    fn handle(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        i: usize,
        m: &BorrowedMessage<'_>,
    ) -> Result<Vec<SealedSegment>, Step> {
        let offset = m.offset();
        let mut written = self.check_log(consumer, i)?;
        let part = &mut self.parts[i];
        if let Some(position) = part.confirm_position(offset) {
            tracing::info!(
                topic = %part.topic,
                partition = part.partition,
                resume = part.probe.as_ref().map_or(offset, |p| p.target),
                received = offset,
                reading_from = describe(position),
                "the broker answered after the resume offset; re-reading from earlier to confirm"
            );
            consumer
                .seek(
                    &part.topic,
                    part.partition,
                    position,
                    Duration::from_secs(10),
                )
                .map_err(|e| Step::Fatal(e.into()))?;
            return Ok(written);
        }
        match part.sealer.resume_offset() {
            Some(next) if offset < next => return Ok(written), // already sealed
            Some(next) if offset > next => {
                written.extend(self.skipped(consumer, i, next, offset - 1)?)
            }
            _ => {}
        }
        let payload = m.payload().unwrap_or(&[]);
        let decoded = self.decode(payload)?;
        let part = &mut self.parts[i];
        let decoded = decoded.and_then(|e| {
            PreparedEvent::new(&part.stream, offset, e, &mut self.leaf_buf)
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
                dead_letter(
                    &self.rt,
                    &self.producer,
                    &self.dlq_topic,
                    m,
                    &reason.to_string(),
                )
                .map_err(Step::Fatal)?;
                if self.away_too_long() {
                    // Blocked too long: the partition may have a new owner already. Seal
                    // nothing more here; the tick rewinds it before anything is written.
                    return Err(Step::Stale);
                }
                let part = &mut self.parts[i];
                self.metrics.dead_lettered(&part.topic);
                written.extend(
                    self.rt
                        .block_on(part.sealer.push_rejected(offset, payload.len()))?,
                );
            }
        }
        Ok(written)
    }

    /// Decodes a payload, fetching a Confluent writer schema from the registry the first time
    /// its id is seen. `Err` when the message cannot be judged now (registry down: retry) or
    /// ingest must stop (registry refuses cairn); `Ok(Err)` dead-letters it.
    fn decode(&mut self, payload: &[u8]) -> Result<Result<AuditEvent, DecodeError>, Step> {
        let decoded = self.decoder.decode(payload);
        let (Err(DecodeError::UnknownSchemaId(id)), Some(registry)) = (&decoded, &self.registry)
        else {
            return Ok(decoded);
        };
        let id = *id;
        match self.rt.block_on(registry.writer_schema(id)) {
            Ok(schema) => {
                tracing::info!(
                    schema_id = id,
                    registry = registry.url(),
                    "writer schema fetched from the schema registry"
                );
                self.decoder.learn(id, schema);
                Ok(self.decoder.decode(payload))
            }
            Err(e) if e.dead_letters() => Ok(Err(DecodeError::Registry(e.to_string()))),
            Err(e) if e.is_transient() => {
                self.metrics.registry_error();
                Err(Step::Retry {
                    what: "the schema registry is unavailable; pausing this partition",
                    error: e.to_string(),
                })
            }
            Err(e) => Err(Step::Fatal(IngestError::Registry(Box::new(e)))),
        }
    }

    /// Finishes a step on partition `i`: commits what was sealed, or rewinds, or stops.
    pub(super) fn settle(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        i: usize,
        result: Result<Vec<SealedSegment>, Step>,
    ) -> Result<(), IngestError> {
        match result {
            Ok(written) => self.after_seal(consumer, i, Ok(written)),
            Err(Step::Seal(e)) => self.after_seal(consumer, i, Err(e)),
            Err(Step::Fatal(e)) => Err(e),
            Err(Step::Stale) => Ok(()),
            Err(Step::Retry { what, error }) => {
                let p = &self.parts[i];
                tracing::warn!(
                    topic = %p.topic,
                    partition = p.partition,
                    error = %error,
                    "{what}; rewinding to the last manifest"
                );
                std::thread::sleep(Duration::from_secs(1));
                self.rewind(consumer, i)
            }
        }
    }

    /// Commits what was sealed; on a transient sealing error rewinds the partition to its last
    /// manifest, on a permanent one stops.
    fn after_seal(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        i: usize,
        result: Result<Vec<SealedSegment>, SealError>,
    ) -> Result<(), IngestError> {
        let written = match result {
            Ok(written) => written,
            Err(e) => {
                let p = &self.parts[i];
                let stream = format!("{}/{}", p.topic, p.partition);
                self.metrics.store_error(&p.topic);
                if !e.is_transient() {
                    return Err(IngestError::Seal { stream, source: e });
                }
                tracing::warn!(stream = %stream, error = %e, "sealing failed; rewinding to the last manifest");
                std::thread::sleep(Duration::from_millis(500));
                return self.rewind(consumer, i);
            }
        };
        let p = &self.parts[i];
        for s in &written {
            let m = &s.manifest.manifest;
            self.summary.segments += 1;
            self.summary.events += m.event_count;
            self.summary.dead_lettered += OffsetRange::total(&m.rejected);
            self.summary.lost += OffsetRange::total(m.lost());
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
                tracing::debug!(topic = %p.topic, partition = p.partition, error = %e, "commit failed");
            }
        }
        Ok(())
    }

    /// Reopens partition `i` from the store (dropping what it buffered) and positions the
    /// consumer at its resume point.
    fn rewind(&mut self, consumer: &BaseConsumer<Ctx>, i: usize) -> Result<(), IngestError> {
        let (topic, partition) = (self.parts[i].topic.clone(), self.parts[i].partition);
        let Some(fresh) = consumer.context().open_partition(&topic, partition) else {
            return Ok(()); // shutting down (or stopping: the next poll reports why)
        };
        let position = start_position(fresh.sealer.resume_offset());
        consumer.seek(&topic, partition, position, Duration::from_secs(10))?;
        self.parts[i] = fresh;
        Ok(())
    }

    fn away_too_long(&self) -> bool {
        self.polled_at.elapsed() >= self.max_poll / 2
    }

    /// Has this thread been away from `poll` so long (half of `max.poll.interval.ms`) that
    /// librdkafka may have left the group and another member may own the partitions? Then
    /// nothing held may be written: every partition is rewound to its manifests, and the next
    /// poll either revokes them or carries on from there. (librdkafka's `assignment_lost` does
    /// not say so while a rebalance it could not take part in is still pending.)
    fn rewind_if_stale(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<bool, IngestError> {
        if !self.away_too_long() || self.parts.is_empty() {
            return Ok(false);
        }
        tracing::warn!(
            away_ms = self.polled_at.elapsed().as_millis() as u64,
            max_poll_interval_ms = self.max_poll.as_millis() as u64,
            "away from poll too long; rewinding every partition to its manifests before sealing more"
        );
        for i in 0..self.parts.len() {
            self.rewind(consumer, i)?;
        }
        Ok(true)
    }

    /// A positioned partition that has received nothing for a while: a broker that serves
    /// batches from their start may be holding the target in a batch that begins before the
    /// position, serving none of it. (tansu 0.6 also misreports the high watermark, so it cannot
    /// be asked.) Step further back; already-sealed records are skipped.
    fn nudge_stalled_probes(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<(), IngestError> {
        for part in self.parts.iter_mut() {
            let Some(probe) = &mut part.probe else {
                continue;
            };
            if probe.saw_before || probe.since.elapsed() < Duration::from_secs(2) {
                continue;
            }
            match probe.step_back() {
                Some(position) => {
                    tracing::info!(
                        topic = %part.topic,
                        partition = part.partition,
                        resume = probe.target,
                        reading_from = describe(position),
                        "nothing received while resuming; re-reading from earlier"
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
}
