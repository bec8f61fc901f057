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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_kafka::{AckedProducer, KafkaConfig, Record, RetryPolicy};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::QueryError;
use crate::alerts::{Alert, Rules};
use crate::config::{DecisionLogConfig, SqlText};
use crate::metrics::Metrics;
use crate::service::{Identity, SegmentRead};

/// `source` of every record cairn-query writes.
pub const SOURCE: &str = "cairn-query";
/// `action` of a decision record and of a completion record.
pub const DECISION_ACTION: &str = "query.execute";
pub const COMPLETION_ACTION: &str = "query.complete";
/// `tenant` of a record whose caller has none (auditors, unauthenticated requests).
pub const NO_TENANT: &str = "-";

/// What is known about one request when its fate is decided. Fields stay empty when the
/// request was refused before they were learnt (no identity for a bad token, no tables for
/// bad SQL).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub decision_id: String,
    /// When the request arrived, µs since the epoch.
    pub at_us: i64,
    pub client_ip: String,
    pub identity: Option<Identity>,
    pub sql: Option<String>,
    pub justification: Option<String>,
    /// Tables the SQL reads (from its logical plan).
    pub tables: Vec<String>,
    /// The policy input and the engine's raw result, as OPA's decision log has them.
    pub input: Option<Value>,
    pub result: Option<Value>,
    pub revision: Option<String>,
    pub engine: Option<&'static str>,
    pub eval_us: Option<u64>,
    pub allow: bool,
    pub reasons: Vec<String>,
    pub flags: Vec<String>,
    /// Per table: the row filters and masks applied.
    pub filters: Option<Value>,
    pub masks: Option<Value>,
}

/// How an allowed query ended.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub code: String,
    pub message: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub duration: Duration,
    pub segments: Vec<SegmentRead>,
    /// Tenants whose rows the query could see (after the policy's row filters).
    pub tenants: Vec<String>,
    pub signed: bool,
}

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

    /// The decision record: an audit event whose details carry OPA's decision-log fields.
    pub fn decision_event(&self, f: &Facts, refusal: Option<&QueryError>) -> Value {
        let mut d: BTreeMap<&str, String> = BTreeMap::new();
        d.insert("record", "decision".into());
        d.insert("decision_id", f.decision_id.clone());
        d.insert("path", self.path.clone());
        d.insert("allow", (refusal.is_none() && f.allow).to_string());
        let code = refusal.map_or("ok", QueryError::code);
        d.insert("code", code.into());
        if let Some(e) = refusal {
            d.insert("message", e.to_string());
        }
        if let Some(v) = &f.input {
            d.insert("input", v.to_string());
        }
        if let Some(v) = &f.result {
            d.insert("result", v.to_string());
        }
        if let Some(v) = &f.revision {
            d.insert("policy_revision", v.clone());
        }
        if let Some(v) = f.engine {
            d.insert("policy_engine", v.into());
        }
        if let Some(v) = f.eval_us {
            d.insert("eval_us", v.to_string());
        }
        if !f.reasons.is_empty() {
            d.insert("reasons", json!(f.reasons).to_string());
        }
        if !f.flags.is_empty() {
            d.insert("flags", json!(f.flags).to_string());
        }
        if let Some(v) = &f.filters {
            d.insert("row_filters", v.to_string());
        }
        if let Some(v) = &f.masks {
            d.insert("masks", v.to_string());
        }
        if let Some(j) = f.justification.as_deref().filter(|j| !j.trim().is_empty()) {
            d.insert("justification", j.to_string());
        }
        if let Some(sql) = &f.sql {
            d.insert("sql_sha256", hex::encode(Sha256::digest(sql.as_bytes())));
            if self.sql_text == SqlText::Full {
                d.insert("sql", sql.clone());
            }
        }
        if let Some(id) = &f.identity {
            d.insert("roles", json!(id.roles).to_string());
        }
        let outcome = match refusal {
            None => "success",
            Some(QueryError::Denied { .. })
            | Some(QueryError::PolicyInvalid(_))
            | Some(QueryError::Unauthenticated(_)) => "denied",
            Some(_) => "error",
        };
        event(
            &f.decision_id,
            f.at_us,
            f,
            DECISION_ACTION,
            outcome,
            d.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )
    }

    /// The completion record: same decision id in its details, a fresh event id.
    pub fn completion_event(&self, f: &Facts, done: &Completion) -> Value {
        let mut d: BTreeMap<String, String> = BTreeMap::new();
        d.insert("record".into(), "completion".into());
        d.insert("decision_id".into(), f.decision_id.clone());
        d.insert("code".into(), done.code.clone());
        if let Some(m) = &done.message {
            d.insert("message".into(), m.clone());
        }
        d.insert("rows".into(), done.rows.to_string());
        d.insert("bytes".into(), done.bytes.to_string());
        d.insert("duration_ms".into(), done.duration.as_millis().to_string());
        d.insert("segments".into(), json!(done.segments).to_string());
        d.insert("tenants_read".into(), json!(done.tenants).to_string());
        d.insert("signed".into(), done.signed.to_string());
        let outcome = if done.code == "ok" {
            "success"
        } else {
            "error"
        };
        event(
            &uuid::Uuid::now_v7().to_string(),
            chrono::Utc::now().timestamp_micros(),
            f,
            COMPLETION_ACTION,
            outcome,
            d,
        )
    }
}

/// Records of one subject share a key, so one partition keeps them in order.
fn record_key(f: &Facts) -> String {
    match &f.identity {
        Some(id) => id.subject.clone(),
        None => format!("anonymous@{}", f.client_ip),
    }
}

fn event(
    event_id: &str,
    at_us: i64,
    f: &Facts,
    action: &str,
    outcome: &str,
    details: BTreeMap<String, String>,
) -> Value {
    let (subject, kind, tenant) = match &f.identity {
        Some(id) => (
            id.subject.clone(),
            id.auth.as_str(),
            id.tenant.clone().unwrap_or_else(|| NO_TENANT.into()),
        ),
        None => ("anonymous".to_string(), "anonymous", NO_TENANT.to_string()),
    };
    let ip = f
        .client_ip
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string());
    let resource = if f.tables.is_empty() {
        "-".to_string()
    } else {
        f.tables.join(",")
    };
    json!({
        "event_id": event_id,
        "occurred_at": cairn_format::event::format_micros(at_us).unwrap_or_default(),
        "tenant": tenant,
        "actor": {"id": subject, "type": kind, "ip": ip},
        "action": action,
        "resource": {"type": "table", "id": resource},
        "outcome": outcome,
        "source": SOURCE,
        "sensitivity": "confidential",
        "details": details,
    })
}

fn alert_event(a: &Alert) -> Value {
    let mut d: BTreeMap<String, String> = BTreeMap::new();
    d.insert("record".into(), "alert".into());
    d.insert("rule".into(), a.rule.into());
    d.insert("decision_ids".into(), json!(a.decision_ids).to_string());
    d.insert("message".into(), a.message.clone());
    d.insert("threshold".into(), a.threshold.to_string());
    d.insert("observed".into(), a.observed.to_string());
    json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "occurred_at": cairn_format::event::format_micros(chrono::Utc::now().timestamp_micros()).unwrap_or_default(),
        "tenant": a.tenant.clone().unwrap_or_else(|| NO_TENANT.into()),
        "actor": {"id": a.subject, "type": "subject", "ip": null},
        "action": format!("alert.{}", a.rule),
        "resource": {"type": "subject", "id": a.subject},
        "outcome": "success",
        "source": SOURCE,
        "sensitivity": "confidential",
        "details": d,
    })
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
mod tests {
    use super::*;
    use crate::service::AuthKind;

    fn log(sql_text: SqlText) -> DecisionLog {
        DecisionLog {
            kafka: None,
            sql_text,
            path: "cairn/authz/decision".into(),
            metrics: Metrics::default(),
            rules: Mutex::new(Rules::new(Default::default())),
        }
    }

    fn facts() -> Facts {
        Facts {
            decision_id: uuid::Uuid::now_v7().to_string(),
            at_us: 1_790_000_000_000_000,
            client_ip: "127.0.0.1".into(),
            identity: Some(Identity {
                subject: "ann".into(),
                roles: vec!["analyst".into()],
                tenant: Some("acme".into()),
                auth: AuthKind::ApiKey,
            }),
            sql: Some("SELECT 1 FROM events".into()),
            tables: vec!["events".into()],
            allow: true,
            ..Facts::default()
        }
    }

    /// Every record is an audit event ingest accepts: the sealing path needs no new format.
    #[test]
    fn records_are_valid_audit_events() {
        let l = log(SqlText::Full);
        let f = facts();
        let denied = QueryError::Denied {
            decision_id: f.decision_id.clone(),
            reasons: vec!["no".into()],
        };
        let anon = Facts {
            identity: None,
            sql: None,
            tables: vec![],
            ..facts()
        };
        let records = [
            l.decision_event(&f, None),
            l.decision_event(&f, Some(&denied)),
            l.decision_event(&anon, Some(&QueryError::Unauthenticated("bad".into()))),
            l.completion_event(&f, &Completion::default()),
            alert_event(&Alert {
                rule: "break_glass",
                subject: "bob".into(),
                tenant: None,
                decision_ids: vec![f.decision_id.clone()],
                message: "m".into(),
                threshold: 1,
                observed: 1,
            }),
        ];
        for r in &records {
            let ev = cairn_format::AuditEvent::from_json(r.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{r}: {e}"));
            assert_eq!(ev.source, SOURCE);
        }
        assert_eq!(records[0]["event_id"], json!(f.decision_id));
        assert_eq!(records[0]["outcome"], "success");
        assert_eq!(records[1]["outcome"], "denied");
        assert_eq!(records[2]["actor"]["id"], "anonymous");
        assert_eq!(records[2]["tenant"], NO_TENANT);
        assert_eq!(records[3]["details"]["decision_id"], json!(f.decision_id));
        assert_ne!(records[3]["event_id"], json!(f.decision_id));
    }

    fn metric(m: &Metrics, name: &str) -> f64 {
        m.render()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(-1.0)
    }

    /// Nothing listens on the brokers' port: the service is not ready, a decision is refused
    /// (never "recorded"), and completions wait in the bounded queue, retried and counted,
    /// the ones beyond its bound counted as lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_brokers_decisions_are_refused_and_completions_retried_then_dropped() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = DecisionLogConfig {
            brokers: format!("127.0.0.1:{port}"),
            ack_timeout_ms: 300,
            completion_queue: 1,
            ..DecisionLogConfig::default()
        };
        let metrics = Metrics::default();
        let log = DecisionLog::start(&cfg, "cairn/authz/decision", metrics.clone())
            .await
            .unwrap();
        assert!(log.ready().is_err());
        assert_eq!(metric(&metrics, "cairn_query_decision_log_ready"), 0.0);
        let f = facts();
        let err = log.decision(&f, None).await.unwrap_err();
        assert_eq!(err.code(), "decision_log_unavailable");
        assert_eq!(
            metric(&metrics, "cairn_query_decision_log_unavailable_total"),
            1.0
        );

        // The first completion is taken by the sender and retried; one more fills the queue;
        // the next is lost.
        log.completion(&f, &Completion::default());
        tokio::time::sleep(Duration::from_millis(100)).await;
        log.completion(&f, &Completion::default());
        log.completion(&f, &Completion::default());
        assert_eq!(
            metric(
                &metrics,
                "cairn_query_decision_log_completion_dropped_total"
            ),
            1.0
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(
            &metrics,
            "cairn_query_decision_log_completion_retries_total",
        ) < 1.0
        {
            assert!(Instant::now() < deadline, "{}", metrics.render());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            metric(&metrics, "cairn_query_decision_log_completion_pending"),
            2.0
        );
        assert_eq!(
            metric(
                &metrics,
                "cairn_query_decision_log_records_total{kind=\"completion\"}"
            ),
            -1.0,
            "nothing was acknowledged"
        );
    }

    #[test]
    fn sql_text_can_be_reduced_to_its_hash() {
        let f = facts();
        let full = log(SqlText::Full).decision_event(&f, None);
        let hashed = log(SqlText::Sha256).decision_event(&f, None);
        assert_eq!(full["details"]["sql"], "SELECT 1 FROM events");
        assert!(hashed["details"].get("sql").is_none());
        assert_eq!(
            hashed["details"]["sql_sha256"],
            json!(hex::encode(Sha256::digest(b"SELECT 1 FROM events")))
        );
    }
}
