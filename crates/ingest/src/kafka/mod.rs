//! The Kafka source: a consumer in a group, each assigned partition sealed as a stream.
//!
//! [`Ingest::connect`] sets everything up and returns the poll loop's state; [`Ingest::run`]
//! drives it until shutdown. Modules: `partition` (a partition's sealer and position
//! confirmation), `rebalance` (the consumer context: partitions opened from the store when the
//! group assigns them), `running` (the loop: decode, dead-letter, seal, commit, rewind), `gaps`
//! (offsets Kafka skips: absent or lost, and a log behind the store), `repeats` (rate-limited
//! error logs) and `dlq` (the dead-letter record).

mod dlq;
mod gaps;
mod partition;
mod rebalance;
mod repeats;
mod running;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_format::SigningKey;
use cairn_kafka::{AckedProducer, KafkaConfig, RetryPolicy};
use cairn_sealer::SegmentLimits;
use cairn_store::{StoreWriter, WriterOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::registry::SchemaRegistry;
use crate::{ConfigError, Decoder, IngestConfig, IngestError, Metrics, Summary};
use rebalance::Ctx;
use running::Running;

/// How long leaving the consumer group may take at exit. With the brokers down librdkafka's
/// close can wait indefinitely; by then everything held is sealed or given up, so the process
/// exits anyway and the group reassigns the partitions after `session.timeout.ms`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Ingest {
    cfg: IngestConfig,
    rt: tokio::runtime::Handle,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// librdkafka's `max.poll.interval.ms`.
    max_poll: Duration,
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
        })
    }

    fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: self.cfg.brokers.clone(),
            properties: self.cfg.kafka.clone(),
        }
    }

    fn signing_key(&self) -> Result<SigningKey, IngestError> {
        let path = self.cfg.key.display().to_string();
        std::fs::read_to_string(&self.cfg.key)
            .map_err(|e| e.to_string())
            .and_then(|text| SigningKey::parse(&text, &path).map_err(|e| e.to_string()))
            .map_err(|message| IngestError::Key { path, message })
    }

    /// Opens the store, the decoder, the consumer (subscribed) and the dead-letter producer.
    fn connect(&self) -> Result<Running, IngestError> {
        let decoder = Decoder::new(
            &self.cfg.schema_dir,
            &self.cfg.schema_ids,
            self.cfg.max_message_bytes,
        )?;
        let registry = SchemaRegistry::new(&self.cfg.schema_registry)?.map(Arc::new);
        let key = self.signing_key()?;
        let store = Arc::new(self.rt.block_on(StoreWriter::open(
            &self.cfg.store,
            &WriterOptions {
                retention_days: self.cfg.retention_days,
            },
        ))?);
        let ctx = Ctx {
            rt: self.rt.clone(),
            store,
            key,
            limits: SegmentLimits {
                max_events: self.cfg.segment.max_events,
                max_bytes: self.cfg.segment.max_bytes,
                max_age: Some(self.cfg.segment.max_age()),
                // Partitions already encode in parallel; one each keeps memory per partition
                // as it was.
                encoders: 1,
            },
            handover: Mutex::new(Vec::new()),
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
            fatal: Mutex::new(None),
        };
        let kafka = self.kafka_config();
        let consumer = self.consumer(&kafka, ctx)?;
        let producer = AckedProducer::new(&kafka, RetryPolicy::default()).map_err(|source| {
            IngestError::Producer {
                source: Box::new(source),
            }
        })?;
        self.metrics.ready.store(true, Ordering::Relaxed);
        Ok(Running {
            consumer,
            state: running::State {
                rt: self.rt.clone(),
                producer,
                decoder,
                registry,
                dlq_topic: self.cfg.dlq_topic.clone(),
                metrics: self.metrics.clone(),
                max_poll: self.max_poll,
                parts: Vec::new(),
                summary: Summary::default(),
                leaf_buf: Vec::with_capacity(1024),
                polled_at: Instant::now(),
                ticked_at: Instant::now(),
                consumer_errors: Default::default(),
            },
        })
    }

    /// The group consumer, subscribed. Positions come from the store (set when partitions are
    /// assigned), offsets are committed only after seals, and only committed transactions are
    /// read.
    fn consumer(&self, kafka: &KafkaConfig, ctx: Ctx) -> Result<BaseConsumer<Ctx>, IngestError> {
        let mut consumer_config = kafka.client_config();
        // Defaults a user may override. librdkafka's fetch.queue.backoff.ms (1000 ms) pauses a
        // partition's fetching for a second whenever its prefetch queue is full; cairn drains
        // a full queue in well under that and then sat idle: 20 ms took the ingest benchmark
        // from ~100k to ~150k events/s on 1M events (scripts/bench_ingest.sh).
        for (k, v) in [
            ("statistics.interval.ms", "5000"),
            ("partition.assignment.strategy", "range"),
            ("fetch.queue.backoff.ms", "20"),
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
        Ok(consumer)
    }

    /// Runs on the calling (non-async) thread until `shutdown` is set, then seals what it holds,
    /// commits and returns. A permanent error (a chain this key does not extend, a conflict in
    /// the store, an undeliverable dead letter) stops it with that error.
    pub fn run(self) -> Result<Summary, IngestError> {
        let mut running = self.connect()?;
        let result = self.drive(&mut running);
        running.close(CLOSE_TIMEOUT);
        result
    }

    fn drive(&self, running: &mut Running) -> Result<Summary, IngestError> {
        while !self.shutdown.load(Ordering::Relaxed) {
            running.poll_once()?;
            if running.tick_due() {
                running.tick()?;
            }
        }
        if let Some(e) = running
            .consumer
            .context()
            .fatal
            .lock()
            .expect("fatal lock")
            .take()
        {
            return Err(e);
        }
        running.shutdown()
    }
}
