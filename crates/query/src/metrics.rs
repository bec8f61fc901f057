//! What the query service exposes on `/metrics` (OpenMetrics text): requests by response
//! code, policy decisions and their latency, query time, segments served, read and excluded.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AllowLabels {
    allow: String,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    decisions: Family<AllowLabels, Counter>,
    decision_seconds: Histogram,
    query_seconds: Histogram,
    segments_read: Counter,
    segments_served: Gauge,
    segments_excluded: Gauge,
    policy_reload_failures: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cairn_query");
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by response code (ok or the error code)",
            requests.clone(),
        );
        let decisions = Family::<AllowLabels, Counter>::default();
        registry.register(
            "policy_decisions",
            "Policy decisions, allowed or not",
            decisions.clone(),
        );
        let decision_seconds = Histogram::new([
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0,
        ]);
        registry.register(
            "policy_decision_seconds",
            "Time to one policy decision",
            decision_seconds.clone(),
        );
        let query_seconds = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]);
        registry.register(
            "execution_seconds",
            "Time to execute an allowed query",
            query_seconds.clone(),
        );
        let segments_read = Counter::default();
        registry.register(
            "segments_read",
            "Segments scanned by allowed queries",
            segments_read.clone(),
        );
        let segments_served = Gauge::default();
        registry.register(
            "segments_served",
            "Verified segments the service serves",
            segments_served.clone(),
        );
        let segments_excluded = Gauge::default();
        registry.register(
            "segments_excluded",
            "Segments that failed verification and are not served",
            segments_excluded.clone(),
        );
        let policy_reload_failures = Gauge::default();
        registry.register(
            "policy_reload_failures",
            "Policy edits that did not load (the previous revision stayed in force)",
            policy_reload_failures.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                decisions,
                decision_seconds,
                query_seconds,
                segments_read,
                segments_served,
                segments_excluded,
                policy_reload_failures,
            }),
        }
    }
}

impl Metrics {
    pub fn request(&self, code: &str) {
        self.inner
            .requests
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    pub fn decision(&self, allow: bool, elapsed: Duration) {
        self.inner
            .decisions
            .get_or_create(&AllowLabels {
                allow: allow.to_string(),
            })
            .inc();
        self.inner.decision_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn query_time(&self, elapsed: Duration) {
        self.inner.query_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn segments_read(&self, n: usize) {
        self.inner.segments_read.inc_by(n as u64);
    }

    pub fn catalog(&self, served: usize, excluded: usize) {
        self.inner.segments_served.set(served as i64);
        self.inner.segments_excluded.set(excluded as i64);
    }

    pub fn policy_reload_failures(&self, n: u64) {
        self.inner.policy_reload_failures.set(n as i64);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }
}
