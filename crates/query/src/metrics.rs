//! What the query service exposes on `/metrics` (OpenMetrics text): requests by response
//! code, policy decisions and their latency, query time, segments served, read and excluded,
//! and the decision log (records acknowledged, refusals, completion retries, alerts).

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
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
    log_records: Family<KindLabels, Counter>,
    log_unavailable: Counter,
    log_ack_seconds: Histogram,
    log_ready: Gauge,
    completion_pending: Gauge,
    completion_retries: Counter,
    completion_dropped: Counter,
    alerts: Family<RuleLabels, Counter>,
    alerts_failed: Counter,
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
        let log_records = Family::<KindLabels, Counter>::default();
        registry.register(
            "decision_log_records",
            "Records the decision log had acknowledged, by kind (decision, completion)",
            log_records.clone(),
        );
        let log_unavailable = Counter::default();
        registry.register(
            "decision_log_unavailable",
            "Requests refused with 503 because their decision record was not acknowledged",
            log_unavailable.clone(),
        );
        let log_ack_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
        ]);
        registry.register(
            "decision_log_ack_seconds",
            "Time from producing a decision record to its acknowledgement",
            log_ack_seconds.clone(),
        );
        let log_ready = Gauge::default();
        registry.register(
            "decision_log_ready",
            "1 when the decisions topic is reachable, else 0 (queries are refused)",
            log_ready.clone(),
        );
        let completion_pending = Gauge::default();
        registry.register(
            "decision_log_completion_pending",
            "Completion records waiting for acknowledgement (bounded queue)",
            completion_pending.clone(),
        );
        let completion_retries = Counter::default();
        registry.register(
            "decision_log_completion_retries",
            "Completion-record sends that failed and were retried",
            completion_retries.clone(),
        );
        let completion_dropped = Counter::default();
        registry.register(
            "decision_log_completion_dropped",
            "Completion records lost because the retry queue was full",
            completion_dropped.clone(),
        );
        let alerts = Family::<RuleLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts acknowledged on the alerts topic, by rule",
            alerts.clone(),
        );
        let alerts_failed = Counter::default();
        registry.register(
            "alerts_failed",
            "Alerts that could not be delivered after retries (logged at ERROR)",
            alerts_failed.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                log_records,
                log_unavailable,
                log_ack_seconds,
                log_ready,
                completion_pending,
                completion_retries,
                completion_dropped,
                alerts,
                alerts_failed,
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

    pub fn log_record(&self, kind: &str) {
        self.inner
            .log_records
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn log_unavailable(&self) {
        self.inner.log_unavailable.inc();
    }

    pub fn log_ack(&self, elapsed: Duration) {
        self.inner.log_ack_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn log_ready(&self, ready: bool) {
        self.inner.log_ready.set(i64::from(ready));
    }

    pub fn completion_pending(&self, delta: i64) {
        self.inner.completion_pending.inc_by(delta);
    }

    pub fn completion_retry(&self) {
        self.inner.completion_retries.inc();
    }

    pub fn completion_dropped(&self) {
        self.inner.completion_dropped.inc();
    }

    pub fn alert(&self, rule: &str) {
        self.inner
            .alerts
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc();
    }

    pub fn alert_failed(&self) {
        self.inner.alerts_failed.inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }
}
