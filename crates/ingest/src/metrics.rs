//! What ingest exposes to Prometheus: per-topic counters, per-partition offsets and lag, and
//! histograms of seal latency and segment size. Updated by the ingest thread (per segment,
//! per dead-lettered message, per tick) and by librdkafka's statistics callback (high
//! watermarks); rendered by the binary's `/metrics` endpoint.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Shared between the ingest thread, the consumer's callbacks and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Subscribed and consuming (for `/readyz`).
    pub ready: AtomicBool,
    /// librdkafka reported all brokers down and no message arrived since.
    brokers_down: AtomicBool,
    kafka_errors: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopicCounters {
    pub events_sealed: u64,
    pub segments_sealed: u64,
    pub segment_bytes: u64,
    pub dead_lettered: u64,
    pub absent_offsets: u64,
    pub store_errors: u64,
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

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
const SIZE_BOUNDS: &[f64] = &[
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
];

#[derive(Debug)]
struct Inner {
    topics: BTreeMap<String, TopicCounters>,
    partitions: BTreeMap<(String, i32), PartitionOffsets>,
    seal_latency: Histogram,
    segment_size: Histogram,
    store_failing: bool,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            topics: BTreeMap::new(),
            partitions: BTreeMap::new(),
            seal_latency: Histogram::new(LATENCY_BOUNDS),
            segment_size: Histogram::new(SIZE_BOUNDS),
            store_failing: false,
        }
    }
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("metrics lock"))
    }

    /// A segment of `topic`/`partition` was stored; `sealed_next` is the offset after it.
    pub fn segment_sealed(
        &self,
        topic: &str,
        partition: i32,
        events: u64,
        bytes: u64,
        latency: Duration,
        sealed_next: i64,
    ) {
        self.with(|m| {
            let t = m.topics.entry(topic.to_string()).or_default();
            t.events_sealed += events;
            t.segments_sealed += 1;
            t.segment_bytes += bytes;
            m.seal_latency.observe(latency.as_secs_f64());
            m.segment_size.observe(bytes as f64);
            m.store_failing = false;
            m.partitions
                .entry((topic.to_string(), partition))
                .or_default()
                .sealed_next = Some(sealed_next);
        })
    }

    /// An error from the consumer (broker connection, transport, ...).
    pub fn kafka_error(&self, all_brokers_down: bool) {
        self.kafka_errors.fetch_add(1, Ordering::Relaxed);
        if all_brokers_down {
            self.brokers_down.store(true, Ordering::Relaxed);
        }
    }

    /// A message arrived: the brokers are reachable.
    pub fn message_received(&self) {
        if self.brokers_down.load(Ordering::Relaxed) {
            self.brokers_down.store(false, Ordering::Relaxed);
        }
    }

    pub fn dead_lettered(&self, topic: &str) {
        self.with(|m| m.topics.entry(topic.to_string()).or_default().dead_lettered += 1)
    }

    pub fn absent(&self, topic: &str, offsets: u64) {
        self.with(|m| {
            m.topics
                .entry(topic.to_string())
                .or_default()
                .absent_offsets += offsets
        })
    }

    pub fn store_error(&self, topic: &str) {
        self.with(|m| {
            m.topics.entry(topic.to_string()).or_default().store_errors += 1;
            m.store_failing = true;
        })
    }

    /// A partition was (re)opened from the store: `sealed_next` is where its stream resumes.
    pub fn partition_opened(&self, topic: &str, partition: i32, sealed_next: Option<i64>) {
        self.with(|m| {
            let p = m
                .partitions
                .entry((topic.to_string(), partition))
                .or_default();
            p.sealed_next = sealed_next;
            p.consumed_next = None;
        })
    }

    pub fn partition_revoked(&self, topic: &str, partition: i32) {
        self.with(|m| m.partitions.remove(&(topic.to_string(), partition)));
    }

    /// Next offsets after the last consumed message, per partition (called once per tick).
    pub fn consumed(&self, positions: impl IntoIterator<Item = (String, i32, i64)>) {
        self.with(|m| {
            for (topic, partition, next) in positions {
                if let Some(p) = m.partitions.get_mut(&(topic, partition)) {
                    p.consumed_next = Some(next);
                }
            }
        })
    }

    /// High watermarks from librdkafka's statistics, for assigned partitions only.
    pub fn high_watermarks(&self, marks: impl IntoIterator<Item = (String, i32, i64)>) {
        self.with(|m| {
            for (topic, partition, hw) in marks {
                if let Some(p) = m.partitions.get_mut(&(topic, partition))
                    && hw >= 0
                {
                    p.high_watermark = Some(hw);
                }
            }
        })
    }

    /// Per-topic counters (a snapshot; for summaries and tests).
    pub fn topic(&self, topic: &str) -> TopicCounters {
        self.with(|m| m.topics.get(topic).cloned().unwrap_or_default())
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            let counters: [Series<TopicCounters, u64>; 6] = [
                (
                    "cairn_events_sealed_total",
                    "Events in stored segments.",
                    |t| t.events_sealed,
                ),
                (
                    "cairn_segments_sealed_total",
                    "Segments whose manifest was stored.",
                    |t| t.segments_sealed,
                ),
                (
                    "cairn_segment_bytes_total",
                    "Bytes of stored Parquet segments.",
                    |t| t.segment_bytes,
                ),
                (
                    "cairn_dead_lettered_total",
                    "Messages sent to the dead-letter topic.",
                    |t| t.dead_lettered,
                ),
                (
                    "cairn_absent_offsets_total",
                    "Offsets Kafka never delivered, recorded as absent.",
                    |t| t.absent_offsets,
                ),
                (
                    "cairn_store_errors_total",
                    "Store failures (each rewinds a partition to its last manifest).",
                    |t| t.store_errors,
                ),
            ];
            for (name, help, get) in counters {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (topic, t) in &m.topics {
                    let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape(topic), get(t));
                }
            }
            let _ = writeln!(
                out,
                "# HELP cairn_store_failing 1 while the last store write failed.\n# TYPE cairn_store_failing gauge\ncairn_store_failing {}",
                u8::from(m.store_failing)
            );
            let _ = writeln!(
                out,
                "# HELP cairn_kafka_errors_total Errors the consumer reported (connections, transport).\n# TYPE cairn_kafka_errors_total counter\ncairn_kafka_errors_total {}",
                self.kafka_errors.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "# HELP cairn_kafka_brokers_down 1 after librdkafka reported all brokers down, until a message arrives.\n# TYPE cairn_kafka_brokers_down gauge\ncairn_kafka_brokers_down {}",
                u8::from(self.brokers_down.load(Ordering::Relaxed))
            );
            let gauges: [Series<PartitionOffsets, Option<i64>>; 3] = [
                (
                    "cairn_partition_sealed_offset",
                    "Next offset after the newest stored manifest.",
                    |p| p.sealed_next,
                ),
                (
                    "cairn_partition_high_watermark",
                    "The broker's high watermark, from librdkafka statistics.",
                    |p| p.high_watermark,
                ),
                (
                    "cairn_consumer_lag",
                    "Offsets in the partition not yet sealed: max(high watermark, next consumed offset) - sealed offset.",
                    PartitionOffsets::lag,
                ),
            ];
            for (name, help, get) in gauges {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                for ((topic, partition), p) in &m.partitions {
                    if let Some(v) = get(p) {
                        let _ = writeln!(
                            out,
                            "{name}{{topic=\"{}\",partition=\"{partition}\"}} {v}",
                            escape(topic)
                        );
                    }
                }
            }
            m.seal_latency.render(
                &mut out,
                "cairn_seal_latency_seconds",
                "From a segment's first message reaching the sealer to its manifest being stored.",
            );
            m.segment_size.render(
                &mut out,
                "cairn_segment_size_bytes",
                "Size of each stored Parquet segment.",
            );
            out
        })
    }
}

/// A metric's name, help text and how to read it from a topic's or partition's state.
type Series<T, V> = (&'static str, &'static str, fn(&T) -> V);

impl PartitionOffsets {
    fn lag(&self) -> Option<i64> {
        let head = match (self.high_watermark, self.consumed_next) {
            (Some(h), Some(c)) => h.max(c),
            (h, c) => h.or(c)?,
        };
        Some((head - self.sealed_next.unwrap_or(0)).max(0))
    }
}

/// Label values escape `\`, `"` and newlines (topic names cannot hold them, but be safe).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

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
        m.consumed([("audit".into(), 0, 25)]);
        m.high_watermarks([("audit".into(), 0, 30), ("other".into(), 1, 99)]);
        let text = m.render();
        for line in [
            "cairn_events_sealed_total{topic=\"audit\"} 5",
            "cairn_segment_bytes_total{topic=\"audit\"} 100000",
            "cairn_dead_lettered_total{topic=\"audit\"} 1",
            "cairn_absent_offsets_total{topic=\"audit\"} 3",
            "cairn_partition_sealed_offset{topic=\"audit\",partition=\"0\"} 20",
            "cairn_partition_high_watermark{topic=\"audit\",partition=\"0\"} 30",
            "cairn_consumer_lag{topic=\"audit\",partition=\"0\"} 10",
            "cairn_seal_latency_seconds_bucket{le=\"0.25\"} 0",
            "cairn_seal_latency_seconds_bucket{le=\"0.5\"} 1",
            "cairn_seal_latency_seconds_count 1",
            "cairn_segment_size_bytes_bucket{le=\"65536\"} 0",
            "cairn_segment_size_bytes_bucket{le=\"262144\"} 1",
            "cairn_store_failing 0",
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
