//! What ingest exposes to Prometheus: per-topic counters, per-partition offsets and lag, and
//! histograms of seal latency and segment size. Updated by the ingest thread (per segment,
//! per dead-lettered message, per tick) and by librdkafka's statistics callback (high
//! watermarks); encoded (OpenMetrics text, `prometheus-client`) for the binary's `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartitionOffsets {
    /// Next offset after the newest stored manifest.
    sealed_next: Option<i64>,
    /// Next offset after the last message consumed.
    consumed_next: Option<i64>,
    /// The broker's high watermark as librdkafka last reported it.
    high_watermark: Option<i64>,
}

impl PartitionOffsets {
    fn lag(&self) -> Option<i64> {
        let head = match (self.high_watermark, self.consumed_next) {
            (Some(h), Some(c)) => h.max(c),
            (h, c) => h.or(c)?,
        };
        Some((head - self.sealed_next.unwrap_or(0)).max(0))
    }
}

const LATENCY_BOUNDS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
const SIZE_BOUNDS: [f64; 8] = [
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
];

/// Shared between the ingest thread, the consumer's callbacks and the metrics endpoint.
pub struct Metrics {
    /// Subscribed and consuming (for `/readyz`).
    pub ready: AtomicBool,
    registry: Registry,
    events_sealed: Family<TopicLabels, Counter>,
    segments_sealed: Family<TopicLabels, Counter>,
    segment_bytes: Family<TopicLabels, Counter>,
    dead_lettered: Family<TopicLabels, Counter>,
    absent_offsets: Family<TopicLabels, Counter>,
    lost_offsets: Family<TopicLabels, Counter>,
    store_errors: Family<TopicLabels, Counter>,
    store_failing: Gauge,
    kafka_errors: Counter,
    registry_errors: Counter,
    brokers_down: Gauge,
    sealed_offset: Family<PartitionLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    lag: Family<PartitionLabels, Gauge>,
    seal_latency: Histogram,
    segment_size: Histogram,
    /// The per-partition state the offset gauges are derived from.
    offsets: Mutex<BTreeMap<PartitionLabels, PartitionOffsets>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            ready: AtomicBool::new(false),
            registry: Registry::default(),
            events_sealed: Family::default(),
            segments_sealed: Family::default(),
            segment_bytes: Family::default(),
            dead_lettered: Family::default(),
            absent_offsets: Family::default(),
            lost_offsets: Family::default(),
            store_errors: Family::default(),
            store_failing: Gauge::default(),
            kafka_errors: Counter::default(),
            registry_errors: Counter::default(),
            brokers_down: Gauge::default(),
            sealed_offset: Family::default(),
            high_watermark: Family::default(),
            lag: Family::default(),
            seal_latency: Histogram::new(LATENCY_BOUNDS),
            segment_size: Histogram::new(SIZE_BOUNDS),
            offsets: Mutex::new(BTreeMap::new()),
        };
        m.register()
    }
}

fn topic(t: &str) -> TopicLabels {
    TopicLabels {
        topic: t.to_string(),
    }
}

impl Metrics {
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        // Counters are registered without `_total`: the encoder appends it.
        for (name, help, family) in [
            (
                "cairn_events_sealed",
                "Events in stored segments.",
                &self.events_sealed,
            ),
            (
                "cairn_segments_sealed",
                "Segments whose manifest was stored.",
                &self.segments_sealed,
            ),
            (
                "cairn_segment_bytes",
                "Bytes of stored Parquet segments.",
                &self.segment_bytes,
            ),
            (
                "cairn_dead_lettered",
                "Messages sent to the dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "cairn_absent_offsets",
                "Offsets Kafka never delivered, recorded as absent.",
                &self.absent_offsets,
            ),
            (
                "cairn_lost_offsets",
                "Offsets Kafka deleted (retention, DeleteRecords) before they were sealed, recorded as lost.",
                &self.lost_offsets,
            ),
            (
                "cairn_store_errors",
                "Sealing failures (a transient one rewinds a partition to its last manifest).",
                &self.store_errors,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        self.register_health()
    }

    /// Health counters and gauges, per-partition offsets, latency and size histograms.
    fn register_health(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "cairn_store_failing",
            "1 while the last store write failed.",
            self.store_failing.clone(),
        );
        r.register(
            "cairn_kafka_errors",
            "Errors the consumer reported (connections, transport).",
            self.kafka_errors.clone(),
        );
        r.register(
            "cairn_schema_registry_errors",
            "Schema registry requests that failed and paused a partition (unreachable, timeouts, 5xx).",
            self.registry_errors.clone(),
        );
        r.register(
            "cairn_kafka_brokers_down",
            "1 after librdkafka reported all brokers down, until a message arrives.",
            self.brokers_down.clone(),
        );
        for (name, help, family) in [
            (
                "cairn_partition_sealed_offset",
                "Next offset after the newest stored manifest.",
                &self.sealed_offset,
            ),
            (
                "cairn_partition_high_watermark",
                "The broker's high watermark, from librdkafka statistics.",
                &self.high_watermark,
            ),
            (
                "cairn_consumer_lag",
                "Offsets in the partition not yet sealed: max(high watermark, next consumed offset) - sealed offset.",
                &self.lag,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        r.register(
            "cairn_seal_latency_seconds",
            "From a segment's first message reaching the sealer to its manifest being stored.",
            self.seal_latency.clone(),
        );
        r.register(
            "cairn_segment_size_bytes",
            "Size of each stored Parquet segment.",
            self.segment_size.clone(),
        );
        self
    }

    /// Updates one partition's offsets and the gauges derived from them.
    fn partition(&self, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionOffsets)) {
        let labels = PartitionLabels {
            topic: topic.to_string(),
            partition,
        };
        let mut offsets = self.offsets.lock().expect("metrics lock");
        let p = offsets.entry(labels.clone()).or_default();
        f(p);
        self.publish(&labels, p);
    }

    fn publish(&self, labels: &PartitionLabels, p: &PartitionOffsets) {
        for (family, value) in [
            (&self.sealed_offset, p.sealed_next),
            (&self.high_watermark, p.high_watermark),
            (&self.lag, p.lag()),
        ] {
            match value {
                Some(v) => {
                    family.get_or_create(labels).set(v);
                }
                None => {
                    family.remove(labels);
                }
            }
        }
    }

    /// A segment of `topic`/`partition` was stored; `sealed_next` is the offset after it.
    pub fn segment_sealed(
        &self,
        topic_name: &str,
        partition: i32,
        events: u64,
        bytes: u64,
        latency: Duration,
        sealed_next: i64,
    ) {
        let t = topic(topic_name);
        self.events_sealed.get_or_create(&t).inc_by(events);
        self.segments_sealed.get_or_create(&t).inc();
        self.segment_bytes.get_or_create(&t).inc_by(bytes);
        self.seal_latency.observe(latency.as_secs_f64());
        self.segment_size.observe(bytes as f64);
        self.store_failing.set(0);
        self.partition(topic_name, partition, |p| p.sealed_next = Some(sealed_next));
    }

    /// An error from the consumer (broker connection, transport, ...).
    pub fn kafka_error(&self, all_brokers_down: bool) {
        self.kafka_errors.inc();
        if all_brokers_down {
            self.brokers_down.set(1);
        }
    }

    /// A message arrived: the brokers are reachable.
    pub fn message_received(&self) {
        self.brokers_down.set(0);
    }

    pub fn dead_lettered(&self, topic_name: &str) {
        self.dead_lettered.get_or_create(&topic(topic_name)).inc();
    }

    pub fn absent(&self, topic_name: &str, offsets: u64) {
        self.absent_offsets
            .get_or_create(&topic(topic_name))
            .inc_by(offsets);
    }

    pub fn lost(&self, topic_name: &str, offsets: u64) {
        self.lost_offsets
            .get_or_create(&topic(topic_name))
            .inc_by(offsets);
    }

    pub fn registry_error(&self) {
        self.registry_errors.inc();
    }

    pub fn store_error(&self, topic_name: &str) {
        self.store_errors.get_or_create(&topic(topic_name)).inc();
        self.store_failing.set(1);
    }

    /// A partition was (re)opened from the store: `sealed_next` is where its stream resumes.
    pub fn partition_opened(&self, topic: &str, partition: i32, sealed_next: Option<i64>) {
        self.partition(topic, partition, |p| {
            p.sealed_next = sealed_next;
            p.consumed_next = None;
        });
    }

    pub fn partition_revoked(&self, topic: &str, partition: i32) {
        let labels = PartitionLabels {
            topic: topic.to_string(),
            partition,
        };
        self.offsets.lock().expect("metrics lock").remove(&labels);
        for family in [&self.sealed_offset, &self.high_watermark, &self.lag] {
            family.remove(&labels);
        }
    }

    /// Next offsets after the last consumed message, per partition (called once per tick).
    pub fn consumed(&self, positions: impl IntoIterator<Item = (String, i32, i64)>) {
        for (topic, partition, next) in positions {
            self.known(topic, partition, |p| p.consumed_next = Some(next));
        }
    }

    /// High watermarks from librdkafka's statistics, for assigned partitions only.
    pub fn high_watermarks(&self, marks: impl IntoIterator<Item = (String, i32, i64)>) {
        for (topic, partition, hw) in marks {
            if hw >= 0 {
                self.known(topic, partition, |p| p.high_watermark = Some(hw));
            }
        }
    }

    /// Updates a partition only if it is assigned (opened and not revoked).
    fn known(&self, topic: String, partition: i32, f: impl FnOnce(&mut PartitionOffsets)) {
        let labels = PartitionLabels { topic, partition };
        let mut offsets = self.offsets.lock().expect("metrics lock");
        if let Some(p) = offsets.get_mut(&labels) {
            f(p);
            self.publish(&labels, p);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::default();
        m.partition_opened("audit", 0, Some(10));
        m.segment_sealed("audit", 0, 5, 100_000, Duration::from_millis(300), 20);
        m.dead_lettered("audit");
        m.absent("audit", 3);
        m.lost("audit", 5);
        m.consumed([("audit".into(), 0, 25)]);
        m.high_watermarks([("audit".into(), 0, 30), ("other".into(), 1, 99)]);
        let text = m.render();
        for line in [
            "cairn_events_sealed_total{topic=\"audit\"} 5",
            "cairn_segment_bytes_total{topic=\"audit\"} 100000",
            "cairn_dead_lettered_total{topic=\"audit\"} 1",
            "cairn_absent_offsets_total{topic=\"audit\"} 3",
            "cairn_lost_offsets_total{topic=\"audit\"} 5",
            "cairn_partition_sealed_offset{topic=\"audit\",partition=\"0\"} 20",
            "cairn_partition_high_watermark{topic=\"audit\",partition=\"0\"} 30",
            "cairn_consumer_lag{topic=\"audit\",partition=\"0\"} 10",
            "cairn_seal_latency_seconds_bucket{le=\"0.25\"} 0",
            "cairn_seal_latency_seconds_bucket{le=\"0.5\"} 1",
            "cairn_seal_latency_seconds_count 1",
            "cairn_segment_size_bytes_bucket{le=\"65536.0\"} 0",
            "cairn_segment_size_bytes_bucket{le=\"262144.0\"} 1",
            "cairn_store_failing 0",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("other"),
            "unassigned partitions are not reported"
        );
        m.store_error("audit");
        assert!(m.render().lines().any(|l| l == "cairn_store_failing 1"));
        m.kafka_error(true);
        let text = m.render();
        assert!(text.lines().any(|l| l == "cairn_kafka_errors_total 1"));
        assert!(text.lines().any(|l| l == "cairn_kafka_brokers_down 1"));
        m.message_received();
        assert!(
            m.render()
                .lines()
                .any(|l| l == "cairn_kafka_brokers_down 0")
        );
        m.partition_revoked("audit", 0);
        assert!(!m.render().contains("cairn_consumer_lag{"));
    }

    #[test]
    fn lag_uses_whichever_head_is_further() {
        let p = PartitionOffsets {
            sealed_next: Some(10),
            consumed_next: Some(40),
            high_watermark: Some(1), // a broker misreporting its watermark
        };
        assert_eq!(p.lag(), Some(30));
        let fresh = PartitionOffsets::default();
        assert_eq!(fresh.lag(), None);
    }
}
