//! The decision log (docs/QUERY.md, "Decision log"). Every request to `POST /v1/query` becomes
//! one record on the decisions topic, acknowledged by Kafka (idempotent, `acks=all`) before
//! the response is sent and before any data is read: a request whose record is not
//! acknowledged is refused with 503 `decision_log_unavailable` (fail closed). An allowed query
//! that ran adds a completion record (rows, bytes, duration, the segments read), sent from a
//! bounded queue and retried until acknowledged. Records are audit events
//! (`schemas/audit_event.avsc`, as JSON), so `cairn ingest` seals the topic like any other and
//! the query service serves it back as the `access_log` table.
//!
//! Alert rules ([`crate::alerts`]) see every record; their alerts take the same queue to the
//! alerts topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_kafka::{AckedProducer, KafkaConfig, Record, RetryPolicy};
use tokio::sync::mpsc;

use crate::QueryError;
use crate::alerts::{Alert, Rules};
use crate::config::{DecisionLogConfig, SqlText};
use crate::metrics::Metrics;

mod records;

pub use records::{Completion, Facts};
use records::{alert_event, record_key};

/// `source` of every record cairn-query writes.
pub const SOURCE: &str = "cairn-query";
/// `action` of a decision record and of a completion record.
pub const DECISION_ACTION: &str = "query.execute";
pub const COMPLETION_ACTION: &str = "query.complete";
/// `tenant` of a record whose caller has none (auditors, unauthenticated requests).
pub const NO_TENANT: &str = "-";

/// A record waiting in the retry queue.
struct Pending {
    topic: String,
    key: String,
    payload: Vec<u8>,
    kind: &'static str,
}

pub struct DecisionLog {
    kafka: Option<Kafka>,
    sql_text: SqlText,
    path: String,
    metrics: Metrics,
    rules: Mutex<Rules>,
}

struct Kafka {
    producer: Arc<AckedProducer>,
    topic: String,
    alerts_topic: String,
    ready: Arc<AtomicBool>,
    why: Arc<Mutex<String>>,
    queue: mpsc::Sender<Pending>,
}

impl DecisionLog {
    /// Connects to the brokers, checks the decisions topic (not ready until it is usable),
    /// and starts the readiness probe and the completion queue. `off` logs nothing.
    pub async fn start(
        cfg: &DecisionLogConfig,
        entrypoint: &str,
        metrics: Metrics,
    ) -> Result<Arc<Self>, QueryError> {
        let rules = Mutex::new(Rules::new(cfg.alerts.clone()));
        if cfg.off {
            tracing::warn!(
                "[query.decision_log] off = true: decisions are NOT recorded; use only for local development"
            );
            metrics.log_ready(true);
            return Ok(Arc::new(DecisionLog {
                kafka: None,
                sql_text: cfg.sql_text,
                path: entrypoint.to_string(),
                metrics,
                rules,
            }));
        }
        let mut properties = cfg.kafka.clone();
        // A request waits for each decision record: send at once rather than wait the
        // default 5 ms for a batch to fill (acknowledged p50 7.5 ms before, 2.8-3.2 ms after;
        // README). A
        // `[query.decision_log.kafka]` setting wins.
        properties
            .entry("linger.ms".into())
            .or_insert_with(|| "0".into());
        let kafka_cfg = KafkaConfig {
            brokers: cfg.brokers.clone(),
            properties,
        };
        let ack_timeout = Duration::from_millis(cfg.ack_timeout_ms);
        let producer = AckedProducer::new(
            &kafka_cfg,
            RetryPolicy {
                attempts: 1,
                first_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(100),
                send_timeout: ack_timeout,
            },
        )
        .map_err(|e| QueryError::Internal(format!("[query.decision_log]: {e}")))?;
        let producer = Arc::new(producer);
        let (queue, rx) = mpsc::channel(cfg.completion_queue.max(1));
        let kafka = Kafka {
            producer: producer.clone(),
            topic: cfg.topic.clone(),
            alerts_topic: cfg.alerts_topic.clone(),
            ready: Arc::new(AtomicBool::new(false)),
            why: Arc::new(Mutex::new(
                "the decisions topic has not been checked yet".into(),
            )),
            queue,
        };
        probe_once(&kafka, &metrics, ack_timeout).await;
        spawn_probe(&kafka, metrics.clone(), ack_timeout);
        tokio::spawn(drain(producer, rx, metrics.clone()));
        Ok(Arc::new(DecisionLog {
            kafka: Some(kafka),
            sql_text: cfg.sql_text,
            path: entrypoint.to_string(),
            metrics,
            rules,
        }))
    }

    /// `Err(why)` while decisions cannot be recorded (queries are then refused).
    pub fn ready(&self) -> Result<(), String> {
        match &self.kafka {
            None => Ok(()),
            Some(k) if k.ready.load(Ordering::SeqCst) => Ok(()),
            Some(k) => Err(format!(
                "the decision log is unavailable: {}",
                k.why.lock().unwrap_or_else(|e| e.into_inner())
            )),
        }
    }

    /// Records the decision about one request and waits for Kafka's acknowledgement.
    /// `refusal` is why the request is refused, if it is. An error means the record is not
    /// acknowledged: the caller must refuse the request with it, reading nothing.
    pub async fn decision(
        &self,
        facts: &Facts,
        refusal: Option<&QueryError>,
    ) -> Result<(), QueryError> {
        let event = self.decision_event(facts, refusal);
        let alerts = self
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_decision(facts, refusal.is_none(), refusal.map(QueryError::code));
        let Some(k) = &self.kafka else {
            for a in alerts {
                self.alert(a);
            }
            return Ok(());
        };
        if let Err(why) = self.ready() {
            self.metrics.log_unavailable();
            return Err(QueryError::DecisionLogUnavailable(why));
        }
        let payload =
            serde_json::to_vec(&event).map_err(|e| QueryError::Internal(e.to_string()))?;
        let key = record_key(facts);
        let start = Instant::now();
        let sent = k
            .producer
            .send(&Record {
                topic: &k.topic,
                key: Some(key.as_bytes()),
                payload: &payload,
                headers: vec![("cairn-record", Some(b"decision"))],
            })
            .await;
        match sent {
            Ok(_) => {
                self.metrics.log_ack(start.elapsed());
                self.metrics.log_record("decision");
                for a in alerts {
                    self.alert(a);
                }
                Ok(())
            }
            Err(e) => {
                k.ready.store(false, Ordering::SeqCst);
                *k.why.lock().unwrap_or_else(|e| e.into_inner()) = e.to_string();
                self.metrics.log_ready(false);
                self.metrics.log_unavailable();
                tracing::error!(decision_id = %facts.decision_id, error = %e, "decision record not acknowledged; request refused");
                Err(QueryError::DecisionLogUnavailable(format!(
                    "the decision record was not acknowledged ({e}); nothing was read"
                )))
            }
        }
    }

    /// Queues the completion record of an allowed query (never blocks the response).
    pub fn completion(&self, facts: &Facts, done: &Completion) {
        let alerts = self
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_completion(facts, done);
        if let Some(k) = &self.kafka {
            let event = self.completion_event(facts, done);
            self.enqueue(
                k,
                Pending {
                    topic: k.topic.clone(),
                    key: record_key(facts),
                    payload: event.to_string().into_bytes(),
                    kind: "completion",
                },
            );
        }
        for a in alerts {
            self.alert(a);
        }
    }

    fn alert(&self, alert: Alert) {
        tracing::warn!(rule = alert.rule, subject = %alert.subject, decision_ids = ?alert.decision_ids, "{}", alert.message);
        if let Some(k) = &self.kafka {
            let event = alert_event(&alert);
            self.enqueue(
                k,
                Pending {
                    topic: k.alerts_topic.clone(),
                    key: alert.subject.clone(),
                    payload: event.to_string().into_bytes(),
                    kind: alert.rule,
                },
            );
        }
    }

    fn enqueue(&self, k: &Kafka, p: Pending) {
        let kind = p.kind;
        match k.queue.try_send(p) {
            Ok(()) => self.metrics.completion_pending(1),
            Err(_) => {
                self.metrics.completion_dropped();
                tracing::error!(
                    kind,
                    "the decision log's retry queue is full; a record is lost (raise [query.decision_log] completion_queue, and check the brokers)"
                );
            }
        }
    }
}

async fn probe_once(k: &Kafka, metrics: &Metrics, timeout: Duration) {
    let producer = k.producer.clone();
    let topic = k.topic.clone();
    let checked = tokio::task::spawn_blocking(move || producer.topic_ready(&topic, timeout))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let was = k.ready.load(Ordering::SeqCst);
    match checked {
        Ok(_) => {
            if !was {
                tracing::info!(topic = %k.topic, "decision log ready");
            }
            k.ready.store(true, Ordering::SeqCst);
            metrics.log_ready(true);
        }
        Err(why) => {
            if was {
                tracing::error!(topic = %k.topic, error = %why, "decision log unavailable; queries are refused until it is back");
            }
            *k.why.lock().unwrap_or_else(|e| e.into_inner()) = why;
            k.ready.store(false, Ordering::SeqCst);
            metrics.log_ready(false);
        }
    }
}

/// Re-checks the topic every second, so that the service becomes ready again on its own
/// once the brokers are back.
fn spawn_probe(k: &Kafka, metrics: Metrics, timeout: Duration) {
    let probe = Kafka {
        producer: k.producer.clone(),
        topic: k.topic.clone(),
        alerts_topic: k.alerts_topic.clone(),
        ready: k.ready.clone(),
        why: k.why.clone(),
        queue: k.queue.clone(),
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if probe.queue.is_closed() {
                return;
            }
            probe_once(&probe, &metrics, timeout.min(Duration::from_secs(2))).await;
        }
    });
}

/// Sends queued records in order, each until acknowledged (backoff up to 10 s).
async fn drain(producer: Arc<AckedProducer>, mut rx: mpsc::Receiver<Pending>, metrics: Metrics) {
    while let Some(p) = rx.recv().await {
        let mut backoff = Duration::from_millis(200);
        loop {
            let sent = producer
                .send(&Record {
                    topic: &p.topic,
                    key: Some(p.key.as_bytes()),
                    payload: &p.payload,
                    headers: vec![("cairn-record", Some(p.kind.as_bytes()))],
                })
                .await;
            match sent {
                Ok(_) => {
                    metrics.completion_pending(-1);
                    if p.kind == "completion" {
                        metrics.log_record("completion");
                    } else {
                        metrics.alert(p.kind);
                    }
                    break;
                }
                Err(e) => {
                    metrics.completion_retry();
                    tracing::warn!(kind = p.kind, topic = %p.topic, error = %e, "record not acknowledged; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
