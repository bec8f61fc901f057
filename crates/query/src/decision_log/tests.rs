use super::records::alert_event;
use super::*;
use crate::service::AuthKind;
use crate::service::Identity;
use serde_json::json;
use sha2::{Digest, Sha256};

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
