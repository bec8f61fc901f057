//! The consumer's context: partitions are opened from the store when the group assigns them
//! and handed to the poll loop in the order the group decided.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_format::{SigningKey, StreamId};
use cairn_sealer::{SealError, SegmentLimits, StreamSealer};
use cairn_store::StoreWriter;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};

use super::partition::{Partition, Probe, describe, start_position};
use crate::{IngestError, Metrics};

/// What the rebalance callbacks decided, for the poll loop to apply in the same order (a
/// partition may be assigned and revoked again before the loop runs).
pub(crate) enum Handover {
    Adopted(Box<Partition>),
    Revoked(String, i32),
}

pub(crate) struct Ctx {
    pub rt: tokio::runtime::Handle,
    pub store: Arc<StoreWriter>,
    pub key: SigningKey,
    pub limits: SegmentLimits,
    pub handover: Mutex<Vec<Handover>>,
    pub shutdown: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// A permanent error met inside a callback (which cannot return one): the poll loop stops
    /// with it.
    pub fatal: Mutex<Option<IngestError>>,
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
    /// Opens a partition's sealer from the store, retrying while the store is unavailable. A
    /// permanent failure (a chain this key does not extend, a conflict, a misconfigured store)
    /// stops ingest instead: retrying cannot help and the partition must not be consumed.
    pub fn open_partition(&self, topic: &str, partition: i32) -> Option<Partition> {
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
                        log_checked: false,
                    });
                }
                Err(e) if !e.is_transient() => {
                    self.stop_with(stream.to_string(), e);
                    return None;
                }
                Err(e) => {
                    tracing::warn!(stream = %stream, error = %e, ?backoff, "cannot open stream; retrying");
                    if self.shutdown.load(Ordering::Relaxed) {
                        return None;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn stop_with(&self, stream: String, source: SealError) {
        tracing::error!(stream = %stream, error = %source, "cannot open stream, and retrying cannot help; stopping");
        let mut fatal = self.fatal.lock().expect("fatal lock");
        fatal.get_or_insert(IngestError::Seal { stream, source });
        self.shutdown.store(true, Ordering::Relaxed);
    }

    fn hand_over(&self, changes: impl IntoIterator<Item = Handover>) {
        self.handover.lock().expect("handover lock").extend(changes);
    }
}

fn cooperative(consumer: &BaseConsumer<Ctx>) -> bool {
    matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    )
}

fn elements(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => tracing::warn!(error = ?other, "rebalance error"),
        }
    }
}

impl Ctx {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let mut adopted = Vec::new();
        for (topic, partition) in elements(tpl) {
            let Some(p) = self.open_partition(&topic, partition) else {
                continue;
            };
            // The position comes from the store, never from the group's offsets.
            let resume = p.sealer.resume_offset();
            let position = start_position(resume);
            tracing::info!(
                topic = %topic,
                partition,
                resume = resume.map_or_else(|| "the first offset".to_string(), |o| format!("offset {o}")),
                reading_from = describe(position),
                "partition assigned"
            );
            if let Err(e) = tpl.set_partition_offset(&topic, partition, position) {
                tracing::error!(topic = %topic, partition, error = %e, "cannot position partition");
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
            Ok(()) => self.hand_over(adopted.into_iter().map(|p| Handover::Adopted(Box::new(p)))),
            // Not ours after all: nothing is consumed for them, nothing adopted.
            Err(e) => {
                tracing::error!(error = %e, "assign failed");
                for p in &adopted {
                    self.metrics.partition_revoked(&p.topic, p.partition);
                }
            }
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let revoked = elements(tpl);
        tracing::info!(partitions = ?revoked, "partitions revoked; dropping their unsealed buffers");
        for (topic, partition) in &revoked {
            self.metrics.partition_revoked(topic, *partition);
        }
        self.hand_over(revoked.into_iter().map(|(t, p)| Handover::Revoked(t, p)));
        let unassigned = if cooperative(consumer) {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(e) = unassigned {
            tracing::error!(error = %e, "unassign failed");
        }
    }
}

/// Applies rebalance decisions in the order they were made.
pub(crate) fn apply_handover(parts: &mut Vec<Partition>, changes: Vec<Handover>) {
    for change in changes {
        match change {
            Handover::Revoked(topic, partition) => parts.retain(|p| !p.is(&topic, partition)),
            Handover::Adopted(p) => {
                parts.retain(|q| !q.is(&p.topic, p.partition));
                parts.push(*p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::WriterOptions;

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
            log_checked: true,
        }
    }

    /// Regression (7262a8f): revocations used to be applied before adoptions, so a partition
    /// assigned and then revoked before the poll loop ran stayed in the loop's hands.
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
